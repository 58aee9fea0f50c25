//! Approvers' decisions on a quarantine: allow (all, or chosen anchors with the rest
//! rejected), reject (all, or chosen anchors), and supersede (restart, or the hold limit
//! passed). Each is one transaction in the gate's own tables (the quarantine, per-action
//! verdicts, approvals, pins) with its log rows; retention then applies what was decided.
//! The quarantine row is locked first, so two racing decisions count once and the second is
//! refused.

use chrono::Utc;
use sqlx::{PgConnection, PgPool};
use syncguard_domain::{ActionStatus, FieldError, JobId, Principal, QuarantineState, SourceAnchor};
use syncguard_store::StoreError;
use uuid::Uuid;

use crate::decide::held_set_digest;
use crate::error::GateError;
use crate::quarantine_view::{QUARANTINE_COLUMNS, QuarantineRow};

/// The cycle's held actions not decided one by one yet (`a` is `staged_actions`).
const UNDECIDED_HELD: &str = "FROM staged_actions a LEFT JOIN held_verdicts hv ON hv.action_id = a.action_id \
    WHERE a.cycle_id = $1 AND a.status = 'staged' AND a.action IN ('delete', 'disable') AND hv.action_id IS NULL";

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
        let reason = syncguard_domain::text::reason("reason", reason)?;
        let mut parsed = Vec::with_capacity(anchors.len());
        for (index, anchor) in anchors.iter().enumerate() {
            parsed.push(SourceAnchor::parse(&format!("anchors[{index}]"), anchor)?.to_string());
        }
        parsed.sort();
        parsed.dedup();
        Ok(Self {
            quarantine_id,
            digest: digest.trim().to_owned(),
            reason,
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
    let state = row.state()?;
    if state != QuarantineState::Open {
        return Err(GateError::WrongState(format!(
            "quarantine {} is already closed ({state}); nothing was changed",
            row.quarantine_id
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
    let held: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT a.anchor {UNDECIDED_HELD} AND a.anchor COLLATE \"C\" = ANY($2)"
    )))
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

/// A decision on held actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    Allow,
    Reject,
    Supersede,
}

impl Settle {
    fn status(self) -> ActionStatus {
        match self {
            Settle::Allow => ActionStatus::Allowed,
            Settle::Reject => ActionStatus::Rejected,
            Settle::Supersede => ActionStatus::Superseded,
        }
    }

    fn display(self) -> &'static str {
        match self {
            Settle::Allow => "Allow",
            Settle::Reject => "Reject",
            Settle::Supersede => "Supersede",
        }
    }
}

/// Who decides, and why: recorded on every row the decision writes.
struct Decider<'a> {
    actor: &'a str,
    name: &'a str,
    reason: &'a str,
}

/// Decides the undecided held actions (all, or those of `anchors`) and logs each, returning
/// how many were decided. With `record_each` the decision is kept per action (the
/// quarantine stays open, or closes in a state that says otherwise for the rest); without,
/// the quarantine's closing state says it for all of them. Rejected objects are pinned.
async fn settle(
    conn: &mut PgConnection,
    row: &QuarantineRow,
    decision: Settle,
    anchors: Option<&[String]>,
    record_each: bool,
    decider: &Decider<'_>,
) -> Result<u64, GateError> {
    let verdicts = if record_each {
        "recorded AS (
             INSERT INTO held_verdicts (action_id, quarantine_id, verdict, decided_by)
             SELECT action_id, $4, $2, $7 FROM decided
         ),"
    } else {
        ""
    };
    let (decided,): (i32,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH decided AS (
             SELECT a.job_id, a.cycle_id, a.action_id, a.object_id, a.anchor, a.object_type, a.action,
                    a.reason, a.changed_attributes
             {UNDECIDED_HELD} AND ($3::text[] IS NULL OR a.anchor COLLATE \"C\" = ANY($3))
         ),
         {verdicts}
         pinned AS (
             INSERT INTO pins (job_id, anchor, quarantine_id, pinned_by, reason, rejected_action, rejected_reason)
             SELECT job_id, anchor, $4, $5, $6, action, reason FROM decided WHERE $2 = 'rejected'
             ON CONFLICT (job_id, anchor) DO UPDATE SET quarantine_id = EXCLUDED.quarantine_id,
                 pinned_by = EXCLUDED.pinned_by, reason = EXCLUDED.reason, pinned_at = now(),
                 rejected_action = EXCLUDED.rejected_action, rejected_reason = EXCLUDED.rejected_reason
         )
         SELECT syncguard_log_actions($9, $1, $4, $2, $8, $5, $6,
             array_agg(d.action_id), array_agg(d.anchor), array_agg(d.action), NULL)
         FROM (SELECT action_id, anchor, action FROM decided ORDER BY anchor COLLATE \"C\") d"
    )))
    .bind(row.cycle_id)
    .bind(decision.status().as_str())
    .bind(anchors)
    .bind(row.quarantine_id)
    .bind(decider.actor)
    .bind(decider.reason)
    .bind(decider.name)
    .bind(decision.display())
    .bind(row.job_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(u64::try_from(decided).unwrap_or_default())
}

