//! The body of every service's `main`: config, telemetry, run, exit code.

use std::future::Future;
use std::process::ExitCode;

use crate::config::{ServiceConfig, ServiceName};

/// Reads the configuration from the environment, installs telemetry, runs `serve` until it
/// returns, and maps the outcome to an exit code (0 clean, 1 failed, 2 bad configuration).
pub fn run_main<F, Fut>(service: ServiceName, serve: F) -> ExitCode
where
    F: FnOnce(ServiceConfig) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
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
