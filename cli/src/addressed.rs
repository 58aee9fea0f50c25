//! A channel that says where it was pointed: a service that cannot be reached answers
//! `UNAVAILABLE` naming the service and the address tried, and a port that serves another
//! service (`UNIMPLEMENTED`) names the address and the flag to check, so no failure prints
//! an empty or bare "transport error" line.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::transport::Channel;
use tower_service::Service;

/// [`Channel`] with the service's name, its address and the flag that sets it.
#[derive(Clone)]
pub struct AddressedChannel {
    inner: Channel,
    target: Arc<Target>,
}

struct Target {
    service: &'static str,
    url: String,
}

impl AddressedChannel {
    /// Wraps `inner`, which connects to `service` at `url`.
    pub fn new(inner: Channel, service: &'static str, url: &str) -> Self {
        Self {
            inner,
            target: Arc::new(Target {
                service,
                url: url.to_owned(),
            }),
        }
    }
}

impl Target {
    fn unreachable(&self, error: &dyn std::error::Error) -> Status {
        // The innermost cause is the useful part ("Connection refused").
        let mut cause = error.to_string();
        let mut source = error.source();
        while let Some(next) = source {
            cause = next.to_string();
            source = next.source();
        }
        Status::unavailable(format!(
            "cannot reach {} at {}: {cause} (is it running? scripts/run starts all five; --{}-url sets the address)",
            self.service, self.url, self.service
        ))
    }

    fn wrong_service(&self, path: &str, answer: Option<Status>) -> Status {
        let said = answer
            .map(|status| status.message().to_owned())
            .filter(|message| !message.is_empty())
            .map(|message| format!(" ({message})"))
            .unwrap_or_default();
        Status::unimplemented(format!(
            "{} at {} does not serve {path}{said}: is --{}-url the address of another service?",
            self.service, self.url, self.service
        ))
    }
}

/// Whether a response is `UNIMPLEMENTED` (what a port that serves another service answers).
fn unimplemented(response: &http::Response<Body>) -> bool {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        == Some("12")
}

impl Service<http::Request<Body>> for AddressedChannel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let target = Arc::clone(&self.target);
        let call = self.inner.call(request);
        Box::pin(async move {
            match call.await {
                Ok(response) if unimplemented(&response) => {
                    let answer = Status::from_header_map(response.headers());
                    Ok(target.wrong_service(&path, answer).into_http())
                }
                Ok(response) => Ok(response),
                Err(error) => Ok(target.unreachable(&error).into_http()),
            }
        })
    }
}
