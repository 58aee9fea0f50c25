//! Applying, retention's step of a cycle: once the gate decided a cycle may go ahead (within
//! limits, allowed, or rejected with its non-destructive actions), every change it carries
//! reaches the target directory in one transaction: soft deletes first (so a deleted member's
//! group memberships are kept as they were before the cycle's first write), then creates,
//! updates, enables, disables, restores, memberships, the log rows, the change feed, and the
//! record that the cycle is applied. Nothing the gate did not decide is touched.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use syncguard_domain::{ActionKind, CycleState, JobId};
use syncguard_store::{Claim, SMALL_DELTA_MARK, StoreError};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::error::RetentionError;
use crate::feed;

/// Cycles larger than this are applied with hash joins only: fresh rows often have no
/// statistics yet, and a nested loop chosen on a one-row estimate would take hours.
const LARGE_APPLY: i64 = 5_000;

/// Whether an apply of `total` actions finds its rows by key probes (see `Target::keyed`)
/// rather than hash joins: when it is small, or small beside the cycle's source. A probe
/// costs about ten times what one object costs a hash join, and a join reads all of the
/// job's objects: 10,000 allowed deletes on a 1,000,000-object job hashed the million
/// objects in each statement that joins them (AllowDeletes 5.15 s in scripts/bench).
fn probes(total: i64, source_objects: i64) -> bool {
    total <= LARGE_APPLY || total.saturating_mul(10) <= source_objects
}

/// Deltas of at most this many rows are applied with plans made once per connection (see
/// [`SMALL_DELTA_MARK`]): at most as many actions as rows, so never analyzed (see
/// [`collect_apply_set`]) and always probed.
const SMALL_DELTA_ROWS: i64 = 1_000;

// A small delta's apply runs with generic plans and without hash or merge joins, its
// statements marked with `SMALL_DELTA_MARK`. Left to choose, Postgres planned the apply's
// statements again for most deltas (a custom plan for the cycle's id looked cheaper than the
// generic one): pg_stat_statements counted 0.75 ms of planning for the collecting statement
// and about 1.0 ms for a whole one-object apply (2.85 s over 2,842 applies; 0.03 ms with the
// mark), several times the statements' execution.

/// A cycle the gate decided and retention has not applied yet.
#[derive(Debug, sqlx::FromRow)]
struct Decided {
    cycle_id: Uuid,
    snapshot_id: Uuid,
    state: String,
    trace_parent: Option<String>,
    /// Objects the cycle's push carried (a full read: about the job's size).
    source_objects: i64,
    /// A delta (it names the anchors it changes), not a full read.
    delta: bool,
    /// Who the applied actions are attributed to: the gate (within limits) or the approver
    /// who made the decision final.
    actor: Option<String>,
}

/// The job's decided cycle waiting to be applied, if any (one open cycle per job: its newest).
async fn decided_cycle(
    conn: &mut PgConnection,
    job_id: JobId,
) -> Result<Option<Decided>, RetentionError> {
    Ok(sqlx::query_as(
        "SELECT cs.cycle_id, cs.snapshot_id, cs.state, cs.trace_parent, cs.source_objects, cs.delta, \
             (SELECT COALESCE(q.closed_by, d.actor) FROM decisions d \
              LEFT JOIN quarantines q ON q.quarantine_id = d.quarantine_id WHERE d.cycle_id = cs.cycle_id) AS actor \
         FROM cycle_states cs \
         WHERE cs.cycle_id = (SELECT cycle_id FROM cycles WHERE job_id = $1 ORDER BY seq DESC LIMIT 1) \
           AND cs.state IN ('applying', 'allowed', 'rejected')",
    )
    .bind(job_id.0)
    .fetch_optional(conn)
    .await?)
}

/// Jobs whose newest cycle is decided and not applied.
pub async fn due_jobs(pool: &PgPool) -> Result<Vec<JobId>, RetentionError> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT j.job_id FROM jobs j
         CROSS JOIN LATERAL (SELECT cycle_id FROM cycles c WHERE c.job_id = j.job_id ORDER BY seq DESC LIMIT 1) latest
         JOIN decisions d ON d.cycle_id = latest.cycle_id
         LEFT JOIN quarantines q ON q.quarantine_id = d.quarantine_id
         WHERE NOT EXISTS (SELECT 1 FROM applied_cycles ac WHERE ac.cycle_id = latest.cycle_id)
           AND (d.verdict = 'apply' OR q.state IN ('allowed', 'partially_allowed', 'rejected'))
         LIMIT 200",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| JobId(id)).collect())
}

