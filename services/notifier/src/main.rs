//! `syncguard-notifier`: see the crate documentation of `syncguard_notifier`.

use std::process::ExitCode;

use syncguard_bootstrap::{ServiceName, run_main, shutdown_signal};

fn main() -> ExitCode {
    run_main(ServiceName::Notifier, |config| async move {
        syncguard_notifier::App::build(config)
            .await?
            .run_until_stopped(shutdown_signal())
            .await
    })
}
