//! Wake-up calls: after a service records its step of a cycle, it tells the owner of the next
//! step. The call only speeds things up; the owner's periodic scan finds the work anyway, so
//! a wake-up that fails or is slow is logged and the caller moves on.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// How long a wake-up call may take before the caller moves on.
pub const WAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends the wake-up `call` to `owner` about `subject` (a job or cycle id).
pub async fn wake<T>(
    owner: &'static str,
    subject: impl Display,
    call: impl Future<Output = Result<T, tonic::Status>>,
) {
    match tokio::time::timeout(WAKE_TIMEOUT, call).await {
        Ok(Ok(_)) => {}
        Ok(Err(status)) => {
            tracing::warn!(owner, %subject, %status, "wake-up not delivered; the owner's scan finds the work")
        }
        Err(_) => {
            tracing::warn!(owner, %subject, "wake-up slow; the owner's scan finds the work")
        }
    }
}