/// Applies the job's decided cycle; `None` when there is none (or another retention instance
/// is applying it). The apply is traced as a step of the cycle's own trace.
pub async fn apply_next(
    pool: &PgPool,
    now: DateTime<Utc>,
    job_id: JobId,
) -> Result<Option<Uuid>, RetentionError> {
    let (started, started_at) = (Instant::now(), Utc::now());
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    // The claim keeps other retention instances out; the look after it sees what one of
    // them committed before.
    if !syncguard_store::try_claim(&mut transaction, Claim::ApplyJob(job_id.0)).await? {
        return Ok(None);
    }
    let Some(cycle) = decided_cycle(&mut transaction, job_id).await? else {
        return Ok(None);
    };
    let span = tracing::info_span!("cycle.apply", job.id = %job_id, cycle.id = %cycle.cycle_id);
    if let Some(traceparent) = &cycle.trace_parent {
        syncguard_telemetry::continue_trace(&span, traceparent);
    }
    apply_decided(transaction, now, job_id, cycle, started, started_at)
        .instrument(span)
        .await
        .map(Some)
}

/// Applies `cycle`, the job's decided cycle, in `transaction` (which holds the job's apply
/// claim) and commits.
async fn apply_decided(
    mut transaction: sqlx::Transaction<'static, sqlx::Postgres>,
    now: DateTime<Utc>,
    job_id: JobId,
    cycle: Decided,
    started: Instant,
    started_at: DateTime<Utc>,
) -> Result<Uuid, RetentionError> {
    let state: CycleState = cycle
        .state
        .parse()
        .map_err(|error: syncguard_domain::UnknownName| StoreError::Corrupt(error.to_string()))?;
    let actor = cycle.actor.clone().ok_or_else(|| {
        StoreError::Corrupt(format!(
            "cycle {} is decided without a decision",
            cycle.cycle_id
        ))
    })?;
    let mark = if cycle.delta && cycle.source_objects <= SMALL_DELTA_ROWS {
        sqlx::raw_sql(
            "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; \
             SET LOCAL plan_cache_mode = force_generic_plan",
        )
        .execute(&mut *transaction)
        .await?;
        SMALL_DELTA_MARK
    } else {
        // Collecting ranks the actions in anchor order: a sort of up to a million narrow
        // rows, in memory rather than spilled.
        sqlx::raw_sql("SET LOCAL work_mem = '256MB'")
            .execute(&mut *transaction)
            .await?;
        ""
    };
    let ApplySet { kinds, groups } = collect_apply_set(
        &mut transaction,
        cycle.cycle_id,
        state == CycleState::Applying,
        mark,
    )
    .await?;
    let total: i64 = kinds.values().sum();
    let probe = probes(total, cycle.source_objects);
    // A small delta's settings were set before its apply set was collected.
    let settings = match (mark.is_empty(), probe) {
        (false, _) => None,
        (true, false) => Some("SET LOCAL enable_nestloop = off; SET LOCAL work_mem = '256MB'"),
        // A small apply set: key lookups into the directory, whatever the statistics of a
        // large job say (a hash of the whole directory costs hundreds of milliseconds).
        (true, true) => Some("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"),
    };
    if let Some(settings) = settings {
        sqlx::raw_sql(settings).execute(&mut *transaction).await?;
    }

    let target = Target {
        cycle_id: cycle.cycle_id,
        job_id,
        snapshot_id: cycle.snapshot_id,
        now,
        source_objects: cycle.source_objects,
        kinds,
        groups,
        large: !probe,
        mark,
    };
    let has = |kind: ActionKind| target.count(&[kind]) > 0;
    if has(ActionKind::Delete) {
        let span = tracing::info_span!("objects.soft_delete", cycle.id = %cycle.cycle_id, objects = target.count(&[ActionKind::Delete]));
        target
            .soft_delete(&mut transaction)
            .instrument(span)
            .await?;
    }
    if has(ActionKind::Create) {
        target.create(&mut transaction).await?;
    }
    if has(ActionKind::Update)
        || has(ActionKind::Enable)
        || has(ActionKind::Restore)
        || has(ActionKind::Disable)
    {
        target.take_source_state(&mut transaction).await?;
    }
    if has(ActionKind::Restore) {
        target.rejoin_groups(&mut transaction).await?;
    }
    if has(ActionKind::Disable) {
        target.deprovision_disabled(&mut transaction).await?;
    }
    if target.count_groups(REWRITING_MEMBERS) > 0 {
        target.rewrite_memberships(&mut transaction).await?;
    }
    target.log_applied(&mut transaction, &actor).await?;
    if total > 0 {
        // Its own statement: the feed's rows are read after the clock's lock is held, so a
        // batch never shows less than the batches numbered before it.
        let batch = feed::next_batch(&mut transaction, &[job_id.0]).await?;
        target.feed(&mut transaction, batch).await?;
    }
    sqlx::query(
        "INSERT INTO applied_cycles (cycle_id, job_id, started_at, millis) VALUES ($1, $2, $3, $4)",
    )
    .bind(cycle.cycle_id)
    .bind(job_id.0)
    .bind(started_at)
    .bind(started.elapsed().as_millis() as i64)
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await.map_err(StoreError::from)?;
    syncguard_telemetry::cycle_outcome("completed");
    tracing::info!(job = %job_id, cycle = %cycle.cycle_id, decided = %state, actions = total, actor, millis = started.elapsed().as_millis() as u64, "cycle applied");
    Ok(cycle.cycle_id)
}

