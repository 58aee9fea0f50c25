//! The `NotifierService` gRPC API.

use syncguard_proto::v1;
use syncguard_proto::v1::notifier_service_server::NotifierService;
use syncguard_store::PgPool;
use tonic::{Request, Response, Status};

/// Handlers of `syncguard.v1.NotifierService`.
#[derive(Clone)]
pub struct NotifierApi {
    #[allow(dead_code)]
    pool: PgPool,
}

impl NotifierApi {
    /// An API over the shared database.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn not_yet(method: &str) -> Status {
    Status::unimplemented(format!("{method} is not implemented yet"))
}

#[tonic::async_trait]
impl NotifierService for NotifierApi {
    async fn notify(
        &self,
        _request: Request<v1::NotifyRequest>,
    ) -> Result<Response<v1::Notification>, Status> {
        Err(not_yet("Notify"))
    }

    async fn get_notification(
        &self,
        _request: Request<v1::GetNotificationRequest>,
    ) -> Result<Response<v1::Notification>, Status> {
        Err(not_yet("GetNotification"))
    }

    async fn list_notifications(
        &self,
        _request: Request<v1::ListNotificationsRequest>,
    ) -> Result<Response<v1::ListNotificationsResponse>, Status> {
        Err(not_yet("ListNotifications"))
    }
}
