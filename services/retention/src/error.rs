//! Everything retention can refuse or fail with, and the gRPC status for each.

use syncguard_bootstrap::{field_violation, store_status};
use syncguard_domain::FieldError;
use syncguard_store::StoreError;
use tonic::Status;

/// Errors of the retention service.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// A request field is invalid.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The object is not in a state the call applies to.
    #[error("{0}")]
    WrongState(String),
    /// A feed cursor older than what the feed keeps.
    #[error("{0}")]
    OutOfRange(String),
    /// The database refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RetentionError> for Status {
    fn from(error: RetentionError) -> Self {
        match error {
            RetentionError::Invalid(field) => field_violation(&field),
            RetentionError::NotFound(message) => Status::not_found(message),
            RetentionError::WrongState(message) => Status::failed_precondition(message),
            RetentionError::OutOfRange(message) => Status::out_of_range(message),
            RetentionError::Store(store) => store_status(&store),
        }
    }
}

impl From<sqlx::Error> for RetentionError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}