/// Past this size the apply set's table is truncated before it is filled again, instead of
/// having its rows deleted: a large apply's rows, or many small applies' dead rows.
const APPLY_SET_TRUNCATE_BYTES: i64 = 1024 * 1024;

/// Copies the actions to apply into a temporary table (read once), analyzes it so the
/// statements below are planned on real counts, and counts them by kind. A create's new
/// object takes the create's own action id as its id (unique: action ids are), so the
/// statements after the insert (the log, the feed) know every action's object without
/// looking the objects up again, and no id is made per row: numbering the rows and
/// formatting an id for each took about 0.6 s of collecting a 1,000,000-object first load
/// (EXPLAIN ANALYZE).
///
/// A cycle applied `within_limits` (no quarantine) applies every staged action that no pin
/// skipped, which is what `action_states` says of it before the apply: it is read from its
/// table directly. The view's joins and its state for each row took about 0.7 s of the same
/// collection. A decided quarantine's actions are read through the view, which knows what
/// each decision allowed.
///
/// Each action but a delete is ranked among them in anchor order as it is copied (`feed_rank`):
/// its place in the change feed after the cycle's soft deletes (see [`Target::feed`]). The
/// rows are narrow here; ranked in the feed's own statement, the objects' full rows were
/// sorted, and a 1,000,000-object first load's sort spilled 311 MB to disk (6.85 s for the
/// feed, statement log).
async fn collect_apply_set(
    conn: &mut PgConnection,
    cycle_id: Uuid,
    within_limits: bool,
    mark: &str,
) -> Result<ApplySet, RetentionError> {
    // The table lives as long as the connection: creating and dropping it per cycle cost
    // more than a small cycle's own statements. Each apply empties it as it fills it. Emptied
    // at every commit instead (ON COMMIT DELETE ROWS), it was truncated with its TOAST table,
    // whose index was rebuilt on disk: 0.45 ms of every apply's commit. The dead rows the
    // deletes leave are reclaimed by truncating the table once it has grown.
    // `soft_deleted_set` lives beside it: the objects the apply's soft delete changed, which the
    // feed reports without looking them up again (see `Target::soft_delete`). Sizes include
    // TOAST: the deleted objects' attributes live there. A temp table whose columns change
    // takes a new name: a session a pooler hands on could still hold the old shape.
    let (size, deleted_size): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT pg_table_size(to_regclass('pg_temp.numbered_apply_set')), \
                pg_table_size(to_regclass('pg_temp.soft_deleted_set'))",
    )
    .fetch_one(&mut *conn)
    .await?;
    match (size, deleted_size) {
        (Some(bytes), Some(deleted_bytes)) => {
            if bytes.max(deleted_bytes) > APPLY_SET_TRUNCATE_BYTES {
                sqlx::query("TRUNCATE numbered_apply_set, soft_deleted_set")
                    .execute(&mut *conn)
                    .await?;
            }
        }
        _ => {
            // Statistics from a sample of 3,000 rows (target 10) instead of every row of a
            // set up to 30,000: the kinds, types and reasons have a handful of values each and
            // the anchors and ids are all distinct, which a sample shows as well as the whole
            // set. ANALYZE of 10,000 rows: 3 ms instead of 10 ms (psql, this machine kind).
            sqlx::raw_sql(
                "CREATE TEMP TABLE IF NOT EXISTS numbered_apply_set (action_id uuid, anchor text, \
                 object_type text, object_id uuid, action text, reason text, \
                 changed_attributes text[], feed_rank integer); \
                 ALTER TABLE numbered_apply_set ALTER anchor SET STATISTICS 10, \
                 ALTER object_type SET STATISTICS 10, ALTER object_id SET STATISTICS 10, \
                 ALTER action SET STATISTICS 10, ALTER reason SET STATISTICS 10; \
                 CREATE TEMP TABLE IF NOT EXISTS soft_deleted_set (object_id uuid, anchor text, \
                 object_type text, distinguished_name text, attributes jsonb, enabled boolean, \
                 memberships_at_deletion text[])",
            )
            .execute(&mut *conn)
            .await?;
        }
    }
    // Emptied, copied and counted by kind in one statement.
    let source = if within_limits {
        "staged_actions WHERE cycle_id = $1 AND status = 'staged'"
    } else {
        "action_states WHERE cycle_id = $1 AND status IN ('staged', 'allowed')"
    };
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{mark}WITH emptied AS (DELETE FROM numbered_apply_set),
         emptied_deleted AS (DELETE FROM soft_deleted_set),
         collected AS (
             INSERT INTO numbered_apply_set
             SELECT action_id, anchor, object_type,
                    CASE WHEN action = 'create' THEN action_id ELSE object_id END,
                    action, reason, changed_attributes,
                    CASE WHEN action <> 'delete' THEN (count(*) FILTER (WHERE action <> 'delete')
                        OVER (ORDER BY anchor COLLATE \"C\" ROWS UNBOUNDED PRECEDING))::integer END
             FROM {source}
             RETURNING action, object_type)
         SELECT action, count(*), count(*) FILTER (WHERE object_type = 'group')
         FROM collected GROUP BY action",
    )))
    .bind(cycle_id)
    .fetch_all(&mut *conn)
    .await?;
    // Planned on real counts when it matters; a few rows plan fine on defaults.
    if rows.iter().map(|(_, count, _)| count).sum::<i64>() > 1000 {
        // The columns the statements join and filter on; not the attribute lists.
        sqlx::query("ANALYZE numbered_apply_set (anchor, object_type, object_id, action, reason)")
            .execute(&mut *conn)
            .await?;
    }
    let mut set = ApplySet::default();
    for (action, count, groups) in rows {
        let kind: ActionKind = action
            .parse()
            .map_err(|error: syncguard_domain::UnknownName| {
                RetentionError::Store(StoreError::Corrupt(error.to_string()))
            })?;
        set.kinds.insert(kind, count);
        set.groups.insert(kind, groups);
    }
    Ok(set)
}

