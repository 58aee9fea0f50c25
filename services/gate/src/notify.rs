//! Telling people: the gate hands quarantine events to the notifier's outbox. A failed hand-off
//! is retried by the maintenance loop until the notifier acknowledges it.

use sqlx::PgPool;
use syncguard_bootstrap::PeerChannel;
use syncguard_proto::names;
use syncguard_proto::v1::notifier_service_client::NotifierServiceClient;
use syncguard_proto::v1::{self, NotificationKind};
use uuid::Uuid;

use crate::error::GateError;

/// Largest sample of affected objects an email carries.
const SAMPLE: i64 = 20;

/// Hands one event about `quarantine_id` to the notifier, once per (quarantine, kind).
/// Returns false when the job has no recipients (nothing to send).
pub async fn send(
    pool: &PgPool,
    notifier: &NotifierServiceClient<PeerChannel>,
    quarantine_id: Uuid,
    kind: NotificationKind,
    actor: &str,
    detail: &str,
) -> Result<bool, GateError> {
    let suffix = kind
        .as_str_name()
        .trim_start_matches("NOTIFICATION_KIND_")
        .to_ascii_lowercase();
    send_keyed(pool, notifier, quarantine_id, kind, &suffix, actor, detail).await
}

/// Like [`send`], with the idempotency key's suffix given (reminders number theirs).
#[allow(clippy::too_many_arguments)]
pub async fn send_keyed(
    pool: &PgPool,
    notifier: &NotifierServiceClient<PeerChannel>,
    quarantine_id: Uuid,
    kind: NotificationKind,
    key_suffix: &str,
    actor: &str,
    detail: &str,
) -> Result<bool, GateError> {
    let row: (
        Uuid,
        Uuid,
        String,
        Vec<String>,
        serde_json::Value,
        chrono::DateTime<chrono::Utc>,
    ) = sqlx::query_as(
        "SELECT q.job_id, q.cycle_id, j.name, j.notification_recipients, q.breaches, q.hold_until \
         FROM quarantines q JOIN jobs j ON j.job_id = q.job_id WHERE q.quarantine_id = $1",
    )
    .bind(quarantine_id)
    .fetch_one(pool)
    .await?;
    let (job_id, cycle_id, job_name, recipients, breaches, hold_until) = row;
    if recipients.is_empty() {
        return Ok(false);
    }
    let counts: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT action, object_type, count(*) FROM staged_actions WHERE cycle_id = $1 GROUP BY action, object_type",
    )
    .bind(cycle_id)
    .fetch_all(pool)
    .await?;
    let sample: Vec<(Uuid, String, String, String, String, String)> = sqlx::query_as(
        "SELECT action_id, anchor, object_type, action, reason, display_name FROM staged_actions \
         WHERE cycle_id = $1 AND action IN ('delete', 'disable') ORDER BY anchor COLLATE \"C\" LIMIT $2",
    )
    .bind(cycle_id)
    .bind(SAMPLE)
    .fetch_all(pool)
    .await?;
    let breaches: Vec<crate::evaluate::Breach> =
        serde_json::from_value(breaches).unwrap_or_default();
    let event = v1::NotificationEvent {
        kind: kind as i32,
        job_id: job_id.to_string(),
        job_name,
        cycle_id: cycle_id.to_string(),
        quarantine_id: quarantine_id.to_string(),
        breaches: breaches
            .iter()
            .map(|breach| v1::RuleBreach {
                rule: None,
                counted: breach.counted,
                limit: breach.limit,
                population: breach.population,
                explanation: breach.explanation.clone(),
            })
            .collect(),
        counts: counts
            .into_iter()
            .map(|(action, object_type, count)| v1::ActionCount {
                action: names::action_kind(&action) as i32,
                object_type: names::object_type(&object_type) as i32,
                count: count as u64,
            })
            .collect(),
        sample: sample
            .into_iter()
            .map(
                |(action_id, anchor, object_type, action, reason, display_name)| v1::StagedAction {
                    action_id: action_id.to_string(),
                    cycle_id: cycle_id.to_string(),
                    job_id: job_id.to_string(),
                    anchor,
                    object_type: names::object_type(&object_type) as i32,
                    action: names::action_kind(&action) as i32,
                    reason: names::action_reason(&reason) as i32,
                    status: v1::ActionStatus::Held as i32,
                    changed_attributes: Vec::new(),
                    display_name,
                },
            )
            .collect(),
        hold_until: Some(prost_types::Timestamp {
            seconds: hold_until.timestamp(),
            nanos: 0,
        }),
        actor: actor.to_owned(),
        detail: detail.to_owned(),
    };
    notifier
        .clone()
        .notify(v1::NotifyRequest {
            idempotency_key: format!("{quarantine_id}:{key_suffix}"),
            recipients,
            event: Some(event),
        })
        .await
        .map_err(|status| GateError::Peer {
            service: "notifier",
            status,
        })?;
    Ok(true)
}

/// Sends the quarantine-opened event and records that the notifier acknowledged it; on
/// failure the maintenance loop tries again.
pub async fn opened(
    pool: &PgPool,
    notifier: &NotifierServiceClient<PeerChannel>,
    quarantine_id: Uuid,
) {
    match send(
        pool,
        notifier,
        quarantine_id,
        NotificationKind::QuarantineOpened,
        "service:gate",
        "",
    )
    .await
    {
        Ok(_) => {
            let marked = sqlx::query(
                "UPDATE quarantines SET opened_notified_at = now() WHERE quarantine_id = $1",
            )
            .bind(quarantine_id)
            .execute(pool)
            .await;
            if let Err(error) = marked {
                tracing::warn!(quarantine = %quarantine_id, %error, "notification sent but not recorded; it is sent again (once, by key)");
            }
        }
        Err(error) => {
            tracing::warn!(quarantine = %quarantine_id, %error, "quarantine notification not handed over yet; retrying later")
        }
    }
}

/// Best-effort notice of a decision; the outbox de-duplicates by key.
pub async fn decided(
    pool: &PgPool,
    notifier: &NotifierServiceClient<PeerChannel>,
    quarantine_id: Uuid,
    kind: NotificationKind,
    actor: &str,
    detail: &str,
) {
    if let Err(error) = send(pool, notifier, quarantine_id, kind, actor, detail).await {
        tracing::warn!(quarantine = %quarantine_id, %error, "decision notification not handed over");
    }
}
