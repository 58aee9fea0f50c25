//! The gate's background work besides deciding: a held cycle past its hold limit is
//! superseded (never applied), people are told, and a fresh cycle runs; quarantine notices
//! the notifier has not acknowledged yet are handed over again; reminders go out while a
//! quarantine stays open.

use std::time::Duration;

use sqlx::PgPool;
use syncguard_domain::JobId;
use syncguard_proto::v1::NotificationKind;
use uuid::Uuid;

use crate::api::Peers;
use crate::{decisions, notify};

/// One round of maintenance.
pub async fn run_once(pool: &PgPool, peers: &Peers, reminder_interval: Duration) {
    supersede_expired(pool, peers).await;
    match sqlx::query_as::<_, (i64,)>("SELECT count(*) FROM quarantines WHERE state = 'open'")
        .fetch_one(pool)
        .await
    {
        Ok((open,)) => syncguard_telemetry::metrics()
            .open_quarantines
            .record(open.max(0) as u64, &[]),
        Err(error) => tracing::debug!(%error, "open quarantines not measured"),
    }
    resend_unacknowledged(pool, peers).await;
    remind(pool, peers, reminder_interval).await;
}

async fn supersede_expired(pool: &PgPool, peers: &Peers) {
    let expired: Result<Vec<(Uuid,)>, sqlx::Error> = sqlx::query_as(
        "SELECT job_id FROM quarantines WHERE state = 'open' AND hold_until < now() LIMIT 20",
    )
    .fetch_all(pool)
    .await;
    let expired = match expired {
        Ok(expired) => expired,
        Err(error) => {
            tracing::warn!(%error, "cannot look for expired quarantines");
            return;
        }
    };
    for (job_id,) in expired {
        let job_id = JobId(job_id);
        let reason = "the hold limit passed without a decision";
        match decisions::supersede(pool, job_id, "service:gate", reason).await {
            // Only the instance that superseded it carries on (the row lock decides).
            Ok(Some(row)) => {
                notify::decided(
                    &peers.notifier,
                    row.job_id,
                    row.quarantine_id,
                    NotificationKind::QuarantineSuperseded,
                )
                .await;
                peers.fresh_cycle(job_id).await;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(job = %job_id, %error, "could not supersede an expired quarantine")
            }
        }
    }
}

async fn resend_unacknowledged(pool: &PgPool, peers: &Peers) {
    let pending: Result<Vec<(Uuid, Uuid)>, sqlx::Error> = sqlx::query_as(
        "SELECT job_id, quarantine_id FROM quarantines WHERE opened_notified_at IS NULL AND state = 'open' LIMIT 20",
    )
    .fetch_all(pool)
    .await;
    match pending {
        Ok(pending) => {
            for (job_id, quarantine_id) in pending {
                notify::opened(pool, &peers.notifier, job_id, quarantine_id).await;
            }
        }
        Err(error) => tracing::warn!(%error, "cannot look for unsent quarantine notices"),
    }
}

/// One reminder per interval an open quarantine has waited. The reminder's number is part
/// of the event, so a reminder is queued once however many gates run, and never once per
/// cycle.
async fn remind(pool: &PgPool, peers: &Peers, interval: Duration) {
    let seconds = interval.as_secs_f64().max(1.0);
    let due: Result<Vec<(Uuid, Uuid, i64)>, sqlx::Error> = sqlx::query_as(
        "SELECT job_id, quarantine_id, floor(extract(epoch FROM now() - opened_at) / $1)::bigint FROM quarantines \
         WHERE state = 'open' AND opened_notified_at IS NOT NULL \
           AND COALESCE(last_reminded_at, opened_at) <= now() - make_interval(secs => $1) LIMIT 50",
    )
    .bind(seconds)
    .fetch_all(pool)
    .await;
    let due = match due {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(%error, "cannot look for quarantines to remind of");
            return;
        }
    };
    for (job_id, quarantine_id, number) in due {
        let sent = notify::send(
            &peers.notifier,
            job_id,
            quarantine_id,
            NotificationKind::QuarantineReminder,
            number.clamp(1, i64::from(u32::MAX)) as u32,
        )
        .await;
        match sent {
            Ok(()) => {
                let marked = sqlx::query(
                    "UPDATE quarantines SET last_reminded_at = now() WHERE quarantine_id = $1",
                )
                .bind(quarantine_id)
                .execute(pool)
                .await;
                if let Err(error) = marked {
                    tracing::warn!(quarantine = %quarantine_id, %error, "reminder sent but not recorded");
                }
            }
            Err(error) => {
                tracing::warn!(quarantine = %quarantine_id, %error, "reminder not handed over; retrying")
            }
        }
    }
}
