//! `syncguard-<service> --health-check`: the service checks itself, for container health
//! probes (the images carry no grpc-health-probe). Asks the service listening on
//! `SYNCGUARD_LISTEN` (or its default) over `grpc.health.v1` and exits 0 when it is SERVING.
//! A service serving TLS is asked over TLS, verified with `SYNCGUARD_TLS_CA` under the host
//! name its peers use (`SYNCGUARD_<SERVICE>_URL`), presenting the client certificate if set.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::ServiceName;
use crate::tls::TlsSettings;

/// The name the service's certificate is checked against: the host its peers call it by,
/// else `localhost`.
fn own_host_name(service: ServiceName, get: &impl Fn(&str) -> Option<String>) -> String {
    get(&service.url_variable())
        .and_then(|url| url_host(&url))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The host of an `http(s)://host[:port][/path]` URL (an IPv6 address without brackets),
/// for checking a certificate against the name clients use.
pub fn url_host(url: &str) -> Option<String> {
    let authority = url.split_once("://")?.1.split('/').next()?.to_owned();
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next()?.to_owned(),
        None => authority
            .rsplit_once(':')
            .map_or(authority.clone(), |(host, _)| host.to_owned()),
    };
    (!host.is_empty()).then_some(host)
}

/// Runs the probe and maps the answer to an exit code.
pub fn probe(service: ServiceName) -> ExitCode {
    let get = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    let address = match crate::config::listen_address(service, &get) {
        Ok(address) => address,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    // A service listening on all interfaces answers on loopback.
    let address = if address.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    };
    let get = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    let tls = match TlsSettings::from_lookup(&get) {
        Ok(tls) => tls,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let client_tls = match (tls.serves_tls(), tls.client_config()) {
        (false, _) => None,
        (true, Some(config)) => Some(config.domain_name(own_host_name(service, &get))),
        (true, None) => {
            eprintln!(
                "syncguard-{} serves TLS: set SYNCGUARD_TLS_CA so the health check can verify it",
                service.as_str()
            );
            return ExitCode::from(2);
        }
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
        let scheme = if client_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|error| error.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(3));
        if let Some(config) = client_tls {
            endpoint = endpoint
                .tls_config(config)
                .map_err(|error| format!("TLS: {error}"))?;
        }
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
