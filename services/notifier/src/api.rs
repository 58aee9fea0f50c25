//! The `NotifierService` gRPC API.

use syncguard_proto::v1;
use syncguard_proto::v1::notifier_service_server::NotifierService;
use syncguard_store::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::NotifierError;
use crate::outbox;
use syncguard_domain::FieldError;

/// Handlers of `syncguard.v1.NotifierService`.
#[derive(Clone)]
pub struct NotifierApi {
    pool: PgPool,
}

impl NotifierApi {
    /// An API over the shared database.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[tonic::async_trait]
impl NotifierService for NotifierApi {
    async fn notify(
        &self,
        request: Request<v1::NotifyRequest>,
    ) -> Result<Response<v1::Notification>, Status> {
        Ok(Response::new(
            outbox::enqueue(&self.pool, request.get_ref()).await?,
        ))
    }

    async fn get_notification(
        &self,
        request: Request<v1::GetNotificationRequest>,
    ) -> Result<Response<v1::Notification>, Status> {
        let id = Uuid::parse_str(&request.get_ref().notification_id).map_err(|_| {
            NotifierError::from(FieldError::new(
                "notification_id",
                "not a notification id (a UUID)",
            ))
        })?;
        Ok(Response::new(outbox::get(&self.pool, id).await?))
    }

    async fn list_notifications(
        &self,
        request: Request<v1::ListNotificationsRequest>,
    ) -> Result<Response<v1::ListNotificationsResponse>, Status> {
        Ok(Response::new(
            outbox::list(&self.pool, request.get_ref()).await?,
        ))
    }
}
