//! Diff and staging: stages each job's accepted pushes as cycles of planned actions, in the
//! order ingest acknowledged them, one open cycle per job; serves cycles, staged actions, the
//! provisioning log and previews.
//!
//! A library with a thin `main.rs`: tests build the [`App`] in-process.

mod api;
mod diff;
mod error;
mod preview;
mod reads;
mod stage;

use std::future::Future;

pub use api::StagerApi;
pub use error::StagerError;
use stage::Staged;
use syncguard_bootstrap::{PeerChannel, ServiceConfig, ServiceHost, ServiceName, StepOwners};
use syncguard_domain::JobId;
use syncguard_proto::v1;
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::notifier_service_client::NotifierServiceClient;
use syncguard_proto::v1::stager_service_server::{SERVICE_NAME, StagerServiceServer};
use syncguard_store::PgPool;
use tonic::service::Routes;
use tracing::Instrument as _;

/// Jobs staged at once per stager instance.
const STAGE_CONCURRENCY: usize = 4;

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
        let gate_channel = self.host.peer(ServiceName::Gate)?;
        let gate = GateServiceClient::new(gate_channel.clone())
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let notifier = NotifierServiceClient::new(self.host.peer(ServiceName::Notifier)?);
        let pool = self.host.pool().clone();

        let steps = StageSteps {
            pool: pool.clone(),
            gate: gate.clone(),
            notifier,
        };
        let due_pool = pool.clone();
        let stage = self.host.background().keyed(
            "stage",
            STAGE_CONCURRENCY,
            self.host.config().maintenance_interval,
            move || {
                let pool = due_pool.clone();
                async move { Ok(stage::due_jobs(&pool).await?) }
            },
            move |job_id| {
                let steps = steps.clone();
                async move { steps.stage_next(job_id).await }
            },
        );
        let owners = StepOwners {
            events: Some(self.host.cycle_events()),
            stager: None,
            gate: Some(gate_channel),
            retention: Some(self.host.peer(ServiceName::Retention)?),
        };
        let api = StagerApi::new(pool, gate, stage, owners, self.host.config().cycle_wait);
        let server = StagerServiceServer::new(api)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        self.host
            .serve(SERVICE_NAME, Routes::new(server), shutdown)
            .await
    }
}

/// The stage worker's step and the calls that follow it.
#[derive(Clone)]
struct StageSteps {
    pool: PgPool,
    gate: GateServiceClient<PeerChannel>,
    notifier: NotifierServiceClient<PeerChannel>,
}

impl StageSteps {
    /// Stages the job's next queued push and wakes the service that owns the next step.
    async fn stage_next(&self, job_id: JobId) -> anyhow::Result<bool> {
        match stage::stage_next(&self.pool, job_id).await? {
            Staged::Nothing => Ok(false),
            Staged::Cycle(cycle_id, traceparent, counts) => {
                // The wake-up belongs to the cycle's trace, like every step of it.
                let span = tracing::info_span!("cycle.handover", cycle.id = %cycle_id, to = "gate");
                if let Some(traceparent) = &traceparent {
                    syncguard_telemetry::continue_trace(&span, traceparent);
                }
                self.wake_gate(job_id, cycle_id).instrument(span).await;
                count_staged(&counts);
                // Nothing more for this job until the cycle closes: one open cycle per job,
                // and retention wakes the stager when it has applied it.
                Ok(false)
            }
            Staged::RefusedEmpty(cycle_id) => {
                let notice = v1::NotifyRequest {
                    kind: v1::NotificationKind::CycleFailed as i32,
                    job_id: job_id.to_string(),
                    cycle_id: cycle_id.to_string(),
                    ..Default::default()
                };
                if let Err(status) = self.notifier.clone().notify(notice).await {
                    tracing::warn!(cycle = %cycle_id, %status, "failed-cycle notice not handed to the notifier");
                }
                Ok(true)
            }
        }
    }

    /// Wakes the gate to decide `cycle_id`.
    async fn wake_gate(&self, job_id: JobId, cycle_id: uuid::Uuid) {
        let mut gate = self.gate.clone();
        let call = gate.decide_cycle(v1::DecideCycleRequest {
            cycle_id: cycle_id.to_string(),
            job_id: job_id.to_string(),
        });
        syncguard_bootstrap::wake("gate", cycle_id, call).await;
    }
}

/// Adds a staged cycle's actions to the metrics, by kind and object type: counted by the
/// statement that staged them.
fn count_staged(counts: &[syncguard_store::StagedCount]) {
    for count in counts {
        syncguard_telemetry::metrics().staged_actions.add(
            count.count.max(0) as u64,
            &[
                syncguard_telemetry::KeyValue::new("kind", count.action.clone()),
                syncguard_telemetry::KeyValue::new("object_type", count.object_type.clone()),
            ],
        );
    }
}
