//! The gate's background work: a held cycle past its hold limit is superseded (never
//! applied), people are told, and a fresh cycle runs; quarantine notices the notifier has not
//! acknowledged yet are handed over again.

use std::time::Duration;

use sqlx::PgPool;
use syncguard_domain::JobId;
use syncguard_proto::v1::{self, NotificationKind};
use uuid::Uuid;

use crate::api::Peers;
use crate::{notify, quarantine};

/// Runs the maintenance steps every `tick`; reminders go out every `reminder_interval` while a
/// quarantine stays open.
pub async fn run(pool: PgPool, peers: Peers, tick: Duration, reminder_interval: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        supersede_expired(&pool, &peers).await;
        match sqlx::query_as::<_, (i64,)>("SELECT count(*) FROM quarantines WHERE state = 'open'")
            .fetch_one(&pool)
            .await
        {
            Ok((open,)) => syncguard_telemetry::metrics()
                .open_quarantines
                .record(open.max(0) as u64, &[]),
            Err(error) => tracing::debug!(%error, "open quarantines not measured"),
        }
        resend_unacknowledged(&pool, &peers).await;
        remind(&pool, &peers, reminder_interval).await;
    }
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
        match quarantine::supersede(pool, job_id, "service:gate", reason).await {
            Ok(Some(row)) => {
                notify::decided(
                    pool,
                    &peers.notifier,
                    row.quarantine_id,
                    NotificationKind::QuarantineSuperseded,
                    "service:gate",
                    reason,
                )
                .await;
                let fresh = peers
                    .ingest
                    .clone()
                    .trigger_cycle(v1::TriggerCycleRequest {
                        job_id: job_id.to_string(),
                    })
                    .await;
                if let Err(status) = fresh {
                    tracing::warn!(job = %job_id, %status, "no fresh cycle after the expired hold");
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(job = %job_id, %error, "could not supersede an expired quarantine")
            }
        }
    }
}

async fn resend_unacknowledged(pool: &PgPool, peers: &Peers) {
    let pending: Result<Vec<(Uuid,)>, sqlx::Error> = sqlx::query_as(
        "SELECT quarantine_id FROM quarantines WHERE opened_notified_at IS NULL AND state = 'open' LIMIT 20",
    )
    .fetch_all(pool)
    .await;
    match pending {
        Ok(pending) => {
            for (quarantine_id,) in pending {
                notify::opened(pool, &peers.notifier, quarantine_id).await;
            }
        }
        Err(error) => tracing::warn!(%error, "cannot look for unsent quarantine notices"),
    }
}

/// One reminder per interval an open quarantine has waited. The key numbers the interval,
/// so a reminder is queued once however many gates run, and never once per cycle.
async fn remind(pool: &PgPool, peers: &Peers, interval: Duration) {
    let seconds = interval.as_secs_f64().max(1.0);
    let due: Result<Vec<(Uuid, i64)>, sqlx::Error> = sqlx::query_as(
        "SELECT quarantine_id, floor(extract(epoch FROM now() - opened_at) / $1)::bigint FROM quarantines \
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
    for (quarantine_id, number) in due {
        let sent = notify::send_keyed(
            pool,
            &peers.notifier,
            quarantine_id,
            NotificationKind::QuarantineReminder,
            &format!("quarantine_reminder:{number}"),
            "service:gate",
            "",
        )
        .await;
        match sent {
            Ok(_) => {
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
