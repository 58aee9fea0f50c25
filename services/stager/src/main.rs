//! `syncguard-stager`: see the crate documentation of `syncguard_stager`.

use std::process::ExitCode;

use syncguard_bootstrap::{ServiceName, run_main, shutdown_signal};

fn main() -> ExitCode {
    run_main(ServiceName::Stager, |config| async move {
        syncguard_stager::App::build(config)
            .await?
            .run_until_stopped(shutdown_signal())
            .await
    })
}
