//! The console's configuration from the environment, read with the services' own parsers.

use std::net::SocketAddr;
use std::time::Duration;

use syncguard_bootstrap::{ConfigError, PeerUrls, TlsSettings, TokenTable, parse_or, parse_var};

/// Where the console listens unless `SYNCGUARD_CONSOLE_LISTEN` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Its port when only `SYNCGUARD_LISTEN_HOST` is set (the image sets `0.0.0.0`).
const DEFAULT_PORT: u16 = 8080;
/// A session ends this long after sign-in, used or not.
const DEFAULT_SESSION_SECS: u64 = 8 * 3600;
/// A session nobody used for this long ends too.
const DEFAULT_IDLE_SECS: u64 = 30 * 60;

/// How the console's listening socket is obtained.
#[derive(Debug)]
pub enum ConsoleListen {
    /// Bind this address at start.
    Address(SocketAddr),
    /// A socket the caller bound (tests bind port 0 to learn the address first).
    Bound(std::net::TcpListener),
}

/// Everything the console needs to start.
#[derive(Debug)]
pub struct ConsoleConfig {
    /// Where browsers reach it.
    pub listen: ConsoleListen,
    /// The services it calls on the signed-in person's behalf.
    pub peers: PeerUrls,
    /// TLS towards the services.
    pub tls: TlsSettings,
    /// TLS the console serves itself (`SYNCGUARD_TLS_CERT`/`_KEY`); plain HTTP without.
    pub serve_tls: Option<crate::tls::ServerTls>,
    /// The same token table as the services: sign-in checks a token and learns its role
    /// here, so pages offer only what the role may do (the services check again).
    pub tokens: TokenTable,
    /// Read again on SIGHUP, as the services do.
    pub tokens_file: Option<String>,
    /// The address people open (`SYNCGUARD_CONSOLE_URL`); an https:// one marks the session
    /// cookie `Secure` (TLS may end in front of the console).
    pub public_url: Option<String>,
    /// Longest life of a session.
    pub session_lifetime: Duration,
    /// Longest a session may sit unused.
    pub session_idle: Duration,
}

impl ConsoleConfig {
    /// Reads the configuration from the environment (see the README's configuration table).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let listen = listen_address(&get)?;
        let tls = TlsSettings::from_lookup(&get)?;
        let serve_tls = crate::tls::ServerTls::from_lookup(&get)?;
        let peers = PeerUrls::from_lookup(&get, &tls)?;
        let (tokens, tokens_file) = syncguard_bootstrap::token_table(&get)?;
        let public_url = match get("SYNCGUARD_CONSOLE_URL") {
            None => None,
            Some(url) => Some(syncguard_bootstrap::console_url(&url).map_err(|reason| {
                ConfigError::Invalid {
                    variable: "SYNCGUARD_CONSOLE_URL".into(),
                    value: url,
                    reason,
                }
            })?),
        };
        Ok(Self {
            listen: ConsoleListen::Address(listen),
            peers,
            tls,
            serve_tls,
            tokens,
            tokens_file,
            public_url,
            session_lifetime: Duration::from_secs(
                parse_or(&get, "SYNCGUARD_CONSOLE_SESSION_SECS", DEFAULT_SESSION_SECS)?.max(60),
            ),
            session_idle: Duration::from_secs(
                parse_or(&get, "SYNCGUARD_CONSOLE_IDLE_SECS", DEFAULT_IDLE_SECS)?.max(60),
            ),
        })
    }

    /// A configuration for tests and embedding: defaults everywhere but the given parts.
    pub fn new(listen: ConsoleListen, peers: PeerUrls, tokens: TokenTable) -> Self {
        Self {
            listen,
            peers,
            tls: TlsSettings::default(),
            serve_tls: None,
            tokens,
            tokens_file: None,
            public_url: None,
            session_lifetime: Duration::from_secs(DEFAULT_SESSION_SECS),
            session_idle: Duration::from_secs(DEFAULT_IDLE_SECS),
        }
    }

    /// Whether the session cookie must only travel over TLS: the console serves TLS, or
    /// people reach it at an https:// address (TLS ended in front of it).
    pub fn secure_cookies(&self) -> bool {
        self.serve_tls.is_some()
            || self
                .public_url
                .as_deref()
                .is_some_and(|url| url.starts_with("https://"))
    }
}

/// `SYNCGUARD_CONSOLE_LISTEN` (`host:port`), else port 8080 on `SYNCGUARD_LISTEN_HOST`
/// (the image sets `0.0.0.0`), else on loopback.
pub fn listen_address(get: &impl Fn(&str) -> Option<String>) -> Result<SocketAddr, ConfigError> {
    if let Some(value) = get("SYNCGUARD_CONSOLE_LISTEN") {
        return parse_var("SYNCGUARD_CONSOLE_LISTEN", &value);
    }
    match get("SYNCGUARD_LISTEN_HOST") {
        Some(host) => {
            let ip: std::net::IpAddr = parse_var("SYNCGUARD_LISTEN_HOST", &host)?;
            Ok(SocketAddr::new(ip, DEFAULT_PORT))
        }
        None => parse_var("SYNCGUARD_CONSOLE_LISTEN", DEFAULT_LISTEN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn defaults_to_loopback_port_8080() {
        let config = ConsoleConfig::from_lookup(lookup(&[(
            "SYNCGUARD_TOKENS",
            "reader ann 0123456789abcdef",
        )]))
        .expect("valid");
        match config.listen {
            ConsoleListen::Address(address) => assert_eq!(address.to_string(), DEFAULT_LISTEN),
            ConsoleListen::Bound(_) => panic!("an address"),
        }
        assert!(!config.secure_cookies());
    }

    #[test]
    fn a_bad_setting_names_its_variable() {
        let error = ConsoleConfig::from_lookup(lookup(&[
            ("SYNCGUARD_TOKENS", "reader ann 0123456789abcdef"),
            ("SYNCGUARD_CONSOLE_LISTEN", "everywhere"),
        ]))
        .expect_err("refused");
        assert!(
            error.to_string().contains("SYNCGUARD_CONSOLE_LISTEN"),
            "{error}"
        );
        let error = ConsoleConfig::from_lookup(lookup(&[
            ("SYNCGUARD_TOKENS", "reader ann 0123456789abcdef"),
            ("SYNCGUARD_CONSOLE_URL", "console.example.com"),
        ]))
        .expect_err("refused");
        assert!(
            error.to_string().contains("SYNCGUARD_CONSOLE_URL"),
            "{error}"
        );
    }

    #[test]
    fn an_https_address_makes_cookies_secure() {
        let config = ConsoleConfig::from_lookup(lookup(&[
            ("SYNCGUARD_TOKENS", "reader ann 0123456789abcdef"),
            ("SYNCGUARD_CONSOLE_URL", "https://syncguard.example.com/"),
        ]))
        .expect("valid");
        assert!(config.secure_cookies());
        assert_eq!(
            config.public_url.as_deref(),
            Some("https://syncguard.example.com")
        );
    }
}
