//! Staging, the stager's one step of a cycle: take the job's next queued push (in the order
//! ingest acknowledged them), diff it, and record the staged actions with their log rows in
//! one transaction. A job has at most one open cycle: the next waits until it finishes.
//! A newer full read supersedes every push queued before it (it says everything they said).

use std::time::Instant;

use sqlx::{PgConnection, PgPool};
use syncguard_domain::{CycleState, DeprovisionMode, JobId, ScopeRules};
use syncguard_store::{Claim, StagedCount, StoreError};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::diff::{ActionTable, Diff, SourceTable};
use crate::error::StagerError;

/// Deltas up to this many rows are diffed by key lookups only.
const SMALL_DELTA_ROWS: i64 = 50_000;

/// What one staging step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staged {
    /// Nothing to do (no queued push, an open cycle, or another instance holds the job).
    Nothing,
    /// A cycle was staged and waits for the gate; with the trace of its push and the counts
    /// of what it staged.
    Cycle(Uuid, Option<String>, Vec<StagedCount>),
    /// A full read returned nothing while the target holds objects: the cycle failed
    /// instead of staging deletes of everything.
    RefusedEmpty(Uuid),
}

/// The job settings staging needs.
#[derive(Debug, sqlx::FromRow)]
struct JobSettings {
    scope_rules: serde_json::Value,
    deprovision_mode: String,
    allow_empty_source: bool,
}

/// A queued push.
#[derive(Debug, sqlx::FromRow)]
struct Queued {
    snapshot_id: Uuid,
    cycle_id: Uuid,
    seq: i64,
    kind: String,
    object_count: i64,
    trace_parent: Option<String>,
}

/// A queued push with the job's last staged sequence number and its settings.
#[derive(Debug, sqlx::FromRow)]
struct QueuedAfter {
    last_seq: i64,
    latest_state: Option<String>,
    #[sqlx(flatten)]
    queued: Queued,
    #[sqlx(flatten)]
    settings: JobSettings,
}

/// Stages the next queued push of `job_id`, if the job has one and no open cycle.
pub async fn stage_next(pool: &PgPool, job_id: JobId) -> Result<Staged, StagerError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let conn: &mut PgConnection = &mut transaction;
    if !syncguard_store::try_claim(conn, Claim::StageJob(job_id.0)).await? {
        return Ok(Staged::Nothing);
    }
    // The newest queued full snapshot (the deltas and reads before it are superseded), else
    // the oldest queued push; one statement, with the last staged sequence number, the state
    // of the job's latest cycle (an open one holds the push back) and the job's settings.
    let queued = sqlx::query_as::<_, QueuedAfter>(sqlx::AssertSqlSafe(format!(
        "WITH last AS (SELECT COALESCE(max(seq), 0) AS seq FROM cycles WHERE job_id = $1)
         SELECT (SELECT seq FROM last) AS last_seq, {latest} AS latest_state,
                s.snapshot_id, s.cycle_id, s.seq, s.kind, s.object_count, s.trace_parent,
                j.scope_rules, j.deprovision_mode, j.allow_empty_source
         FROM snapshots s JOIN jobs j ON j.job_id = s.job_id
         WHERE s.job_id = $1 AND s.seq > (SELECT seq FROM last)
         ORDER BY s.kind = 'full' DESC, CASE WHEN s.kind = 'full' THEN -s.seq ELSE s.seq END
         LIMIT 1",
        latest = syncguard_store::latest_cycle_state_of("$1"),
    )))
    .bind(job_id.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(QueuedAfter {
        last_seq,
        latest_state,
        queued: next,
        settings,
    }) = queued
    else {
        transaction.commit().await.map_err(StoreError::from)?;
        return Ok(Staged::Nothing);
    };
    if syncguard_store::parse_latest_state(latest_state)?.is_some_and(CycleState::is_open) {
        return Ok(Staged::Nothing);
    }
    if next.kind == "full" {
        supersede_before(conn, job_id, last_seq, next.seq).await?;
    }

    let span = tracing::info_span!(
        "cycle.stage",
        job.id = %job_id,
        cycle.id = %next.cycle_id,
        delta = next.kind == "delta",
    );
    if let Some(traceparent) = &next.trace_parent {
        syncguard_telemetry::continue_trace(&span, traceparent);
    }
    stage_queued(transaction, job_id, next, settings, started, started_at)
        .instrument(span)
        .await
}

