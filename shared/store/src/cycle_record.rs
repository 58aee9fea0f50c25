//! A cycle as every service reads it: the `cycle_states` view joins what each owner recorded
//! (the accepted push, the staging, the decision, the apply) and derives the state.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use syncguard_domain::CycleState;
use uuid::Uuid;

use crate::StoreError;

/// One cycle, with the state derived from its owners' records.
#[derive(Debug, Clone)]
pub struct CycleRecord {
    /// The cycle.
    pub cycle_id: Uuid,
    /// Its job.
    pub job_id: Uuid,
    /// The snapshot (full read or delta) it stages.
    pub snapshot_id: Uuid,
    /// The job's order of receipt.
    pub seq: i64,
    /// A delta: only the anchors it names are staged.
    pub delta: bool,
    /// Objects in the snapshot.
    pub source_objects: i64,
    /// Where it stands.
    pub state: CycleState,
    /// When the push was accepted.
    pub received_at: DateTime<Utc>,
    /// When it finished (completed, superseded, failed).
    pub finished_at: Option<DateTime<Utc>>,
    /// The error of a failed cycle.
    pub error: Option<String>,
    /// The quarantine that held it, if any.
    pub quarantine_id: Option<Uuid>,
    /// The W3C traceparent of the push: every step continues this trace.
    pub trace_parent: Option<String>,
    /// Phase timings: (phase, started at, milliseconds), in order.
    pub phases: Vec<(&'static str, DateTime<Utc>, i64)>,
}

/// A raw row of [`CYCLE_RECORD_COLUMNS`], for list queries built by the caller.
#[derive(sqlx::FromRow)]
pub struct CycleRow {
    cycle_id: Uuid,
    job_id: Uuid,
    snapshot_id: Uuid,
    seq: i64,
    delta: bool,
    source_objects: i64,
    state: String,
    received_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    error: Option<String>,
    quarantine_id: Option<Uuid>,
    trace_parent: Option<String>,
    load_started_at: Option<DateTime<Utc>>,
    load_millis: Option<i64>,
    stage_started_at: Option<DateTime<Utc>>,
    stage_millis: Option<i64>,
    decide_started_at: Option<DateTime<Utc>>,
    decide_millis: Option<i64>,
    apply_started_at: Option<DateTime<Utc>>,
    apply_millis: Option<i64>,
}

/// The columns [`CycleRecord`] reads from `cycle_states` (aliased `cs`).
pub const CYCLE_RECORD_COLUMNS: &str = "cs.cycle_id, cs.job_id, cs.snapshot_id, cs.seq, cs.delta, \
    cs.source_objects, cs.state, cs.received_at, cs.finished_at, cs.error, cs.quarantine_id, \
    cs.trace_parent, cs.load_started_at, cs.load_millis, cs.stage_started_at, cs.stage_millis, \
    cs.decide_started_at, cs.decide_millis, cs.apply_started_at, cs.apply_millis";

impl TryFrom<CycleRow> for CycleRecord {
    type Error = StoreError;

    fn try_from(row: CycleRow) -> Result<Self, StoreError> {
        let state = row
            .state
            .parse::<CycleState>()
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let phases = [
            ("ingest", row.load_started_at, row.load_millis),
            ("stage", row.stage_started_at, row.stage_millis),
            ("decide", row.decide_started_at, row.decide_millis),
            ("apply", row.apply_started_at, row.apply_millis),
        ]
        .into_iter()
        .filter_map(|(phase, at, millis)| Some((phase, at?, millis?)))
        .collect();
        Ok(Self {
            cycle_id: row.cycle_id,
            job_id: row.job_id,
            snapshot_id: row.snapshot_id,
            seq: row.seq,
            delta: row.delta,
            source_objects: row.source_objects,
            state,
            received_at: row.received_at,
            finished_at: row.finished_at,
            error: row.error,
            quarantine_id: row.quarantine_id,
            trace_parent: row.trace_parent,
            phases,
        })
    }
}

/// One cycle, or `None` if no push was accepted with that id.
pub async fn fetch_cycle<'e>(
    executor: impl PgExecutor<'e>,
    cycle_id: Uuid,
) -> Result<Option<CycleRecord>, StoreError> {
    let row: Option<CycleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CYCLE_RECORD_COLUMNS} FROM cycle_states cs WHERE cs.cycle_id = $1"
    )))
    .bind(cycle_id)
    .fetch_optional(executor)
    .await?;
    row.map(CycleRecord::try_from).transpose()
}

/// One cycle and, when it is still queued, the state of its job's latest staged cycle (the
/// one a queued cycle waits behind), in one statement; `None` if no push was accepted with
/// that id.
pub async fn fetch_cycle_and_latest<'e>(
    executor: impl PgExecutor<'e>,
    cycle_id: Uuid,
) -> Result<Option<(CycleRecord, Option<CycleState>)>, StoreError> {
    /// A cycle's row with the state of its job's latest staged cycle.
    #[derive(sqlx::FromRow)]
    struct WithLatest {
        #[sqlx(flatten)]
        row: CycleRow,
        latest_state: Option<String>,
    }
    let found: Option<WithLatest> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CYCLE_RECORD_COLUMNS},
             CASE WHEN cs.state = 'queued' THEN {latest} END AS latest_state
         FROM cycle_states cs WHERE cs.cycle_id = $1",
        latest = latest_cycle_state_of("cs.job_id"),
    )))
    .bind(cycle_id)
    .fetch_optional(executor)
    .await?;
    let Some(found) = found else {
        return Ok(None);
    };
    let latest = parse_latest_state(found.latest_state)?;
    Ok(Some((CycleRecord::try_from(found.row)?, latest)))
}

/// A scalar subquery for the state of the latest staged cycle of the job `job` (an SQL
/// expression): the cycle a queued push waits behind while it is open (one per job).
pub fn latest_cycle_state_of(job: &str) -> String {
    format!(
        "(SELECT l.state FROM cycle_states l WHERE l.cycle_id =
             (SELECT c.cycle_id FROM cycles c WHERE c.job_id = {job} ORDER BY c.seq DESC LIMIT 1))"
    )
}

/// The state read by [`latest_cycle_state_of`]; `None` for a job with no staged cycle.
pub fn parse_latest_state(state: Option<String>) -> Result<Option<CycleState>, StoreError> {
    state
        .map(|state| {
            state
                .parse::<CycleState>()
                .map_err(|error| StoreError::Corrupt(error.to_string()))
        })
        .transpose()
}

/// Cycles of the query `sql` (which selects [`CYCLE_RECORD_COLUMNS`] from `cycle_states cs`).
pub async fn fetch_cycles<'q, 'e>(
    executor: impl PgExecutor<'e>,
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, CycleRow, sqlx::postgres::PgArguments>,
) -> Result<Vec<CycleRecord>, StoreError> {
    let rows = query.fetch_all(executor).await?;
    rows.into_iter().map(CycleRecord::try_from).collect()
}
