//! Directory ingestion: owns jobs, their sources and schedules; takes pushes and pulls sources.
//!
//! A library with a thin `main.rs`: tests build the [`App`] in-process.

mod api;
mod error;
pub mod export_file;
mod job_spec;
mod jobs;

use std::future::Future;

pub use api::IngestApi;
pub use error::IngestError;
use syncguard_bootstrap::{ServiceConfig, ServiceHost, ServiceName};
use syncguard_proto::v1::ingest_service_server::{IngestServiceServer, SERVICE_NAME};
use tonic::service::Routes;

/// The ingest service, bound and ready to run.
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
        let gate = self.host.peer(ServiceName::Gate)?;
        let api = IngestApi::new(self.host.pool().clone(), gate);
        let server = IngestServiceServer::new(api)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        self.host
            .serve(SERVICE_NAME, Routes::new(server), shutdown)
            .await
    }
}
