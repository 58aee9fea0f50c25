//! `syncguard-gate`: see the crate documentation of `syncguard_gate`.

use std::process::ExitCode;

use syncguard_bootstrap::{ServiceName, run_main, shutdown_signal};

fn main() -> ExitCode {
    run_main(ServiceName::Gate, |config| async move {
        syncguard_gate::App::build(config)
            .await?
            .run_until_stopped(shutdown_signal())
            .await
    })
}
