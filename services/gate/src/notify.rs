//! Telling people: the gate names the event (which quarantine, what happened) and the
//! notifier writes the message from the records and sends it to the job's recipients. A
//! failed hand-off of an opened quarantine is retried by the maintenance loop until the
//! notifier acknowledges it.

use sqlx::PgPool;
use syncguard_bootstrap::PeerChannel;
use syncguard_proto::v1::notifier_service_client::NotifierServiceClient;
use syncguard_proto::v1::{self, NotificationKind};
use uuid::Uuid;

use crate::error::GateError;

/// Hands one event about `quarantine_id` to the notifier (queued once per event).
pub async fn send(
    notifier: &NotifierServiceClient<PeerChannel>,
    job_id: Uuid,
    quarantine_id: Uuid,
    kind: NotificationKind,
    reminder: u32,
) -> Result<(), GateError> {
    notifier
        .clone()
        .notify(v1::NotifyRequest {
            kind: kind as i32,
            job_id: job_id.to_string(),
            quarantine_id: quarantine_id.to_string(),
            reminder,
            ..Default::default()
        })
        .await
        .map_err(|status| GateError::Peer {
            service: "notifier",
            status,
        })?;
    Ok(())
}

/// Sends the quarantine-opened event and records that the notifier acknowledged it; on
/// failure the maintenance loop tries again.
pub async fn opened(
    pool: &PgPool,
    notifier: &NotifierServiceClient<PeerChannel>,
    job_id: Uuid,
    quarantine_id: Uuid,
) {
    match send(
        notifier,
        job_id,
        quarantine_id,
        NotificationKind::QuarantineOpened,
        0,
    )
    .await
    {
        Ok(()) => {
            let marked = sqlx::query(
                "UPDATE quarantines SET opened_notified_at = now() WHERE quarantine_id = $1",
            )
            .bind(quarantine_id)
            .execute(pool)
            .await;
            if let Err(error) = marked {
                tracing::warn!(quarantine = %quarantine_id, %error, "notification handed over but not recorded; handed over again (queued once)");
            }
        }
        Err(error) => {
            tracing::warn!(quarantine = %quarantine_id, %error, "quarantine notification not handed over yet; retrying later")
        }
    }
}

/// Best-effort notice of a decision; the outbox queues each event once.
pub async fn decided(
    notifier: &NotifierServiceClient<PeerChannel>,
    job_id: Uuid,
    quarantine_id: Uuid,
    kind: NotificationKind,
) {
    if let Err(error) = send(notifier, job_id, quarantine_id, kind, 0).await {
        tracing::warn!(quarantine = %quarantine_id, %error, "decision notification not handed over");
    }
}
