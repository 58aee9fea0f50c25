//! Reads of cycles, staged actions and the provisioning log, with filters and keyset paging.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use syncguard_bootstrap::timestamp;
use syncguard_domain::FieldError;
use syncguard_proto::names;
use syncguard_proto::v1;
use uuid::Uuid;

use crate::error::StagerError;

/// Page size and token of a request; the token is the sort key of the last row returned.
pub fn page(page: Option<&v1::PageRequest>) -> Result<(i64, Option<String>), FieldError> {
    let page = syncguard_bootstrap::page(page)?;
    Ok((page.size, page.token))
}

fn to_time(
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, FieldError> {
    value
        .map(|ts| {
            DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32)
                .ok_or_else(|| FieldError::new(field, "not a valid time"))
        })
        .transpose()
}

fn parse_uuid(field: &str, value: &str) -> Result<Option<Uuid>, FieldError> {
    if value.is_empty() {
        return Ok(None);
    }
    Uuid::parse_str(value)
        .map(Some)
        .map_err(|_| FieldError::new(field, format!("{value:?} is not an id (a UUID)")))
}

#[derive(sqlx::FromRow)]
struct CycleRow {
    cycle_id: Uuid,
    job_id: Uuid,
    snapshot_id: Uuid,
    state: String,
    phases: serde_json::Value,
    source_objects: i64,
    error: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    quarantine_id: Option<Uuid>,
}

const CYCLE_SELECT: &str = "SELECT c.cycle_id, c.job_id, c.snapshot_id, c.state, c.phases, c.source_objects, \
    c.error, c.created_at, c.finished_at, q.quarantine_id \
    FROM cycles c LEFT JOIN quarantines q ON q.cycle_id = c.cycle_id";

async fn counts(pool: &PgPool, cycle_id: Uuid) -> Result<Vec<v1::ActionCount>, StagerError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT action, object_type, count(*) FROM staged_actions WHERE cycle_id = $1 \
         GROUP BY action, object_type ORDER BY action, object_type",
    )
    .bind(cycle_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(action, object_type, count)| v1::ActionCount {
            action: names::action_kind(&action) as i32,
            object_type: names::object_type(&object_type) as i32,
            count: count as u64,
        })
        .collect())
}

async fn cycle_view(pool: &PgPool, row: CycleRow) -> Result<v1::Cycle, StagerError> {
    let phases = row
        .phases
        .as_array()
        .into_iter()
        .flatten()
        .map(|phase| v1::PhaseTiming {
            phase: phase
                .get("phase")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned(),
            started_at: phase
                .get("started_at")
                .and_then(|v| v.as_str())
                .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
                .map(|at| timestamp(at.with_timezone(&Utc))),
            duration: phase.get("millis").and_then(|v| v.as_i64()).map(|millis| {
                prost_types::Duration {
                    seconds: millis / 1000,
                    nanos: ((millis % 1000) * 1_000_000) as i32,
                }
            }),
        })
        .collect();
    Ok(v1::Cycle {
        cycle_id: row.cycle_id.to_string(),
        job_id: row.job_id.to_string(),
        snapshot_id: row.snapshot_id.to_string(),
        state: names::cycle_state(&row.state) as i32,
        phases,
        counts: counts(pool, row.cycle_id).await?,
        source_objects: row.source_objects as u64,
        quarantine_id: row
            .quarantine_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        error: row.error.unwrap_or_default(),
        created_at: Some(timestamp(row.created_at)),
        finished_at: row.finished_at.map(timestamp),
    })
}

/// One cycle with its counts and phase timings.
pub async fn get_cycle(pool: &PgPool, cycle_id: Uuid) -> Result<v1::Cycle, StagerError> {
    let row: Option<CycleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CYCLE_SELECT} WHERE c.cycle_id = $1"
    )))
    .bind(cycle_id)
    .fetch_optional(pool)
    .await?;
    let row = row.ok_or_else(|| StagerError::NotFound(format!("cycle {cycle_id} not found")))?;
    cycle_view(pool, row).await
}

