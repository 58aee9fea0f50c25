//! Channels to peer services: every call carries this service's token and the current
//! trace context.

use std::task::{Context, Poll};

use http::{HeaderValue, Request};
use syncguard_telemetry::{InjectTraceContext, InjectTraceContextLayer};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tower_layer::Layer as _;
use tower_service::Service;

/// A lazily connected channel to a peer, with authentication and trace propagation.
pub type PeerChannel = InjectTraceContext<AddAuthorization<Channel>>;

/// Opens a channel to `url` that presents `token`, over TLS verified with `tls` when the
/// URL is `https://`. Connects on first use, so services may start in any order.
pub fn peer_channel(
    url: &str,
    token: &str,
    tls: Option<ClientTlsConfig>,
) -> anyhow::Result<PeerChannel> {
    let channel = AddAuthorization::new(peer_endpoint(url, tls)?, token).map_err(|_| {
        anyhow::anyhow!("the service token contains characters not allowed in metadata")
    })?;
    Ok(InjectTraceContextLayer.layer(channel))
}

/// A lazily connected channel to `url` that adds no credentials: for a program that calls
/// the services on behalf of each of its users (the console), with their own tokens.
pub fn peer_endpoint(url: &str, tls: Option<ClientTlsConfig>) -> anyhow::Result<Channel> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|error| anyhow::anyhow!("peer URL {url:?} is not valid: {error}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .initial_stream_window_size(crate::host::HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(crate::host::HTTP2_CONNECTION_WINDOW)
        .tcp_nodelay(true);
    if url.starts_with("https://") {
        let tls = tls.ok_or_else(|| {
            anyhow::anyhow!(
                "peer URL {url:?} is https:// but no CA is configured (SYNCGUARD_TLS_CA)"
            )
        })?;
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|error| anyhow::anyhow!("TLS for peer {url:?}: {error}"))?;
    }
    Ok(endpoint.connect_lazy())
}

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Debug, Clone)]
pub struct AddAuthorization<S> {
    inner: S,
    header: HeaderValue,
}

/// A token that cannot travel in an `authorization` header.
#[derive(Debug)]
pub struct UnsendableToken;

impl<S> AddAuthorization<S> {
    /// Wraps `inner` so every call presents `token`.
    pub fn new(inner: S, token: &str) -> Result<Self, UnsendableToken> {
        let mut header =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| UnsendableToken)?;
        header.set_sensitive(true);
        Ok(Self { inner, header })
    }
}

impl<S, B> Service<Request<B>> for AddAuthorization<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, self.header.clone());
        self.inner.call(request)
    }
}
