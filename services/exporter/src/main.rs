//! `syncguard-exporter`: see the crate documentation of `syncguard_exporter`.

use std::process::ExitCode;

use syncguard_bootstrap::{ServiceName, run_main, shutdown_signal};

fn main() -> ExitCode {
    run_main(ServiceName::Exporter, |config| async move {
        syncguard_exporter::App::build(config)
            .await?
            .run_until_stopped(shutdown_signal())
            .await
    })
}
