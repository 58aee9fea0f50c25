//! TLS for the servers and the peer channels, with rustls. Certificates and keys come from
//! PEM files the deployment names in variables; they are read and checked once at start, so
//! a bad file stops the service with a message naming the variable (never the key's content).

use std::net::SocketAddr;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::ConfigError;

/// A TLS handshake that takes longer than this is dropped: a silent client holds no task.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the service serves with and what it trusts when it calls its peers.
#[derive(Clone, Default)]
pub struct TlsSettings {
    server: Option<ServerTls>,
    peers: Option<PeerTls>,
}

#[derive(Clone)]
struct ServerTls {
    identity: Identity,
    client_ca: Option<Certificate>,
}

#[derive(Clone)]
struct PeerTls {
    ca: Certificate,
    identity: Option<Identity>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never reach a log line, not even through a debug print of the configuration.
        f.debug_struct("TlsSettings")
            .field("serves_tls", &self.serves_tls())
            .field(
                "requires_client_certificates",
                &self.requires_client_certificates(),
            )
            .field("peers_over_tls", &self.peers_over_tls())
            .finish()
    }
}

impl TlsSettings {
    /// Reads `SYNCGUARD_TLS_CERT`/`_KEY` (serve TLS), `SYNCGUARD_TLS_CLIENT_CA` (require client
    /// certificates), `SYNCGUARD_TLS_CA` (verify peers) and `SYNCGUARD_TLS_CLIENT_CERT`/`_KEY`
    /// (present a client certificate to peers).
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let server = match pair(get, "SYNCGUARD_TLS_CERT", "SYNCGUARD_TLS_KEY")? {
            None => {
                if get("SYNCGUARD_TLS_CLIENT_CA").is_some() {
                    return Err(invalid(
                        "SYNCGUARD_TLS_CLIENT_CA",
                        "client certificates need TLS: set SYNCGUARD_TLS_CERT and SYNCGUARD_TLS_KEY too",
                    ));
                }
                None
            }
            Some(identity) => {
                let client_ca = get("SYNCGUARD_TLS_CLIENT_CA")
                    .map(|path| {
                        read_pem("SYNCGUARD_TLS_CLIENT_CA", &path).map(Certificate::from_pem)
                    })
                    .transpose()?;
                let server = ServerTls {
                    identity,
                    client_ca,
                };
                // Building the acceptor parses the certificate and key: a broken file fails
                // the start, not the first connection.
                tonic::transport::Server::builder()
                    .tls_config(server.config())
                    .map_err(|error| {
                        invalid(
                            "SYNCGUARD_TLS_CERT",
                            &format!("the certificate, key or client CA does not load: {error}"),
                        )
                    })?;
                Some(server)
            }
        };
        let peers = match get("SYNCGUARD_TLS_CA") {
            None => {
                if get("SYNCGUARD_TLS_CLIENT_CERT").is_some() {
                    return Err(invalid(
                        "SYNCGUARD_TLS_CLIENT_CERT",
                        "a client certificate is presented over TLS: set SYNCGUARD_TLS_CA too",
                    ));
                }
                None
            }
            Some(path) => {
                let peers = PeerTls {
                    ca: Certificate::from_pem(read_pem("SYNCGUARD_TLS_CA", &path)?),
                    identity: pair(get, "SYNCGUARD_TLS_CLIENT_CERT", "SYNCGUARD_TLS_CLIENT_KEY")?,
                };
                tonic::transport::Endpoint::from_static("https://localhost")
                    .tls_config(peers.config())
                    .map_err(|error| {
                        invalid(
                            "SYNCGUARD_TLS_CA",
                            &format!("the CA or client certificate does not load: {error}"),
                        )
                    })?;
                Some(peers)
            }
        };
        Ok(Self { server, peers })
    }

    /// Whether the server speaks TLS.
    pub fn serves_tls(&self) -> bool {
        self.server.is_some()
    }

    /// Whether the server refuses clients without a certificate from the client CA.
    pub fn requires_client_certificates(&self) -> bool {
        self.server
            .as_ref()
            .is_some_and(|server| server.client_ca.is_some())
    }

    /// Whether peers are called over TLS (their URLs are `https://`).
    pub fn peers_over_tls(&self) -> bool {
        self.peers.is_some()
    }

    /// The server's TLS configuration, when it serves TLS.
    pub fn server_config(&self) -> Option<ServerTlsConfig> {
        self.server.as_ref().map(ServerTls::config)
    }

    /// The configuration peer channels verify servers with, when peers are called over TLS.
    pub fn client_config(&self) -> Option<ClientTlsConfig> {
        self.peers.as_ref().map(PeerTls::config)
    }

    /// Warns when the service listens in plaintext beyond loopback: bearer tokens then cross
    /// the network readable.
    pub fn warn_if_plaintext_beyond_loopback(&self, address: SocketAddr) {
        if !self.serves_tls() && !address.ip().is_loopback() {
            tracing::warn!(
                %address,
                "listening in PLAINTEXT on a non-loopback address: tokens cross the network readable; set SYNCGUARD_TLS_CERT and SYNCGUARD_TLS_KEY"
            );
        }
    }
}

