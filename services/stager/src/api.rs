//! The `StagerService` gRPC API.

use std::time::Duration;

use syncguard_bootstrap::{KeyedWorker, PeerChannel, StepOwners, wait_settled};
use syncguard_domain::{FieldError, JobId};
use syncguard_proto::v1;
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::stager_service_server::StagerService;
use syncguard_store::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::StagerError;
use crate::{preview, reads};

/// Handlers of `syncguard.v1.StagerService`.
#[derive(Clone)]
pub struct StagerApi {
    pool: PgPool,
    gate: GateServiceClient<PeerChannel>,
    stage: KeyedWorker<JobId>,
    owners: StepOwners,
    max_wait: Duration,
    log_pages: reads::LogPages,
}

impl StagerApi {
    /// An API over the shared database; `stage` is the stage worker it wakes, `owners` the
    /// peers whose health tells whether a waiting cycle can progress.
    pub fn new(
        pool: PgPool,
        gate: GateServiceClient<PeerChannel>,
        stage: KeyedWorker<JobId>,
        owners: StepOwners,
        max_wait: Duration,
    ) -> Self {
        Self {
            pool,
            gate,
            stage,
            owners,
            max_wait,
            log_pages: reads::LogPages::new(reads::CACHED_LOG_PAGES),
        }
    }
}

fn required_id(field: &str, value: &str) -> Result<Uuid, StagerError> {
    Uuid::parse_str(value)
        .map_err(|_| FieldError::new(field, format!("{value:?} is not an id (a UUID)")).into())
}

fn wait_of(wait: Option<&prost_types::Duration>, max: Duration) -> Duration {
    wait.map(|wait| {
        Duration::from_secs(wait.seconds.max(0) as u64)
            + Duration::from_nanos(wait.nanos.max(0) as u64)
    })
    .unwrap_or_default()
    .min(max)
}

#[tonic::async_trait]
impl StagerService for StagerApi {
    async fn stage_cycle(
        &self,
        request: Request<v1::StageCycleRequest>,
    ) -> Result<Response<v1::Cycle>, Status> {
        let body = request.into_inner();
        let job_id = JobId::parse("job_id", &body.job_id).map_err(StagerError::from)?;
        self.stage.wake(job_id);
        if body.cycle_id.is_empty() {
            return Ok(Response::new(v1::Cycle {
                job_id: job_id.to_string(),
                ..Default::default()
            }));
        }
        let cycle_id = required_id("cycle_id", &body.cycle_id)?;
        let wait = wait_of(body.wait.as_ref(), self.max_wait);
        let cycle = wait_settled(&self.pool, cycle_id, wait, &self.owners)
            .await
            .map_err(StagerError::from)?
            .ok_or_else(|| StagerError::NotFound(format!("cycle {cycle_id} not found")))?;
        if cycle.job_id != job_id.0 {
            return Err(StagerError::from(FieldError::new(
                "cycle_id",
                "the cycle belongs to another job",
            ))
            .into());
        }
        Ok(Response::new(reads::cycle_view(&self.pool, cycle).await?))
    }

    async fn get_cycle(
        &self,
        request: Request<v1::GetCycleRequest>,
    ) -> Result<Response<v1::Cycle>, Status> {
        let cycle_id = required_id("cycle_id", &request.get_ref().cycle_id)?;
        Ok(Response::new(reads::get_cycle(&self.pool, cycle_id).await?))
    }

    async fn list_cycles(
        &self,
        request: Request<v1::ListCyclesRequest>,
    ) -> Result<Response<v1::ListCyclesResponse>, Status> {
        Ok(Response::new(
            reads::list_cycles(&self.pool, request.get_ref()).await?,
        ))
    }

    async fn list_staged_actions(
        &self,
        request: Request<v1::ListStagedActionsRequest>,
    ) -> Result<Response<v1::ListStagedActionsResponse>, Status> {
        Ok(Response::new(
            reads::list_staged_actions(&self.pool, request.get_ref()).await?,
        ))
    }

    async fn query_provisioning_logs(
        &self,
        request: Request<v1::QueryProvisioningLogsRequest>,
    ) -> Result<Response<v1::QueryProvisioningLogsResponse>, Status> {
        Ok(Response::new(
            reads::query_logs(&self.pool, &self.log_pages, request.get_ref()).await?,
        ))
    }

    async fn preview_cycle(
        &self,
        request: Request<v1::PreviewCycleRequest>,
    ) -> Result<Response<v1::PreviewCycleResponse>, Status> {
        let body = request.into_inner();
        let job_id = JobId::parse("job_id", &body.job_id).map_err(StagerError::from)?;
        let snapshot_id = if body.snapshot_id.is_empty() {
            None
        } else {
            Some(required_id("snapshot_id", &body.snapshot_id)?)
        };
        let preview = preview::preview(
            &self.pool,
            &self.gate,
            job_id,
            snapshot_id,
            body.sample_size,
        )
        .await?;
        Ok(Response::new(preview))
    }
}