/// Cycles newest first, filtered by job and states.
pub async fn list_cycles(
    pool: &PgPool,
    request: &v1::ListCyclesRequest,
) -> Result<v1::ListCyclesResponse, StagerError> {
    let job_id = parse_uuid("job_id", &request.job_id)?;
    let mut states = Vec::new();
    for (index, state) in request.states.iter().enumerate() {
        let name = v1::CycleState::try_from(*state)
            .ok()
            .and_then(names::state_name)
            .ok_or_else(|| {
                FieldError::new(
                    format!("states[{index}]"),
                    format!("{state} is not a cycle state"),
                )
            })?;
        states.push(name.to_owned());
    }
    let (size, token) = page(request.page.as_ref())?;
    let before = token
        .as_deref()
        .map(|token| parse_uuid("page.page_token", token))
        .transpose()?
        .flatten();
    let rows: Vec<CycleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CYCLE_SELECT} WHERE ($1::uuid IS NULL OR c.job_id = $1) \
           AND (cardinality($2::text[]) = 0 OR c.state = ANY($2)) \
           AND ($3::uuid IS NULL OR c.cycle_id < $3) \
         ORDER BY c.cycle_id DESC LIMIT $4"
    )))
    .bind(job_id)
    .bind(&states)
    .bind(before)
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > size;
    let mut cycles = Vec::new();
    for row in rows.into_iter().take(size as usize) {
        cycles.push(cycle_view(pool, row).await?);
    }
    let next_page_token = if more {
        cycles
            .last()
            .map(|cycle| cycle.cycle_id.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(v1::ListCyclesResponse {
        cycles,
        next_page_token,
    })
}

#[derive(sqlx::FromRow)]
struct ActionRow {
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

impl ActionRow {
    fn view(self) -> v1::StagedAction {
        v1::StagedAction {
            action_id: self.action_id.to_string(),
            cycle_id: self.cycle_id.to_string(),
            job_id: self.job_id.to_string(),
            anchor: self.anchor,
            object_type: names::object_type(&self.object_type) as i32,
            action: names::action_kind(&self.action) as i32,
            reason: names::action_reason(&self.reason) as i32,
            status: names::action_status(&self.status) as i32,
            changed_attributes: self.changed_attributes,
            display_name: self.display_name,
        }
    }
}

/// A cycle's staged actions in anchor order, optionally of some kinds only.
pub async fn list_staged_actions(
    pool: &PgPool,
    request: &v1::ListStagedActionsRequest,
) -> Result<v1::ListStagedActionsResponse, StagerError> {
    let cycle_id = parse_uuid("cycle_id", &request.cycle_id)?
        .ok_or_else(|| FieldError::new("cycle_id", "a cycle id is required"))?;
    let mut kinds = Vec::new();
    for (index, action) in request.actions.iter().enumerate() {
        let name = v1::ActionKind::try_from(*action)
            .ok()
            .and_then(names::action_name)
            .ok_or_else(|| {
                FieldError::new(
                    format!("actions[{index}]"),
                    format!("{action} is not an action kind"),
                )
            })?;
        kinds.push(name.to_owned());
    }
    let (size, after) = page(request.page.as_ref())?;
    let rows: Vec<ActionRow> = sqlx::query_as(
        "SELECT action_id, cycle_id, job_id, anchor, object_type, action, reason, status, changed_attributes, \
                display_name \
         FROM staged_actions WHERE cycle_id = $1 AND (cardinality($2::text[]) = 0 OR action = ANY($2)) \
           AND ($3::text IS NULL OR anchor COLLATE \"C\" > $3) \
         ORDER BY anchor COLLATE \"C\" LIMIT $4",
    )
    .bind(cycle_id)
    .bind(&kinds)
    .bind(after)
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > size;
    let actions: Vec<v1::StagedAction> = rows
        .into_iter()
        .take(size as usize)
        .map(ActionRow::view)
        .collect();
    let next_page_token = if more {
        actions
            .last()
            .map(|action| action.anchor.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(v1::ListStagedActionsResponse {
        actions,
        next_page_token,
    })
}

#[derive(sqlx::FromRow)]
struct LogRow {
    log_id: i64,
    at: DateTime<Utc>,
    job_id: Uuid,
    cycle_id: Option<Uuid>,
    action_id: Option<Uuid>,
    object_id: Option<Uuid>,
    anchor: Option<String>,
    object_type: Option<String>,
    action: Option<String>,
    status: Option<String>,
    reason: Option<String>,
    display_action: String,
    changed_attributes: Vec<String>,
    actor: String,
    detail: String,
}

/// The provisioning log, newest first, filtered as administrators know it.
pub async fn query_logs(
    pool: &PgPool,
    request: &v1::QueryProvisioningLogsRequest,
) -> Result<v1::QueryProvisioningLogsResponse, StagerError> {
    use v1::LogActionFilter as F;
    let job_id = parse_uuid("job_id", &request.job_id)?;
    let cycle_id = parse_uuid("cycle_id", &request.cycle_id)?;
    let display_actions: Vec<&str> = match F::try_from(request.action) {
        Ok(F::Unspecified) => vec![],
        Ok(F::StagedAction) => vec!["StagedDelete", "StagedDisable"],
        Ok(F::StagedDelete) => vec!["StagedDelete"],
        Ok(F::StagedDisable) => vec!["StagedDisable"],
        Ok(F::Create) => vec!["Create"],
        Ok(F::Update) => vec!["Update"],
        Ok(F::Disable) => vec!["Disable"],
        Ok(F::Enable) => vec!["Enable"],
        Ok(F::Delete) => vec!["Delete"],
        Ok(F::Restore) => vec!["Restore"],
        Ok(F::Purge) => vec!["Purge"],
        Ok(F::Admin) => vec![
            "AllowDeletes",
            "RejectDeletes",
            "RestartJob",
            "ReleasePins",
            "SetProtection",
            "DisableProtection",
        ],
        Err(_) => {
            return Err(FieldError::new(
                "action",
                format!("{} is not an action filter", request.action),
            )
            .into());
        }
    };
    let status = match v1::ActionStatus::try_from(request.status) {
        Ok(v1::ActionStatus::Unspecified) => None,
        Ok(status) => names::status_name(status),
        Err(_) => {
            return Err(
                FieldError::new("status", format!("{} is not a status", request.status)).into(),
            );
        }
    };
    let since = to_time("since", request.since.as_ref())?;
    let until = to_time("until", request.until.as_ref())?;
    let requested = syncguard_bootstrap::page(request.page.as_ref())?;
    let (size, before) = (requested.size, requested.token_as::<i64>()?);
    let anchor = Some(request.anchor.as_str()).filter(|anchor| !anchor.is_empty());
    let actor = Some(request.actor.as_str()).filter(|actor| !actor.is_empty());
    let rows: Vec<LogRow> = sqlx::query_as(
        "SELECT log_id, at, job_id, cycle_id, action_id, object_id, anchor, object_type, action, status, reason, \
                display_action, changed_attributes, actor, detail \
         FROM provisioning_log \
         WHERE ($1::uuid IS NULL OR job_id = $1) AND ($2::uuid IS NULL OR cycle_id = $2) \
           AND ($3::text IS NULL OR anchor = $3) \
           AND (cardinality($4::text[]) = 0 OR display_action = ANY($4)) \
           AND ($5::text IS NULL OR status = $5) \
           AND ($6::timestamptz IS NULL OR at >= $6) AND ($7::timestamptz IS NULL OR at < $7) \
           AND ($8::text IS NULL OR actor = $8) AND ($9::bigint IS NULL OR log_id < $9) \
         ORDER BY log_id DESC LIMIT $10",
    )
    .bind(job_id)
    .bind(cycle_id)
    .bind(anchor)
    .bind(&display_actions)
    .bind(status)
    .bind(since)
    .bind(until)
    .bind(actor)
    .bind(before)
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > size;
    let entries: Vec<v1::ProvisioningLogEntry> = rows
        .into_iter()
        .take(size as usize)
        .map(|row| v1::ProvisioningLogEntry {
            log_id: row.log_id,
            at: Some(timestamp(row.at)),
            job_id: row.job_id.to_string(),
            cycle_id: row.cycle_id.map(|id| id.to_string()).unwrap_or_default(),
            action_id: row.action_id.map(|id| id.to_string()).unwrap_or_default(),
            anchor: row.anchor.unwrap_or_default(),
            object_type: row
                .object_type
                .as_deref()
                .map(names::object_type)
                .unwrap_or_default() as i32,
            action: row
                .action
                .as_deref()
                .map(names::action_kind)
                .unwrap_or_default() as i32,
            status: row
                .status
                .as_deref()
                .map(names::action_status)
                .unwrap_or_default() as i32,
            reason: row
                .reason
                .as_deref()
                .map(names::action_reason)
                .unwrap_or_default() as i32,
            display_action: row.display_action,
            changed_attributes: row.changed_attributes,
            actor: row.actor,
            detail: row.detail,
            object_id: row.object_id.map(|id| id.to_string()).unwrap_or_default(),
        })
        .collect();
    let next_page_token = if more {
        entries
            .last()
            .map(|entry| entry.log_id.to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(v1::QueryProvisioningLogsResponse {
        entries,
        next_page_token,
    })
}
