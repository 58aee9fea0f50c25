//! The outbox: a notification is stored before `Notify` answers, once per idempotency key.
//! Sending it over SMTP is the sender's job.

use chrono::{DateTime, Utc};
use prost::Message as _;
use sqlx::PgPool;
use syncguard_bootstrap::timestamp;
use syncguard_domain::{FieldError, parse_email};
use syncguard_proto::v1::{self, NotificationKind};
use uuid::Uuid;

use crate::error::NotifierError;

const MAX_RECIPIENTS: usize = 50;

/// The subject line of an event; only text from validated fields, no line breaks.
pub fn subject(event: &v1::NotificationEvent) -> String {
    let job: String = event
        .job_name
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect();
    let what = match NotificationKind::try_from(event.kind).unwrap_or_default() {
        NotificationKind::QuarantineOpened => "Delete threshold exceeded",
        NotificationKind::QuarantineReminder => "Reminder: deletes awaiting a decision",
        NotificationKind::QuarantineAllowed => "Deletes allowed",
        NotificationKind::QuarantineRejected => "Deletes rejected",
        NotificationKind::QuarantineSuperseded => "Quarantine superseded",
        NotificationKind::CycleFailed => "Sync cycle failed",
        NotificationKind::Unspecified => "Notification",
    };
    format!("[syncguard] {what}: {job}")
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    notification_id: Uuid,
    idempotency_key: String,
    recipients: Vec<String>,
    subject: String,
    event: Vec<u8>,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    next_attempt_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

impl OutboxRow {
    fn view(self) -> v1::Notification {
        v1::Notification {
            notification_id: self.notification_id.to_string(),
            idempotency_key: self.idempotency_key,
            recipients: self.recipients,
            subject: self.subject,
            event: v1::NotificationEvent::decode(self.event.as_slice()).ok(),
            status: match self.status.as_str() {
                "pending" => v1::DeliveryStatus::Pending,
                "sent" => v1::DeliveryStatus::Sent,
                "failed" => v1::DeliveryStatus::Failed,
                _ => v1::DeliveryStatus::Unspecified,
            } as i32,
            attempts: self.attempts.max(0) as u32,
            last_error: self.last_error.unwrap_or_default(),
            created_at: Some(timestamp(self.created_at)),
            sent_at: self.sent_at.map(timestamp),
            next_attempt_at: Some(timestamp(self.next_attempt_at)),
            attempt_log: Vec::new(),
        }
    }
}

const OUTBOX_COLUMNS: &str = "notification_id, idempotency_key, recipients, subject, event, status, attempts, \
    last_error, created_at, next_attempt_at, sent_at";

/// Stores the event `request` names unless it was stored before; either way returns the
/// stored entry. A job without recipients has nobody to tell: the answer is an empty entry.
pub async fn enqueue(
    pool: &PgPool,
    request: &v1::NotifyRequest,
) -> Result<v1::Notification, NotifierError> {
    let Some(composed) = crate::events::compose(pool, request).await? else {
        return Ok(v1::Notification::default());
    };
    if composed.recipients.len() > MAX_RECIPIENTS {
        return Err(FieldError::new(
            "recipients",
            format!("the job lists more than {MAX_RECIPIENTS} recipients"),
        )
        .into());
    }
    let recipients = composed
        .recipients
        .iter()
        .enumerate()
        .map(|(index, address)| parse_email(&format!("recipients[{index}]"), address))
        .collect::<Result<Vec<_>, _>>()?;
    let event = &composed.event;
    let kind = NotificationKind::try_from(event.kind)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("NOTIFICATION_KIND_")
        .to_ascii_lowercase();
    let job_id = Uuid::parse_str(&event.job_id).ok();
    sqlx::query(
        "INSERT INTO notification_outbox (notification_id, idempotency_key, job_id, kind, recipients, subject, event) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(&composed.key)
    .bind(job_id)
    .bind(kind)
    .bind(&recipients)
    .bind(subject(event))
    .bind(event.encode_to_vec())
    .execute(pool)
    .await?;
    let row: OutboxRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {OUTBOX_COLUMNS} FROM notification_outbox WHERE idempotency_key = $1"
    )))
    .bind(&composed.key)
    .fetch_one(pool)
    .await?;
    Ok(row.view())
}

/// One outbox entry.
pub async fn get(pool: &PgPool, notification_id: Uuid) -> Result<v1::Notification, NotifierError> {
    let row: Option<OutboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {OUTBOX_COLUMNS} FROM notification_outbox WHERE notification_id = $1"
    )))
    .bind(notification_id)
    .fetch_optional(pool)
    .await?;
    row.map(OutboxRow::view)
        .ok_or_else(|| NotifierError::NotFound(format!("notification {notification_id} not found")))
}

/// Entries newest first, by job and status.
pub async fn list(
    pool: &PgPool,
    request: &v1::ListNotificationsRequest,
) -> Result<v1::ListNotificationsResponse, NotifierError> {
    let job_id = if request.job_id.is_empty() {
        None
    } else {
        Some(
            Uuid::parse_str(&request.job_id)
                .map_err(|_| FieldError::new("job_id", "not a job id"))?,
        )
    };
    if let Some(job_id) = job_id
        && !syncguard_store::job_exists(pool, job_id).await?
    {
        return Err(NotifierError::NotFound(format!("job {job_id} not found")));
    }
    let statuses: Vec<&str> = request
        .statuses
        .iter()
        .filter_map(|status| match v1::DeliveryStatus::try_from(*status) {
            Ok(v1::DeliveryStatus::Pending) => Some("pending"),
            Ok(v1::DeliveryStatus::Sent) => Some("sent"),
            Ok(v1::DeliveryStatus::Failed) => Some("failed"),
            _ => None,
        })
        .collect();
    let page = syncguard_bootstrap::page(request.page.as_ref())?;
    let size = page.size;
    let before = page.token_as::<Uuid>()?;
    let rows: Vec<OutboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {OUTBOX_COLUMNS} FROM notification_outbox \
         WHERE ($1::uuid IS NULL OR job_id = $1) AND (cardinality($2::text[]) = 0 OR status = ANY($2)) \
           AND ($3::uuid IS NULL OR notification_id < $3) \
         ORDER BY notification_id DESC LIMIT $4"
    )))
    .bind(job_id)
    .bind(&statuses)
    .bind(before)
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > size;
    let notifications: Vec<v1::Notification> = rows
        .into_iter()
        .take(size as usize)
        .map(OutboxRow::view)
        .collect();
    let next_page_token = if more {
        notifications
            .last()
            .map(|n| n.notification_id.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(v1::ListNotificationsResponse {
        notifications,
        next_page_token,
    })
}