impl ServerTls {
    fn config(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new()
            .identity(self.identity.clone())
            .timeout(HANDSHAKE_TIMEOUT);
        match &self.client_ca {
            Some(ca) => config.client_ca_root(ca.clone()),
            None => config,
        }
    }
}

impl PeerTls {
    fn config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().ca_certificate(self.ca.clone());
        match &self.identity {
            Some(identity) => config.identity(identity.clone()),
            None => config,
        }
    }
}

/// A certificate and key named together: both or neither.
fn pair(
    get: &impl Fn(&str) -> Option<String>,
    cert_variable: &'static str,
    key_variable: &'static str,
) -> Result<Option<Identity>, ConfigError> {
    Ok(
        pem_pair(get, cert_variable, key_variable)?
            .map(|(cert, key)| Identity::from_pem(cert, key)),
    )
}

/// A PEM certificate (chain) and its private key, as read from their files.
pub type PemPair = (Vec<u8>, Vec<u8>);

/// The PEM certificate and key two variables name, both or neither: for a server that is
/// not built on tonic (the console) to read them as the services do.
pub fn pem_pair(
    get: &impl Fn(&str) -> Option<String>,
    cert_variable: &'static str,
    key_variable: &'static str,
) -> Result<Option<PemPair>, ConfigError> {
    match (get(cert_variable), get(key_variable)) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some((
            read_pem(cert_variable, &cert)?,
            read_pem(key_variable, &key)?,
        ))),
        (Some(_), None) => Err(invalid(
            key_variable,
            &format!("{cert_variable} is set, so its key is needed too"),
        )),
        (None, Some(_)) => Err(invalid(
            cert_variable,
            &format!("{key_variable} is set, so its certificate is needed too"),
        )),
    }
}

/// A PEM file a variable names; errors name the variable and the path, never the content.
pub fn read_pem(variable: &'static str, path: &str) -> Result<Vec<u8>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|error| ConfigError::Invalid {
        variable: variable.to_owned(),
        value: path.to_owned(),
        reason: format!("cannot read the file: {}", error.kind()),
    })?;
    if !bytes.windows(11).any(|window| window == b"-----BEGIN ") {
        return Err(ConfigError::Invalid {
            variable: variable.to_owned(),
            value: path.to_owned(),
            reason: "the file is not PEM (no -----BEGIN line)".to_owned(),
        });
    }
    Ok(bytes)
}

fn invalid(variable: &str, reason: &str) -> ConfigError {
    ConfigError::Unusable {
        variable: variable.to_owned(),
        reason: reason.to_owned(),
    }
}
