//! The services the console calls, each call with the signed-in person's own token, so
//! the services authorize and log that person (the console has no role of its own).

use syncguard_bootstrap::{AddAuthorization, PeerUrls, ServiceName, TlsSettings, peer_endpoint};
use syncguard_proto::v1::exporter_service_client::ExporterServiceClient;
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::retention_service_client::RetentionServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use syncguard_telemetry::{InjectTraceContext, InjectTraceContextLayer};
use tonic::transport::Channel;
use tower_layer::Layer as _;

/// A channel whose calls carry one person's token and the current trace.
pub type PersonChannel = InjectTraceContext<AddAuthorization<Channel>>;

/// Largest answer the console reads (a page of log rows or held actions).
const MESSAGE_LIMIT: usize = 16 * 1024 * 1024;

/// Lazily connected channels to the services, shared by every session.
#[derive(Clone)]
pub struct Services {
    ingest: Channel,
    stager: Channel,
    gate: Channel,
    retention: Channel,
    exporter: Channel,
}

/// Clients for one person's request.
pub struct Calls {
    /// Jobs.
    pub ingest: IngestServiceClient<PersonChannel>,
    /// Cycles and the provisioning log.
    pub stager: StagerServiceClient<PersonChannel>,
    /// Protection, quarantines and pins.
    pub gate: GateServiceClient<PersonChannel>,
    /// The directory and its recycle bin.
    pub retention: RetentionServiceClient<PersonChannel>,
    /// Export targets.
    pub exporter: ExporterServiceClient<PersonChannel>,
}

impl Services {
    /// Channels to the services at `peers`, over TLS when `tls` says so.
    pub fn new(peers: &PeerUrls, tls: &TlsSettings) -> anyhow::Result<Self> {
        let channel = |service: ServiceName| peer_endpoint(peers.of(service), tls.client_config());
        Ok(Self {
            ingest: channel(ServiceName::Ingest)?,
            stager: channel(ServiceName::Stager)?,
            gate: channel(ServiceName::Gate)?,
            retention: channel(ServiceName::Retention)?,
            exporter: channel(ServiceName::Exporter)?,
        })
    }

    /// Clients that present `token`. A token that cannot travel in a header never signed
    /// in (sign-in checks it against the token table), so it is refused here as `None`.
    pub fn as_person(&self, token: &str) -> Option<Calls> {
        let person = |channel: &Channel| {
            AddAuthorization::new(channel.clone(), token)
                .ok()
                .map(|authorized| InjectTraceContextLayer.layer(authorized))
        };
        Some(Calls {
            ingest: IngestServiceClient::new(person(&self.ingest)?)
                .max_decoding_message_size(MESSAGE_LIMIT),
            stager: StagerServiceClient::new(person(&self.stager)?)
                .max_decoding_message_size(MESSAGE_LIMIT),
            gate: GateServiceClient::new(person(&self.gate)?)
                .max_decoding_message_size(MESSAGE_LIMIT),
            retention: RetentionServiceClient::new(person(&self.retention)?)
                .max_decoding_message_size(MESSAGE_LIMIT),
            exporter: ExporterServiceClient::new(person(&self.exporter)?)
                .max_decoding_message_size(MESSAGE_LIMIT),
        })
    }
}
