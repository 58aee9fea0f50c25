//! `syncguard-retention`: see the crate documentation of `syncguard_retention`.

use std::process::ExitCode;

use syncguard_bootstrap::{ServiceName, run_main, shutdown_signal};

fn main() -> ExitCode {
    run_main(ServiceName::Retention, |config| async move {
        syncguard_retention::App::build(config)
            .await?
            .run_until_stopped(shutdown_signal())
            .await
    })
}
