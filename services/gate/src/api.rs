//! The `GateService` gRPC API.

use syncguard_bootstrap::principal;
use syncguard_domain::{FieldError, JobId, Role};
use syncguard_proto::v1;
use syncguard_proto::v1::gate_service_server::GateService;
use syncguard_store::{PgPool, in_transaction};
use tonic::{Request, Response, Status};

use crate::decide::{breach_view, breaches_of_counts, decide};
use crate::error::GateError;
use crate::quarantine::{self, DecisionRequest};
use crate::rules::{Rule, parse_rules};
use crate::{notify, protection};
use syncguard_bootstrap::PeerChannel;
use syncguard_proto::v1::NotificationKind;
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::notifier_service_client::NotifierServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use tracing::Instrument as _;
use uuid::Uuid;

/// Handlers of `syncguard.v1.GateService`.
#[derive(Clone)]
pub struct GateApi {
    pool: PgPool,
    peers: Peers,
}

/// The services the gate calls.
#[derive(Clone)]
pub struct Peers {
    /// Applies decided cycles and stages waiting snapshots.
    pub stager: StagerServiceClient<PeerChannel>,
    /// Runs fresh cycles on restart.
    pub ingest: IngestServiceClient<PeerChannel>,
    /// Tells people.
    pub notifier: NotifierServiceClient<PeerChannel>,
}

impl GateApi {
    /// An API over the shared database and the peers it calls.
    pub fn new(pool: PgPool, peers: Peers) -> Self {
        Self { pool, peers }
    }

    /// Applies a decided cycle on behalf of `actor` (continuing the cycle's own trace), then
    /// stages the newest snapshot that arrived while it was held (the job's next cycle).
    async fn apply_and_continue(
        &self,
        cycle_id: Uuid,
        job_id: Uuid,
        actor: &str,
    ) -> Result<(), GateError> {
        let (traceparent,): (Option<String>,) =
            sqlx::query_as("SELECT trace_parent FROM cycles WHERE cycle_id = $1")
                .bind(cycle_id)
                .fetch_one(&self.pool)
                .await?;
        let span = tracing::info_span!(
            "cycle.apply_approved",
            cycle.id = %cycle_id,
            job.id = %job_id,
            actor = %actor,
        );
        if let Some(traceparent) = &traceparent {
            syncguard_telemetry::continue_trace(&span, traceparent);
        }
        self.apply_decided(cycle_id, job_id, actor)
            .instrument(span)
            .await
    }

    /// After a final allow or reject: apply the cycle, tell people, answer with the
    /// quarantine as it now stands.
    async fn finish_decision(
        &self,
        decided: quarantine::Decided,
        caller: &syncguard_domain::Principal,
        reason: &str,
        kind: NotificationKind,
    ) -> Result<v1::DecisionResponse, GateError> {
        let row = quarantine::find(&self.pool, &decided.quarantine_id.to_string(), "").await?;
        if let Some(cycle_id) = decided.apply_cycle {
            let actor = caller.to_string();
            self.apply_and_continue(cycle_id, row.job_id, &actor)
                .await?;
            notify::decided(
                &self.pool,
                &self.peers.notifier,
                row.quarantine_id,
                kind,
                &actor,
                reason,
            )
            .await;
        }
        let view = quarantine::view(&self.pool, &row, None).await?;
        Ok(decision_response(view, &decided))
    }

    async fn apply_decided(
        &self,
        cycle_id: Uuid,
        job_id: Uuid,
        actor: &str,
    ) -> Result<(), GateError> {
        self.peers
            .stager
            .clone()
            .apply_cycle(v1::ApplyCycleRequest {
                cycle_id: cycle_id.to_string(),
                scope: v1::ApplyScope::All as i32,
                allowed_action_ids: Vec::new(),
                via_state: v1::CycleState::Allowed as i32,
                actor: actor.to_owned(),
            })
            .await
            .map_err(|status| GateError::Peer {
                service: "stager",
                status,
            })?;
        stage_waiting_snapshot(&self.pool, &self.peers.stager, JobId(job_id)).await;
        Ok(())
    }
}

/// Stages the newest snapshot no cycle used yet (kept while the job was quarantined).
pub async fn stage_waiting_snapshot(
    pool: &PgPool,
    stager: &StagerServiceClient<PeerChannel>,
    job_id: JobId,
) {
    let waiting: Result<Option<(Uuid,)>, sqlx::Error> = sqlx::query_as(
        "SELECT s.snapshot_id FROM snapshots s WHERE s.job_id = $1 \
           AND NOT EXISTS (SELECT 1 FROM cycles c WHERE c.snapshot_id = s.snapshot_id) \
           AND s.received_at > (SELECT max(s2.received_at) FROM snapshots s2 JOIN cycles c2 ON c2.snapshot_id = s2.snapshot_id \
                                WHERE s2.job_id = $1) \
         ORDER BY s.received_at DESC LIMIT 1",
    )
    .bind(job_id.0)
    .fetch_optional(pool)
    .await;
    let snapshot_id = match waiting {
        Ok(Some((snapshot_id,))) => snapshot_id,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(job = %job_id, %error, "cannot look for a waiting snapshot");
            return;
        }
    };
    let staged = stager
        .clone()
        .stage_cycle(v1::StageCycleRequest {
            job_id: job_id.to_string(),
            snapshot_id: snapshot_id.to_string(),
        })
        .await;
    if let Err(status) = staged {
        tracing::warn!(job = %job_id, snapshot = %snapshot_id, %status, "the waiting snapshot was not staged");
    }
}

