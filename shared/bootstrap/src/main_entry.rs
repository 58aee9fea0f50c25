//! The body of every program's `main`: config, telemetry, run, exit code.

use std::future::Future;
use std::process::ExitCode;

use crate::config::{ConfigError, ServiceConfig, ServiceName};

/// Reads the configuration from the environment, installs telemetry, runs `serve` until it
/// returns, and maps the outcome to an exit code (0 clean, 1 failed, 2 bad configuration).
/// `--health-check` instead asks the running service whether it is SERVING (exit 0 if so).
pub fn run_main<F, Fut>(service: ServiceName, serve: F) -> ExitCode
where
    F: FnOnce(ServiceConfig) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    run_program(
        service.as_str(),
        "SYNCGUARD_LISTEN",
        || ServiceConfig::from_env(service),
        || crate::health_probe::probe(service),
        serve,
    )
}

/// The same life cycle for a program that is not one of the gRPC services (the web
/// console): its own configuration type and its own health probe, the same telemetry,
/// arguments and exit codes, so every syncguard binary starts and fails alike.
pub fn run_program<C, F, Fut>(
    name: &'static str,
    listen_variable: &'static str,
    read_config: impl FnOnce() -> Result<C, ConfigError>,
    health_check: impl FnOnce() -> ExitCode,
    serve: F,
) -> ExitCode
where
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("--health-check") => return health_check(),
        Some("--version") => {
            println!("syncguard-{name} {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            let help = other == "--help" || other == "-h";
            let usage = format!(
                "usage: syncguard-{name} [--health-check | --version]\n\n\
                 Runs the {name} service, configured by environment variables (see the README's\n\
                 configuration table). --health-check asks the service listening on\n\
                 {listen_variable} whether it is serving and exits 0 if it is."
            );
            if help {
                println!("{usage}");
                return ExitCode::SUCCESS;
            }
            eprintln!("unknown argument {other:?}\n{usage}");
            return ExitCode::from(2);
        }
    }
    let config = match read_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("syncguard-{name}: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("syncguard-{name}: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let telemetry_config =
            syncguard_telemetry::TelemetryConfig::from_env(&format!("syncguard-{name}"));
        let _telemetry = match syncguard_telemetry::init(&telemetry_config) {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("syncguard-{name}: telemetry: {error:#}");
                return ExitCode::from(2);
            }
        };
        match serve(config).await {
            Ok(()) => {
                tracing::info!(service = name, "stopped");
                ExitCode::SUCCESS
            }
            Err(error) => {
                tracing::error!(service = name, error = format!("{error:#}"), "failed");
                ExitCode::FAILURE
            }
        }
    })
}
