//! Each port serves one syncguard service (plus health and reflection). A call for another
//! service's method is answered `UNIMPLEMENTED` with a message saying which service this
//! port serves and where the other one is expected, instead of the router's bare code.

use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::{Request, Response};
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::ServiceName;

/// The layer for the port of `service` (`syncguard.v1.IngestService`).
#[derive(Debug, Clone)]
pub struct OwnServiceLayer {
    service: &'static str,
}

impl OwnServiceLayer {
    /// Refuses other syncguard services' methods on the port of `service`.
    pub fn new(service: &'static str) -> Self {
        Self { service }
    }
}

impl<S> Layer<S> for OwnServiceLayer {
    type Service = OwnService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OwnService {
            inner,
            service: self.service,
        }
    }
}

/// The service made by [`OwnServiceLayer`].
#[derive(Debug, Clone)]
pub struct OwnService<S> {
    inner: S,
    service: &'static str,
}

/// Where a syncguard service listens by default, for the message.
fn default_home(service: &str) -> Option<(ServiceName, std::net::SocketAddr)> {
    ServiceName::ALL.into_iter().find_map(|name| {
        let expected = format!("syncguard.v1.{}Service", capitalized(name.as_str()));
        (expected == service).then(|| (name, name.default_listen()))
    })
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

impl<S> OwnService<S> {
    fn misdirected(&self, path: &str) -> Option<Status> {
        let requested = path.strip_prefix('/')?.split('/').next()?;
        if !requested.starts_with("syncguard.") || requested == self.service {
            return None;
        }
        let home = match default_home(requested) {
            Some((name, address)) => format!(
                "; {requested} is the {} service (default port {}, SYNCGUARD_{}_URL)",
                name.as_str(),
                address.port(),
                name.as_str().to_uppercase()
            ),
            None => String::new(),
        };
        Some(Status::unimplemented(format!(
            "this port serves {} (and health and reflection), not {path}{home}",
            self.service
        )))
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OwnService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match self.misdirected(request.uri().path()) {
            Some(status) => Either::Right(ready(Ok(status.into_http()))),
            None => Either::Left(self.inner.call(request)),
        }
    }
}
