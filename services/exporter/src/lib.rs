//! The exporter: follows the change feed and writes every applied change of a job to the
//! job's targets (LDAP directories and SCIM 2.0 applications), once per target as far as the
//! target can tell. Held changes never reach it (only applied ones enter the feed).
//!
//! A library with a thin `main.rs`: tests build the [`App`] in-process.

mod api;
mod error;
mod export;
mod ldap_target;
mod scim_target;
mod state;
mod status;
mod write;

use std::future::Future;
use std::sync::Arc;

pub use api::ExporterApi;
pub use error::ExporterError;
use syncguard_bootstrap::{SecretStore, ServiceConfig, ServiceHost};
use syncguard_domain::JobId;
use syncguard_proto::v1::exporter_service_server::{ExporterServiceServer, SERVICE_NAME};
use tonic::service::Routes;

/// Jobs exported at once per exporter instance.
const EXPORT_CONCURRENCY: usize = 4;

/// The exporter service, bound and ready to run.
pub struct App {
    host: ServiceHost,
    secrets: Arc<SecretStore>,
}

impl App {
    /// Binds the listener; targets' secrets come from `SYNCGUARD_SECRETS_DIR` and
    /// `SYNCGUARD_SECRET_*`.
    pub async fn build(config: ServiceConfig) -> anyhow::Result<Self> {
        Self::build_with_secrets(config, SecretStore::from_env()).await
    }

    /// Like [`App::build`], with the secrets from `secrets`.
    pub async fn build_with_secrets(
        config: ServiceConfig,
        secrets: SecretStore,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            host: ServiceHost::bind(config).await?,
            secrets: Arc::new(secrets),
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
        let pool = self.host.pool().clone();
        let tick = self.host.config().maintenance_interval;
        let background = self.host.background();
        let (due_pool, work_pool, secrets) =
            (pool.clone(), pool.clone(), Arc::clone(&self.secrets));
        let export = background.keyed(
            "export",
            EXPORT_CONCURRENCY,
            tick,
            move || {
                let pool = due_pool.clone();
                async move { Ok(export::due_jobs(&pool).await?) }
            },
            move |job_id| {
                let (pool, secrets) = (work_pool.clone(), Arc::clone(&secrets));
                async move { export::export_job(&pool, &secrets, job_id).await }
            },
        );
        // Changes entering the feed wake the export of their job at once.
        let (events, woken) = (self.host.feed_events(), export.clone());
        let mut announced = events.subscribe();
        tokio::spawn(async move {
            loop {
                match announced.recv().await {
                    Ok(job_id) => woken.wake(JobId(job_id)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let (metrics_pool, metrics_tick) = (pool.clone(), tick);
        background.every("export metrics", metrics_tick, None, move || {
            let pool = metrics_pool.clone();
            async move { record_metrics(&pool).await }
        });
        let api = ExporterApi::new(pool, export);
        let server = ExporterServiceServer::new(api)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        self.host
            .serve(SERVICE_NAME, Routes::new(server), shutdown)
            .await
    }
}

/// Lag and parked failures per target, for the dashboards.
async fn record_metrics(pool: &syncguard_store::PgPool) {
    let Ok(listed) = status::list_targets(pool, &Default::default()).await else {
        return;
    };
    let metrics = syncguard_telemetry::metrics();
    for target in listed.targets {
        let labels = [
            syncguard_telemetry::KeyValue::new("job_id", target.job_id.clone()),
            syncguard_telemetry::KeyValue::new("target", target.target.clone()),
        ];
        metrics.export_lag.record(target.lag_seconds, &labels);
        metrics.export_failed.record(target.failed, &labels);
    }
}