async fn close(
    conn: &mut PgConnection,
    row: &QuarantineRow,
    state: QuarantineState,
    decider: &Decider<'_>,
) -> Result<(), GateError> {
    sqlx::query(
        "UPDATE quarantines SET state = $2, closed_at = now(), closed_by = $3, closed_reason = $4 \
         WHERE quarantine_id = $1",
    )
    .bind(row.quarantine_id)
    .bind(state.as_str())
    .bind(decider.actor)
    .bind(decider.reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The outcome of a decision, and whether retention may now apply the cycle.
pub struct Decided {
    /// The quarantine after the decision.
    pub quarantine_id: Uuid,
    /// The job.
    pub job_id: Uuid,
    /// The cycle to apply (when the decision is final).
    pub apply_cycle: Option<Uuid>,
    /// Actions allowed.
    pub allowed: u64,
    /// Actions rejected.
    pub rejected: u64,
}

/// Records an approval; with enough distinct approvers (distinct people, whatever role
/// their token carries), allows the held actions (or only `anchors`, rejecting and pinning
/// the rest) and closes the quarantine.
pub async fn allow(
    pool: &PgPool,
    request: &DecisionRequest,
    principal: &Principal,
) -> Result<Decided, GateError> {
    let actor = principal.to_string();
    let decider = Decider {
        actor: &actor,
        name: &principal.name,
        reason: &request.reason,
    };
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let row = lock_open(&mut transaction, request).await?;
    check_held(&mut transaction, row.cycle_id, &request.anchors).await?;
    let recorded = sqlx::query(
        "INSERT INTO approvals (quarantine_id, principal, principal_name, decision, reason, anchors) \
         VALUES ($1, $2, $3, 'allow', $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(row.quarantine_id)
    .bind(&actor)
    .bind(&principal.name)
    .bind(&request.reason)
    .bind(&request.anchors)
    .execute(&mut *transaction)
    .await?;
    if recorded.rows_affected() == 0 {
        return Err(GateError::WrongState(format!(
            "{} already approved this quarantine (with any role); a second, different approver is needed",
            principal.name
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
            job_id: row.job_id,
            apply_cycle: None,
            allowed: 0,
            rejected: 0,
        });
    }
    let (allowed, rejected, state) = if request.anchors.is_empty() {
        let allowed = settle(&mut transaction, &row, Settle::Allow, None, false, &decider).await?;
        (allowed, 0, QuarantineState::Allowed)
    } else {
        let allowed = settle(
            &mut transaction,
            &row,
            Settle::Allow,
            Some(&request.anchors),
            true,
            &decider,
        )
        .await?;
        // The rest is rejected by the closing state (partially allowed).
        let rejected = settle(
            &mut transaction,
            &row,
            Settle::Reject,
            None,
            false,
            &decider,
        )
        .await?;
        (allowed, rejected, QuarantineState::PartiallyAllowed)
    };
    close(&mut transaction, &row, state, &decider).await?;
    transaction.commit().await.map_err(StoreError::from)?;
    tracing::info!(quarantine = %row.quarantine_id, allowed, rejected, actor, "deletes allowed");
    Ok(Decided {
        quarantine_id: row.quarantine_id,
        job_id: row.job_id,
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
    let decider = Decider {
        actor: &actor,
        name: &principal.name,
        reason: &request.reason,
    };
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let row = lock_open(&mut transaction, request).await?;
    check_held(&mut transaction, row.cycle_id, &request.anchors).await?;
    let some = Some(request.anchors.as_slice()).filter(|anchors| !anchors.is_empty());
    let rejected = settle(
        &mut transaction,
        &row,
        Settle::Reject,
        some,
        some.is_some(),
        &decider,
    )
    .await?;
    sqlx::query(
        "INSERT INTO approvals (quarantine_id, principal, principal_name, decision, reason, anchors) \
         VALUES ($1, $2, $3, 'reject', $4, $5) \
         ON CONFLICT (quarantine_id, principal_name, decision) DO UPDATE SET reason = EXCLUDED.reason, \
             anchors = EXCLUDED.anchors, at = now()",
    )
    .bind(row.quarantine_id)
    .bind(&actor)
    .bind(&principal.name)
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
    let (still_held,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) {UNDECIDED_HELD}"
    )))
    .bind(row.cycle_id)
    .fetch_one(&mut *transaction)
    .await?;
    let apply_cycle = if some.is_none() || still_held == 0 {
        close(&mut transaction, &row, QuarantineState::Rejected, &decider).await?;
        Some(row.cycle_id)
    } else {
        let digest = held_set_digest(&mut transaction, row.cycle_id).await?;
        sqlx::query("UPDATE quarantines SET digest = $2 WHERE quarantine_id = $1")
            .bind(row.quarantine_id)
            .bind(digest)
            .execute(&mut *transaction)
            .await?;
        None
    };
    transaction.commit().await.map_err(StoreError::from)?;
    tracing::info!(quarantine = %row.quarantine_id, rejected, actor, "deletes rejected");
    Ok(Decided {
        quarantine_id: row.quarantine_id,
        job_id: row.job_id,
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
    let name = actor.split_once(':').map_or(actor, |(_, name)| name);
    let decider = Decider {
        actor,
        name,
        reason,
    };
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
    settle(
        &mut transaction,
        &row,
        Settle::Supersede,
        None,
        false,
        &decider,
    )
    .await?;
    log_admin(&mut transaction, &row, "Supersede", actor, reason).await?;
    close(
        &mut transaction,
        &row,
        QuarantineState::Superseded,
        &decider,
    )
    .await?;
    transaction.commit().await.map_err(StoreError::from)?;
    syncguard_telemetry::cycle_outcome("superseded");
    tracing::warn!(job = %job_id, quarantine = %row.quarantine_id, actor, reason, "quarantine superseded");
    Ok(Some(row))
}
