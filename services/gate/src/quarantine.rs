//! The quarantine workflow: reading a held cycle, allowing (all or some of) its deletes,
//! rejecting them (and pinning those objects), and superseding it (restart or hold limit).
//! Every decision is one transaction with its log rows; the quarantine row is locked first,
//! so two racing decisions apply once and the second is refused.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use syncguard_bootstrap::timestamp;
use syncguard_domain::{FieldError, JobId, Principal, SourceAnchor};
use syncguard_proto::names;
use syncguard_proto::v1::{self, QuarantineState};
use syncguard_store::StoreError;
use uuid::Uuid;

use crate::decide::{breach_view, held_set_digest};
use crate::error::GateError;
use crate::evaluate::Breach;
use crate::protection;

/// A quarantine row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuarantineRow {
    /// Its id.
    pub quarantine_id: Uuid,
    /// The job.
    pub job_id: Uuid,
    /// The held cycle.
    pub cycle_id: Uuid,
    /// open, allowed, partially_allowed, rejected, superseded.
    pub state: String,
    breaches: serde_json::Value,
    /// What approvers must quote.
    pub digest: String,
    /// 1 or 2.
    pub required_approvals: i16,
    opened_at: DateTime<Utc>,
    /// After this the cycle is never applied.
    pub hold_until: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
}

const QUARANTINE_COLUMNS: &str = "quarantine_id, job_id, cycle_id, state, breaches, digest, required_approvals, \
    opened_at, hold_until, closed_at";

fn state_of(name: &str) -> QuarantineState {
    match name {
        "open" => QuarantineState::Open,
        "allowed" => QuarantineState::Allowed,
        "partially_allowed" => QuarantineState::PartiallyAllowed,
        "rejected" => QuarantineState::Rejected,
        "superseded" => QuarantineState::Superseded,
        _ => QuarantineState::Unspecified,
    }
}

/// Finds a quarantine by id, or the open one of a job.
pub async fn find(
    pool: &PgPool,
    quarantine_id: &str,
    job_id: &str,
) -> Result<QuarantineRow, GateError> {
    let row: Option<QuarantineRow> = if !quarantine_id.is_empty() {
        let id = Uuid::parse_str(quarantine_id)
            .map_err(|_| FieldError::new("quarantine_id", "not a quarantine id (a UUID)"))?;
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {QUARANTINE_COLUMNS} FROM quarantines WHERE quarantine_id = $1"
        )))
        .bind(id)
        .fetch_optional(pool)
        .await?
    } else if !job_id.is_empty() {
        let job = JobId::parse("job_id", job_id)?;
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {QUARANTINE_COLUMNS} FROM quarantines WHERE job_id = $1 AND state = 'open'"
        )))
        .bind(job.0)
        .fetch_optional(pool)
        .await?
    } else {
        return Err(FieldError::new(
            "quarantine_id",
            "name a quarantine, or a job for its open quarantine",
        )
        .into());
    };
    row.ok_or_else(|| GateError::NotFound("no such quarantine (or the job has none open)".into()))
}

#[derive(sqlx::FromRow)]
struct HeldRow {
    action_id: Uuid,
    cycle_id: Uuid,
    job_id: Uuid,
    anchor: String,
    object_type: String,
    action: String,
    reason: String,
    status: String,
    changed_attributes: Vec<String>,
    display_name: String,
}

