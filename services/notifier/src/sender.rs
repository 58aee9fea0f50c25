//! The sender: takes due outbox entries one at a time under `FOR UPDATE SKIP LOCKED` (so
//! several notifier instances never send one entry twice), delivers it, and records the
//! attempt. Transient failures (the server unreachable, 4xx answers) are retried with
//! exponential backoff and jitter; a permanent 5xx answer, or an entry older than the
//! maximum age, ends as failed with the server's message.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use prost::Message as _;
use sqlx::PgPool;
use syncguard_proto::v1;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::compose;
use crate::settings::{Delivery, MailSettings};

/// Wakes the sender when a new entry is stored, so mail does not wait for the next poll.
#[derive(Clone, Default)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    /// Asks the sender to look at the outbox now.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// What the sender's loop waits on.
    pub fn notified(&self) -> Arc<Notify> {
        Arc::clone(&self.0)
    }
}

/// Where messages go.
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Directory(std::path::PathBuf),
}

/// What one delivery attempt came to.
enum Outcome {
    Sent,
    Retry(String),
    Failed(String),
}

#[derive(sqlx::FromRow)]
struct Due {
    notification_id: Uuid,
    recipients: Vec<String>,
    subject: String,
    event: Vec<u8>,
    attempts: i32,
    created_at: DateTime<Utc>,
}

/// The transport `settings` name; `None` (logged) when the SMTP URL cannot be used.
pub fn transport(settings: &MailSettings) -> Option<Transport> {
    match &settings.delivery {
        Delivery::Smtp(url) => match AsyncSmtpTransport::<Tokio1Executor>::from_url(url) {
            Ok(builder) => Some(Transport::Smtp(
                builder.timeout(Some(Duration::from_secs(30))).build(),
            )),
            Err(error) => {
                tracing::error!(%error, "SYNCGUARD_SMTP_URL cannot be used; no mail is sent");
                None
            }
        },
        Delivery::Directory(dir) => Some(Transport::Directory(dir.clone())),
    }
}

/// Sends every entry that is due now, then records the queue's depth.
pub async fn send_due(pool: &PgPool, settings: &MailSettings, transport: &Transport) {
    loop {
        match send_one(pool, settings, transport).await {
            Ok(true) => continue,
            Ok(false) => break,
            Err(error) => {
                tracing::warn!(%error, "outbox unavailable; retrying");
                break;
            }
        }
    }
    record_queue(pool).await;
}

/// Queue depth and the oldest waiting entry's age, for dashboards.
async fn record_queue(pool: &PgPool) {
    let measured: Result<(i64, Option<f64>), sqlx::Error> = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 FROM notification_outbox WHERE status = 'pending'",
    )
    .fetch_one(pool)
    .await;
    if let Ok((pending, oldest)) = measured {
        let metrics = syncguard_telemetry::metrics();
        metrics
            .notification_queue
            .record(pending.max(0) as u64, &[]);
        metrics
            .notification_oldest_age
            .record(oldest.unwrap_or(0.0), &[]);
    }
}