/// What an apply set holds: its actions by kind, and of those the actions on groups.
#[derive(Debug, Default)]
struct ApplySet {
    kinds: HashMap<ActionKind, i64>,
    groups: HashMap<ActionKind, i64>,
}

/// The statements of one apply. Each binds what it uses, by position: `$1` job, then the
/// snapshot and/or the time where named.
struct Target {
    cycle_id: Uuid,
    job_id: JobId,
    snapshot_id: Uuid,
    now: DateTime<Utc>,
    /// Objects the cycle's push carried.
    source_objects: i64,
    /// The apply set's actions by kind.
    kinds: HashMap<ActionKind, i64>,
    /// Of those, the actions on groups.
    groups: HashMap<ActionKind, i64>,
    /// A large apply: its transaction runs with nested loops off.
    large: bool,
    /// [`SMALL_DELTA_MARK`] for a small delta's apply, else empty: every statement that
    /// reads the apply set carries it.
    mark: &'static str,
}

/// Which parameters an objects update binds after `$1` (the job).
enum Binds {
    /// `$2` the time.
    Now,
    /// `$2` the snapshot, `$3` the time.
    Source,
}

/// The actions whose objects take the source's state.
const TAKING_SOURCE_STATE: &[ActionKind] = &[
    ActionKind::Update,
    ActionKind::Enable,
    ActionKind::Restore,
    ActionKind::Disable,
];

/// The actions that may rewrite a group's members.
const REWRITING_MEMBERS: &[ActionKind] = &[
    ActionKind::Create,
    ActionKind::Update,
    ActionKind::Enable,
    ActionKind::Disable,
    ActionKind::Restore,
];

impl Target {
    /// The apply set's actions of these kinds on groups.
    fn count_groups(&self, kinds: &[ActionKind]) -> i64 {
        kinds
            .iter()
            .map(|kind| self.groups.get(kind).copied().unwrap_or(0))
            .sum()
    }

    /// The apply set's actions of these kinds.
    fn count(&self, kinds: &[ActionKind]) -> i64 {
        kinds
            .iter()
            .map(|kind| self.kinds.get(kind).copied().unwrap_or(0))
            .sum()
    }

