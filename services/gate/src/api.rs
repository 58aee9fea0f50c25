//! The `GateService` gRPC API.

use syncguard_bootstrap::principal;
use syncguard_domain::{FieldError, JobId, Role};
use syncguard_proto::v1;
use syncguard_proto::v1::gate_service_server::GateService;
use syncguard_store::{PgPool, in_transaction};
use tonic::{Request, Response, Status};

use crate::decide::{breach_view, decide};
use crate::error::GateError;
use crate::protection;
use crate::rules::parse_rules;
use syncguard_bootstrap::PeerChannel;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;

/// Handlers of `syncguard.v1.GateService`.
#[derive(Clone)]
pub struct GateApi {
    pool: PgPool,
    stager: StagerServiceClient<PeerChannel>,
}

impl GateApi {
    /// An API over the shared database, applying decided cycles through the stager.
    pub fn new(pool: PgPool, stager: StagerServiceClient<PeerChannel>) -> Self {
        Self { pool, stager }
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

fn not_yet(method: &str) -> Status {
    Status::unimplemented(format!("{method} is not implemented yet"))
}

#[tonic::async_trait]
impl GateService for GateApi {
    async fn decide_cycle(
        &self,
        request: Request<v1::DecideCycleRequest>,
    ) -> Result<Response<v1::DecideCycleResponse>, Status> {
        let cycle_id = uuid::Uuid::parse_str(&request.get_ref().cycle_id)
            .map_err(|_| GateError::from(FieldError::new("cycle_id", "not a cycle id (a UUID)")))?;
        let decided = decide(&self.pool, &self.stager, cycle_id).await?;
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
        _request: Request<v1::EvaluateCountsRequest>,
    ) -> Result<Response<v1::EvaluateCountsResponse>, Status> {
        Err(not_yet("EvaluateCounts"))
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
        _request: Request<v1::GetQuarantineRequest>,
    ) -> Result<Response<v1::Quarantine>, Status> {
        Err(not_yet("GetQuarantine"))
    }

    async fn list_quarantines(
        &self,
        _request: Request<v1::ListQuarantinesRequest>,
    ) -> Result<Response<v1::ListQuarantinesResponse>, Status> {
        Err(not_yet("ListQuarantines"))
    }

    async fn allow_deletes(
        &self,
        _request: Request<v1::AllowDeletesRequest>,
    ) -> Result<Response<v1::DecisionResponse>, Status> {
        Err(not_yet("AllowDeletes"))
    }

    async fn reject_deletes(
        &self,
        _request: Request<v1::RejectDeletesRequest>,
    ) -> Result<Response<v1::DecisionResponse>, Status> {
        Err(not_yet("RejectDeletes"))
    }

    async fn restart_job(
        &self,
        _request: Request<v1::RestartJobRequest>,
    ) -> Result<Response<v1::RestartJobResponse>, Status> {
        Err(not_yet("RestartJob"))
    }

    async fn list_pins(
        &self,
        _request: Request<v1::ListPinsRequest>,
    ) -> Result<Response<v1::ListPinsResponse>, Status> {
        Err(not_yet("ListPins"))
    }

    async fn release_pins(
        &self,
        _request: Request<v1::ReleasePinsRequest>,
    ) -> Result<Response<v1::ReleasePinsResponse>, Status> {
        Err(not_yet("ReleasePins"))
    }
}
