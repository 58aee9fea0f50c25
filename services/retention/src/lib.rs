//! Soft-delete retention: soft delete, restore and purge of target objects, and directory reads.
//!
//! A library with a thin `main.rs`: tests build the [`App`] in-process.

mod api;
mod directory;
mod error;
mod soft_delete;

use std::future::Future;

pub use api::RetentionApi;
pub use error::RetentionError;
use syncguard_bootstrap::{ServiceConfig, ServiceHost};
use syncguard_proto::v1::retention_service_server::{RetentionServiceServer, SERVICE_NAME};
use tonic::service::Routes;

/// The retention service, bound and ready to run.
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
        let api = RetentionApi::new(self.host.pool().clone());
        let server = RetentionServiceServer::new(api)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        self.host
            .serve(SERVICE_NAME, Routes::new(server), shutdown)
            .await
    }
}