fn decision_response(
    quarantine: v1::Quarantine,
    decided: &quarantine::Decided,
) -> v1::DecisionResponse {
    v1::DecisionResponse {
        quarantine: Some(quarantine),
        applied: decided.apply_cycle.is_some(),
        actions_applied: decided.allowed,
        actions_rejected: decided.rejected,
    }
}

fn required_reason(reason: &str) -> Result<String, GateError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(FieldError::new(
            "reason",
            "a reason is required; it is recorded in the provisioning log",
        )
        .into());
    }
    Ok(reason.to_owned())
}

#[tonic::async_trait]
impl GateService for GateApi {
    async fn decide_cycle(
        &self,
        request: Request<v1::DecideCycleRequest>,
    ) -> Result<Response<v1::DecideCycleResponse>, Status> {
        let cycle_id = uuid::Uuid::parse_str(&request.get_ref().cycle_id)
            .map_err(|_| GateError::from(FieldError::new("cycle_id", "not a cycle id (a UUID)")))?;
        let span = tracing::info_span!(
            "cycle.decide",
            cycle.id = %cycle_id,
            decision = tracing::field::Empty,
            breaches = tracing::field::Empty,
        );
        let decided = decide(&self.pool, &self.peers.stager, cycle_id)
            .instrument(span.clone())
            .await?;
        span.record("decision", decided.decision.as_str_name());
        span.record("breaches", decided.breaches.len());
        if let Some(quarantine_id) = decided.quarantine_id
            && decided.newly_quarantined
        {
            notify::opened(&self.pool, &self.peers.notifier, quarantine_id).await;
        }
        let job: (uuid::Uuid,) = sqlx::query_as("SELECT job_id FROM cycles WHERE cycle_id = $1")
            .bind(cycle_id)
            .fetch_one(&self.pool)
            .await
            .map_err(GateError::from)?;
        let rules = protection::load(&self.pool, JobId(job.0)).await?.rules;
        Ok(Response::new(v1::DecideCycleResponse {
            decision: decided.decision as i32,
            quarantine_id: decided
                .quarantine_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            breaches: decided
                .breaches
                .iter()
                .map(|breach| breach_view(breach, &rules))
                .collect(),
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
                let action = syncguard_proto::names::action_name(
                    v1::ActionKind::try_from(count.action).ok()?,
                )?;
                let object_type = match v1::ObjectType::try_from(count.object_type).ok()? {
                    v1::ObjectType::User => "user",
                    v1::ObjectType::Group => "group",
                    v1::ObjectType::Unspecified => return None,
                };
                Some(((action.to_owned(), object_type.to_owned()), count.count))
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
        let caller = principal(&request)?;
        let body = request.into_inner();
        let job_id = JobId::parse("job_id", &body.job_id).map_err(GateError::from)?;
        let rules = parse_rules(&body.rules).map_err(GateError::from)?;
        let on_behalf_of = body.on_behalf_of.trim();
        let actor = if on_behalf_of.is_empty() || caller.role != Role::Service {
            caller.to_string()
        } else {
            on_behalf_of.to_owned()
        };
        let reason = if body.reason.trim().is_empty() {
            "protection set when the job was created".to_owned()
        } else {
            body.reason.trim().to_owned()
        };
        in_transaction(&self.pool, async |conn| {
            protection::save(conn, job_id, !body.disabled, &rules, &actor, &reason).await
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
        let row = quarantine::find(&self.pool, &body.quarantine_id, &body.job_id).await?;
        Ok(Response::new(
            quarantine::view(&self.pool, &row, body.page.as_ref()).await?,
        ))
    }

    async fn list_quarantines(
        &self,
        request: Request<v1::ListQuarantinesRequest>,
    ) -> Result<Response<v1::ListQuarantinesResponse>, Status> {
        Ok(Response::new(
            quarantine::list(&self.pool, request.get_ref()).await?,
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
        let decided = quarantine::allow(&self.pool, &parsed, &caller).await?;
        let response = self
            .finish_decision(
                decided,
                &caller,
                &parsed.reason,
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
        let decided = quarantine::reject(&self.pool, &parsed, &caller).await?;
        let response = self
            .finish_decision(
                decided,
                &caller,
                &parsed.reason,
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
            quarantine::supersede(&self.pool, job_id, &caller.to_string(), &reason).await?;
        if let Some(row) = &superseded {
            notify::decided(
                &self.pool,
                &self.peers.notifier,
                row.quarantine_id,
                NotificationKind::QuarantineSuperseded,
                &caller.to_string(),
                &reason,
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
            .map_err(|status| GateError::Peer {
                service: "ingest",
                status,
            })?
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
            quarantine::pins(&self.pool, request.get_ref()).await?,
        ))
    }

    async fn release_pins(
        &self,
        request: Request<v1::ReleasePinsRequest>,
    ) -> Result<Response<v1::ReleasePinsResponse>, Status> {
        let caller = principal(&request)?;
        let released = quarantine::release_pins(&self.pool, request.get_ref(), &caller).await?;
        Ok(Response::new(v1::ReleasePinsResponse { released }))
    }
}
