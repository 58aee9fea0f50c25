//! The `GateService` gRPC API.

use std::time::Duration;

use syncguard_bootstrap::{
    KeyedWorker, PeerChannel, StepOwners, peer_status, principal, wait_settled,
};
use syncguard_domain::{FieldError, JobId};
use syncguard_proto::names;
use syncguard_proto::v1;
use syncguard_proto::v1::NotificationKind;
use syncguard_proto::v1::gate_service_server::GateService;
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::notifier_service_client::NotifierServiceClient;
use syncguard_proto::v1::retention_service_client::RetentionServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use syncguard_store::{PgPool, in_transaction};
use tonic::{Request, Response, Status};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::decide::{breach_view, breaches_of_counts};
use crate::decisions::{self, DecisionRequest};
use crate::error::GateError;
use crate::quarantine_view;
use crate::rules::{Rule, parse_rules};
use crate::{notify, protection};

/// The services the gate calls.
#[derive(Clone)]
pub struct Peers {
    /// Stages the job's next push once a held cycle is superseded.
    pub stager: StagerServiceClient<PeerChannel>,
    /// Runs fresh cycles on restart and after an expired hold.
    pub ingest: IngestServiceClient<PeerChannel>,
    /// Tells people.
    pub notifier: NotifierServiceClient<PeerChannel>,
    /// Applies decided cycles.
    pub retention: RetentionServiceClient<PeerChannel>,
}

impl Peers {
    /// Wakes retention to apply a decided cycle.
    pub async fn wake_apply(&self, job_id: JobId, cycle_id: Uuid) {
        let mut retention = self.retention.clone();
        let call = retention.apply_cycle(v1::ApplyCycleRequest {
            cycle_id: cycle_id.to_string(),
            job_id: job_id.to_string(),
        });
        syncguard_bootstrap::wake("retention", cycle_id, call).await;
    }

    /// Asks ingest for a fresh cycle of the job (its source read again, or its latest data).
    pub async fn fresh_cycle(&self, job_id: JobId) -> Option<v1::TriggerCycleResponse> {
        match self
            .ingest
            .clone()
            .trigger_cycle(v1::TriggerCycleRequest {
                job_id: job_id.to_string(),
            })
            .await
        {
            Ok(response) => Some(response.into_inner()),
            Err(status) => {
                tracing::warn!(job = %job_id, %status, "no fresh cycle");
                None
            }
        }
    }
}

/// Handlers of `syncguard.v1.GateService`.
#[derive(Clone)]
pub struct GateApi {
    pool: PgPool,
    peers: Peers,
    decide: KeyedWorker<JobId>,
    owners: StepOwners,
    max_wait: Duration,
    pages: quarantine_view::QuarantinePages,
}

impl GateApi {
    /// An API over the shared database; `decide` is the decide worker it wakes.
    pub fn new(
        pool: PgPool,
        peers: Peers,
        decide: KeyedWorker<JobId>,
        owners: StepOwners,
        max_wait: Duration,
    ) -> Self {
        Self {
            pool,
            peers,
            decide,
            owners,
            max_wait,
            pages: quarantine_view::QuarantinePages::new(quarantine_view::CACHED_PAGES),
        }
    }

    /// After an approver's decision: if it is final, retention applies the cycle (the call
    /// waits for that) and people are told; answers with the quarantine as it now stands.
    async fn finish_decision(
        &self,
        decided: decisions::Decided,
        actor: &str,
        kind: NotificationKind,
    ) -> Result<v1::DecisionResponse, GateError> {
        let mut cycle_state = v1::CycleState::Quarantined;
        if let Some(cycle_id) = decided.apply_cycle {
            // The approved apply belongs to the held cycle's trace.
            let (traceparent,): (Option<String>,) =
                sqlx::query_as("SELECT trace_parent FROM cycles WHERE cycle_id = $1")
                    .bind(cycle_id)
                    .fetch_one(&self.pool)
                    .await?;
            let span = tracing::info_span!(
                "cycle.apply_approved",
                cycle.id = %cycle_id,
                job.id = %decided.job_id,
                actor = %actor,
            );
            if let Some(traceparent) = &traceparent {
                syncguard_telemetry::continue_trace(&span, traceparent);
            }
            let settled = async {
                self.peers.wake_apply(JobId(decided.job_id), cycle_id).await;
                notify::decided(
                    &self.peers.notifier,
                    decided.job_id,
                    decided.quarantine_id,
                    kind,
                )
                .await;
                wait_settled(&self.pool, cycle_id, self.max_wait, &self.owners).await
            }
            .instrument(span)
            .await?;
            if let Some(cycle) = settled {
                cycle_state = names::cycle_state(cycle.state);
            }
        }
        let view = quarantine_view::read(
            &self.pool,
            &self.pages,
            &decided.quarantine_id.to_string(),
            "",
            None,
            "",
        )
        .await?;
        Ok(v1::DecisionResponse {
            quarantine: Some(view),
            applied: decided.apply_cycle.is_some(),
            actions_applied: decided.allowed,
            actions_rejected: decided.rejected,
            cycle_state: cycle_state as i32,
        })
    }
}

