//! The container health probe: one `GET /healthz`, over TLS when the console serves it
//! (verified with `SYNCGUARD_TLS_CA` for the name in `SYNCGUARD_CONSOLE_URL`, else
//! `localhost`), as the services' probes verify theirs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// How long the whole probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST: &[u8] = b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n";

/// What the probe connects to and how.
pub struct Probe {
    address: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Probe {
    /// The probe for a console at `address`, configured like the console itself.
    pub fn from_lookup(
        address: SocketAddr,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        if get("SYNCGUARD_TLS_CERT").is_none() {
            return Ok(Self { address, tls: None });
        }
        let ca = get("SYNCGUARD_TLS_CA").ok_or(
            "the console serves TLS: set SYNCGUARD_TLS_CA so the health check can verify it",
        )?;
        let pem = syncguard_bootstrap::read_pem("SYNCGUARD_TLS_CA", &ca)
            .map_err(|error| error.to_string())?;
        let mut roots = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            let certificate =
                certificate.map_err(|_| "SYNCGUARD_TLS_CA: not a PEM certificate".to_owned())?;
            roots
                .add(certificate)
                .map_err(|error| format!("SYNCGUARD_TLS_CA: {error}"))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let host = get("SYNCGUARD_CONSOLE_URL")
            .and_then(|url| syncguard_bootstrap::url_host(&url))
            .unwrap_or_else(|| "localhost".to_owned());
        let name = ServerName::try_from(host.clone())
            .map_err(|_| format!("SYNCGUARD_CONSOLE_URL: {host:?} is not a host name"))?;
        Ok(Self {
            address,
            tls: Some((TlsConnector::from(Arc::new(config)), name)),
        })
    }

    /// Sends the request; returns the status line.
    pub fn run(self) -> Result<String, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the runtime: {error}"))?;
        runtime.block_on(async move {
            tokio::time::timeout(PROBE_TIMEOUT, self.ask())
                .await
                .map_err(|_| "no answer within 3 s".to_owned())?
                .map_err(|error| error.to_string())
        })
    }

    async fn ask(self) -> std::io::Result<String> {
        let stream = tokio::net::TcpStream::connect(self.address).await?;
        let mut answer = Vec::new();
        match self.tls {
            None => {
                let mut stream = stream;
                stream.write_all(REQUEST).await?;
                stream.read_to_end(&mut answer).await?;
            }
            Some((connector, name)) => {
                let mut stream = connector.connect(name, stream).await?;
                stream.write_all(REQUEST).await?;
                // A server may close without a TLS close_notify; what arrived counts.
                let _ = stream.read_to_end(&mut answer).await;
            }
        }
        Ok(String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned())
    }
}
