//! Writing an event from what is recorded: the caller only names it (which quarantine, which
//! failed cycle or read); the facts, the wording and the recipients (the job's own) come from
//! the database, never from the request.

use chrono::{DateTime, Utc};
use prost::Message as _;
use sqlx::PgPool;
use syncguard_bootstrap::timestamp;
use syncguard_domain::{Breach, FieldError, JobId};
use syncguard_proto::names;
use syncguard_proto::v1::{self, NotificationKind};
use syncguard_store::StoreError;
use uuid::Uuid;

use crate::error::NotifierError;

/// Largest sample of affected objects an email carries.
const SAMPLE: i64 = 20;

/// An event ready for the outbox.
pub struct Composed {
    /// One key per event: the same event is never queued twice.
    pub key: String,
    /// The job's recipients.
    pub recipients: Vec<String>,
    /// The facts the message is written from.
    pub event: v1::NotificationEvent,
}

fn corrupt(error: impl std::fmt::Display) -> NotifierError {
    NotifierError::Store(StoreError::Corrupt(error.to_string()))
}

fn id(field: &str, value: &str) -> Result<Uuid, FieldError> {
    Uuid::parse_str(value).map_err(|_| {
        if value.is_empty() {
            FieldError::new(field, "required for this kind of event")
        } else {
            FieldError::new(field, format!("{value:?} is not an id (a UUID)"))
        }
    })
}

/// Composes the event `request` names; `None` when the job has no recipients (nobody to
/// tell). Errors name the field when the request names something that does not exist or
/// does not belong to the job.
pub async fn compose(
    pool: &PgPool,
    request: &v1::NotifyRequest,
) -> Result<Option<Composed>, NotifierError> {
    let kind = NotificationKind::try_from(request.kind)
        .ok()
        .filter(|kind| *kind != NotificationKind::Unspecified)
        .ok_or_else(|| FieldError::new("kind", "choose one of syncguard's notification kinds"))?;
    let job_id = JobId::parse("job_id", &request.job_id)?;
    let job: Option<(String, Vec<String>)> =
        sqlx::query_as("SELECT name, notification_recipients FROM jobs WHERE job_id = $1")
            .bind(job_id.0)
            .fetch_optional(pool)
            .await?;
    let Some((job_name, recipients)) = job else {
        return Err(NotifierError::NotFound(format!("job {job_id} not found")));
    };
    let mut event = v1::NotificationEvent {
        kind: kind as i32,
        job_id: job_id.to_string(),
        job_name,
        ..Default::default()
    };
    let key = match kind {
        NotificationKind::CycleFailed if !request.failure_id.is_empty() => {
            let failure_id = id("failure_id", &request.failure_id)?;
            let failure: Option<(String, String)> = sqlx::query_as(
                "SELECT origin, error FROM source_failures WHERE failure_id = $1 AND job_id = $2",
            )
            .bind(failure_id)
            .bind(job_id.0)
            .fetch_optional(pool)
            .await?;
            let (origin, error) = failure
                .ok_or_else(|| FieldError::new("failure_id", "no such failed read of this job"))?;
            event.detail = format!(
                "the {origin} source could not be read completely, so no cycle ran: {error}"
            );
            format!("{failure_id}:source_failed")
        }
        NotificationKind::CycleFailed => {
            let cycle_id = id("cycle_id", &request.cycle_id)?;
            let failed: Option<(Option<String>,)> = sqlx::query_as(
                "SELECT error FROM cycles WHERE cycle_id = $1 AND job_id = $2 AND state = 'failed'",
            )
            .bind(cycle_id)
            .bind(job_id.0)
            .fetch_optional(pool)
            .await?;
            let (error,) = failed
                .ok_or_else(|| FieldError::new("cycle_id", "no such failed cycle of this job"))?;
            event.cycle_id = cycle_id.to_string();
            event.detail = error.unwrap_or_default();
            format!("{cycle_id}:cycle_failed")
        }
        quarantine_kind => {
            let quarantine_id = id("quarantine_id", &request.quarantine_id)?;
            describe_quarantine(pool, job_id, quarantine_id, quarantine_kind, &mut event).await?;
            let key = quarantine_key(quarantine_id, quarantine_kind);
            if quarantine_kind == NotificationKind::QuarantineReminder {
                if request.reminder == 0 {
                    return Err(
                        FieldError::new("reminder", "number the reminder (1, 2, ...)").into(),
                    );
                }
                format!("{key}:{}", request.reminder)
            } else {
                key
            }
        }
    };
    if recipients.is_empty() {
        return Ok(None);
    }
    Ok(Some(Composed {
        key,
        recipients,
        event,
    }))
}