    /// Whether a statement that acts on the actions of `kinds` finds its rows by key probes.
    /// Chosen per statement: the 1,000 updates beside an allow of 10,000 deletes are probed
    /// (each hash join would read all of the job's objects and its whole snapshot for them),
    /// while the deletes' statements join. In a large apply, where nested loops are off, a
    /// probe is still a nested loop (the fenced lateral subquery leaves the planner no other
    /// join); an update's probed rows are joined back to their table in nested loops too
    /// (see [`Target::update_objects`]).
    fn probe(&self, kinds: &[ActionKind]) -> bool {
        probes(self.count(kinds), self.source_objects)
    }

    /// Runs an `UPDATE directory_objects d` whose rows are picked as [`Target::updated_objects`]
    /// says for `probe`. Probed in a large apply, the statement runs with nested loops on
    /// and hash and merge joins off, and the apply's settings return after it: with nested
    /// loops off, the planner joined the probed rows back to `d` through a hash of the whole
    /// objects table, every job's rows (EXPLAIN ANALYZE, 1,000 updates among 200,000
    /// objects: 121 ms against 30 ms).
    async fn update_objects(
        &self,
        conn: &mut PgConnection,
        probe: bool,
        binds: Binds,
        sql: String,
    ) -> Result<(), RetentionError> {
        let switch = probe && self.large;
        if switch {
            sqlx::raw_sql(
                "SET LOCAL enable_nestloop = on; SET LOCAL enable_hashjoin = off; \
                 SET LOCAL enable_mergejoin = off",
            )
            .execute(&mut *conn)
            .await?;
        }
        match binds {
            Binds::Now => self.at_now(&mut *conn, sql).await?,
            Binds::Source => self.with_source(&mut *conn, sql).await?,
        }
        if switch {
            sqlx::raw_sql(
                "SET LOCAL enable_nestloop = off; SET LOCAL enable_hashjoin = on; \
                 SET LOCAL enable_mergejoin = on",
            )
            .execute(conn)
            .await?;
        }
        Ok(())
    }

    /// `sql` with this apply's mark.
    fn marked(&self, sql: &str) -> String {
        format!("{}{sql}", self.mark)
    }

