//! The `RetentionService` gRPC API.

use syncguard_proto::v1;
use syncguard_proto::v1::retention_service_server::RetentionService;
use syncguard_store::PgPool;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;
use uuid::Uuid;

use std::sync::Arc;

use syncguard_bootstrap::principal;

use crate::clock::Clock;
use crate::error::RetentionError;
use crate::{directory, recovery, soft_delete};
use syncguard_domain::FieldError;

/// Handlers of `syncguard.v1.RetentionService`.
#[derive(Clone)]
pub struct RetentionApi {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl RetentionApi {
    /// An API over the shared database, telling time by `clock`.
    pub fn new(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }
}

#[tonic::async_trait]
impl RetentionService for RetentionApi {
    async fn soft_delete_objects(
        &self,
        request: Request<v1::SoftDeleteObjectsRequest>,
    ) -> Result<Response<v1::SoftDeleteObjectsResponse>, Status> {
        let body = request.into_inner();
        let cycle_id = Uuid::parse_str(&body.cycle_id).map_err(|_| {
            RetentionError::from(FieldError::new("cycle_id", "not a cycle id (a UUID)"))
        })?;
        let mut action_ids = Vec::with_capacity(body.action_ids.len());
        for (index, id) in body.action_ids.iter().enumerate() {
            action_ids.push(Uuid::parse_str(id).map_err(|_| {
                RetentionError::from(FieldError::new(
                    format!("action_ids[{index}]"),
                    "not an action id (a UUID)",
                ))
            })?);
        }
        let span = tracing::info_span!("objects.soft_delete", cycle.id = %cycle_id, actions = action_ids.len());
        let (soft_deleted, already_deleted) =
            soft_delete::soft_delete(&self.pool, self.clock.now(), cycle_id, &action_ids)
                .instrument(span)
                .await?;
        tracing::info!(cycle = %cycle_id, soft_deleted, already_deleted, "objects soft-deleted");
        Ok(Response::new(v1::SoftDeleteObjectsResponse {
            soft_deleted,
            already_deleted,
        }))
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
