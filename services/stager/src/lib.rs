//! Diff and staging: turns a complete snapshot into a cycle of staged actions, applies decided cycles, serves the provisioning log.
//!
//! A library with a thin `main.rs`: tests build the [`App`] in-process.

mod api;
mod apply;
mod error;
mod preview;
mod reads;
mod resume;
mod stage;

use std::future::Future;

pub use api::StagerApi;
pub use error::StagerError;
use syncguard_bootstrap::{ServiceConfig, ServiceHost, ServiceName};
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::retention_service_client::RetentionServiceClient;
use syncguard_proto::v1::stager_service_server::{SERVICE_NAME, StagerServiceServer};
use tonic::service::Routes;

/// The stager service, bound and ready to run.
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
        let gate = GateServiceClient::new(self.host.peer(ServiceName::Gate)?)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let retention = RetentionServiceClient::new(self.host.peer(ServiceName::Retention)?)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let api = StagerApi::new(self.host.pool().clone(), gate.clone(), retention.clone());

        // Cycles a crash interrupted are finished once the database is ready.
        let pool = self.host.pool().clone();
        let mut ready = self.host.ready();
        let tick = self.host.config().maintenance_interval;
        tokio::spawn(async move {
            if ready.wait_for(|ready| *ready).await.is_ok() {
                resume::run(pool, gate, retention, tick).await;
            }
        });
        let server = StagerServiceServer::new(api)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        self.host
            .serve(SERVICE_NAME, Routes::new(server), shutdown)
            .await
    }
}