/// The API view of a quarantine with one page of its held actions (in anchor order).
pub async fn view(
    pool: &PgPool,
    row: &QuarantineRow,
    page: Option<&v1::PageRequest>,
) -> Result<v1::Quarantine, GateError> {
    let page = page.cloned().unwrap_or_default();
    let size = i64::from(if page.page_size == 0 {
        1000
    } else {
        page.page_size.min(5000)
    });
    let after = Some(page.page_token).filter(|token| !token.is_empty());
    let held: Vec<HeldRow> = sqlx::query_as(
        "SELECT action_id, cycle_id, job_id, anchor, object_type, action, reason, status, changed_attributes, display_name \
         FROM staged_actions \
         WHERE cycle_id = $1 AND action IN ('delete', 'disable') AND status IN ('held', 'allowed', 'rejected', 'superseded', 'applied') \
           AND ($2::text IS NULL OR anchor COLLATE \"C\" > $2) \
         ORDER BY anchor COLLATE \"C\" LIMIT $3",
    )
    .bind(row.cycle_id)
    .bind(after)
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    let (retention_days,): (i32,) =
        sqlx::query_as("SELECT retention_days FROM jobs WHERE job_id = $1")
            .bind(row.job_id)
            .fetch_one(pool)
            .await?;
    let restorable_until =
        timestamp(Utc::now() + chrono::Duration::days(i64::from(retention_days)));
    let more = held.len() as i64 > size;
    let held: Vec<v1::HeldAction> = held
        .into_iter()
        .take(size as usize)
        .map(|action| {
            let soft_delete = action.action == "delete";
            v1::HeldAction {
                action: Some(v1::StagedAction {
                    action_id: action.action_id.to_string(),
                    cycle_id: action.cycle_id.to_string(),
                    job_id: action.job_id.to_string(),
                    anchor: action.anchor,
                    object_type: names::object_type(&action.object_type) as i32,
                    action: names::action_kind(&action.action) as i32,
                    reason: names::action_reason(&action.reason) as i32,
                    status: names::action_status(&action.status) as i32,
                    changed_attributes: action.changed_attributes,
                    display_name: action.display_name,
                }),
                soft_delete,
                restorable_until: soft_delete.then_some(restorable_until),
            }
        })
        .collect();
    let next_page_token = if more {
        held.last()
            .and_then(|held| held.action.as_ref())
            .map(|action| action.anchor.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let counts: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT action, object_type, count(*) FROM staged_actions WHERE cycle_id = $1 \
         GROUP BY action, object_type ORDER BY action, object_type",
    )
    .bind(row.cycle_id)
    .fetch_all(pool)
    .await?;
    let approvals: Vec<(String, String, DateTime<Utc>, Vec<String>)> = sqlx::query_as(
        "SELECT principal, reason, at, anchors FROM approvals WHERE quarantine_id = $1 AND decision = 'allow' ORDER BY at",
    )
    .bind(row.quarantine_id)
    .fetch_all(pool)
    .await?;
    let rules = protection::load(pool, JobId(row.job_id)).await?.rules;
    let breaches: Vec<Breach> = serde_json::from_value(row.breaches.clone()).unwrap_or_default();
    Ok(v1::Quarantine {
        quarantine_id: row.quarantine_id.to_string(),
        job_id: row.job_id.to_string(),
        cycle_id: row.cycle_id.to_string(),
        state: state_of(&row.state) as i32,
        breaches: breaches
            .iter()
            .map(|breach| breach_view(breach, &rules))
            .collect(),
        counts: counts
            .into_iter()
            .map(|(action, object_type, count)| v1::ActionCount {
                action: names::action_kind(&action) as i32,
                object_type: names::object_type(&object_type) as i32,
                count: count as u64,
            })
            .collect(),
        held,
        digest: row.digest.clone(),
        opened_at: Some(timestamp(row.opened_at)),
        hold_until: Some(timestamp(row.hold_until)),
        closed_at: row.closed_at.map(timestamp),
        required_approvals: row.required_approvals as u32,
        approvals: approvals
            .into_iter()
            .map(|(principal, reason, at, anchors)| v1::Approval {
                principal,
                reason,
                at: Some(timestamp(at)),
                anchors,
            })
            .collect(),
        next_page_token,
    })
}

/// Quarantines newest first.
pub async fn list(
    pool: &PgPool,
    request: &v1::ListQuarantinesRequest,
) -> Result<v1::ListQuarantinesResponse, GateError> {
    let job_id = if request.job_id.is_empty() {
        None
    } else {
        Some(JobId::parse("job_id", &request.job_id)?.0)
    };
    let states: Vec<String> = request
        .states
        .iter()
        .map(|state| {
            QuarantineState::try_from(*state)
                .ok()
                .filter(|state| *state != QuarantineState::Unspecified)
                .map(|state| {
                    state
                        .as_str_name()
                        .trim_start_matches("QUARANTINE_STATE_")
                        .to_ascii_lowercase()
                })
                .ok_or_else(|| {
                    FieldError::new("states", format!("{state} is not a quarantine state"))
                })
        })
        .collect::<Result<_, _>>()?;
    let page = syncguard_bootstrap::page(request.page.as_ref())?;
    let size = page.size;
    let before = page.token_as::<Uuid>()?;
    let rows: Vec<QuarantineRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {QUARANTINE_COLUMNS} FROM quarantines \
         WHERE ($1::uuid IS NULL OR job_id = $1) AND (cardinality($2::text[]) = 0 OR state = ANY($2)) \
           AND ($3::uuid IS NULL OR quarantine_id < $3) ORDER BY quarantine_id DESC LIMIT $4"
    )))
    .bind(job_id)
    .bind(&states)
    .bind(before)
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > size;
    let mut quarantines = Vec::new();
    for row in rows.iter().take(size as usize) {
        // The list shows the summary; the held actions are read with GetQuarantine.
        let mut summary = view(
            pool,
            row,
            Some(&v1::PageRequest {
                page_size: 1,
                page_token: String::new(),
            }),
        )
        .await?;
        summary.held.clear();
        summary.next_page_token.clear();
        quarantines.push(summary);
    }
    let next_page_token = if more {
        quarantines
            .last()
            .map(|q| q.quarantine_id.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(v1::ListQuarantinesResponse {
        quarantines,
        next_page_token,
    })
}

/// What a decision request carries, validated.
pub struct DecisionRequest {
    /// The quarantine.
    pub quarantine_id: Uuid,
    /// The digest the caller read.
    pub digest: String,
    /// Required, logged.
    pub reason: String,
    /// Empty: every held action.
    pub anchors: Vec<String>,
}

impl DecisionRequest {
    /// Validates the common fields of AllowDeletes and RejectDeletes.
    pub fn parse(
        quarantine_id: &str,
        digest: &str,
        reason: &str,
        anchors: &[String],
    ) -> Result<Self, FieldError> {
        let quarantine_id = Uuid::parse_str(quarantine_id)
            .map_err(|_| FieldError::new("quarantine_id", "not a quarantine id (a UUID)"))?;
        if digest.trim().is_empty() {
            return Err(FieldError::new(
                "digest",
                "quote the digest GetQuarantine returned",
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 2000 {
            return Err(FieldError::new(
                "reason",
                "a reason of 1 to 2000 characters is required; it is logged",
            ));
        }
        let mut parsed = Vec::with_capacity(anchors.len());
        for (index, anchor) in anchors.iter().enumerate() {
            parsed.push(SourceAnchor::parse(&format!("anchors[{index}]"), anchor)?.to_string());
        }
        parsed.sort();
        parsed.dedup();
        Ok(Self {
            quarantine_id,
            digest: digest.trim().to_owned(),
            reason: reason.to_owned(),
            anchors: parsed,
        })
    }
}

/// Locks an open quarantine for a decision, or says why it cannot be decided.
async fn lock_open(
    conn: &mut PgConnection,
    request: &DecisionRequest,
) -> Result<QuarantineRow, GateError> {
    let row: Option<QuarantineRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {QUARANTINE_COLUMNS} FROM quarantines WHERE quarantine_id = $1 FOR UPDATE"
    )))
    .bind(request.quarantine_id)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or_else(|| {
        GateError::NotFound(format!("quarantine {} not found", request.quarantine_id))
    })?;
    if row.state != "open" {
        return Err(GateError::WrongState(format!(
            "quarantine {} is already closed ({}); nothing was changed",
            row.quarantine_id, row.state
        )));
    }
    if row.hold_until < Utc::now() {
        return Err(GateError::WrongState(format!(
            "the hold limit of quarantine {} passed at {}: its cycle is never applied; restart the job for a fresh cycle",
            row.quarantine_id, row.hold_until
        )));
    }
    if row.digest != request.digest {
        return Err(GateError::WrongState(format!(
            "the digest {} does not match the held set (now {}): read the quarantine again before deciding",
            request.digest, row.digest
        )));
    }
    Ok(row)
}

/// Anchors of the cycle's held actions among `anchors`; errors name anchors not held.
async fn check_held(
    conn: &mut PgConnection,
    cycle_id: Uuid,
    anchors: &[String],
) -> Result<(), GateError> {
    if anchors.is_empty() {
        return Ok(());
    }
    let held: Vec<(String,)> = sqlx::query_as(
        "SELECT anchor FROM staged_actions WHERE cycle_id = $1 AND status = 'held' AND anchor = ANY($2)",
    )
    .bind(cycle_id)
    .bind(anchors)
    .fetch_all(&mut *conn)
    .await?;
    if held.len() != anchors.len() {
        let held: std::collections::HashSet<&str> =
            held.iter().map(|(anchor,)| anchor.as_str()).collect();
        let missing = anchors
            .iter()
            .position(|anchor| !held.contains(anchor.as_str()))
            .unwrap_or(0);
        return Err(FieldError::new(
            format!("anchors[{missing}]"),
            format!("{:?} is not held in this quarantine", anchors[missing]),
        )
        .into());
    }
    Ok(())
}

async fn log_admin(
    conn: &mut PgConnection,
    row: &QuarantineRow,
    display_action: &str,
    actor: &str,
    detail: &str,
) -> Result<(), GateError> {
    sqlx::query(
        "INSERT INTO provisioning_log (job_id, cycle_id, quarantine_id, display_action, actor, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(row.job_id)
    .bind(row.cycle_id)
    .bind(row.quarantine_id)
    .bind(display_action)
    .bind(actor)
    .bind(detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves held actions (all, or those of `anchors`) to `status` and logs each, returning how
/// many moved.
async fn settle(
    conn: &mut PgConnection,
    row: &QuarantineRow,
    status: &str,
    anchors: Option<&[String]>,
    actor: &str,
    reason: &str,
) -> Result<u64, GateError> {
    let moved = sqlx::query(
        "WITH moved AS (
             UPDATE staged_actions SET status = $2
             WHERE cycle_id = $1 AND status = 'held' AND ($3::text[] IS NULL OR anchor = ANY($3))
             RETURNING job_id, cycle_id, action_id, object_id, anchor, object_type, action, reason, changed_attributes
         )
         INSERT INTO provisioning_log (job_id, cycle_id, action_id, quarantine_id, object_id, anchor, object_type,
             action, status, reason, display_action, changed_attributes, actor, detail)
         SELECT job_id, cycle_id, action_id, $4, object_id, anchor, object_type, action, $2, reason,
             CASE $2 WHEN 'allowed' THEN 'Allow' WHEN 'rejected' THEN 'Reject' ELSE 'Supersede' END || initcap(action),
             changed_attributes, $5, $6
         FROM moved
         ON CONFLICT DO NOTHING",
    )
    .bind(row.cycle_id)
    .bind(status)
    .bind(anchors)
    .bind(row.quarantine_id)
    .bind(actor)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(moved.rows_affected())
}

/// Pins the objects of the cycle's rejected actions: no later cycle deletes or disables them.
async fn pin_rejected(
    conn: &mut PgConnection,
    row: &QuarantineRow,
    actor: &str,
    reason: &str,
) -> Result<(), GateError> {
    sqlx::query(
        "INSERT INTO pins (job_id, anchor, quarantine_id, pinned_by, reason) \
         SELECT job_id, anchor, $2, $3, $4 FROM staged_actions WHERE cycle_id = $1 AND status = 'rejected' \
         ON CONFLICT (job_id, anchor) DO UPDATE SET quarantine_id = EXCLUDED.quarantine_id, \
             pinned_by = EXCLUDED.pinned_by, reason = EXCLUDED.reason, pinned_at = now()",
    )
    .bind(row.cycle_id)
    .bind(row.quarantine_id)
    .bind(actor)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn close(
    conn: &mut PgConnection,
    row: &QuarantineRow,
    state: &str,
    cycle_state: &str,
    actor: &str,
) -> Result<(), GateError> {
    sqlx::query("UPDATE quarantines SET state = $2, closed_at = now(), closed_by = $3 WHERE quarantine_id = $1")
        .bind(row.quarantine_id)
        .bind(state)
        .bind(actor)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE cycles SET state = $2, updated_at = now(), finished_at = CASE WHEN $2 = 'superseded' THEN now() END WHERE cycle_id = $1")
        .bind(row.cycle_id)
        .bind(cycle_state)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The outcome of a decision, and whether the stager must now apply the cycle.
pub struct Decided {
    /// The quarantine after the decision.
    pub quarantine_id: Uuid,
    /// The cycle to apply (when the decision is final).
    pub apply_cycle: Option<Uuid>,
    /// Actions moved to allowed.
    pub allowed: u64,
    /// Actions moved to rejected.
    pub rejected: u64,
}

/// Records an approval; with enough distinct approvers, allows the held actions (or only
/// `anchors`, rejecting and pinning the rest) and closes the quarantine.
pub async fn allow(
    pool: &PgPool,
    request: &DecisionRequest,
    principal: &Principal,
) -> Result<Decided, GateError> {
    let actor = principal.to_string();
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let row = lock_open(&mut transaction, request).await?;
    check_held(&mut transaction, row.cycle_id, &request.anchors).await?;
    let recorded = sqlx::query(
        "INSERT INTO approvals (quarantine_id, principal, decision, reason, anchors) VALUES ($1, $2, 'allow', $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(row.quarantine_id)
    .bind(&actor)
    .bind(&request.reason)
    .bind(&request.anchors)
    .execute(&mut *transaction)
    .await?;
    if recorded.rows_affected() == 0 {
        return Err(GateError::WrongState(format!(
            "{actor} already approved this quarantine; a second, different approver is needed"
        )));
    }
    let approvals: Vec<(Vec<String>,)> = sqlx::query_as(
        "SELECT anchors FROM approvals WHERE quarantine_id = $1 AND decision = 'allow'",
    )
    .bind(row.quarantine_id)
    .fetch_all(&mut *transaction)
    .await?;
    if approvals
        .iter()
        .any(|(anchors,)| *anchors != request.anchors)
    {
        return Err(GateError::WrongState(
            "the approvers chose different anchors; approve the same set".into(),
        ));
    }
    log_admin(
        &mut transaction,
        &row,
        "AllowDeletes",
        &actor,
        &request.reason,
    )
    .await?;
    if (approvals.len() as i16) < row.required_approvals {
        transaction.commit().await.map_err(StoreError::from)?;
        return Ok(Decided {
            quarantine_id: row.quarantine_id,
            apply_cycle: None,
            allowed: 0,
            rejected: 0,
        });
    }
    let (allowed, rejected, state) = if request.anchors.is_empty() {
        (
            settle(
                &mut transaction,
                &row,
                "allowed",
                None,
                &actor,
                &request.reason,
            )
            .await?,
            0,
            "allowed",
        )
    } else {
        let allowed = settle(
            &mut transaction,
            &row,
            "allowed",
            Some(&request.anchors),
            &actor,
            &request.reason,
        )
        .await?;
        let rejected = settle(
            &mut transaction,
            &row,
            "rejected",
            None,
            &actor,
            &request.reason,
        )
        .await?;
        pin_rejected(&mut transaction, &row, &actor, &request.reason).await?;
        (allowed, rejected, "partially_allowed")
    };
    close(&mut transaction, &row, state, "allowed", &actor).await?;
    transaction.commit().await.map_err(StoreError::from)?;
    tracing::info!(quarantine = %row.quarantine_id, allowed, rejected, actor, "deletes allowed");
    Ok(Decided {
        quarantine_id: row.quarantine_id,
        apply_cycle: Some(row.cycle_id),
        allowed,
        rejected,
    })
}

/// Rejects the held actions (or those of `anchors`), pinning their objects. Rejecting all
/// closes the quarantine and the cycle's other actions are applied; rejecting some leaves
/// the rest held under a new digest.
pub async fn reject(
    pool: &PgPool,
    request: &DecisionRequest,
    principal: &Principal,
) -> Result<Decided, GateError> {
    let actor = principal.to_string();
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let row = lock_open(&mut transaction, request).await?;
    check_held(&mut transaction, row.cycle_id, &request.anchors).await?;
    let anchors = Some(request.anchors.as_slice()).filter(|anchors| !anchors.is_empty());
    let rejected = settle(
        &mut transaction,
        &row,
        "rejected",
        anchors,
        &actor,
        &request.reason,
    )
    .await?;
    pin_rejected(&mut transaction, &row, &actor, &request.reason).await?;
    sqlx::query(
        "INSERT INTO approvals (quarantine_id, principal, decision, reason, anchors) VALUES ($1, $2, 'reject', $3, $4) \
         ON CONFLICT (quarantine_id, principal, decision) DO UPDATE SET reason = EXCLUDED.reason, anchors = EXCLUDED.anchors, at = now()",
    )
    .bind(row.quarantine_id)
    .bind(&actor)
    .bind(&request.reason)
    .bind(&request.anchors)
    .execute(&mut *transaction)
    .await?;
    log_admin(
        &mut transaction,
        &row,
        "RejectDeletes",
        &actor,
        &request.reason,
    )
    .await?;
    let still_held: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT action_id FROM staged_actions WHERE cycle_id = $1 AND status = 'held'",
    )
    .bind(row.cycle_id)
    .fetch_all(&mut *transaction)
    .await?;
    let apply_cycle = if still_held.is_empty() {
        close(&mut transaction, &row, "rejected", "rejected", &actor).await?;
        Some(row.cycle_id)
    } else {
        let ids: Vec<Uuid> = still_held.into_iter().map(|(id,)| id).collect();
        sqlx::query("UPDATE quarantines SET digest = $2 WHERE quarantine_id = $1")
            .bind(row.quarantine_id)
            .bind(held_set_digest(row.cycle_id, &ids))
            .execute(&mut *transaction)
            .await?;
        None
    };
    transaction.commit().await.map_err(StoreError::from)?;
    tracing::info!(quarantine = %row.quarantine_id, rejected, actor, "deletes rejected");
    Ok(Decided {
        quarantine_id: row.quarantine_id,
        apply_cycle,
        allowed: 0,
        rejected,
    })
}

/// Supersedes a job's open quarantine (restart, or hold limit passed): none of its actions
/// is ever applied. Returns the superseded quarantine, if there was one.
pub async fn supersede(
    pool: &PgPool,
    job_id: JobId,
    actor: &str,
    reason: &str,
) -> Result<Option<QuarantineRow>, GateError> {
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let row: Option<QuarantineRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {QUARANTINE_COLUMNS} FROM quarantines WHERE job_id = $1 AND state = 'open' FOR UPDATE"
    )))
    .bind(job_id.0)
    .fetch_optional(&mut *transaction)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    settle(&mut transaction, &row, "superseded", None, actor, reason).await?;
    sqlx::query(
        "UPDATE staged_actions SET status = 'superseded' WHERE cycle_id = $1 AND status = 'staged'",
    )
    .bind(row.cycle_id)
    .execute(&mut *transaction)
    .await?;
    log_admin(&mut transaction, &row, "Supersede", actor, reason).await?;
    close(&mut transaction, &row, "superseded", "superseded", actor).await?;
    transaction.commit().await.map_err(StoreError::from)?;
    syncguard_telemetry::cycle_outcome("superseded");
    tracing::warn!(job = %job_id, quarantine = %row.quarantine_id, actor, reason, "quarantine superseded");
    Ok(Some(row))
}

/// anchor, quarantine, pinned by, reason, pinned at.
type PinRow = (String, Option<Uuid>, String, String, DateTime<Utc>);

/// A job's pins.
pub async fn pins(
    pool: &PgPool,
    request: &v1::ListPinsRequest,
) -> Result<v1::ListPinsResponse, GateError> {
    let job_id = JobId::parse("job_id", &request.job_id)?;
    let page = syncguard_bootstrap::page(request.page.as_ref())?;
    let size = page.size;
    let after = page.token;
    let rows: Vec<PinRow> = sqlx::query_as(
        "SELECT anchor, quarantine_id, pinned_by, reason, pinned_at FROM pins \
         WHERE job_id = $1 AND ($2::text IS NULL OR anchor COLLATE \"C\" > $2) ORDER BY anchor COLLATE \"C\" LIMIT $3",
    )
    .bind(job_id.0)
    .bind(after)
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > size;
    let pins: Vec<v1::Pin> = rows
        .into_iter()
        .take(size as usize)
        .map(
            |(anchor, quarantine_id, pinned_by, reason, pinned_at)| v1::Pin {
                job_id: job_id.to_string(),
                anchor,
                quarantine_id: quarantine_id.map(|id| id.to_string()).unwrap_or_default(),
                pinned_by,
                reason,
                pinned_at: Some(timestamp(pinned_at)),
            },
        )
        .collect();
    let next_page_token = if more {
        pins.last()
            .map(|pin| pin.anchor.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(v1::ListPinsResponse {
        pins,
        next_page_token,
    })
}

/// Releases pins (all of a job, or the named anchors), logged with principal and reason.
pub async fn release_pins(
    pool: &PgPool,
    request: &v1::ReleasePinsRequest,
    principal: &Principal,
) -> Result<u64, GateError> {
    let job_id = JobId::parse("job_id", &request.job_id)?;
    let reason = request.reason.trim();
    if reason.is_empty() {
        return Err(FieldError::new("reason", "a reason is required; it is logged").into());
    }
    let mut anchors = Vec::with_capacity(request.anchors.len());
    for (index, anchor) in request.anchors.iter().enumerate() {
        anchors.push(SourceAnchor::parse(&format!("anchors[{index}]"), anchor)?.to_string());
    }
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let released: Vec<(String,)> = sqlx::query_as(
        "DELETE FROM pins WHERE job_id = $1 AND (cardinality($2::text[]) = 0 OR anchor = ANY($2)) RETURNING anchor",
    )
    .bind(job_id.0)
    .bind(&anchors)
    .fetch_all(&mut *transaction)
    .await?;
    sqlx::query(
        "INSERT INTO provisioning_log (job_id, anchor, display_action, actor, detail) \
         SELECT $1, anchor, 'ReleasePins', $2, $3 FROM unnest($4::text[]) AS released(anchor)",
    )
    .bind(job_id.0)
    .bind(principal.to_string())
    .bind(reason)
    .bind(
        released
            .iter()
            .map(|(anchor,)| anchor.clone())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await.map_err(StoreError::from)?;
    Ok(released.len() as u64)
}
