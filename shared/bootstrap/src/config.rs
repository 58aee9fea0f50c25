//! Service configuration from the environment, with defaults that run on one host.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use syncguard_store::{PgConnectOptions, PoolSettings};

use crate::tls::TlsSettings;
use crate::tokens::{TokenTable, TokenTableError};

/// The six services; each knows its default port and its peers' variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceName {
    /// Directory ingestion.
    Ingest,
    /// Diff and staging.
    Stager,
    /// Threshold and quarantine decisions.
    Gate,
    /// Email notifications.
    Notifier,
    /// Soft-delete retention and directory reads.
    Retention,
    /// Writing applied changes to the jobs' targets.
    Exporter,
}

impl ServiceName {
    /// Every service, in port order.
    pub const ALL: [ServiceName; 6] = [
        ServiceName::Ingest,
        ServiceName::Stager,
        ServiceName::Gate,
        ServiceName::Notifier,
        ServiceName::Retention,
        ServiceName::Exporter,
    ];

    /// Short name used in logs, spans and variables.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Ingest => "ingest",
            ServiceName::Stager => "stager",
            ServiceName::Gate => "gate",
            ServiceName::Notifier => "notifier",
            ServiceName::Retention => "retention",
            ServiceName::Exporter => "exporter",
        }
    }

    /// Where the service listens unless `SYNCGUARD_LISTEN` says otherwise.
    pub fn default_listen(self) -> SocketAddr {
        let port = match self {
            ServiceName::Ingest => 50051,
            ServiceName::Stager => 50052,
            ServiceName::Gate => 50053,
            ServiceName::Notifier => 50054,
            ServiceName::Retention => 50055,
            ServiceName::Exporter => 50056,
        };
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// The variable that overrides this service's address for its peers.
    pub fn url_variable(self) -> String {
        format!("SYNCGUARD_{}_URL", self.as_str().to_uppercase())
    }
}

/// How the service gets its listening socket.
#[derive(Debug)]
pub enum Listen {
    /// Bind this address at start.
    Address(SocketAddr),
    /// Use a socket bound by the caller (tests bind `127.0.0.1:0` first to learn the ports).
    Bound(std::net::TcpListener),
}

/// Base URLs of the peer services (`http://host:port`).
#[derive(Debug, Clone)]
pub struct PeerUrls {
    /// Directory ingestion.
    pub ingest: String,
    /// Diff and staging.
    pub stager: String,
    /// Threshold and quarantine decisions.
    pub gate: String,
    /// Email notifications.
    pub notifier: String,
    /// Soft-delete retention.
    pub retention: String,
    /// Export to targets.
    pub exporter: String,
}

impl PeerUrls {
    /// The URL of one peer.
    pub fn of(&self, service: ServiceName) -> &str {
        match service {
            ServiceName::Ingest => &self.ingest,
            ServiceName::Stager => &self.stager,
            ServiceName::Gate => &self.gate,
            ServiceName::Notifier => &self.notifier,
            ServiceName::Retention => &self.retention,
            ServiceName::Exporter => &self.exporter,
        }
    }

    /// The peers' URLs from their `SYNCGUARD_<SERVICE>_URL` variables, defaulting to each
    /// service's port on this host; https:// exactly when `tls` verifies peers.
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
        tls: &TlsSettings,
    ) -> Result<Self, ConfigError> {
        let mut peers = PeerUrls::defaults_with_scheme(if tls.peers_over_tls() {
            "https"
        } else {
            "http"
        });
        for peer in ServiceName::ALL {
            let variable = peer.url_variable();
            if let Some(url) = get(&variable) {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        variable,
                        value: url,
                        reason: "expected an http:// or https:// URL".into(),
                    });
                }
                if url.starts_with("https://") && !tls.peers_over_tls() {
                    return Err(ConfigError::Unusable {
                        variable,
                        reason: "an https:// peer is verified against SYNCGUARD_TLS_CA: set it to the CA that signed the services' certificates".into(),
                    });
                }
                if url.starts_with("http://") && tls.peers_over_tls() {
                    return Err(ConfigError::Unusable {
                        variable,
                        reason: "SYNCGUARD_TLS_CA is set, so peers are called over TLS: use an https:// URL".into(),
                    });
                }
                *peer_slot(&mut peers, peer) = url;
            }
        }
        Ok(peers)
    }

    /// Every service on its default port on this host, in plaintext.
    pub fn defaults() -> Self {
        Self::defaults_with_scheme("http")
    }

    /// Every service on its default port on this host, with `scheme` (`http` or `https`).
    pub fn defaults_with_scheme(scheme: &str) -> Self {
        let url = |service: ServiceName| format!("{scheme}://{}", service.default_listen());
        Self {
            ingest: url(ServiceName::Ingest),
            stager: url(ServiceName::Stager),
            gate: url(ServiceName::Gate),
            notifier: url(ServiceName::Notifier),
            retention: url(ServiceName::Retention),
            exporter: url(ServiceName::Exporter),
        }
    }
}

