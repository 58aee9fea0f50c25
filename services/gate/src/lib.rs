//! Threshold and quarantine decisions: deletion protection rules, quarantines and their admin workflow.
//!
//! A library with a thin `main.rs`: tests build the [`App`] in-process.

mod api;
mod decide;
mod error;
mod evaluate;
mod maintenance;
mod notify;
mod protection;
mod quarantine;
mod rules;

use std::future::Future;

pub use api::{GateApi, Peers};
pub use error::GateError;
use syncguard_bootstrap::{ServiceConfig, ServiceHost, ServiceName};
use syncguard_proto::v1::gate_service_server::{GateServiceServer, SERVICE_NAME};
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::notifier_service_client::NotifierServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use tonic::service::Routes;

/// The gate service, bound and ready to run.
pub struct App {
    host: ServiceHost,
}

impl App {
    /// Binds the listener; the database is awaited in the background.
    pub async fn build(config: ServiceConfig) -> anyhow::Result<Self> {
        Ok(Self {
            host: ServiceHost::bind(config).await?,
        })
    }

    /// The port the service listens on.
    pub fn port(&self) -> u16 {
        self.host.port()
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let limit = self.host.config().max_message_bytes;
        let peers = Peers {
            stager: StagerServiceClient::new(self.host.peer(ServiceName::Stager)?)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            ingest: IngestServiceClient::new(self.host.peer(ServiceName::Ingest)?)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            notifier: NotifierServiceClient::new(self.host.peer(ServiceName::Notifier)?)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        };
        let api = GateApi::new(self.host.pool().clone(), peers.clone());

        // Expired holds and unsent notices are handled once the database is ready.
        let pool = self.host.pool().clone();
        let mut ready = self.host.ready();
        let tick = self.host.config().maintenance_interval;
        let reminder_interval = self.host.config().reminder_interval;
        tokio::spawn(async move {
            if ready.wait_for(|ready| *ready).await.is_ok() {
                maintenance::run(pool, peers, tick, reminder_interval).await;
            }
        });
        let server = GateServiceServer::new(api)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        self.host
            .serve(SERVICE_NAME, Routes::new(server), shutdown)
            .await
    }
}