/// The outbox key of a quarantine's event of `kind` (a reminder's adds its number).
fn quarantine_key(quarantine_id: Uuid, kind: NotificationKind) -> String {
    let suffix = kind
        .as_str_name()
        .trim_start_matches("NOTIFICATION_KIND_")
        .to_ascii_lowercase();
    format!("{quarantine_id}:{suffix}")
}

/// cycle, breaches, hold until, state, closed by, closed reason, digest.
type QuarantineFacts = (
    Uuid,
    serde_json::Value,
    DateTime<Utc>,
    String,
    Option<String>,
    Option<String>,
    String,
);

/// The facts of a quarantine event: rules broken, counts, a sample of held actions, the hold
/// limit, and for a decision who made it and why.
async fn describe_quarantine(
    pool: &PgPool,
    job_id: JobId,
    quarantine_id: Uuid,
    kind: NotificationKind,
    event: &mut v1::NotificationEvent,
) -> Result<(), NotifierError> {
    let row: Option<QuarantineFacts> = sqlx::query_as(
        "SELECT cycle_id, breaches, hold_until, state, closed_by, closed_reason, digest FROM quarantines \
             WHERE quarantine_id = $1 AND job_id = $2",
    )
    .bind(quarantine_id)
    .bind(job_id.0)
    .fetch_optional(pool)
    .await?;
    let (cycle_id, breaches, hold_until, _state, closed_by, closed_reason, digest) =
        row.ok_or_else(|| FieldError::new("quarantine_id", "no such quarantine of this job"))?;
    let decided = matches!(
        kind,
        NotificationKind::QuarantineAllowed
            | NotificationKind::QuarantineRejected
            | NotificationKind::QuarantineSuperseded
    );
    if decided && closed_by.is_none() {
        return Err(FieldError::new("kind", "the quarantine is not decided").into());
    }
    let breaches = Breach::list_from_stored(&breaches).map_err(corrupt)?;
    let counts =
        syncguard_store::by_action_and_type(&syncguard_store::staged_counts(pool, cycle_id).await?);
    let sample: Vec<(Uuid, String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT action_id, anchor, object_type, action, reason, status, display_name FROM action_states \
         WHERE cycle_id = $1 AND action IN ('delete', 'disable') AND status <> 'skipped_pinned' \
         ORDER BY anchor COLLATE \"C\" LIMIT $2",
    )
    .bind(cycle_id)
    .bind(SAMPLE)
    .fetch_all(pool)
    .await?;
    event.cycle_id = cycle_id.to_string();
    event.quarantine_id = quarantine_id.to_string();
    event.hold_until = Some(timestamp(hold_until));
    event.breaches = breaches
        .iter()
        .map(|breach| v1::RuleBreach {
            rule: None,
            counted: breach.counted,
            limit: breach.limit,
            population: breach.population,
            explanation: breach.explanation.clone(),
        })
        .collect();
    event.counts = counts
        .into_iter()
        .map(|(action, object_type, count)| {
            Ok(v1::ActionCount {
                action: names::action_kind(action.parse().map_err(corrupt)?) as i32,
                object_type: names::object_type(object_type.parse().map_err(corrupt)?) as i32,
                count: count as u64,
            })
        })
        .collect::<Result<_, NotifierError>>()?;
    event.sample = sample
        .into_iter()
        .map(
            |(action_id, anchor, object_type, action, reason, status, display_name)| {
                names::staged_action(names::StoredAction {
                    action_id: action_id.to_string(),
                    cycle_id: cycle_id.to_string(),
                    job_id: job_id.to_string(),
                    anchor,
                    object_type,
                    action,
                    reason,
                    status,
                    changed_attributes: Vec::new(),
                    display_name,
                })
                .map_err(corrupt)
            },
        )
        .collect::<Result<_, NotifierError>>()?;
    event.digest = digest;
    // Every later message of a quarantine states the target as its opening message counted
    // it: the size before the cycle, whichever moment a reminder or a decision is written at.
    let counted = match kind {
        NotificationKind::QuarantineOpened => None,
        _ => target_counted_at_opening(pool, quarantine_id).await?,
    };
    describe_context(pool, job_id, cycle_id, counted, event).await?;
    if decided {
        event.actor = closed_by.unwrap_or_default();
        event.detail = closed_reason.unwrap_or_default();
        describe_decision(pool, cycle_id, event).await?;
    } else {
        event.actor = "service:gate".into();
    }
    Ok(())
}