/// Everything a service needs to start.
#[derive(Debug)]
pub struct ServiceConfig {
    /// Which service this is.
    pub service: ServiceName,
    /// Where it listens.
    pub listen: Listen,
    /// The shared Postgres database.
    pub database: PgConnectOptions,
    /// Pool sizing.
    pub pool: PoolSettings,
    /// Where the other services listen.
    pub peers: PeerUrls,
    /// TLS for the server and the peer channels (plaintext when empty).
    pub tls: TlsSettings,
    /// Bearer tokens accepted from callers, with their roles.
    pub tokens: TokenTable,
    /// The file the tokens came from, read again on SIGHUP (`None`: from a variable).
    pub tokens_file: Option<String>,
    /// The token this service presents to its peers (role `service` in their tables).
    pub service_token: String,
    /// Longest a call may run on the server before it is cancelled.
    pub request_timeout: Duration,
    /// Largest message accepted or sent, in bytes.
    pub max_message_bytes: usize,
    /// Calls served at once per connection; more wait.
    pub concurrency_limit: usize,
    /// How long in-flight calls may finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// How often background work runs (schedules, resuming interrupted cycles).
    pub maintenance_interval: Duration,
    /// How often people are reminded of a quarantine that stays open (used by the gate).
    pub reminder_interval: Duration,
    /// How long a push, trigger or decision waits for its cycle to settle before answering
    /// with the state it reached (the cycle goes on by itself).
    pub cycle_wait: Duration,
}

/// A configuration value that is missing or malformed; the message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{variable} is not set: {hint}")]
    Missing {
        /// The variable.
        variable: &'static str,
        /// What to set it to.
        hint: &'static str,
    },
    /// A variable's value cannot be used.
    #[error("{variable}={value:?} is not valid: {reason}")]
    Invalid {
        /// The variable.
        variable: String,
        /// Its value (never for secrets).
        value: String,
        /// Why not.
        reason: String,
    },
    /// A variable cannot be used as set, for a reason that does not depend on its text
    /// (a key without its certificate, a plaintext peer URL under TLS).
    #[error("{variable}: {reason}")]
    Unusable {
        /// The variable.
        variable: String,
        /// Why not, and what to set.
        reason: String,
    },
    /// The token table could not be read.
    #[error(transparent)]
    Tokens(#[from] TokenTableError),
}

/// Default longest call; snapshot pushes of a million objects take tens of seconds.
const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 600;
/// Default largest message: a batch of a few thousand objects.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
const DEFAULT_CONCURRENCY_LIMIT: usize = 256;
const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 3;
const DEFAULT_MAINTENANCE_INTERVAL_SECS: u64 = 15;
const DEFAULT_REMINDER_INTERVAL_SECS: u64 = 24 * 3600;
const DEFAULT_CYCLE_WAIT_SECS: u64 = 300;