    /// Runs `sql` with `$1` job and `$2` time.
    async fn at_now(&self, conn: &mut PgConnection, sql: String) -> Result<(), RetentionError> {
        sqlx::query(sqlx::AssertSqlSafe(self.marked(&sql)))
            .bind(self.job_id.0)
            .bind(self.now)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Runs `sql` with `$1` job, `$2` snapshot and `$3` time.
    async fn with_source(
        &self,
        conn: &mut PgConnection,
        sql: String,
    ) -> Result<(), RetentionError> {
        sqlx::query(sqlx::AssertSqlSafe(self.marked(&sql)))
            .bind(self.job_id.0)
            .bind(self.snapshot_id)
            .bind(self.now)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// `JOIN {table} {alias} ON {condition}`, where `condition` ties `alias` to the
    /// apply-set row `a` by key. In a small apply the same rows are found by a fenced key
    /// probe per apply-set row instead: a job or snapshot newer than the table's statistics
    /// is estimated at one row, and the planner then walked all of the job's objects once
    /// per statement, the apply set inside the loop (3.5 ms per 1,000 objects, auto_explain).
    fn keyed(probe: bool, table: &str, alias: &str, condition: &str) -> String {
        if probe {
            format!(
                "CROSS JOIN LATERAL (SELECT * FROM {table} {alias} WHERE {condition} OFFSET 0) {alias}"
            )
        } else {
            format!("JOIN {table} {alias} ON {condition}")
        }
    }

    /// The job's object (`d`; the job is `$2`) of each apply-set row.
    fn job_objects(probe: bool) -> String {
        Self::keyed(
            probe,
            "directory_objects",
            "d",
            "d.job_id = $2 AND d.anchor = a.anchor",
        )
    }

    /// The cycle's source row of each apply-set row (`s`; the snapshot is `$2`).
    fn source_rows(probe: bool) -> String {
        Self::keyed(
            probe,
            "source_objects",
            "s",
            "s.snapshot_id = $2 AND s.anchor = a.anchor",
        )
    }

    /// For an `UPDATE directory_objects d ... FROM numbered_apply_set a {from}` of the job `$1`: the
    /// rest of the `FROM` list and the `WHERE` clause that pick `d` for each apply-set row.
    fn updated_objects(probe: bool) -> (String, &'static str) {
        if probe {
            (
                Self::keyed(
                    probe,
                    "directory_objects",
                    "hit",
                    "hit.job_id = $1 AND hit.anchor = a.anchor",
                ),
                "d.object_id = hit.object_id",
            )
        } else {
            (String::new(), "d.job_id = $1 AND d.anchor = a.anchor")
        }
    }

    /// Soft delete: the object leaves the active directory but keeps its id, attributes and
    /// the groups it is in now (before this cycle changes any group) until retention ends.
    async fn soft_delete(&self, conn: &mut PgConnection) -> Result<(), RetentionError> {
        self.at_now(
            conn,
            // Each deleted object is looked up by its id (the staged delete names the live object
            // it removes, and while the cycle is open nothing else deletes, purges or replaces
            // it), fenced (`OFFSET 0`) so the planner can neither pull the probe up into a join
            // nor turn it around: on a fresh job's statistics ("1 row") a join scanned the job's
            // objects once per deleted object (577 ms for 1,026 deletes, EXPLAIN ANALYZE). The
            // probe names the id only, so the primary key is the one index that answers it; the
            // job and liveness are checked on the row found. By (job, type, anchor) each probe
            // compared text in the database's collation: 10,001 probes took 42 ms, by id 20 ms
            // (EXPLAIN ANALYZE, psql). The probe yields the row's address and the update visits
            // those rows directly (a TID scan): joined back by object id, a large allow hashed
            // the whole objects table, every job's rows (10,000 deletes: 410 ms, 217 ms by
            // address). Not `object_id = ANY(ARRAY(...))`: planned as a sequential scan testing
            // every object against the whole array, 54 s for 10,000 deletes; and no other
            // condition on `d`: with `d.job_id = $1` the planner walked the job's live objects
            // testing each against the addresses (5 s for 10,000). The addresses are read and
            // used in this one statement, and only applies (one per job at a time, under its
            // claim) change live objects: restores and purges touch soft-deleted ones only.
            //
            // The rows it changed are kept for the feed as they now are. Looked up again there,
            // the job's objects were joined by a hash, built on whichever side the statistics
            // said was smaller: right after a first load they say the job has a few hundred
            // objects, and the hash held all 100,000 of them (feed of 10,000 deletes: 87 ms,
            // auto_explain). This transaction holds the rows' locks until it commits, so no
            // other can change them before the feed is written, and none of its own later
            // statements does: a cycle has one action per anchor.
            "WITH deleted AS (
             UPDATE directory_objects d
             SET deleted_at = $2,
                 purge_after = $2 + make_interval(days => (SELECT retention_days FROM jobs WHERE job_id = $1)),
                 memberships_at_deletion = COALESCE(
                     (SELECT array_agg(m.group_anchor ORDER BY m.group_anchor)
                      FROM directory_memberships m WHERE m.job_id = d.job_id AND m.member_anchor = d.anchor),
                     '{}'),
                 updated_at = $2
             WHERE d.ctid = ANY(ARRAY(
                 SELECT found.ctid FROM numbered_apply_set a
                 CROSS JOIN LATERAL (
                     SELECT o.ctid, o.job_id, o.deleted_at FROM directory_objects o
                     WHERE o.object_id = a.object_id
                     OFFSET 0
                 ) found
                 WHERE a.action = 'delete' AND found.job_id = $1 AND found.deleted_at IS NULL))
             RETURNING d.object_id, d.anchor, d.object_type, d.distinguished_name, d.attributes, d.enabled,
                       d.memberships_at_deletion)
             INSERT INTO soft_deleted_set (object_id, anchor, object_type, distinguished_name, attributes, enabled,
                                       memberships_at_deletion)
             SELECT object_id, anchor, object_type, distinguished_name, attributes, enabled,
                    memberships_at_deletion FROM deleted"
                .to_owned(),
        )
        .await?;
        self.leave_groups(conn).await
    }

    /// A soft-deleted member leaves its groups; the memberships are kept on the object. The
    /// soft delete has just read all of them in this transaction, and none can be added since:
    /// applies of this job wait for this one, a restore adds memberships of the object it
    /// restores only, and a purge only removes. So each is deleted by its key, and a member in
    /// no group costs no probe: looked up again by member for every deleted object, 10,001
    /// probes took 22 ms (statement log) where most deleted users were in no group.
    async fn leave_groups(&self, conn: &mut PgConnection) -> Result<(), RetentionError> {
        sqlx::query(sqlx::AssertSqlSafe(self.marked(
            "DELETE FROM directory_memberships m WHERE m.ctid = ANY(ARRAY(
                 SELECT x.ctid FROM soft_deleted_set s
                 CROSS JOIN LATERAL unnest(s.memberships_at_deletion) g (group_anchor)
                 CROSS JOIN LATERAL (
                     SELECT ctid FROM directory_memberships x
                     WHERE x.job_id = $1 AND x.group_anchor = g.group_anchor AND x.member_anchor = s.anchor
                     OFFSET 0
                 ) x))",
        )))
        .bind(self.job_id.0)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// New objects, with the ids the apply set gave them. A plain insert, not `ON CONFLICT
    /// DO NOTHING`: the diff planned a create only for an anchor the job had no object for,
    /// and while the cycle is open nothing else creates one (restores and purges act on
    /// existing objects), so a conflict would be a broken invariant and fails the apply
    /// loudly instead of dropping the object. The
    /// speculative insertion `ON CONFLICT` needs cost 15% of a 100,000-object first load's
    /// insert (1.27 s against 1.08 s, EXPLAIN ANALYZE).
    async fn create(&self, conn: &mut PgConnection) -> Result<(), RetentionError> {
        self.with_source(
            conn,
            format!(
                "INSERT INTO directory_objects (object_id, job_id, anchor, object_type, distinguished_name,
                     attributes, enabled, content_hash, created_at, updated_at)
                 SELECT a.object_id, $1, s.anchor, s.object_type, s.distinguished_name, s.attributes,
                     s.enabled, s.content_hash, $3, $3
                 FROM numbered_apply_set a {source}
                 WHERE a.action = 'create'",
                source = Self::source_rows(self.probe(&[ActionKind::Create])),
            ),
        )
        .await
    }

    /// Objects still in the source take its state: updates, enables, sign-in blocks, and
    /// restores of a reappeared anchor (which keep their object id).
    async fn take_source_state(&self, conn: &mut PgConnection) -> Result<(), RetentionError> {
        let probe = self.probe(TAKING_SOURCE_STATE);
        let (objects, picked) = Self::updated_objects(probe);
        self.update_objects(
            conn,
            probe,
            Binds::Source,
            format!(
                "UPDATE directory_objects d SET distinguished_name = s.distinguished_name, attributes = s.attributes,
                     enabled = s.enabled, content_hash = s.content_hash, updated_at = $3,
                     deleted_at = NULL, purge_after = NULL
                 FROM numbered_apply_set a {objects} {source}
                 WHERE {picked}
                   AND (a.action IN ('update', 'enable', 'restore')
                        OR (a.action = 'disable' AND a.reason = 'disabled_in_source'))",
                source = Self::source_rows(probe),
            ),
        )
        .await
    }

    /// A restored member rejoins the groups it was in when it was soft-deleted (those that
    /// exist).
    async fn rejoin_groups(&self, conn: &mut PgConnection) -> Result<(), RetentionError> {
        sqlx::query(sqlx::AssertSqlSafe(self.marked(
            "WITH restored AS (
                 UPDATE directory_objects d SET memberships_at_deletion = '{}'
                 FROM numbered_apply_set a
                 WHERE a.action = 'restore' AND d.job_id = $1 AND d.anchor = a.anchor
                 RETURNING d.anchor, (SELECT o.memberships_at_deletion FROM directory_objects o
                                      WHERE o.object_id = d.object_id) AS groups
             )
             INSERT INTO directory_memberships (job_id, group_anchor, member_anchor)
             SELECT $1, g.group_anchor, r.anchor
             FROM restored r CROSS JOIN LATERAL unnest(r.groups) AS g(group_anchor)
             JOIN directory_objects live ON live.job_id = $1 AND live.object_type = 'group'
                                        AND live.anchor = g.group_anchor AND live.deleted_at IS NULL
             ON CONFLICT DO NOTHING",
        )))
        .bind(self.job_id.0)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Deprovisioning by disabling: the object left the source or the scope.
    async fn deprovision_disabled(&self, conn: &mut PgConnection) -> Result<(), RetentionError> {
        let probe = self.probe(&[ActionKind::Disable]);
        let (objects, picked) = Self::updated_objects(probe);
        self.update_objects(
            conn,
            probe,
            Binds::Now,
            format!(
                "UPDATE directory_objects d SET enabled = false, updated_at = $2
                 FROM numbered_apply_set a {objects}
                 WHERE a.action = 'disable' AND a.reason IN ('removed_from_source', 'out_of_scope')
                   AND {picked}"
            ),
        )
        .await
    }

    /// Deletes the memberships of the groups of apply-set rows matching `filter`. They are
    /// found by a fenced key probe per group and deleted by row id: joined directly, a table
    /// fresh from a first load (no statistics yet) was scanned whole once per anchor
    /// (4,000,000 rows compared for 200 deletes, 0.25-0.5 s).
    async fn drop_group_members(
        &self,
        conn: &mut PgConnection,
        filter: &'static str,
    ) -> Result<(), RetentionError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{mark}DELETE FROM directory_memberships m WHERE m.ctid = ANY(ARRAY(
                 SELECT x.ctid FROM numbered_apply_set a
                 CROSS JOIN LATERAL (
                     SELECT ctid FROM directory_memberships x
                     WHERE x.job_id = $1 AND x.group_anchor = a.anchor OFFSET 0
                 ) x
                 WHERE {filter}))",
            mark = self.mark,
        )))
        .bind(self.job_id.0)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Group memberships follow the source for every group the cycle took from it.
    async fn rewrite_memberships(&self, conn: &mut PgConnection) -> Result<(), RetentionError> {
        self.drop_group_members(
            &mut *conn,
            "a.object_type = 'group'
             AND a.action IN ('create', 'update', 'enable', 'disable', 'restore')
             AND (a.action <> 'disable' OR a.reason = 'disabled_in_source')",
        )
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{mark}INSERT INTO directory_memberships (job_id, group_anchor, member_anchor)
             SELECT $1, a.anchor, unnest(s.member_anchors)
             FROM numbered_apply_set a {source}
             WHERE a.object_type = 'group' AND a.action IN ('create', 'update', 'enable', 'disable', 'restore')
               AND (a.action <> 'disable' OR a.reason = 'disabled_in_source')
             ON CONFLICT DO NOTHING",
            source = Self::source_rows(self.probe(REWRITING_MEMBERS)),
            mark = self.mark,
        )))
        .bind(self.job_id.0)
        .bind(self.snapshot_id)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// One `applied` log entry per action, attributed to `actor`.
    async fn log_applied(
        &self,
        conn: &mut PgConnection,
        actor: &str,
    ) -> Result<(), RetentionError> {
        let transition = syncguard_store::Transition {
            job_id: self.job_id.0,
            cycle_id: self.cycle_id,
            status: "applied",
            prefix: "",
            actor,
            detail: "",
            with_objects: true,
        };
        let total: i64 = self.kinds.values().sum();
        // A cycle of creates only (a first load) applies exactly what it staged, in the
        // same order: its staged chunks are written again with the created ids.
        if self.count(&[ActionKind::Create]) == total
            && syncguard_store::log_applied_creates(conn, &transition, total, self.mark).await?
        {
            return Ok(());
        }
        // Each action's object is in the apply set (a create's new id included): no join.
        syncguard_store::log_transition(
            conn,
            &transition,
            "SELECT action_id, anchor, action, object_id FROM numbered_apply_set ORDER BY anchor COLLATE \"C\"",
            total,
            self.mark,
        )
        .await?;
        Ok(())
    }

    /// Every applied change into the change feed, with the object's state after it: the
    /// soft-deleted objects as their statement left them, the others looked up by anchor.
    /// The soft deletes come first, as the apply made them, then the other changes; each in
    /// anchor order (the others by the rank collected with them).
    async fn feed(&self, conn: &mut PgConnection, batch: i64) -> Result<(), RetentionError> {
        // Every action but a delete is looked up, probed or joined by how many there are.
        let looked_up = self.kinds.values().sum::<i64>() - self.count(&[ActionKind::Delete]);
        let objects = Self::job_objects(probes(looked_up, self.source_objects));
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{mark}INSERT INTO directory_changes (batch, position, job_id, object_id, anchor, object_type, change,
                 changed_attributes, distinguished_name, attributes, enabled, member_anchors, cycle_id, at)
             SELECT $4, x.position, $2, x.object_id, x.anchor,
                 x.object_type, x.change, x.changed_attributes, x.distinguished_name, x.attributes, x.enabled,
                 CASE WHEN x.object_type = 'group' THEN COALESCE(
                     (SELECT array_agg(m.member_anchor ORDER BY m.member_anchor COLLATE \"C\")
                      FROM directory_memberships m WHERE m.job_id = $2 AND m.group_anchor = x.anchor), '{{}}')
                 ELSE '{{}}' END,
                 $1, $3
             FROM (SELECT (row_number() OVER (ORDER BY s.anchor COLLATE \"C\"))::integer AS position,
                          s.object_id, s.anchor, s.object_type, 'soft_delete' AS change,
                          '{{}}'::text[] AS changed_attributes, s.distinguished_name, s.attributes, s.enabled
                   FROM soft_deleted_set s
                   UNION ALL
                   SELECT ((SELECT count(*) FROM soft_deleted_set) + a.feed_rank)::integer,
                          d.object_id, a.anchor, a.object_type, a.action, a.changed_attributes,
                          d.distinguished_name, d.attributes, d.enabled
                   FROM numbered_apply_set a {objects}
                   WHERE a.action <> 'delete') x",
            mark = self.mark,
        )))
        .bind(self.cycle_id)
        .bind(self.job_id.0)
        .bind(self.now)
        .bind(batch)
        .execute(conn)
        .await?;
        Ok(())
    }
}