/// The live objects the quarantine's opening message counted in the target, if that message
/// was stored (a job without recipients stores none).
async fn target_counted_at_opening(
    pool: &PgPool,
    quarantine_id: Uuid,
) -> Result<Option<u64>, NotifierError> {
    let stored: Option<(Vec<u8>,)> =
        sqlx::query_as("SELECT event FROM notification_outbox WHERE idempotency_key = $1")
            .bind(quarantine_key(
                quarantine_id,
                NotificationKind::QuarantineOpened,
            ))
            .fetch_optional(pool)
            .await?;
    stored
        .map(|(bytes,)| {
            v1::NotificationEvent::decode(bytes.as_slice())
                .map(|opened| opened.target_objects)
                .map_err(corrupt)
        })
        .transpose()
}

/// The size of the read beside the size of the target, and how long deletes stay
/// restorable: what tells a reader whether "400 deletes" is a purge or a broken export.
/// The target is counted unless `counted` already says how many live objects it held.
async fn describe_context(
    pool: &PgPool,
    job_id: JobId,
    cycle_id: Uuid,
    counted: Option<u64>,
    event: &mut v1::NotificationEvent,
) -> Result<(), NotifierError> {
    let (source_objects, delta, retention_days): (i64, bool, i32) = sqlx::query_as(
        "SELECT s.object_count, s.kind = 'delta', j.retention_days \
         FROM snapshots s JOIN jobs j ON j.job_id = s.job_id WHERE s.cycle_id = $1 AND s.job_id = $2",
    )
    .bind(cycle_id)
    .bind(job_id.0)
    .fetch_one(pool)
    .await?;
    let target_objects = match counted {
        Some(counted) => counted,
        None => count_live_targets(pool, job_id).await?,
    };
    event.source_objects = source_objects.max(0) as u64;
    event.target_objects = target_objects;
    event.delta = delta;
    event.retention_days = retention_days.max(0) as u32;
    Ok(())
}

/// Live objects of the job: a read of every one (230 ms at 1,000,000 objects). Left to the
/// planner it took two parallel workers beside its own backend, every core of a small host,
/// while the work it reports on still ran; a message can wait for one core.
async fn count_live_targets(pool: &PgPool, job_id: JobId) -> Result<u64, NotifierError> {
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    sqlx::query("SET LOCAL max_parallel_workers_per_gather = 0")
        .execute(&mut *transaction)
        .await?;
    let (live,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM directory_objects WHERE job_id = $1 AND deleted_at IS NULL",
    )
    .bind(job_id.0)
    .fetch_one(&mut *transaction)
    .await?;
    transaction.commit().await.map_err(StoreError::from)?;
    Ok(live.max(0) as u64)
}

/// What a decision did: how many held actions it allowed and rejected, and for allowed
/// deletes until when the objects can be restored (their real deadline once retention
/// applied them, else the expected one).
async fn describe_decision(
    pool: &PgPool,
    cycle_id: Uuid,
    event: &mut v1::NotificationEvent,
) -> Result<(), NotifierError> {
    let (allowed, rejected, applied, restorable_until): (i64, i64, bool, Option<DateTime<Utc>>) =
        sqlx::query_as(
            // An applied delete's object is looked up by its id, and only for applied deletes:
            // joined on (job, anchor), the 10,000 deletes of an allow took 58-75 ms, composed
            // while retention was soft-deleting the same objects (statement log).
            "SELECT count(*) FILTER (WHERE s.status IN ('allowed', 'applied')), \
                    count(*) FILTER (WHERE s.status = 'rejected'), \
                    EXISTS (SELECT 1 FROM applied_cycles ac WHERE ac.cycle_id = $1), \
                    COALESCE(max(CASE WHEN s.action = 'delete' AND s.status = 'applied' THEN \
                                 (SELECT d.purge_after FROM directory_objects d \
                                  WHERE d.object_id = s.object_id AND d.deleted_at IS NOT NULL) END), \
                             now() + make_interval(days => max(j.retention_days))) \
             FROM action_states s JOIN jobs j ON j.job_id = s.job_id \
             WHERE s.cycle_id = $1 AND s.action IN ('delete', 'disable')",
        )
        .bind(cycle_id)
        .fetch_one(pool)
        .await?;
    event.allowed = allowed.max(0) as u64;
    event.rejected = rejected.max(0) as u64;
    event.applied = applied;
    event.restorable_until = restorable_until.map(timestamp);
    Ok(())
}
