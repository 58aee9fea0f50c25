//! Soft-delete retention: soft delete, restore and purge of target objects, and directory reads.
//!
//! A library with a thin `main.rs`: tests build the [`App`] in-process.

mod api;
mod apply;
pub mod clock;
mod directory;
mod error;
pub mod feed;
mod recovery;
mod watch;

use std::future::Future;

pub use api::RetentionApi;
pub use error::RetentionError;
pub use feed::DEFAULT_FEED_RETENTION_DAYS;
use syncguard_bootstrap::{PeerChannel, ServiceConfig, ServiceHost, ServiceName};
use syncguard_domain::JobId;
use syncguard_proto::v1;
use syncguard_proto::v1::retention_service_server::{RetentionServiceServer, SERVICE_NAME};
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use tonic::service::Routes;

use std::sync::Arc;

use clock::{Clock, SystemClock};

/// Jobs applied at once per retention instance.
const APPLY_CONCURRENCY: usize = 4;

/// One round of the purge: every object whose retention ended, in bounded batches, and the
/// change feed's batches older than it keeps.
async fn purge_round(
    pool: &syncguard_store::PgPool,
    clock: &Arc<dyn Clock>,
    feed_retention: chrono::Duration,
) {
    match feed::prune(pool, clock.now(), feed_retention).await {
        Ok(0) => {}
        Ok(dropped) => tracing::info!(dropped, "old changes dropped from the feed"),
        Err(error) => tracing::warn!(%error, "the feed was not pruned; retrying on the next tick"),
    }
    match recovery::purge_backlog(pool, clock).await {
        Ok(backlog) => syncguard_telemetry::metrics()
            .purge_backlog
            .record(backlog, &[]),
        Err(error) => tracing::debug!(%error, "purge backlog not measured"),
    }
    loop {
        match recovery::purge_due(pool, clock).await {
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

/// The apply worker's step: apply the job's decided cycle, then wake the stager for the
/// job's next queued push.
async fn apply_and_hand_over(
    pool: &syncguard_store::PgPool,
    clock: &Arc<dyn Clock>,
    stager: &StagerServiceClient<PeerChannel>,
    job_id: JobId,
) -> anyhow::Result<bool> {
    if apply::apply_next(pool, clock.now(), job_id)
        .await?
        .is_none()
    {
        return Ok(false);
    }
    // The job's next queued push can be staged now.
    let mut stager = stager.clone();
    let call = stager.stage_cycle(v1::StageCycleRequest {
        job_id: job_id.to_string(),
        ..Default::default()
    });
    syncguard_bootstrap::wake("stager", job_id, call).await;
    // The job's next cycle comes through the stager and the gate, which wake retention.
    Ok(false)
}

/// The retention service, bound and ready to run.
pub struct App {
    host: ServiceHost,
    clock: Arc<dyn Clock>,
    feed_retention: chrono::Duration,
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
            feed_retention: chrono::Duration::days(i64::from(feed::DEFAULT_FEED_RETENTION_DAYS)),
        })
    }

    /// Keeps the change feed this many days (`SYNCGUARD_FEED_RETENTION_DAYS`).
    pub fn with_feed_retention_days(mut self, days: u32) -> Self {
        self.feed_retention = chrono::Duration::days(i64::from(days.max(1)));
        self
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
        let pool = self.host.pool().clone();
        let tick = self.host.config().maintenance_interval;
        let background = self.host.background();
        let stager = StagerServiceClient::new(self.host.peer(ServiceName::Stager)?);

        let (due_pool, apply_pool, apply_clock) =
            (pool.clone(), pool.clone(), Arc::clone(&self.clock));
        let apply = background.keyed(
            "apply",
            APPLY_CONCURRENCY,
            tick,
            move || {
                let pool = due_pool.clone();
                async move { Ok(apply::due_jobs(&pool).await?) }
            },
            move |job_id| {
                let (pool, clock, stager) =
                    (apply_pool.clone(), Arc::clone(&apply_clock), stager.clone());
                async move { apply_and_hand_over(&pool, &clock, &stager, job_id).await }
            },
        );
        // Objects whose retention ended are purged in bounded batches.
        let (purge_pool, purge_clock, feed_retention) =
            (pool.clone(), Arc::clone(&self.clock), self.feed_retention);
        background.every("purge", tick, None, move || {
            let (pool, clock) = (purge_pool.clone(), Arc::clone(&purge_clock));
            async move { purge_round(&pool, &clock, feed_retention).await }
        });
        let api = RetentionApi::new(
            pool,
            Arc::clone(&self.clock),
            apply,
            self.host.feed_events(),
        );
        let server = RetentionServiceServer::new(api)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        self.host
            .serve(SERVICE_NAME, Routes::new(server), shutdown)
            .await
    }
}
