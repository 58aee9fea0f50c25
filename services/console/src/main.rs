//! `syncguard-console`: see the crate documentation of `syncguard_console`.

use std::process::ExitCode;

use syncguard_bootstrap::{run_program, shutdown_signal};
use syncguard_console::{App, ConsoleConfig, health_check};

fn main() -> ExitCode {
    run_program(
        "console",
        "SYNCGUARD_CONSOLE_LISTEN",
        ConsoleConfig::from_env,
        health_check,
        |config| async move {
            App::build(config)
                .await?
                .run_until_stopped(shutdown_signal())
                .await
        },
    )
}
