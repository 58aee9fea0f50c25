//! Soft-delete retention: soft delete, restore and purge of target objects, and directory reads.
//!
//! A library with a thin `main.rs`: tests build the [`App`] in-process.

mod api;
pub mod clock;
mod directory;
mod error;
mod recovery;
mod soft_delete;

use std::future::Future;

pub use api::RetentionApi;
pub use error::RetentionError;
use syncguard_bootstrap::{ServiceConfig, ServiceHost};
use syncguard_proto::v1::retention_service_server::{RetentionServiceServer, SERVICE_NAME};
use tonic::service::Routes;

use std::sync::Arc;

use clock::{Clock, SystemClock};

async fn purge_loop(
    pool: syncguard_store::PgPool,
    clock: Arc<dyn Clock>,
    tick: std::time::Duration,
) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match recovery::purge_backlog(&pool, &clock).await {
            Ok(backlog) => syncguard_telemetry::metrics()
                .purge_backlog
                .record(backlog, &[]),
            Err(error) => tracing::debug!(%error, "purge backlog not measured"),
        }
        loop {
            match recovery::purge_due(&pool, &clock).await {
                Ok(purged) => {
                    if purged > 0 {
                        tracing::info!(purged, "objects purged after their retention");
                    }
                    if (purged as i64) < recovery::PURGE_BATCH {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "purge failed; retrying on the next tick");
                    break;
                }
            }
        }
    }
}

/// The retention service, bound and ready to run.
pub struct App {
    host: ServiceHost,
    clock: Arc<dyn Clock>,
}

impl App {
    /// Binds the listener; the database is awaited in the background.
    pub async fn build(config: ServiceConfig) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Like [`App::build`], telling time by `clock` (tests move it past retention periods).
    pub async fn build_with_clock(
        config: ServiceConfig,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            host: ServiceHost::bind(config).await?,
            clock,
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
        let api = RetentionApi::new(self.host.pool().clone(), Arc::clone(&self.clock));

        // Objects whose retention ended are purged in bounded batches once the database is ready.
        let pool = self.host.pool().clone();
        let clock = Arc::clone(&self.clock);
        let mut ready = self.host.ready();
        let tick = self.host.config().maintenance_interval;
        tokio::spawn(async move {
            if ready.wait_for(|ready| *ready).await.is_ok() {
                purge_loop(pool, clock, tick).await;
            }
        });
        let server = RetentionServiceServer::new(api)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        self.host
            .serve(SERVICE_NAME, Routes::new(server), shutdown)
            .await
    }
}
