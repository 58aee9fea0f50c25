//! `syncguard-<service> --health-check`: the service checks itself, for container health
//! probes (the images carry no grpc-health-probe). Asks the service listening on
//! `SYNCGUARD_LISTEN` (or its default) over `grpc.health.v1` and exits 0 when it is SERVING.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::ServiceName;

/// Runs the probe and maps the answer to an exit code.
pub fn probe(service: ServiceName) -> ExitCode {
    let address = match std::env::var("SYNCGUARD_LISTEN") {
        Ok(value) if !value.trim().is_empty() => match value.trim().parse::<SocketAddr>() {
            Ok(address) => address,
            Err(error) => {
                eprintln!("SYNCGUARD_LISTEN={value:?} is not valid: {error}");
                return ExitCode::from(2);
            }
        },
        _ => service.default_listen(),
    };
    // A service listening on all interfaces answers on loopback.
    let address = if address.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|error| error.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(3));
        let channel = endpoint
            .connect()
            .await
            .map_err(|error| format!("cannot connect to {address}: {error}"))?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|status| format!("health check failed: {}", status.message()))?;
        Ok::<i32, String>(response.into_inner().status)
    });
    match outcome {
        Ok(status) if status == ServingStatus::Serving as i32 => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!(
                "syncguard-{} at {address} is {}",
                service.as_str(),
                ServingStatus::try_from(status)
                    .map(|s| s.as_str_name())
                    .unwrap_or("UNKNOWN")
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("syncguard-{}: {error}", service.as_str());
            ExitCode::FAILURE
        }
    }
}