impl ServiceConfig {
    /// Reads the configuration of `service` from the environment (see README "Configuration").
    pub fn from_env(service: ServiceName) -> Result<Self, ConfigError> {
        Self::from_lookup(service, |name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(
        service: ServiceName,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

        let database_url = get("DATABASE_URL").ok_or(ConfigError::Missing {
            variable: "DATABASE_URL",
            hint: "a Postgres URL such as postgres://postgres@127.0.0.1:5432/syncguard",
        })?;
        let mut database =
            PgConnectOptions::from_str(&database_url).map_err(|error| ConfigError::Invalid {
                variable: "DATABASE_URL".into(),
                value: "(hidden)".into(),
                reason: error.to_string(),
            })?;
        // A password kept out of the URL needs no escaping and can come from a secret file.
        if let Some(password) = secret_setting(&get, "SYNCGUARD_DATABASE_PASSWORD")? {
            database = database.password(&password);
        }

        let listen = Listen::Address(listen_address(service, &get)?);

        let tls = TlsSettings::from_lookup(&get)?;
        let peers = PeerUrls::from_lookup(&get, &tls)?;

        let (tokens, tokens_file) = token_table(&get)?;
        let service_token =
            secret_setting(&get, "SYNCGUARD_SERVICE_TOKEN")?.ok_or(ConfigError::Missing {
                variable: "SYNCGUARD_SERVICE_TOKEN",
                hint: "the token this service presents to its peers (or SYNCGUARD_SERVICE_TOKEN_FILE naming a file with it); list it with role `service` in the token table",
            })?;

        let mut pool = PoolSettings {
            role: Some(syncguard_store::service_role(service.as_str())),
            ..PoolSettings::default()
        };
        if let Some(value) = get("SYNCGUARD_DB_MAX_CONNECTIONS") {
            pool.max_connections = parse_var("SYNCGUARD_DB_MAX_CONNECTIONS", &value)?;
        }

        Ok(Self {
            service,
            listen,
            database,
            pool,
            peers,
            tls,
            tokens,
            tokens_file,
            service_token,
            request_timeout: Duration::from_secs(parse_or(
                &get,
                "SYNCGUARD_REQUEST_TIMEOUT_SECS",
                DEFAULT_REQUEST_TIMEOUT_SECS,
            )?),
            max_message_bytes: parse_or(
                &get,
                "SYNCGUARD_MAX_MESSAGE_BYTES",
                DEFAULT_MAX_MESSAGE_BYTES,
            )?,
            concurrency_limit: parse_or(
                &get,
                "SYNCGUARD_CONCURRENCY_LIMIT",
                DEFAULT_CONCURRENCY_LIMIT,
            )?,
            shutdown_grace: Duration::from_secs(parse_or(
                &get,
                "SYNCGUARD_SHUTDOWN_GRACE_SECS",
                DEFAULT_SHUTDOWN_GRACE_SECS,
            )?),
            maintenance_interval: Duration::from_secs(
                parse_or(
                    &get,
                    "SYNCGUARD_MAINTENANCE_INTERVAL_SECS",
                    DEFAULT_MAINTENANCE_INTERVAL_SECS,
                )?
                .max(1),
            ),
            reminder_interval: Duration::from_secs(
                parse_or(
                    &get,
                    "SYNCGUARD_REMINDER_INTERVAL_SECS",
                    DEFAULT_REMINDER_INTERVAL_SECS,
                )?
                .max(1),
            ),
            cycle_wait: Duration::from_secs(parse_or(
                &get,
                "SYNCGUARD_CYCLE_WAIT_SECS",
                DEFAULT_CYCLE_WAIT_SECS,
            )?),
        })
    }

    /// A configuration for tests and embedding: defaults everywhere but the given parts.
    pub fn new(
        service: ServiceName,
        listen: Listen,
        database: PgConnectOptions,
        peers: PeerUrls,
        tokens: TokenTable,
        service_token: String,
    ) -> Self {
        Self {
            service,
            listen,
            database,
            pool: PoolSettings {
                role: Some(syncguard_store::service_role(service.as_str())),
                ..PoolSettings::default()
            },
            peers,
            tls: TlsSettings::default(),
            tokens,
            tokens_file: None,
            service_token,
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            concurrency_limit: DEFAULT_CONCURRENCY_LIMIT,
            shutdown_grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECS),
            maintenance_interval: Duration::from_secs(DEFAULT_MAINTENANCE_INTERVAL_SECS),
            reminder_interval: Duration::from_secs(DEFAULT_REMINDER_INTERVAL_SECS),
            cycle_wait: Duration::from_secs(DEFAULT_CYCLE_WAIT_SECS),
        }
    }
}

/// The web console's address as people open it (`SYNCGUARD_CONSOLE_URL`): http(s)://host
/// [:port][/prefix] without a trailing slash, and nothing a mail client or a page could read
/// as markup; the notifier links to it and the console decides on `Secure` cookies by it.
pub fn console_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            "expected the console's address, like https://syncguard.example.com".to_owned()
        })?;
    if rest.is_empty()
        || rest
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>\"'`?#".contains(c))
    {
        return Err("expected the console's address, like https://syncguard.example.com (no spaces, query or fragment)".into());
    }
    Ok(url.to_owned())
}

