//! Small helpers every service uses to turn errors into gRPC statuses the same way.

use syncguard_domain::{FieldError, Principal};
use syncguard_store::StoreError;
use tonic::{Code, Request, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// `InvalidArgument` with a field violation that names the field, readable by rich clients
/// and in the plain message alike.
pub fn field_violation(error: &FieldError) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        error.to_string(),
        ErrorDetails::with_bad_request_violation(error.field.clone(), error.message.clone()),
    )
}

/// The caller of a request, put there by the auth layer.
pub fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))
}

/// The status for a store error; never leaks SQL text to the caller.
pub fn store_status(error: &StoreError) -> Status {
    match error {
        StoreError::NotFound => Status::not_found("not found"),
        StoreError::AlreadyExists { .. } => Status::already_exists(error.to_string()),
        StoreError::MissingReference { .. } => Status::failed_precondition(error.to_string()),
        StoreError::InvalidValue { .. } => Status::invalid_argument(error.to_string()),
        StoreError::Conflict => Status::aborted(error.to_string()),
        StoreError::Unavailable(_) => Status::unavailable("database unavailable, try again"),
        StoreError::Internal(inner) => {
            tracing::error!(error = %inner, "database error");
            Status::internal("internal database error")
        }
    }
}
