//! Reads of cycles, staged actions and the provisioning log, with filters and keyset paging.
//! Each query carries only the filters a request sets, so Postgres plans it for them (a
//! generic `($1 IS NULL OR column = $1)` plan cannot use the indexes).

use chrono::{DateTime, Utc};
use prost::Message;
use sqlx::{PgPool, Postgres, QueryBuilder};
use syncguard_bootstrap::timestamp;
use syncguard_domain::{ActionStatus, FieldError};
use syncguard_proto::names;
use syncguard_proto::v1;
use syncguard_store::{CYCLE_RECORD_COLUMNS, CycleRecord, CycleRow, SnapshotCache, StoreError};
use uuid::Uuid;

use crate::error::StagerError;

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

fn corrupt(error: syncguard_domain::UnknownName) -> StagerError {
    StagerError::Store(StoreError::Corrupt(error.to_string()))
}

async fn counts(pool: &PgPool, cycle_id: Uuid) -> Result<Vec<v1::ActionCount>, StagerError> {
    let stored = syncguard_store::staged_counts(pool, cycle_id).await?;
    syncguard_store::by_action_and_type(&stored)
        .into_iter()
        .map(|(action, object_type, count)| {
            Ok(v1::ActionCount {
                action: names::action_kind(action.parse().map_err(corrupt)?) as i32,
                object_type: names::object_type(object_type.parse().map_err(corrupt)?) as i32,
                count: count as u64,
            })
        })
        .collect()
}

fn duration(millis: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: millis / 1000,
        nanos: ((millis % 1000) * 1_000_000) as i32,
    }
}

/// The API view of a cycle, with its action counts.
pub async fn cycle_view(pool: &PgPool, cycle: CycleRecord) -> Result<v1::Cycle, StagerError> {
    Ok(v1::Cycle {
        cycle_id: cycle.cycle_id.to_string(),
        job_id: cycle.job_id.to_string(),
        snapshot_id: cycle.snapshot_id.to_string(),
        state: names::cycle_state(cycle.state) as i32,
        phases: cycle
            .phases
            .iter()
            .map(|(phase, at, millis)| v1::PhaseTiming {
                phase: (*phase).to_owned(),
                started_at: Some(timestamp(*at)),
                duration: Some(duration(*millis)),
            })
            .collect(),
        counts: counts(pool, cycle.cycle_id).await?,
        source_objects: cycle.source_objects.max(0) as u64,
        quarantine_id: cycle
            .quarantine_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        error: cycle.error.unwrap_or_default(),
        created_at: Some(timestamp(cycle.received_at)),
        finished_at: cycle.finished_at.map(timestamp),
        sequence: cycle.seq.max(0) as u64,
        delta: cycle.delta,
    })
}

/// One cycle with its counts and phase timings.
pub async fn get_cycle(pool: &PgPool, cycle_id: Uuid) -> Result<v1::Cycle, StagerError> {
    let cycle = syncguard_store::fetch_cycle(pool, cycle_id)
        .await?
        .ok_or_else(|| StagerError::NotFound(format!("cycle {cycle_id} not found")))?;
    cycle_view(pool, cycle).await
}

/// A listing filtered by an unknown job is `NOT_FOUND`, not an empty page.
async fn known_job(pool: &PgPool, job_id: Option<Uuid>) -> Result<(), StagerError> {
    match job_id {
        Some(job_id) if !syncguard_store::job_exists(pool, job_id).await? => {
            Err(StagerError::NotFound(format!("job {job_id} not found")))
        }
        _ => Ok(()),
    }
}