/// The token table from `SYNCGUARD_TOKENS_FILE` (returned too: it is read again on SIGHUP)
/// or `SYNCGUARD_TOKENS`.
pub fn token_table(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<(TokenTable, Option<String>), ConfigError> {
    let tokens_file = get("SYNCGUARD_TOKENS_FILE");
    let tokens = match (&tokens_file, get("SYNCGUARD_TOKENS")) {
        (Some(path), _) => TokenTable::from_file(path)?,
        (None, Some(text)) => TokenTable::parse("SYNCGUARD_TOKENS", &text)?,
        (None, None) => {
            return Err(ConfigError::Missing {
                variable: "SYNCGUARD_TOKENS_FILE",
                hint: "a file of `<role> <principal> <token>` lines (or SYNCGUARD_TOKENS with the same lines)",
            });
        }
    };
    Ok((tokens, tokens_file))
}

/// Where `service` listens: `SYNCGUARD_LISTEN` (`host:port`), else its default port on
/// `SYNCGUARD_LISTEN_HOST` (the image sets `0.0.0.0`), else on loopback.
pub fn listen_address(
    service: ServiceName,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<SocketAddr, ConfigError> {
    if let Some(value) = get("SYNCGUARD_LISTEN") {
        return parse_var("SYNCGUARD_LISTEN", &value);
    }
    let port = service.default_listen().port();
    match get("SYNCGUARD_LISTEN_HOST") {
        Some(host) => {
            let ip: std::net::IpAddr = parse_var("SYNCGUARD_LISTEN_HOST", &host)?;
            Ok(SocketAddr::new(ip, port))
        }
        None => Ok(service.default_listen()),
    }
}

/// A secret setting given either inline (`<VARIABLE>`) or as a file (`<VARIABLE>_FILE`, as
/// container secrets are mounted); errors name the variable and path, never the content.
fn secret_setting(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<Option<String>, ConfigError> {
    let file_variable = format!("{variable}_FILE");
    match (get(variable), get(&file_variable)) {
        (Some(_), Some(_)) => Err(ConfigError::Unusable {
            variable: file_variable,
            reason: format!("set {variable} or {variable}_FILE, not both"),
        }),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|text| Some(text.trim_end_matches(['\n', '\r']).to_owned()))
            .map_err(|error| ConfigError::Invalid {
                variable: file_variable,
                value: path,
                reason: format!("cannot read the file: {}", error.kind()),
            }),
        (None, None) => Ok(None),
    }
}

fn peer_slot(peers: &mut PeerUrls, service: ServiceName) -> &mut String {
    match service {
        ServiceName::Ingest => &mut peers.ingest,
        ServiceName::Stager => &mut peers.stager,
        ServiceName::Gate => &mut peers.gate,
        ServiceName::Notifier => &mut peers.notifier,
        ServiceName::Retention => &mut peers.retention,
        ServiceName::Exporter => &mut peers.exporter,
    }
}

/// Parses a variable's value; the error names the variable and says why.
pub fn parse_var<T>(variable: &str, value: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|error: T::Err| ConfigError::Invalid {
            variable: variable.to_owned(),
            value: value.to_owned(),
            reason: error.to_string(),
        })
}

/// Parses a variable when it is set, else gives `default`.
pub fn parse_or<T>(
    get: &impl Fn(&str) -> Option<String>,
    variable: &str,
    default: T,
) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    get(variable).map_or(Ok(default), |value| parse_var(variable, &value))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn a_console_url_is_an_address_and_nothing_else() {
        assert_eq!(
            console_url("https://console.example.com/").as_deref(),
            Ok("https://console.example.com")
        );
        assert!(console_url("console.example.com").is_err());
        assert!(console_url("https://x.example.com/\"><script>").is_err());
        assert!(console_url("https://").is_err());
    }

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const BASE: [(&str, &str); 3] = [
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/syncguard",
        ),
        ("SYNCGUARD_TOKENS", "reader alice reader-token-0123456789"),
        ("SYNCGUARD_SERVICE_TOKEN", "service-token-0123456789"),
    ];

    #[test]
    fn defaults_put_each_service_on_its_own_port() {
        let config = ServiceConfig::from_lookup(ServiceName::Gate, lookup(&BASE)).unwrap();
        let Listen::Address(address) = config.listen else {
            panic!("expected an address");
        };
        assert_eq!(address.to_string(), "127.0.0.1:50053");
        assert_eq!(config.peers.notifier, "http://127.0.0.1:50054");
        assert_eq!(config.request_timeout, Duration::from_secs(600));
    }

    #[test]
    fn errors_name_the_variable() {
        let missing =
            ServiceConfig::from_lookup(ServiceName::Ingest, lookup(&BASE[1..])).unwrap_err();
        assert!(
            missing.to_string().starts_with("DATABASE_URL is not set"),
            "{missing}"
        );

        let mut pairs = BASE.to_vec();
        pairs.push(("SYNCGUARD_LISTEN", "localhost"));
        let invalid = ServiceConfig::from_lookup(ServiceName::Ingest, lookup(&pairs)).unwrap_err();
        assert!(
            invalid
                .to_string()
                .starts_with("SYNCGUARD_LISTEN=\"localhost\" is not valid"),
            "{invalid}"
        );

        let mut pairs = BASE.to_vec();
        pairs.push(("SYNCGUARD_GATE_URL", "gate:50053"));
        let invalid = ServiceConfig::from_lookup(ServiceName::Ingest, lookup(&pairs)).unwrap_err();
        assert!(
            invalid.to_string().contains("SYNCGUARD_GATE_URL"),
            "{invalid}"
        );
    }

    #[test]
    fn the_listen_host_keeps_the_default_port_and_secrets_come_from_files() {
        let mut pairs = BASE.to_vec();
        pairs.push(("SYNCGUARD_LISTEN_HOST", "0.0.0.0"));
        let config = ServiceConfig::from_lookup(ServiceName::Gate, lookup(&pairs)).unwrap();
        let Listen::Address(address) = config.listen else {
            panic!("expected an address");
        };
        assert_eq!(address.to_string(), "0.0.0.0:50053");

        let file = std::env::temp_dir().join(format!("syncguard-token-{}", std::process::id()));
        std::fs::write(&file, "service-token-from-a-file\n").unwrap();
        let path = file.display().to_string();
        let pairs = [
            BASE[0],
            BASE[1],
            ("SYNCGUARD_SERVICE_TOKEN_FILE", path.as_str()),
        ];
        let config = ServiceConfig::from_lookup(ServiceName::Gate, lookup(&pairs)).unwrap();
        assert_eq!(config.service_token, "service-token-from-a-file");
        std::fs::remove_file(&file).unwrap();

        let pairs = [
            BASE[0],
            BASE[1],
            ("SYNCGUARD_SERVICE_TOKEN_FILE", "/nonexistent/token"),
        ];
        let error = ServiceConfig::from_lookup(ServiceName::Gate, lookup(&pairs)).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("SYNCGUARD_SERVICE_TOKEN_FILE=\"/nonexistent/token\""),
            "{error}"
        );
    }

    #[test]
    fn peer_urls_and_limits_come_from_the_environment() {
        let mut pairs = BASE.to_vec();
        pairs.push(("SYNCGUARD_STAGER_URL", "http://stager:50052"));
        pairs.push(("SYNCGUARD_MAX_MESSAGE_BYTES", "1048576"));
        let config = ServiceConfig::from_lookup(ServiceName::Ingest, lookup(&pairs)).unwrap();
        assert_eq!(config.peers.of(ServiceName::Stager), "http://stager:50052");
        assert_eq!(config.max_message_bytes, 1_048_576);
    }
}
