//! Authenticated gRPC clients for each service.

use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::notifier_service_client::NotifierServiceClient;
use syncguard_proto::v1::retention_service_client::RetentionServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

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

type Authed = InterceptedService<Channel, Bearer>;

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
    /// The directory.
    pub retention: RetentionServiceClient<Authed>,
}

fn channel(url: &str, name: &str) -> Result<Channel, Failure> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|_| {
        Failure::usage(format!(
            "--{name}-url {url:?} is not a URL like http://127.0.0.1:50051"
        ))
    })?;
    Ok(endpoint
        .initial_stream_window_size(8 * 1024 * 1024)
        .initial_connection_window_size(16 * 1024 * 1024)
        .connect_lazy())
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
        let authed = |url: &str, name: &str| -> Result<Authed, Failure> {
            Ok(InterceptedService::new(channel(url, name)?, bearer.clone()))
        };
        Ok(Self {
            ingest: IngestServiceClient::new(authed(&connection.ingest_url, "ingest")?)
                .max_encoding_message_size(MESSAGE_LIMIT)
                .max_decoding_message_size(MESSAGE_LIMIT),
            stager: StagerServiceClient::new(authed(&connection.stager_url, "stager")?)
                .max_decoding_message_size(MESSAGE_LIMIT),
            gate: GateServiceClient::new(authed(&connection.gate_url, "gate")?)
                .max_decoding_message_size(MESSAGE_LIMIT),
            notifier: NotifierServiceClient::new(authed(&connection.notifier_url, "notifier")?),
            retention: RetentionServiceClient::new(authed(&connection.retention_url, "retention")?)
                .max_decoding_message_size(MESSAGE_LIMIT),
        })
    }
}
