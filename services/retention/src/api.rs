//! The `RetentionService` gRPC API.

use syncguard_proto::v1;
use syncguard_proto::v1::retention_service_server::RetentionService;
use syncguard_store::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use std::sync::Arc;

use syncguard_bootstrap::principal;

use crate::clock::Clock;
use crate::error::RetentionError;
use crate::{directory, recovery};
use syncguard_bootstrap::{JobEvents, KeyedWorker};
use syncguard_domain::{FieldError, JobId};

/// Handlers of `syncguard.v1.RetentionService`.
#[derive(Clone)]
pub struct RetentionApi {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    apply: KeyedWorker<JobId>,
    feed_events: JobEvents,
}

impl RetentionApi {
    /// An API over the shared database, telling time by `clock`; `apply` is the apply worker
    /// it wakes.
    pub fn new(
        pool: PgPool,
        clock: Arc<dyn Clock>,
        apply: KeyedWorker<JobId>,
        feed_events: JobEvents,
    ) -> Self {
        Self {
            pool,
            clock,
            apply,
            feed_events,
        }
    }
}

#[tonic::async_trait]
impl RetentionService for RetentionApi {
    type WatchChangesStream =
        tokio_stream::wrappers::ReceiverStream<Result<v1::WatchChangesResponse, Status>>;

    async fn watch_changes(
        &self,
        request: Request<v1::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        let receiver =
            crate::watch::watch(&self.pool, &self.feed_events, request.get_ref()).await?;
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            receiver,
        )))
    }

    async fn apply_cycle(
        &self,
        request: Request<v1::ApplyCycleRequest>,
    ) -> Result<Response<v1::ApplyCycleResponse>, Status> {
        let cycle_id = Uuid::parse_str(&request.get_ref().cycle_id).map_err(|_| {
            RetentionError::from(FieldError::new("cycle_id", "not a cycle id (a UUID)"))
        })?;
        if !request.get_ref().job_id.is_empty() {
            // The wake-up of the gate, which knows the job: the worker looks the cycle up.
            let job_id =
                JobId::parse("job_id", &request.get_ref().job_id).map_err(RetentionError::from)?;
            self.apply.wake(job_id);
            return Ok(Response::new(v1::ApplyCycleResponse {}));
        }
        let job: Option<(Uuid,)> = sqlx::query_as("SELECT job_id FROM cycles WHERE cycle_id = $1")
            .bind(cycle_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(RetentionError::from)?;
        let Some((job_id,)) = job else {
            return Err(RetentionError::NotFound(format!("cycle {cycle_id} not found")).into());
        };
        self.apply.wake(JobId(job_id));
        Ok(Response::new(v1::ApplyCycleResponse {}))
    }

    async fn restore_object(
        &self,
        request: Request<v1::RestoreObjectRequest>,
    ) -> Result<Response<v1::DirectoryObject>, Status> {
        let caller = principal(&request)?;
        let restored =
            recovery::restore(&self.pool, &self.clock, request.get_ref(), &caller).await?;
        Ok(Response::new(restored))
    }

    async fn purge_object(
        &self,
        request: Request<v1::PurgeObjectRequest>,
    ) -> Result<Response<v1::PurgeObjectResponse>, Status> {
        let caller = principal(&request)?;
        let purged =
            recovery::purge_early(&self.pool, &self.clock, request.get_ref(), &caller).await?;
        Ok(Response::new(purged))
    }

    async fn list_deleted_objects(
        &self,
        request: Request<v1::ListDeletedObjectsRequest>,
    ) -> Result<Response<v1::ListObjectsResponse>, Status> {
        Ok(Response::new(
            recovery::list_deleted(&self.pool, request.get_ref()).await?,
        ))
    }

    async fn get_object(
        &self,
        request: Request<v1::GetObjectRequest>,
    ) -> Result<Response<v1::DirectoryObject>, Status> {
        Ok(Response::new(
            directory::get_object(&self.pool, request.get_ref()).await?,
        ))
    }

    async fn list_objects(
        &self,
        request: Request<v1::ListObjectsRequest>,
    ) -> Result<Response<v1::ListObjectsResponse>, Status> {
        Ok(Response::new(
            directory::list_objects(&self.pool, request.get_ref()).await?,
        ))
    }
}