/// Cycles newest first, filtered by job and states.
pub async fn list_cycles(
    pool: &PgPool,
    request: &v1::ListCyclesRequest,
) -> Result<v1::ListCyclesResponse, StagerError> {
    let job_id = parse_uuid("job_id", &request.job_id)?;
    known_job(pool, job_id).await?;
    let mut states = Vec::new();
    for (index, state) in request.states.iter().enumerate() {
        let name = v1::CycleState::try_from(*state)
            .ok()
            .and_then(names::domain_cycle_state)
            .ok_or_else(|| {
                FieldError::new(
                    format!("states[{index}]"),
                    format!("{state} is not a state a cycle can be in"),
                )
            })?;
        states.push(name.as_str().to_owned());
    }
    let page = syncguard_bootstrap::page(request.page.as_ref())?;
    let before = page.token_as::<Uuid>()?;
    let mut query: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {CYCLE_RECORD_COLUMNS} FROM cycle_states cs WHERE true"
    ));
    if let Some(job_id) = job_id {
        query.push(" AND cs.job_id = ").push_bind(job_id);
    }
    if !states.is_empty() {
        query
            .push(" AND cs.state = ANY(")
            .push_bind(states)
            .push(")");
    }
    if let Some(before) = before {
        query.push(" AND cs.cycle_id < ").push_bind(before);
    }
    query
        .push(" ORDER BY cs.cycle_id DESC LIMIT ")
        .push_bind(page.fetch());
    let mut records =
        syncguard_store::fetch_cycles(pool, query.build_query_as::<CycleRow>()).await?;
    let next_page_token = page.finish(&mut records, |cycle| cycle.cycle_id.to_string());
    let mut cycles = Vec::with_capacity(records.len());
    for record in records {
        cycles.push(cycle_view(pool, record).await?);
    }
    Ok(v1::ListCyclesResponse {
        cycles,
        next_page_token,
    })
}

/// One staged action as `action_states` reports it.
#[derive(sqlx::FromRow)]
pub struct ActionRow {
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

/// The columns [`ActionRow`] reads from `action_states`.
pub const ACTION_COLUMNS: &str = "action_id, cycle_id, job_id, anchor, object_type, action, reason, \
    status, changed_attributes, display_name";

impl ActionRow {
    /// The API view; a stored name outside the schema's set is an error.
    pub fn view(self) -> Result<v1::StagedAction, StagerError> {
        names::staged_action(names::StoredAction {
            action_id: self.action_id.to_string(),
            cycle_id: self.cycle_id.to_string(),
            job_id: self.job_id.to_string(),
            anchor: self.anchor,
            object_type: self.object_type,
            action: self.action,
            reason: self.reason,
            status: self.status,
            changed_attributes: self.changed_attributes,
            display_name: self.display_name,
        })
        .map_err(corrupt)
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
        let kind = v1::ActionKind::try_from(*action)
            .ok()
            .and_then(names::domain_action_kind)
            .ok_or_else(|| {
                FieldError::new(
                    format!("actions[{index}]"),
                    format!("{action} is not a staged action kind"),
                )
            })?;
        kinds.push(kind.as_str().to_owned());
    }
    let page = syncguard_bootstrap::page(request.page.as_ref())?;
    let mut query: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {ACTION_COLUMNS} FROM action_states WHERE cycle_id = "
    ));
    query.push_bind(cycle_id);
    if !kinds.is_empty() {
        query.push(" AND action = ANY(").push_bind(kinds).push(")");
    }
    if let Some(after) = &page.token {
        query
            .push(" AND anchor COLLATE \"C\" > ")
            .push_bind(after.clone());
    }
    query
        .push(" ORDER BY anchor COLLATE \"C\" LIMIT ")
        .push_bind(page.fetch());
    let mut rows: Vec<ActionRow> = query.build_query_as().fetch_all(pool).await?;
    let next_page_token = page.finish(&mut rows, |row| row.anchor.clone());
    let actions = rows
        .into_iter()
        .map(ActionRow::view)
        .collect::<Result<_, _>>()?;
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

/// The display actions an action filter selects.
fn display_actions(filter: i32) -> Result<Vec<&'static str>, FieldError> {
    use v1::LogActionFilter as F;
    Ok(match F::try_from(filter) {
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
        Ok(F::Export) => vec!["Export"],
        Ok(F::ExportFailed) => vec!["ExportFailed"],
        Ok(F::Admin) => vec![
            "AllowDeletes",
            "RejectDeletes",
            "Supersede",
            "RestartJob",
            "ReleasePins",
            "PinCleared",
            "SetProtection",
            "DisableProtection",
            "UpdateJob",
        ],
        Err(_) => {
            return Err(FieldError::new(
                "action",
                format!("{filter} is not an action filter"),
            ));
        }
    })
}

