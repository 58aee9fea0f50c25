//! Everything the exporter's API can refuse or fail with, and the gRPC status for each.

use syncguard_bootstrap::{field_violation, store_status};
use syncguard_domain::FieldError;
use syncguard_store::StoreError;
use tonic::Status;

/// Errors of the exporter service.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    /// A request field is invalid.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The job, target or failure does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The database refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ExporterError> for Status {
    fn from(error: ExporterError) -> Self {
        match error {
            ExporterError::Invalid(field) => field_violation(&field),
            ExporterError::NotFound(message) => Status::not_found(message),
            ExporterError::Store(store) => store_status(&store),
        }
    }
}

impl From<sqlx::Error> for ExporterError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}
