//! Notifications: the email outbox in Postgres, sent over SMTP with retries, never twice.
//!
//! A library with a thin `main.rs`: tests build the [`App`] in-process.

mod api;
mod error;
mod outbox;

use std::future::Future;

pub use api::NotifierApi;
pub use error::NotifierError;
use syncguard_bootstrap::{ServiceConfig, ServiceHost};
use syncguard_proto::v1::notifier_service_server::{NotifierServiceServer, SERVICE_NAME};
use tonic::service::Routes;

/// The notifier service, bound and ready to run.
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
        let api = NotifierApi::new(self.host.pool().clone());
        let server = NotifierServiceServer::new(api)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        self.host
            .serve(SERVICE_NAME, Routes::new(server), shutdown)
            .await
    }
}