fn required_reason(reason: &str) -> Result<String, GateError> {
    Ok(syncguard_domain::text::reason("reason", reason)?)
}

#[tonic::async_trait]
impl GateService for GateApi {
    async fn decide_cycle(
        &self,
        request: Request<v1::DecideCycleRequest>,
    ) -> Result<Response<v1::DecideCycleResponse>, Status> {
        let cycle_id = Uuid::parse_str(&request.get_ref().cycle_id)
            .map_err(|_| GateError::from(FieldError::new("cycle_id", "not a cycle id (a UUID)")))?;
        if !request.get_ref().job_id.is_empty() {
            // The wake-up of the stager, which knows the job: the worker looks the cycle up.
            let job_id =
                JobId::parse("job_id", &request.get_ref().job_id).map_err(GateError::from)?;
            self.decide.wake(job_id);
            return Ok(Response::new(v1::DecideCycleResponse::default()));
        }
        let cycle: Option<(Uuid, Option<String>, Option<Uuid>)> = sqlx::query_as(
            "SELECT c.job_id, d.verdict, d.quarantine_id FROM cycles c \
             LEFT JOIN decisions d ON d.cycle_id = c.cycle_id WHERE c.cycle_id = $1",
        )
        .bind(cycle_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(GateError::from)?;
        let Some((job_id, verdict, quarantine_id)) = cycle else {
            return Err(GateError::CycleNotFound(cycle_id).into());
        };
        self.decide.wake(JobId(job_id));
        let decision = match verdict.as_deref() {
            Some("apply") => v1::Decision::Applied,
            Some("quarantine") => v1::Decision::Quarantined,
            _ => v1::Decision::Unspecified,
        };
        Ok(Response::new(v1::DecideCycleResponse {
            decision: decision as i32,
            quarantine_id: quarantine_id.map(|id| id.to_string()).unwrap_or_default(),
            breaches: Vec::new(),
        }))
    }

    async fn evaluate_counts(
        &self,
        request: Request<v1::EvaluateCountsRequest>,
    ) -> Result<Response<v1::EvaluateCountsResponse>, Status> {
        let body = request.into_inner();
        let job_id = JobId::parse("job_id", &body.job_id).map_err(GateError::from)?;
        let stored = protection::load(&self.pool, job_id).await?;
        let rules: Vec<Rule> = stored.rules.iter().map(|(_, rule)| rule.clone()).collect();
        let counts = body
            .counts
            .iter()
            .filter_map(|count| {
                let action = v1::ActionKind::try_from(count.action)
                    .ok()
                    .and_then(names::domain_action_kind)?;
                let object_type = v1::ObjectType::try_from(count.object_type)
                    .ok()
                    .and_then(names::domain_object_type)?;
                Some((
                    (action.as_str().to_owned(), object_type.as_str().to_owned()),
                    count.count,
                ))
            })
            .collect();
        let breaches = breaches_of_counts(&self.pool, job_id, &rules, &counts).await?;
        Ok(Response::new(v1::EvaluateCountsResponse {
            would_quarantine: stored.enabled && !breaches.is_empty(),
            breaches: breaches
                .iter()
                .map(|breach| breach_view(breach, &stored.rules))
                .collect(),
        }))
    }

    async fn get_protection(
        &self,
        request: Request<v1::GetProtectionRequest>,
    ) -> Result<Response<v1::Protection>, Status> {
        let job_id = JobId::parse("job_id", &request.get_ref().job_id).map_err(GateError::from)?;
        let stored = protection::load(&self.pool, job_id).await?;
        Ok(Response::new(stored.to_proto(job_id)))
    }

    async fn set_protection(
        &self,
        request: Request<v1::SetProtectionRequest>,
    ) -> Result<Response<v1::Protection>, Status> {
        let caller = principal(&request)?;
        let body = request.into_inner();
        let job_id = JobId::parse("job_id", &body.job_id).map_err(GateError::from)?;
        let reason = required_reason(&body.reason)?;
        let rules = parse_rules(&body.rules).map_err(GateError::from)?;
        let actor = caller.to_string();
        in_transaction(&self.pool, async |conn| {
            protection::save(conn, job_id, body.enabled, &rules, &actor, &reason).await
        })
        .await?;
        tracing::info!(job = %job_id, enabled = body.enabled, rules = rules.len(), actor, "protection set");
        let stored = protection::load(&self.pool, job_id).await?;
        Ok(Response::new(stored.to_proto(job_id)))
    }

    async fn init_protection(
        &self,
        request: Request<v1::InitProtectionRequest>,
    ) -> Result<Response<v1::Protection>, Status> {
        let job_id = JobId::parse("job_id", &request.get_ref().job_id).map_err(GateError::from)?;
        in_transaction(&self.pool, async |conn| {
            protection::initialize(conn, job_id).await
        })
        .await?;
        let stored = protection::load(&self.pool, job_id).await?;
        Ok(Response::new(stored.to_proto(job_id)))
    }

    async fn get_quarantine(
        &self,
        request: Request<v1::GetQuarantineRequest>,
    ) -> Result<Response<v1::Quarantine>, Status> {
        let body = request.get_ref();
        Ok(Response::new(
            quarantine_view::read(
                &self.pool,
                &self.pages,
                &body.quarantine_id,
                &body.job_id,
                body.page.as_ref(),
                &body.search,
            )
            .await?,
        ))
    }

    async fn list_quarantines(
        &self,
        request: Request<v1::ListQuarantinesRequest>,
    ) -> Result<Response<v1::ListQuarantinesResponse>, Status> {
        Ok(Response::new(
            quarantine_view::list(&self.pool, request.get_ref()).await?,
        ))
    }

    async fn allow_deletes(
        &self,
        request: Request<v1::AllowDeletesRequest>,
    ) -> Result<Response<v1::DecisionResponse>, Status> {
        let caller = principal(&request)?;
        let body = request.into_inner();
        let parsed = DecisionRequest::parse(
            &body.quarantine_id,
            &body.digest,
            &body.reason,
            &body.anchors,
        )
        .map_err(GateError::from)?;
        let decided = decisions::allow(&self.pool, &parsed, &caller).await?;
        let response = self
            .finish_decision(
                decided,
                &caller.to_string(),
                NotificationKind::QuarantineAllowed,
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn reject_deletes(
        &self,
        request: Request<v1::RejectDeletesRequest>,
    ) -> Result<Response<v1::DecisionResponse>, Status> {
        let caller = principal(&request)?;
        let body = request.into_inner();
        let parsed = DecisionRequest::parse(
            &body.quarantine_id,
            &body.digest,
            &body.reason,
            &body.anchors,
        )
        .map_err(GateError::from)?;
        let decided = decisions::reject(&self.pool, &parsed, &caller).await?;
        let response = self
            .finish_decision(
                decided,
                &caller.to_string(),
                NotificationKind::QuarantineRejected,
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn restart_job(
        &self,
        request: Request<v1::RestartJobRequest>,
    ) -> Result<Response<v1::RestartJobResponse>, Status> {
        let caller = principal(&request)?;
        let body = request.into_inner();
        let job_id = JobId::parse("job_id", &body.job_id).map_err(GateError::from)?;
        let reason = required_reason(&body.reason)?;
        let superseded =
            decisions::supersede(&self.pool, job_id, &caller.to_string(), &reason).await?;
        if let Some(row) = &superseded {
            notify::decided(
                &self.peers.notifier,
                row.job_id,
                row.quarantine_id,
                NotificationKind::QuarantineSuperseded,
            )
            .await;
        }
        let cycle = self
            .peers
            .ingest
            .clone()
            .trigger_cycle(v1::TriggerCycleRequest {
                job_id: job_id.to_string(),
            })
            .await
            .map_err(|status| peer_status("ingest", &status))?
            .into_inner();
        Ok(Response::new(v1::RestartJobResponse {
            superseded_quarantine_id: superseded
                .map(|row| row.quarantine_id.to_string())
                .unwrap_or_default(),
            cycle_id: cycle.cycle_id,
        }))
    }

    async fn list_pins(
        &self,
        request: Request<v1::ListPinsRequest>,
    ) -> Result<Response<v1::ListPinsResponse>, Status> {
        Ok(Response::new(
            crate::pins::pins(&self.pool, request.get_ref()).await?,
        ))
    }

    async fn release_pins(
        &self,
        request: Request<v1::ReleasePinsRequest>,
    ) -> Result<Response<v1::ReleasePinsResponse>, Status> {
        let caller = principal(&request)?;
        let released = crate::pins::release_pins(&self.pool, request.get_ref(), &caller).await?;
        Ok(Response::new(v1::ReleasePinsResponse { released }))
    }
}