/// Stages `next` in `transaction` (the job's claim is held by it) and commits.
async fn stage_queued(
    mut transaction: sqlx::Transaction<'static, sqlx::Postgres>,
    job_id: JobId,
    next: Queued,
    job: JobSettings,
    started: Instant,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<Staged, StagerError> {
    let scope = ScopeRules::from_stored(&job.scope_rules)
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    let deprovision: DeprovisionMode = job
        .deprovision_mode
        .parse()
        .map_err(|error: syncguard_domain::UnknownName| StoreError::Corrupt(error.to_string()))?;
    let delta = next.kind == "delta";

    insert_cycle(&mut transaction, job_id, &next, delta).await?;
    if !delta && next.object_count == 0 && !job.allow_empty_source {
        let (live_targets,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM directory_objects WHERE job_id = $1 AND deleted_at IS NULL",
        )
        .bind(job_id.0)
        .fetch_one(&mut *transaction)
        .await?;
        if live_targets > 0 {
            let error = format!(
                "the source returned no objects while the target holds {live_targets}: treated as a failed read, nothing staged (set allow_empty_source to stage the deletes)"
            );
            sqlx::query(
                "UPDATE cycles SET state = 'failed', error = $2, finished_at = now(), updated_at = now() \
                 WHERE cycle_id = $1",
            )
            .bind(next.cycle_id)
            .bind(&error)
            .execute(&mut *transaction)
            .await?;
            transaction.commit().await.map_err(StoreError::from)?;
            syncguard_telemetry::cycle_outcome("failed");
            tracing::warn!(job = %job_id, cycle = %next.cycle_id, live_targets, "empty source refused");
            return Ok(Staged::RefusedEmpty(next.cycle_id));
        }
    }

    let small_delta = delta && next.object_count <= SMALL_DELTA_ROWS;
    let diff = Diff {
        table: ActionTable::Staged,
        source: SourceTable::Snapshot,
        cycle_id: next.cycle_id,
        job_id,
        snapshot_id: next.snapshot_id,
        delta,
        scope: &scope,
        deprovision,
        small_delta,
    };
    if !delta {
        // Hash joins of a million narrow rows fit in memory instead of spilling to disk. The
        // diff reads the snapshot's rows and the job's objects through their keys' indexes
        // (bitmap scans): a snapshot is a fifth to a half of `source_objects` (the previous
        // read waits there until this cycle finishes), and a sequential scan read every
        // snapshot's rows to keep this one's (EXPLAIN ANALYZE of the steady diff: 190-238 ms
        // by sequential scans, 114-118 by bitmap scans at 100,000 objects; 2.15-2.17 s and
        // 1.87-1.91 s at 1,000,000). Set for the diff statement only.
        sqlx::raw_sql("SET LOCAL work_mem = '256MB'; SET LOCAL enable_seqscan = off")
            .execute(&mut *transaction)
            .await?;
    } else if small_delta {
        // A delta touches its own anchors only: look each one up by key. Left to the
        // statistics of million-row snapshots, the planner hashes the whole directory
        // (400 ms for a one-object delta on a 300,000-object job). Key probes need no
        // statistics, so the statements are planned once per connection instead of for
        // every delta (the diff's planning alone was 0.7 ms of a one-object delta); their
        // text is marked, so a large cycle never picks up a plan made under these settings.
        sqlx::raw_sql(
            "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; \
             SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_generic_plan",
        )
        .execute(&mut *transaction)
        .await?;
    }
    let counts = diff.write_actions(&mut transaction).await?;
    let actions: i64 = counts.iter().map(|count| count.count).sum();
    if !delta {
        sqlx::query("SET LOCAL enable_seqscan = on")
            .execute(&mut *transaction)
            .await?;
    }
    log_staged(
        &mut transaction,
        job_id,
        next.cycle_id,
        actions,
        diff.mark(),
    )
    .await?;
    diff.record_staging(
        &mut transaction,
        started_at,
        started.elapsed().as_millis() as i64,
        &counts,
    )
    .await?;
    transaction.commit().await.map_err(StoreError::from)?;
    tracing::info!(job = %job_id, cycle = %next.cycle_id, seq = next.seq, delta, objects = next.object_count, actions, millis = started.elapsed().as_millis() as u64, "cycle staged");
    Ok(Staged::Cycle(next.cycle_id, next.trace_parent, counts))
}

async fn insert_cycle(
    conn: &mut PgConnection,
    job_id: JobId,
    next: &Queued,
    delta: bool,
) -> Result<(), StagerError> {
    sqlx::query(
        "INSERT INTO cycles (cycle_id, job_id, snapshot_id, state, source_objects, seq, delta, trace_parent) \
         VALUES ($1, $2, $3, 'staged', $4, $5, $6, $7)",
    )
    .bind(next.cycle_id)
    .bind(job_id.0)
    .bind(next.snapshot_id)
    .bind(next.object_count)
    .bind(next.seq)
    .bind(delta)
    .bind(&next.trace_parent)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the pushes queued before a newer full read as superseded: they are never staged.
async fn supersede_before(
    conn: &mut PgConnection,
    job_id: JobId,
    after_seq: i64,
    full_seq: i64,
) -> Result<(), StagerError> {
    let superseded = sqlx::query(
        "INSERT INTO cycles (cycle_id, job_id, snapshot_id, state, source_objects, seq, delta, error, \
             finished_at, trace_parent) \
         SELECT s.cycle_id, s.job_id, s.snapshot_id, 'superseded', s.object_count, s.seq, s.kind = 'delta', \
             'superseded by the newer full read of sequence ' || $4, now(), s.trace_parent \
         FROM snapshots s WHERE s.job_id = $1 AND s.seq > $2 AND s.seq < $3",
    )
    .bind(job_id.0)
    .bind(after_seq)
    .bind(full_seq)
    .bind(full_seq.to_string())
    .execute(conn)
    .await?;
    if superseded.rows_affected() > 0 {
        tracing::info!(job = %job_id, superseded = superseded.rows_affected(), by_seq = full_seq, "queued pushes superseded by a newer full read");
    }
    Ok(())
}

/// One `staged` log entry per action (`PlanCreate`, ...), in the log's compact form when
/// there are many (see `syncguard_store::log_transition`).
async fn log_staged(
    conn: &mut PgConnection,
    job_id: JobId,
    cycle_id: Uuid,
    actions: i64,
    mark: &'static str,
) -> Result<(), StagerError> {
    let transition = syncguard_store::Transition {
        job_id: job_id.0,
        cycle_id,
        status: "staged",
        prefix: "Plan",
        actor: "service:stager",
        detail: "",
        with_objects: false,
    };
    syncguard_store::log_transition(
        conn,
        &transition,
        "SELECT action_id, anchor, action, NULL::uuid AS object_id FROM staged_actions
         WHERE cycle_id = $1 ORDER BY anchor COLLATE \"C\"",
        actions,
        mark,
    )
    .await?;
    Ok(())
}

/// Jobs with a push waiting to be staged and nothing held: what the periodic scan wakes the
/// worker for (after a crash, a lost wake-up, or in another instance).
pub async fn due_jobs(pool: &PgPool) -> Result<Vec<JobId>, StagerError> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT j.job_id FROM jobs j
         WHERE j.deleted_at IS NULL
           AND j.push_seq > COALESCE((SELECT max(c.seq) FROM cycles c WHERE c.job_id = j.job_id), 0)
           AND NOT EXISTS (SELECT 1 FROM quarantines q WHERE q.job_id = j.job_id AND q.state = 'open')
         LIMIT 200",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| JobId(id)).collect())
}
