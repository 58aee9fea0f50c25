//! The body of every service's `main`: config, telemetry, run, exit code.

use std::future::Future;
use std::process::ExitCode;

use crate::config::{ServiceConfig, ServiceName};

/// Reads the configuration from the environment, installs telemetry, runs `serve` until it
/// returns, and maps the outcome to an exit code (0 clean, 1 failed, 2 bad configuration).
/// `--health-check` instead asks the running service whether it is SERVING (exit 0 if so).
pub fn run_main<F, Fut>(service: ServiceName, serve: F) -> ExitCode
where
    F: FnOnce(ServiceConfig) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("--health-check") => return crate::health_probe::probe(service),
        Some("--version") => {
            println!(
                "syncguard-{} {}",
                service.as_str(),
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            let help = other == "--help" || other == "-h";
            let usage = format!(
                "usage: syncguard-{0} [--health-check | --version]\n\n\
                 Runs the {0} service, configured by environment variables (see the README's\n\
                 configuration table). --health-check asks the service listening on\n\
                 SYNCGUARD_LISTEN whether it is SERVING and exits 0 if it is.",
                service.as_str()
            );
            if help {
                println!("{usage}");
                return ExitCode::SUCCESS;
            }
            eprintln!("unknown argument {other:?}\n{usage}");
            return ExitCode::from(2);
        }
    }
    let config = match ServiceConfig::from_env(service) {
        Ok(config) => config,
        Err(error) => {
            eprintln!(
                "syncguard-{}: configuration error: {error}",
                service.as_str()
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!(
                "syncguard-{}: cannot start the runtime: {error}",
                service.as_str()
            );
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let telemetry_config = syncguard_telemetry::TelemetryConfig::from_env(&format!(
            "syncguard-{}",
            service.as_str()
        ));
        let _telemetry = match syncguard_telemetry::init(&telemetry_config) {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("syncguard-{}: telemetry: {error:#}", service.as_str());
                return ExitCode::from(2);
            }
        };
        match serve(config).await {
            Ok(()) => {
                tracing::info!(service = service.as_str(), "stopped");
                ExitCode::SUCCESS
            }
            Err(error) => {
                tracing::error!(
                    service = service.as_str(),
                    error = format!("{error:#}"),
                    "failed"
                );
                ExitCode::FAILURE
            }
        }
    })
}
