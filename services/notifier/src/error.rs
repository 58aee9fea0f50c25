//! Everything the notifier can refuse or fail with, and the gRPC status for each.

use syncguard_bootstrap::{field_violation, store_status};
use syncguard_domain::FieldError;
use syncguard_store::StoreError;
use tonic::Status;

/// Errors of the notifier service.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// A request field is invalid.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The notification does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The database refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<NotifierError> for Status {
    fn from(error: NotifierError) -> Self {
        match error {
            NotifierError::Invalid(field) => field_violation(&field),
            NotifierError::NotFound(message) => Status::not_found(message),
            NotifierError::Store(store) => store_status(&store),
        }
    }
}

impl From<sqlx::Error> for NotifierError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}
