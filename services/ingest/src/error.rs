//! Everything ingest can refuse or fail with, and the gRPC status for each.

use syncguard_bootstrap::{field_violation, peer_status, store_status};
use syncguard_domain::{FieldError, JobId};
use syncguard_store::StoreError;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt as _};

/// Errors of the ingest service.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A request field is invalid.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The job does not exist (or was deleted).
    #[error("job {0} not found")]
    JobNotFound(JobId),
    /// The caller's role does not allow this particular request.
    #[error("{0}")]
    NotAllowed(String),
    /// A peer service refused or failed.
    #[error("{service} answered: {status}")]
    Peer {
        /// Which peer.
        service: &'static str,
        /// What it said.
        status: Status,
    },
    /// An export file could not be read; the error names file, line or record, and field.
    #[error(transparent)]
    ExportFile(crate::export_file::ExportFileError),
    /// The job has no source data to run a cycle on.
    #[error("{0}")]
    NoSourceData(String),
    /// The stream of a push broke, ended early or was cancelled.
    #[error("{0}")]
    StreamBroken(String),
    /// A message of a push stream did not decode or was larger than allowed.
    #[error("{0}")]
    Malformed(String),
    /// Too much work in flight (push streams); retry shortly.
    #[error("{0}")]
    Busy(String),
    /// A push with the same idempotency key was recorded first: it is answered instead.
    #[error("a push with the same idempotency key was recorded first")]
    Replayed,
    /// A feature that arrives with a later issue.
    #[error("{0}")]
    Unavailable(String),
    /// The database refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<IngestError> for Status {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Invalid(field) => field_violation(&field),
            IngestError::JobNotFound(_) => Status::not_found(error.to_string()),
            IngestError::NotAllowed(message) => Status::permission_denied(message),
            // The peer's own code is the truthful one (InvalidArgument for bad rules, ...).
            IngestError::Peer { service, status } => peer_status(service, &status),
            IngestError::Replayed => Status::aborted(error.to_string()),
            IngestError::Busy(message) => Status::resource_exhausted(message),
            IngestError::ExportFile(file) => Status::with_error_details(
                tonic::Code::InvalidArgument,
                file.to_string(),
                ErrorDetails::with_bad_request_violation(
                    format!("{} {} {}", file.file, file.location, file.field),
                    file.message.clone(),
                ),
            ),
            IngestError::NoSourceData(message) => Status::failed_precondition(message),
            IngestError::StreamBroken(message) => Status::aborted(message),
            IngestError::Malformed(message) => Status::invalid_argument(message),
            IngestError::Unavailable(message) => Status::unimplemented(message),
            IngestError::Store(store) => store_status(&store),
        }
    }
}

impl From<sqlx::Error> for IngestError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}
