//! The `RetentionService` gRPC API.

use syncguard_proto::v1;
use syncguard_proto::v1::retention_service_server::RetentionService;
use syncguard_store::PgPool;
use tonic::{Request, Response, Status};

/// Handlers of `syncguard.v1.RetentionService`.
#[derive(Clone)]
pub struct RetentionApi {
    #[allow(dead_code)]
    pool: PgPool,
}

impl RetentionApi {
    /// An API over the shared database.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn not_yet(method: &str) -> Status {
    Status::unimplemented(format!("{method} is not implemented yet"))
}

#[tonic::async_trait]
impl RetentionService for RetentionApi {
    async fn soft_delete_objects(
        &self,
        _request: Request<v1::SoftDeleteObjectsRequest>,
    ) -> Result<Response<v1::SoftDeleteObjectsResponse>, Status> {
        Err(not_yet("SoftDeleteObjects"))
    }

    async fn restore_object(
        &self,
        _request: Request<v1::RestoreObjectRequest>,
    ) -> Result<Response<v1::DirectoryObject>, Status> {
        Err(not_yet("RestoreObject"))
    }

    async fn purge_object(
        &self,
        _request: Request<v1::PurgeObjectRequest>,
    ) -> Result<Response<v1::PurgeObjectResponse>, Status> {
        Err(not_yet("PurgeObject"))
    }

    async fn list_deleted_objects(
        &self,
        _request: Request<v1::ListDeletedObjectsRequest>,
    ) -> Result<Response<v1::ListObjectsResponse>, Status> {
        Err(not_yet("ListDeletedObjects"))
    }

    async fn get_object(
        &self,
        _request: Request<v1::GetObjectRequest>,
    ) -> Result<Response<v1::DirectoryObject>, Status> {
        Err(not_yet("GetObject"))
    }

    async fn list_objects(
        &self,
        _request: Request<v1::ListObjectsRequest>,
    ) -> Result<Response<v1::ListObjectsResponse>, Status> {
        Err(not_yet("ListObjects"))
    }
}
