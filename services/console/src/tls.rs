//! Serving the console over TLS itself, when the deployment gives it a certificate
//! (`SYNCGUARD_TLS_CERT`/`SYNCGUARD_TLS_KEY`, as for the services): rustls with ring, the
//! HTTP stack axum already uses, and the same graceful stop as the plain listener.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use syncguard_bootstrap::ConfigError;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A silent client holds no task longer than this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests in flight may finish for this long after the stop signal.
const DRAIN: Duration = Duration::from_secs(5);

/// The server side of TLS, checked at start.
#[derive(Clone)]
pub struct ServerTls(Arc<rustls::ServerConfig>);

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls(..)")
    }
}

fn unusable(variable: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Unusable {
        variable: variable.to_owned(),
        reason: reason.into(),
    }
}

impl ServerTls {
    /// Reads the PEM files named by `SYNCGUARD_TLS_CERT` and `SYNCGUARD_TLS_KEY` (read as
    /// the services read them); `None` when neither is set. Errors name the variable, never
    /// a file's content.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let Some((cert_pem, key_pem)) =
            syncguard_bootstrap::pem_pair(get, "SYNCGUARD_TLS_CERT", "SYNCGUARD_TLS_KEY")?
        else {
            return Ok(None);
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|_| unusable("SYNCGUARD_TLS_CERT", "not a PEM certificate chain"))?;
        if chain.is_empty() {
            return Err(unusable("SYNCGUARD_TLS_CERT", "holds no PEM certificate"));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|_| unusable("SYNCGUARD_TLS_KEY", "not a PEM private key"))?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| unusable("SYNCGUARD_TLS_CERT", error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| {
            unusable(
                "SYNCGUARD_TLS_KEY",
                format!("does not fit the certificate: {error}"),
            )
        })?;
        let mut config = config;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Self(Arc::new(config))))
    }
}

/// Serves `router` over TLS on `listener` until `shutdown`, then lets requests in flight
/// finish for a few seconds.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: ServerTls,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(tls.0);
    let connections = tokio_util::task::TaskTracker::new();
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "console: a connection could not be accepted");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            else {
                tracing::debug!(%peer, "console: TLS handshake failed or timed out");
                return;
            };
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(router),
            );
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    let _ = stopping.send(true);
    connections.close();
    if tokio::time::timeout(DRAIN, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("console: requests still running after the drain time were cut");
    }
    Ok(())
}
