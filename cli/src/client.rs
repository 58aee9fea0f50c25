//! Authenticated gRPC clients for each service.

use syncguard_proto::v1::exporter_service_client::ExporterServiceClient;
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::notifier_service_client::NotifierServiceClient;
use syncguard_proto::v1::retention_service_client::RetentionServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::addressed::AddressedChannel;
use crate::args::Connection;
use crate::failure::Failure;

/// Largest message sent or received (snapshot batches, long listings).
const MESSAGE_LIMIT: usize = 64 * 1024 * 1024;

/// Adds the caller's bearer token.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Authed = InterceptedService<AddressedChannel, Bearer>;

/// Clients of the five services, connecting lazily.
pub struct Clients {
    /// Jobs, pushes, triggers.
    pub ingest: IngestServiceClient<Authed>,
    /// Cycles and logs.
    pub stager: StagerServiceClient<Authed>,
    /// Protection and quarantines.
    pub gate: GateServiceClient<Authed>,
    /// Notifications.
    pub notifier: NotifierServiceClient<Authed>,
    /// The directory and its change feed.
    pub retention: RetentionServiceClient<Authed>,
    /// Export targets.
    pub exporter: ExporterServiceClient<Authed>,
}

fn channel(
    url: &str,
    name: &'static str,
    tls: Option<&ClientTlsConfig>,
) -> Result<AddressedChannel, Failure> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Failure::usage(format!(
            "--{name}-url {url:?} needs a scheme: http://{url} (or https://{url} with --ca)"
        )));
    }
    let mut endpoint = Endpoint::from_shared(url.to_owned()).map_err(|_| {
        Failure::usage(format!(
            "--{name}-url {url:?} is not a URL like http://127.0.0.1:50051"
        ))
    })?;
    if url.starts_with("https://") {
        let tls = tls.ok_or_else(|| {
            Failure::usage(format!(
                "--{name}-url {url:?} is https://: pass the CA that signed the services' certificates with --ca (or SYNCGUARD_CA)"
            ))
        })?;
        endpoint = endpoint
            .tls_config(tls.clone())
            .map_err(|error| Failure::usage(format!("TLS settings: {error}")))?;
    }
    let channel = endpoint
        .initial_stream_window_size(8 * 1024 * 1024)
        .initial_connection_window_size(16 * 1024 * 1024)
        .tcp_nodelay(true)
        .connect_lazy();
    Ok(AddressedChannel::new(channel, name, url))
}

/// Reads a PEM file named by a flag; errors name the flag and path, never the content.
fn read_pem(flag: &str, path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|error| {
        Failure::usage(format!(
            "{flag} {}: cannot read the file: {}",
            path.display(),
            error.kind()
        ))
    })
}

/// TLS settings from `--ca`, `--cert` and `--key`, when a CA is given. Inside a service's
/// container the service's own `SYNCGUARD_TLS_CA` (and client certificate) serve as well,
/// so `docker compose exec gate syncguard ...` needs no flags.
fn client_tls(connection: &Connection) -> Result<Option<ClientTlsConfig>, Failure> {
    let from_service = |variable: &str| {
        std::env::var_os(variable)
            .filter(|value| !value.is_empty())
            .map(std::path::PathBuf::from)
    };
    let ca = connection
        .ca
        .clone()
        .or_else(|| from_service("SYNCGUARD_TLS_CA"));
    let (cert, key) = match (&connection.cert, &connection.key) {
        (Some(cert), Some(key)) => (Some(cert.clone()), Some(key.clone())),
        _ => (
            from_service("SYNCGUARD_TLS_CLIENT_CERT"),
            from_service("SYNCGUARD_TLS_CLIENT_KEY"),
        ),
    };
    let Some(ca) = &ca else {
        if cert.is_some() {
            return Err(Failure::usage(
                "--cert is presented over TLS: pass --ca (or SYNCGUARD_CA) too",
            ));
        }
        return Ok(None);
    };
    let mut config =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read_pem("--ca", ca)?));
    if let (Some(cert), Some(key)) = (&cert, &key) {
        config = config.identity(Identity::from_pem(
            read_pem("--cert", cert)?,
            read_pem("--key", key)?,
        ));
    }
    Ok(Some(config))
}

/// The URL of a service: the flag or variable, else its default port on this host over
/// https when a CA is given.
fn service_url(given: &Option<String>, port: u16, tls: bool) -> String {
    given.clone().unwrap_or_else(|| {
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{port}")
    })
}

impl Clients {
    /// Builds the clients from the connection settings.
    pub fn new(connection: &Connection) -> Result<Self, Failure> {
        let token = connection.token.as_deref().ok_or_else(|| {
            Failure::usage(
                "no token: set SYNCGUARD_TOKEN or pass --token (with scripts/run the tokens are in target/dev/tokens)",
            )
        })?;
        let bearer =
            Bearer(format!("Bearer {token}").parse().map_err(|_| {
                Failure::usage("the token contains characters a header cannot carry")
            })?);
        let tls = client_tls(connection)?;
        let authed =
            |given: &Option<String>, port: u16, name: &'static str| -> Result<Authed, Failure> {
                let url = service_url(given, port, tls.is_some());
                Ok(InterceptedService::new(
                    channel(&url, name, tls.as_ref())?,
                    bearer.clone(),
                ))
            };
        Ok(Self {
            ingest: IngestServiceClient::new(authed(&connection.ingest_url, 50051, "ingest")?)
                .max_encoding_message_size(MESSAGE_LIMIT)
                .max_decoding_message_size(MESSAGE_LIMIT),
            stager: StagerServiceClient::new(authed(&connection.stager_url, 50052, "stager")?)
                .max_decoding_message_size(MESSAGE_LIMIT),
            gate: GateServiceClient::new(authed(&connection.gate_url, 50053, "gate")?)
                .max_decoding_message_size(MESSAGE_LIMIT),
            notifier: NotifierServiceClient::new(authed(
                &connection.notifier_url,
                50054,
                "notifier",
            )?),
            retention: RetentionServiceClient::new(authed(
                &connection.retention_url,
                50055,
                "retention",
            )?)
            .max_decoding_message_size(MESSAGE_LIMIT),
            exporter: ExporterServiceClient::new(authed(
                &connection.exporter_url,
                50056,
                "exporter",
            )?)
            .max_decoding_message_size(MESSAGE_LIMIT),
        })
    }
}
