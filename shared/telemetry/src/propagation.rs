//! W3C trace context in and out of gRPC metadata (HTTP/2 headers), as tower layers.
//!
//! The server layer opens one span per call whose parent is the caller's context; the client
//! layer writes the current span's context into every outgoing call. Together they make one
//! sync cycle one trace, whichever service it crosses.

use std::task::{Context as TaskContext, Poll};

use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Paths polled often enough that a span per call would drown the useful ones.
const UNTRACED_PREFIXES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The caller's trace context from incoming metadata (empty when the caller sent none).
pub fn extract_context(headers: &HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

/// Writes the current span's trace context into outgoing metadata.
pub fn inject_current_context(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

/// The current span's context as a W3C `traceparent` value, to store with work that later
/// steps continue (a cycle staged now and applied after an approval).
pub fn current_traceparent() -> Option<String> {
    let mut headers = HeaderMap::new();
    inject_current_context(&mut headers);
    headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Makes `span` a child of the stored `traceparent`, so it joins that trace.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(traceparent) {
        headers.insert("traceparent", value);
    }
    // An unparsable value leaves the span in its own trace.
    let _ = span.set_parent(extract_context(&headers));
}

/// Opens a server span per gRPC call, parented on the caller's trace context.
#[derive(Debug, Clone)]
pub struct ServerTraceLayer {
    service_name: &'static str,
}

impl ServerTraceLayer {
    /// `service_name` labels the spans (`ingest`, `gate`, ...).
    pub fn new(service_name: &'static str) -> Self {
        Self { service_name }
    }
}

impl<S> Layer<S> for ServerTraceLayer {
    type Service = ServerTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerTrace {
            inner,
            service_name: self.service_name,
        }
    }
}

/// The service made by [`ServerTraceLayer`].
#[derive(Debug, Clone)]
pub struct ServerTrace<S> {
    inner: S,
    service_name: &'static str,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ServerTrace<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        if UNTRACED_PREFIXES
            .iter()
            .any(|prefix| path.starts_with(prefix))
        {
            return Box::pin(self.inner.call(request));
        }
        let method = path.trim_start_matches('/').to_owned();
        let (rpc_service, rpc_method) = split_grpc_path(path);
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %rpc_service,
            rpc.method = %rpc_method,
            syncguard.service = self.service_name,
            rpc.grpc.status_code = tracing::field::Empty,
            enduser.id = tracing::field::Empty,
        );
        // An invalid parent only means the caller sent no trace context: start a new trace.
        let _ = span.set_parent(extract_context(request.headers()));
        // Entered while the inner layers take the request, so authentication can record the
        // caller on this span.
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        }
        .instrument(span.clone());
        let service_name = self.service_name;
        let started = std::time::Instant::now();
        Box::pin(async move {
            let result = response.await;
            let mut code = -1;
            if let Ok(response) = &result {
                // Errors answered before any message carry grpc-status in the headers;
                // successful calls carry it in trailers, which means OK here.
                code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<i64>().ok())
                    .unwrap_or(0);
                span.record("rpc.grpc.status_code", code);
            }
            crate::metrics::metrics().rpc_duration.record(
                started.elapsed().as_secs_f64() * 1000.0,
                &[
                    opentelemetry::KeyValue::new("rpc.method", method),
                    opentelemetry::KeyValue::new("rpc.grpc.status_code", code),
                    opentelemetry::KeyValue::new("syncguard.service", service_name),
                ],
            );
            result
        })
    }
}

fn split_grpc_path(path: &str) -> (&str, &str) {
    path.trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""))
}

/// Writes the current trace context into every call made through the wrapped channel.
#[derive(Debug, Clone, Default)]
pub struct InjectTraceContextLayer;

impl<S> Layer<S> for InjectTraceContextLayer {
    type Service = InjectTraceContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InjectTraceContext { inner }
    }
}

/// The service made by [`InjectTraceContextLayer`].
#[derive(Debug, Clone)]
pub struct InjectTraceContext<S> {
    inner: S,
}

impl<S, ReqBody> Service<Request<ReqBody>> for InjectTraceContext<S>
where
    S: Service<Request<ReqBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        inject_current_context(request.headers_mut());
        self.inner.call(request)
    }
}
