//! How the notifier delivers mail, from the environment.

use std::path::PathBuf;
use std::time::Duration;

/// Where mail goes.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// An SMTP server URL as lettre reads it: `smtp://host:25` (plain),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtps://user:pass@host:465`
    /// (implicit TLS).
    Smtp(String),
    /// Local development: each message is written to `<dir>/<notification id>.eml`.
    Directory(PathBuf),
}

/// The notifier's mail settings.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// Where mail goes.
    pub delivery: Delivery,
    /// The From address.
    pub from: String,
    /// First retry delay; doubles per attempt (with jitter) up to `max_backoff`.
    pub first_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Give up (status failed) on a message older than this.
    pub max_age: Duration,
    /// How often the outbox is checked when nothing wakes the sender.
    pub poll_interval: Duration,
    /// The web console's address as people open it (`SYNCGUARD_CONSOLE_URL`): when set, a
    /// quarantine email's first action is a link to the quarantine's page there.
    pub console_url: Option<String>,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            delivery: Delivery::Directory(PathBuf::from("target/mail")),
            from: "syncguard@localhost.localdomain".into(),
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(600),
            max_age: Duration::from_secs(3 * 24 * 3600),
            poll_interval: Duration::from_secs(5),
            console_url: None,
        }
    }
}

/// A mail setting that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct MailSettingsError {
    variable: &'static str,
    reason: String,
}

impl MailSettings {
    /// Reads `SYNCGUARD_SMTP_URL` or `SYNCGUARD_MAIL_DIR` (one is required),
    /// `SYNCGUARD_MAIL_FROM`, `SYNCGUARD_MAIL_MAX_AGE_SECS`, `SYNCGUARD_MAIL_MAX_BACKOFF_SECS`.
    pub fn from_env() -> Result<Self, MailSettingsError> {
        let get = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        };
        let delivery = match (get("SYNCGUARD_SMTP_URL"), get("SYNCGUARD_MAIL_DIR")) {
            (Some(url), _) => {
                if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                    return Err(MailSettingsError {
                        variable: "SYNCGUARD_SMTP_URL",
                        reason: "expected smtp://host:port (add ?tls=required for STARTTLS) or smtps://host:465".into(),
                    });
                }
                Delivery::Smtp(url)
            }
            (None, Some(dir)) => Delivery::Directory(PathBuf::from(dir)),
            (None, None) => {
                return Err(MailSettingsError {
                    variable: "SYNCGUARD_SMTP_URL",
                    reason: "not set: give an SMTP server URL, or SYNCGUARD_MAIL_DIR to write messages to files".into(),
                });
            }
        };
        let mut settings = Self {
            delivery,
            ..Self::default()
        };
        if let Some(from) = get("SYNCGUARD_MAIL_FROM") {
            syncguard_domain::parse_email("SYNCGUARD_MAIL_FROM", &from).map_err(|error| {
                MailSettingsError {
                    variable: "SYNCGUARD_MAIL_FROM",
                    reason: error.message,
                }
            })?;
            settings.from = from;
        }
        let seconds =
            |variable: &'static str, default: Duration| -> Result<Duration, MailSettingsError> {
                match get(variable) {
                    None => Ok(default),
                    Some(value) => value
                        .trim()
                        .parse::<u64>()
                        .map(Duration::from_secs)
                        .map_err(|error| MailSettingsError {
                            variable,
                            reason: format!("{value:?} is not a number of seconds: {error}"),
                        }),
                }
            };
        if let Some(url) = get("SYNCGUARD_CONSOLE_URL") {
            settings.console_url =
                Some(syncguard_bootstrap::console_url(&url).map_err(|reason| {
                    MailSettingsError {
                        variable: "SYNCGUARD_CONSOLE_URL",
                        reason,
                    }
                })?);
        }
        settings.max_age = seconds("SYNCGUARD_MAIL_MAX_AGE_SECS", settings.max_age)?;
        settings.max_backoff = seconds("SYNCGUARD_MAIL_MAX_BACKOFF_SECS", settings.max_backoff)?;
        Ok(settings)
    }
}