/// Sends one due entry; false when none is due.
async fn send_one(
    pool: &PgPool,
    settings: &MailSettings,
    transport: &Transport,
) -> Result<bool, sqlx::Error> {
    let mut transaction = pool.begin().await?;
    let due: Option<Due> = sqlx::query_as(
        "SELECT notification_id, recipients, subject, event, attempts, created_at FROM notification_outbox \
         WHERE status = 'pending' AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT 1 \
         FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut *transaction)
    .await?;
    let Some(due) = due else {
        return Ok(false);
    };
    let attempt = due.attempts + 1;
    let outcome = if Utc::now() - due.created_at
        > chrono::Duration::from_std(settings.max_age).unwrap_or_default()
    {
        Outcome::Failed(format!(
            "gave up: not delivered within {} s",
            settings.max_age.as_secs()
        ))
    } else {
        deliver(settings, transport, &due).await
    };
    let (status, error, retry_in) = match &outcome {
        Outcome::Sent => ("sent", None, None),
        Outcome::Retry(error) => (
            "pending",
            Some(error.clone()),
            Some(backoff(settings, attempt)),
        ),
        Outcome::Failed(error) => ("failed", Some(error.clone()), None),
    };
    sqlx::query(
        "INSERT INTO notification_attempts (notification_id, attempt, accepted, error) VALUES ($1, $2, $3, $4)",
    )
    .bind(due.notification_id)
    .bind(attempt)
    .bind(matches!(outcome, Outcome::Sent))
    .bind(error.as_deref())
    .execute(&mut *transaction)
    .await?;
    sqlx::query(
        "UPDATE notification_outbox SET status = $2, attempts = $3, last_error = $4, \
             sent_at = CASE WHEN $2 = 'sent' THEN now() END, \
             next_attempt_at = now() + make_interval(secs => $5) \
         WHERE notification_id = $1",
    )
    .bind(due.notification_id)
    .bind(status)
    .bind(attempt)
    .bind(error.as_deref())
    .bind(retry_in.map_or(0.0, |delay| delay.as_secs_f64()))
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await?;
    match outcome {
        Outcome::Sent => {
            tracing::info!(notification = %due.notification_id, attempt, "mail delivered")
        }
        Outcome::Retry(error) => {
            tracing::warn!(notification = %due.notification_id, attempt, error, "mail not delivered; will retry")
        }
        Outcome::Failed(error) => {
            tracing::error!(notification = %due.notification_id, attempt, error, "mail failed for good")
        }
    }
    Ok(true)
}

/// Doubling delays from `first_backoff`, capped, with up to 25% random jitter so many
/// notifiers do not retry in step.
fn backoff(settings: &MailSettings, attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let base = settings
        .first_backoff
        .saturating_mul(1 << exponent)
        .min(settings.max_backoff);
    let jitter = base.mul_f64(fastrand_fraction() * 0.25);
    base + jitter
}

fn fastrand_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

async fn deliver(settings: &MailSettings, transport: &Transport, due: &Due) -> Outcome {
    let event = match v1::NotificationEvent::decode(due.event.as_slice()) {
        Ok(event) => event,
        Err(error) => return Outcome::Failed(format!("the stored event cannot be read: {error}")),
    };
    let message = match build(settings, due, &event) {
        Ok(message) => message,
        Err(error) => return Outcome::Failed(error),
    };
    match transport {
        Transport::Directory(dir) => {
            let path = dir.join(format!("{}.eml", due.notification_id));
            let written = async {
                tokio::fs::create_dir_all(dir).await?;
                tokio::fs::write(&path, message.formatted()).await
            };
            match written.await {
                Ok(()) => Outcome::Sent,
                Err(error) => Outcome::Retry(format!("cannot write {}: {error}", path.display())),
            }
        }
        Transport::Smtp(smtp) => match smtp.send(message).await {
            Ok(_) => Outcome::Sent,
            Err(error) if error.is_permanent() => Outcome::Failed(error.to_string()),
            Err(error) => Outcome::Retry(error.to_string()),
        },
    }
}

fn build(
    settings: &MailSettings,
    due: &Due,
    event: &v1::NotificationEvent,
) -> Result<Message, String> {
    let from: Mailbox = settings
        .from
        .parse()
        .map_err(|error| format!("the From address is not valid: {error}"))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(due.subject.clone())
        // The same id on every attempt: a server or client that saw it once can drop a repeat.
        .message_id(Some(format!("<{}@syncguard>", due.notification_id)));
    for recipient in &due.recipients {
        let mailbox: Mailbox = recipient
            .parse()
            .map_err(|error| format!("recipient {recipient:?} is not valid: {error}"))?;
        builder = builder.to(mailbox);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            compose::text(event, settings.console_url.as_deref()),
            compose::html(event, settings.console_url.as_deref()),
        ))
        .map_err(|error| format!("the message cannot be built: {error}"))
}
