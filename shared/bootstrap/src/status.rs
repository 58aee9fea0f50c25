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
        StoreError::Corrupt(message) => {
            tracing::error!(error = %message, "stored data cannot be read");
            Status::internal("stored data cannot be read; see the service log")
        }
        StoreError::Internal(inner) => {
            tracing::error!(error = %inner, "database error");
            Status::internal("internal database error")
        }
    }
}

/// The status to answer with when a peer service refused or failed: the peer's own code when
/// it answered (InvalidArgument for bad rules, NotFound, ...), `UNAVAILABLE` when it could
/// not be reached or went away mid-call (the caller may retry).
pub fn peer_status(service: &str, status: &Status) -> Status {
    if peer_unreachable(status) {
        return Status::unavailable(format!(
            "the {service} service is unavailable, try again: {}",
            status.message()
        ));
    }
    Status::new(status.code(), format!("{service}: {}", status.message()))
}

/// Whether a status from a peer call means the peer could not be reached, or the connection
/// broke before it answered (tonic reports those as UNKNOWN or CANCELLED with a transport
/// error, not as an answer of the peer).
pub fn peer_unreachable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Unknown | Code::Cancelled | Code::Internal => {
            let message = status.message().to_ascii_lowercase();
            status.metadata().is_empty()
                && [
                    "transport",
                    "connection",
                    "h2 protocol",
                    "broken pipe",
                    "stream closed",
                    "error trying to connect",
                    "operation was canceled",
                    "timeout expired",
                ]
                .iter()
                .any(|needle| message.contains(needle))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_that_went_away_is_unavailable_and_a_peer_answer_keeps_its_code() {
        // What tonic reports when the connection breaks mid-call or cannot be made.
        for broken in [
            Status::unknown("transport error"),
            Status::unknown("h2 protocol error: error reading a body from connection"),
            Status::internal("h2 protocol error: stream closed because of a broken pipe"),
            Status::cancelled("operation was canceled: connection closed"),
            Status::unavailable("tcp connect error: Connection refused (os error 111)"),
        ] {
            let answered = peer_status("stager", &broken);
            assert_eq!(answered.code(), Code::Unavailable, "{broken:?}");
            assert!(answered.message().contains("stager"), "{answered:?}");
        }
        // A real answer of the peer is passed on with its own code.
        let refused = peer_status(
            "gate",
            &Status::invalid_argument("rules[0].max_count: too big"),
        );
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(
            peer_status("gate", &Status::internal("internal database error")).code(),
            Code::Internal
        );
    }
}
