//! The `StagerService` gRPC API.

use syncguard_proto::v1;
use syncguard_proto::v1::stager_service_server::StagerService;
use syncguard_store::PgPool;
use tonic::{Request, Response, Status};

/// Handlers of `syncguard.v1.StagerService`.
#[derive(Clone)]
pub struct StagerApi {
    #[allow(dead_code)]
    pool: PgPool,
}

impl StagerApi {
    /// An API over the shared database.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn not_yet(method: &str) -> Status {
    Status::unimplemented(format!("{method} is not implemented yet"))
}

#[tonic::async_trait]
impl StagerService for StagerApi {
    async fn stage_cycle(
        &self,
        _request: Request<v1::StageCycleRequest>,
    ) -> Result<Response<v1::Cycle>, Status> {
        Err(not_yet("StageCycle"))
    }

    async fn apply_cycle(
        &self,
        _request: Request<v1::ApplyCycleRequest>,
    ) -> Result<Response<v1::Cycle>, Status> {
        Err(not_yet("ApplyCycle"))
    }

    async fn get_cycle(
        &self,
        _request: Request<v1::GetCycleRequest>,
    ) -> Result<Response<v1::Cycle>, Status> {
        Err(not_yet("GetCycle"))
    }

    async fn list_cycles(
        &self,
        _request: Request<v1::ListCyclesRequest>,
    ) -> Result<Response<v1::ListCyclesResponse>, Status> {
        Err(not_yet("ListCycles"))
    }

    async fn list_staged_actions(
        &self,
        _request: Request<v1::ListStagedActionsRequest>,
    ) -> Result<Response<v1::ListStagedActionsResponse>, Status> {
        Err(not_yet("ListStagedActions"))
    }

    async fn query_provisioning_logs(
        &self,
        _request: Request<v1::QueryProvisioningLogsRequest>,
    ) -> Result<Response<v1::QueryProvisioningLogsResponse>, Status> {
        Err(not_yet("QueryProvisioningLogs"))
    }

    async fn preview_cycle(
        &self,
        _request: Request<v1::PreviewCycleRequest>,
    ) -> Result<Response<v1::PreviewCycleResponse>, Status> {
        Err(not_yet("PreviewCycle"))
    }
}
