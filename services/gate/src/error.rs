//! Everything the gate can refuse or fail with, and the gRPC status for each.

use syncguard_bootstrap::{field_violation, store_status};
use syncguard_domain::{FieldError, JobId};
use syncguard_store::StoreError;
use tonic::Status;

/// Errors of the gate service.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// A request field is invalid.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The job does not exist (or was deleted).
    #[error("job {0} not found")]
    JobNotFound(JobId),
    /// A quarantine or other named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The cycle does not exist.
    #[error("cycle {0} not found")]
    CycleNotFound(uuid::Uuid),
    /// The request does not fit the cycle's or quarantine's state.
    #[error("{0}")]
    WrongState(String),
    /// A peer service refused or failed.
    #[error("{service} answered: {status}")]
    Peer {
        /// Which peer.
        service: &'static str,
        /// What it said.
        status: Status,
    },
    /// The database refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<GateError> for Status {
    fn from(error: GateError) -> Self {
        match &error {
            GateError::Invalid(field) => field_violation(field),
            GateError::JobNotFound(_) => Status::not_found(error.to_string()),
            GateError::CycleNotFound(_) => Status::not_found(error.to_string()),
            GateError::NotFound(message) => Status::not_found(message.clone()),
            GateError::WrongState(message) => Status::failed_precondition(message.clone()),
            GateError::Peer { service, status } => {
                Status::new(status.code(), format!("{service}: {}", status.message()))
            }
            GateError::Store(store) => store_status(store),
        }
    }
}

impl From<sqlx::Error> for GateError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}