/// The provisioning log, newest first, filtered as administrators know it. `actor` matches
/// the recorded `role:name` or the principal's name alone. A page asked again while nothing
/// has committed in the database is answered from `cache`.
pub async fn query_logs(
    pool: &PgPool,
    cache: &LogPages,
    request: &v1::QueryProvisioningLogsRequest,
) -> Result<v1::QueryProvisioningLogsResponse, StagerError> {
    // Arguments are checked before the database is asked: a malformed request costs it nothing.
    let filter = LogFilter::parse(request)?;
    let page = cache
        .read(pool, request.encode_to_vec(), || filter.fetch(pool))
        .await?;
    Ok(v1::QueryProvisioningLogsResponse::clone(&page))
}

/// Log pages as read at the database's last commit point (see
/// [`syncguard_store::SnapshotCache`]): dashboards and reviewers ask for the newest entries
/// far more often than anything is logged. A page is at most 1,000 entries.
pub type LogPages = SnapshotCache<v1::QueryProvisioningLogsResponse>;

/// How many pages [`LogPages`] keeps.
pub const CACHED_LOG_PAGES: usize = 64;

/// A log query's filters, checked.
struct LogFilter<'a> {
    job_id: Option<Uuid>,
    cycle_id: Option<Uuid>,
    display_actions: Vec<&'static str>,
    status: Option<&'static str>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    page: syncguard_bootstrap::Page,
    before: Option<i64>,
    anchor: &'a str,
    actor_name: Option<&'a str>,
    actor_full: Option<&'a str>,
}

impl<'a> LogFilter<'a> {
    fn parse(request: &'a v1::QueryProvisioningLogsRequest) -> Result<Self, StagerError> {
        let status = match v1::ActionStatus::try_from(request.status) {
            Ok(v1::ActionStatus::Unspecified) => None,
            Ok(v1::ActionStatus::Failed) => Some("failed"),
            Ok(status) => names::domain_action_status(status).map(ActionStatus::as_str),
            Err(_) => {
                return Err(FieldError::new(
                    "status",
                    format!("{} is not a status", request.status),
                )
                .into());
            }
        };
        let page = syncguard_bootstrap::page(request.page.as_ref())?;
        let before = page.token_as::<i64>()?;
        // A full `role:name` also matches the role, as a filter on the name's rows; the name
        // part (as split_part(actor, ':', 2) reads it) is what the actor index holds.
        let (actor_name, actor_full) = match request.actor.trim() {
            "" => (None, None),
            full if full.contains(':') => (full.split(':').nth(1), Some(full)),
            name => (Some(name), None),
        };
        Ok(Self {
            job_id: parse_uuid("job_id", &request.job_id)?,
            cycle_id: parse_uuid("cycle_id", &request.cycle_id)?,
            display_actions: display_actions(request.action)?,
            status,
            since: to_time("since", request.since.as_ref())?,
            until: to_time("until", request.until.as_ref())?,
            page,
            before,
            anchor: request.anchor.as_str(),
            actor_name,
            actor_full,
        })
    }

