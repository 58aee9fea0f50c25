//! Everything the stager can refuse or fail with, and the gRPC status for each.

use syncguard_bootstrap::{field_violation, peer_status, store_status};
use syncguard_domain::FieldError;
use syncguard_store::StoreError;
use tonic::Status;

/// Errors of the stager service.
#[derive(Debug, thiserror::Error)]
pub enum StagerError {
    /// A request field is invalid.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The named job, snapshot or cycle does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the cycle's or job's state.
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

impl From<StagerError> for Status {
    fn from(error: StagerError) -> Self {
        match error {
            StagerError::Invalid(field) => field_violation(&field),
            StagerError::NotFound(message) => Status::not_found(message),
            StagerError::WrongState(message) => Status::failed_precondition(message),
            StagerError::Peer { service, status } => peer_status(service, &status),
            StagerError::Store(store) => store_status(&store),
        }
    }
}

impl From<sqlx::Error> for StagerError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}
