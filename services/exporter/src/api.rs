//! The `ExporterService` gRPC API.

use syncguard_bootstrap::KeyedWorker;
use syncguard_domain::JobId;
use syncguard_proto::v1;
use syncguard_proto::v1::exporter_service_server::ExporterService;
use syncguard_store::PgPool;
use tonic::{Request, Response, Status};

use crate::status;

/// Handlers of `syncguard.v1.ExporterService`.
#[derive(Clone)]
pub struct ExporterApi {
    pool: PgPool,
    export: KeyedWorker<JobId>,
}

impl ExporterApi {
    /// An API over the shared database; `export` is the worker a retry wakes.
    pub fn new(pool: PgPool, export: KeyedWorker<JobId>) -> Self {
        Self { pool, export }
    }
}

#[tonic::async_trait]
impl ExporterService for ExporterApi {
    async fn list_targets(
        &self,
        request: Request<v1::ListTargetsRequest>,
    ) -> Result<Response<v1::ListTargetsResponse>, Status> {
        Ok(Response::new(
            status::list_targets(&self.pool, request.get_ref()).await?,
        ))
    }

    async fn list_export_failures(
        &self,
        request: Request<v1::ListExportFailuresRequest>,
    ) -> Result<Response<v1::ListExportFailuresResponse>, Status> {
        Ok(Response::new(
            status::list_failures(&self.pool, request.get_ref()).await?,
        ))
    }

    async fn retry_export(
        &self,
        request: Request<v1::RetryExportRequest>,
    ) -> Result<Response<v1::RetryExportResponse>, Status> {
        let (job_id, retrying) = status::retry(&self.pool, request.get_ref()).await?;
        self.export.wake(job_id);
        Ok(Response::new(v1::RetryExportResponse { retrying }))
    }
}