    async fn fetch(self, pool: &PgPool) -> Result<v1::QueryProvisioningLogsResponse, StagerError> {
        let LogFilter {
            job_id,
            cycle_id,
            display_actions,
            status,
            since,
            until,
            page,
            before,
            anchor,
            actor_name,
            actor_full,
        } = self;
        // The log's two forms (see the compact_log migration): plain rows, and transitions of
        // many actions recorded as chunks that `provisioning_log_set_page` expands. Each side
        // gives its newest `fetch` entries below the page token; the page is the newest of both.
        // A chunk entry's staged action is looked up by key, one probe per entry of the page
        // (`OFFSET 0` keeps the lookup a subquery the planner cannot turn into a join): as a
        // join, the cached generic plan hashed the whole staged_actions table for the page's
        // 51 entries whenever the statistics said it was small (1.48 ms instead of 0.50 ms at
        // 3,500 staged actions, EXPLAIN ANALYZE in the benchmark's database), and would keep
        // doing so as the table grows.
        let mut query: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT * FROM ((SELECT log_id, at, job_id, cycle_id, action_id, object_id, anchor, object_type, \
                    action, status, reason, display_action, changed_attributes, actor, detail \
             FROM provisioning_log WHERE true",
        );
        if let Some(job_id) = job_id {
            query.push(" AND job_id = ").push_bind(job_id);
        }
        if let Some(cycle_id) = cycle_id {
            query.push(" AND cycle_id = ").push_bind(cycle_id);
        }
        if !anchor.is_empty() {
            query.push(" AND anchor = ").push_bind(anchor.to_owned());
        }
        if !display_actions.is_empty() {
            query
                .push(" AND display_action = ANY(")
                .push_bind(display_actions.clone())
                .push(")");
        }
        if let Some(status) = status {
            query.push(" AND status = ").push_bind(status);
        }
        if let Some(since) = since {
            query.push(" AND at >= ").push_bind(since);
        }
        if let Some(until) = until {
            query.push(" AND at < ").push_bind(until);
        }
        if let Some(name) = actor_name {
            query
                .push(" AND (CASE WHEN position(':' IN actor) > 0 THEN split_part(actor, ':', 2) ELSE actor END) = ")
                .push_bind(name.to_owned());
        }
        if let Some(full) = actor_full {
            query.push(" AND actor = ").push_bind(full.to_owned());
        }
        if let Some(before) = before {
            query.push(" AND log_id < ").push_bind(before);
        }
        query
            .push(" ORDER BY log_id DESC LIMIT ")
            .push_bind(page.fetch())
            .push(
                ") UNION ALL (SELECT p.log_id, p.at, p.job_id, p.cycle_id, p.action_id, \
                    CASE WHEN p.object_from_action THEN a.object_id ELSE p.object_id END, p.anchor, \
                    a.object_type, p.action, p.status, a.reason, p.display_action, a.changed_attributes, \
                    p.actor, p.detail \
                 FROM provisioning_log_set_page(",
            )
            .push_bind(job_id)
            .push("::uuid, ")
            .push_bind(cycle_id)
            .push("::uuid, ")
            .push_bind((!anchor.is_empty()).then(|| anchor.to_owned()))
            .push("::text, ")
            .push_bind((!display_actions.is_empty()).then_some(display_actions))
            .push("::text[], ")
            .push_bind(status)
            .push("::text, ")
            .push_bind(since)
            .push("::timestamptz, ")
            .push_bind(until)
            .push("::timestamptz, ")
            .push_bind(actor_name.map(str::to_owned))
            .push("::text, ")
            .push_bind(actor_full.map(str::to_owned))
            .push("::text, ")
            .push_bind(before)
            .push("::bigint, ")
            .push_bind(page.fetch())
            .push(
                "::integer) p \
                 CROSS JOIN LATERAL (SELECT a.object_id, a.object_type, a.reason, a.changed_attributes \
                                     FROM staged_actions a WHERE a.action_id = p.action_id OFFSET 0) a)) entries \
                 ORDER BY log_id DESC LIMIT ",
            )
            .push_bind(page.fetch());
        let mut rows: Vec<LogRow> = query.build_query_as().fetch_all(pool).await?;
        // Only an empty page can stem from an unknown job (a job's log rows outlive nothing of
        // it): checking first cost every page a round trip.
        if rows.is_empty() {
            known_job(pool, job_id).await?;
        }
        let next_page_token = page.finish(&mut rows, |row| row.log_id.to_string());
        let entries = rows
            .into_iter()
            .map(|row| v1::ProvisioningLogEntry {
                log_id: row.log_id,
                at: Some(timestamp(row.at)),
                job_id: row.job_id.to_string(),
                cycle_id: row.cycle_id.map(|id| id.to_string()).unwrap_or_default(),
                action_id: row.action_id.map(|id| id.to_string()).unwrap_or_default(),
                anchor: row.anchor.unwrap_or_default(),
                object_type: row
                    .object_type
                    .and_then(|name| name.parse().ok())
                    .map(names::object_type)
                    .unwrap_or_default() as i32,
                action: row
                    .action
                    .as_deref()
                    .map(names::logged_action_kind)
                    .unwrap_or_default() as i32,
                status: row
                    .status
                    .and_then(|name| name.parse().ok())
                    .map(names::action_status)
                    .unwrap_or_default() as i32,
                reason: row
                    .reason
                    .as_deref()
                    .map(names::logged_reason)
                    .unwrap_or_default() as i32,
                display_action: row.display_action,
                changed_attributes: row.changed_attributes,
                actor: row.actor,
                detail: row.detail,
                object_id: row.object_id.map(|id| id.to_string()).unwrap_or_default(),
            })
            .collect();
        Ok(v1::QueryProvisioningLogsResponse {
            entries,
            next_page_token,
        })
    }
}
