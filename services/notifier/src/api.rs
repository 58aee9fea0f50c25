//! The `NotifierService` gRPC API.

use syncguard_proto::v1;
use syncguard_proto::v1::notifier_service_server::NotifierService;
use syncguard_store::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::NotifierError;
use crate::outbox;
use crate::sender::Wakeup;
use syncguard_domain::FieldError;

/// Handlers of `syncguard.v1.NotifierService`.
#[derive(Clone)]
pub struct NotifierApi {
    pool: PgPool,
    wakeup: Wakeup,
}

impl NotifierApi {
    /// An API over the shared database that wakes the sender on new entries.
    pub fn new(pool: PgPool, wakeup: Wakeup) -> Self {
        Self { pool, wakeup }
    }
}

#[tonic::async_trait]
impl NotifierService for NotifierApi {
    async fn notify(
        &self,
        request: Request<v1::NotifyRequest>,
    ) -> Result<Response<v1::Notification>, Status> {
        let stored = outbox::enqueue(&self.pool, request.get_ref()).await?;
        self.wakeup.wake();
        Ok(Response::new(stored))
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
