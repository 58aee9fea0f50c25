//! Threshold and quarantine decisions: decides every staged cycle against the job's
//! deletion protection rules (apply it, or quarantine it), and serves the quarantine's admin
//! workflow (allow, reject, restart, pins).
//!
//! A library with a thin `main.rs`: tests build the [`App`] in-process.

mod api;
mod decide;
mod decisions;
mod error;
mod evaluate;
mod maintenance;
mod notify;
mod pins;
mod protection;
mod quarantine_view;
mod rules;

use std::future::Future;

pub use api::{GateApi, Peers};
pub use error::GateError;
use syncguard_bootstrap::{ServiceConfig, ServiceHost, ServiceName, StepOwners};
use syncguard_domain::{JobId, Verdict};
use syncguard_proto::v1::gate_service_server::{GateServiceServer, SERVICE_NAME};
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::notifier_service_client::NotifierServiceClient;
use syncguard_proto::v1::retention_service_client::RetentionServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use tonic::service::Routes;
use tracing::Instrument as _;

/// Jobs decided at once per gate instance.
const DECIDE_CONCURRENCY: usize = 4;

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
        let retention_channel = self.host.peer(ServiceName::Retention)?;
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
            retention: RetentionServiceClient::new(retention_channel.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        };
        let pool = self.host.pool().clone();
        let config = self.host.config();
        let background = self.host.background();

        let (due_pool, decide_pool, decide_peers) = (pool.clone(), pool.clone(), peers.clone());
        let decide = background.keyed(
            "decide",
            DECIDE_CONCURRENCY,
            config.maintenance_interval,
            move || {
                let pool = due_pool.clone();
                async move { Ok(decide::due_jobs(&pool).await?) }
            },
            move |job_id: JobId| {
                let (pool, peers) = (decide_pool.clone(), decide_peers.clone());
                async move { decide_and_hand_over(&pool, &peers, job_id).await }
            },
        );
        let (maintenance_pool, maintenance_peers) = (pool.clone(), peers.clone());
        let reminder_interval = config.reminder_interval;
        background.every(
            "quarantine maintenance",
            config.maintenance_interval,
            None,
            move || {
                let (pool, peers) = (maintenance_pool.clone(), maintenance_peers.clone());
                async move { maintenance::run_once(&pool, &peers, reminder_interval).await }
            },
        );

        let owners = StepOwners {
            events: Some(self.host.cycle_events()),
            stager: None,
            gate: None,
            retention: Some(retention_channel),
        };
        let api = GateApi::new(pool, peers, decide, owners, config.cycle_wait);
        let server = GateServiceServer::new(api)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        self.host
            .serve(SERVICE_NAME, Routes::new(server), shutdown)
            .await
    }
}

/// The decide worker's step: decide the job's staged cycle, then wake retention to apply it
/// or tell people it is held.
async fn decide_and_hand_over(
    pool: &syncguard_store::PgPool,
    peers: &Peers,
    job_id: JobId,
) -> anyhow::Result<bool> {
    let Some((cycle_id, traceparent)) = staged_cycle_trace(pool, job_id).await? else {
        return Ok(false);
    };
    let span = tracing::info_span!(
        "cycle.decide",
        job.id = %job_id,
        cycle.id = %cycle_id,
        decision = tracing::field::Empty,
        breaches = tracing::field::Empty,
    );
    if let Some(traceparent) = &traceparent {
        syncguard_telemetry::continue_trace(&span, traceparent);
    }
    let step = async {
        let Some(decided) = decide::decide_next(pool, job_id, cycle_id).await? else {
            return Ok(false);
        };
        let span = tracing::Span::current();
        span.record("decision", decided.verdict.as_str());
        span.record("breaches", decided.breaches.len());
        match (decided.verdict, decided.quarantine_id) {
            (Verdict::Quarantine, Some(quarantine_id)) => {
                notify::opened(pool, &peers.notifier, job_id.0, quarantine_id).await;
            }
            _ => peers.wake_apply(job_id, decided.cycle_id).await,
        }
        // The job's next cycle is staged only once this one closes, and the stager wakes
        // the gate for it: looking again now would find nothing.
        Ok(false)
    };
    step.instrument(span).await
}

/// The job's staged cycle waiting for a decision, with the trace of its push.
async fn staged_cycle_trace(
    pool: &syncguard_store::PgPool,
    job_id: JobId,
) -> anyhow::Result<Option<(uuid::Uuid, Option<String>)>> {
    Ok(sqlx::query_as(
        "SELECT c.cycle_id, c.trace_parent FROM (SELECT cycle_id, state, trace_parent FROM cycles \
             WHERE job_id = $1 ORDER BY seq DESC LIMIT 1) c \
         WHERE c.state = 'staged' AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.cycle_id = c.cycle_id)",
    )
    .bind(job_id.0)
    .fetch_optional(pool)
    .await?)
}
