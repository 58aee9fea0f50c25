//! Staging: the diff of a complete snapshot against the target directory, done inside
//! Postgres as one `INSERT ... SELECT` (a join on anchor and content hash), in one
//! transaction with the cycle row and its log rows.

use std::time::Instant;

use sqlx::{PgConnection, PgPool};
use syncguard_domain::{FieldError, JobId};
use syncguard_store::StoreError;
use uuid::Uuid;

use crate::error::StagerError;

/// The job settings staging needs.
#[derive(Debug, sqlx::FromRow)]
struct JobScope {
    scope_rules: serde_json::Value,
    deprovision_mode: String,
    allow_empty_source: bool,
}

/// What staging produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staged {
    /// A new cycle in state `staged`, ready for the gate.
    New(Uuid),
    /// The snapshot was staged before: its cycle.
    Existing(Uuid),
    /// The snapshot is empty while the target is not: the cycle failed instead of staging
    /// deletes of everything.
    SuspectEmpty(Uuid),
}

/// Stages `snapshot_id` of `job_id` as a new cycle, or returns the cycle it already became.
pub async fn stage(pool: &PgPool, job_id: JobId, snapshot_id: Uuid) -> Result<Staged, StagerError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let conn: &mut PgConnection = &mut transaction;

    let snapshot: Option<(Uuid, i64)> =
        sqlx::query_as("SELECT job_id, object_count FROM snapshots WHERE snapshot_id = $1")
            .bind(snapshot_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((owner, objects)) = snapshot else {
        return Err(StagerError::NotFound(format!(
            "snapshot {snapshot_id} not found"
        )));
    };
    if owner != job_id.0 {
        return Err(FieldError::new("snapshot_id", "the snapshot belongs to another job").into());
    }
    let existing: Option<(Uuid,)> =
        sqlx::query_as("SELECT cycle_id FROM cycles WHERE snapshot_id = $1")
            .bind(snapshot_id)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some((cycle_id,)) = existing {
        return Ok(Staged::Existing(cycle_id));
    }
    let job: Option<JobScope> = sqlx::query_as(
        "SELECT scope_rules, deprovision_mode, allow_empty_source FROM jobs WHERE job_id = $1 AND deleted_at IS NULL",
    )
    .bind(job_id.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(job) = job else {
        return Err(StagerError::NotFound(format!("job {job_id} not found")));
    };

    let cycle_id = Uuid::now_v7();
    // The cycle starts with the ingest phase its snapshot recorded while landing.
    let inserted = sqlx::query(
        "INSERT INTO cycles (cycle_id, job_id, snapshot_id, state, source_objects, phases, trace_parent) \
         SELECT $1, $2, $3, 'staged', $4, CASE WHEN s.load_millis IS NULL THEN '[]'::jsonb ELSE \
             jsonb_build_array(jsonb_build_object('phase', 'ingest', 'started_at', s.load_started_at, \
                                                  'millis', s.load_millis)) END, $5 \
         FROM snapshots s WHERE s.snapshot_id = $3",
    )
    .bind(cycle_id)
    .bind(job_id.0)
    .bind(snapshot_id)
    .bind(objects)
    // Later steps of the cycle (an apply after approval, a resumed apply) continue this trace.
    .bind(syncguard_telemetry::current_traceparent())
    .execute(&mut *conn)
    .await;
    if let Err(error) = inserted {
        return Err(match StoreError::from(error) {
            StoreError::AlreadyExists { constraint } if constraint == "cycles_one_open_per_job" => {
                StagerError::WrongState(format!(
                    "job {job_id} has an open cycle (quarantined or still applying); the snapshot is kept and staged later"
                ))
            }
            other => other.into(),
        });
    }

    let (live_targets,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM directory_objects WHERE job_id = $1 AND deleted_at IS NULL",
    )
    .bind(job_id.0)
    .fetch_one(&mut *conn)
    .await?;
    if objects == 0 && live_targets > 0 && !job.allow_empty_source {
        let error = format!(
            "the source returned no objects while the target holds {live_targets}: treated as a failed read, nothing staged (set allow_empty_source to stage the deletes)"
        );
        sqlx::query("UPDATE cycles SET state = 'failed', error = $2, finished_at = now(), updated_at = now() WHERE cycle_id = $1")
            .bind(cycle_id)
            .bind(&error)
            .execute(&mut *conn)
            .await?;
        transaction.commit().await.map_err(StoreError::from)?;
        tracing::warn!(job = %job_id, cycle = %cycle_id, live_targets, "empty source refused");
        return Ok(Staged::SuspectEmpty(cycle_id));
    }

    let scope = ScopeParameters::from_rules(&job.scope_rules);
    let cleared = clear_returned_pins(conn, job_id, snapshot_id, &scope).await?;
    if cleared > 0 {
        tracing::info!(job = %job_id, cycle = %cycle_id, cleared, "pins cleared: the objects are back in scope");
    }
    insert_actions(
        conn,
        ActionTable::Staged,
        cycle_id,
        job_id,
        snapshot_id,
        &scope,
        &job.deprovision_mode,
    )
    .await?;
    log_staged(conn, cycle_id).await?;
    record_phase(conn, cycle_id, "stage", started_at, started.elapsed()).await?;
    transaction.commit().await.map_err(StoreError::from)?;
    tracing::Span::current().record("cycle.id", tracing::field::display(cycle_id));
    tracing::info!(job = %job_id, cycle = %cycle_id, objects, millis = started.elapsed().as_millis() as u64, "cycle staged");
    Ok(Staged::New(cycle_id))
}

/// A job's scope rules compiled to a predicate over a source row `s` of snapshot `$1`.
/// Only the rules a job sets become SQL, so an unscoped job pays nothing for scoping.
/// Parameters: `$3` attribute matches (jsonb), `$4` lowercased base DNs, `$5` scoping group.
pub(crate) struct ScopeParameters {
    attribute_matches: serde_json::Value,
    base_dns: Vec<String>,
    member_of_group_anchor: String,
}

impl ScopeParameters {
    pub(crate) fn from_rules(rules: &serde_json::Value) -> Self {
        let base_dns = rules
            .get("base_dns")
            .and_then(|value| value.as_array())
            .map(|values| {
                values
                    .iter()
                    .filter_map(|value| value.as_str())
                    .map(|dn| {
                        dn.split(',')
                            .map(|part| part.trim().to_lowercase())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            attribute_matches: rules
                .get("attribute_matches")
                .cloned()
                .filter(|matches| matches.as_array().is_some_and(|list| !list.is_empty()))
                .unwrap_or_else(|| serde_json::json!([])),
            base_dns,
            member_of_group_anchor: rules
                .get("member_of_group_anchor")
                .and_then(|value| value.as_str())
                .unwrap_or_default()
                .to_owned(),
        }
    }

    fn predicate(&self) -> String {
        let mut clauses = vec!["true".to_owned()];
        if self
            .attribute_matches
            .as_array()
            .is_some_and(|list| !list.is_empty())
        {
            clauses.push(
                "NOT EXISTS (SELECT 1 FROM jsonb_array_elements($3::jsonb) m WHERE NOT EXISTS (
                     SELECT 1 FROM jsonb_array_elements_text(COALESCE(s.attributes -> lower(m ->> 'attribute'), '[]'::jsonb)) v
                     WHERE lower(v) IN (SELECT lower(x) FROM jsonb_array_elements_text(m -> 'values') x)))"
                    .to_owned(),
            );
        }
        if !self.base_dns.is_empty() {
            clauses.push(
                "EXISTS (SELECT 1 FROM unnest($4::text[]) b
                         WHERE lower(s.distinguished_name) = b OR lower(s.distinguished_name) LIKE '%,' || b)"
                    .to_owned(),
            );
        }
        if !self.member_of_group_anchor.is_empty() {
            clauses.push(
                "(s.object_type = 'group' OR s.anchor = ANY(COALESCE(
                     (SELECT g.member_anchors FROM source_objects g WHERE g.snapshot_id = $1 AND g.anchor = $5),
                     '{}'::text[])))"
                    .to_owned(),
            );
        }
        clauses.join(" AND ")
    }
}

/// Writes the cycle's staged actions. The diff is one FULL JOIN of narrow rows (anchor, type,
/// enabled, hash, scope verdict) between the snapshot and the job's target; attributes are
/// read back by primary key only for the few rows that changed.
pub(crate) async fn insert_actions(
    conn: &mut PgConnection,
    table: ActionTable,
    cycle_id: Uuid,
    job_id: JobId,
    snapshot_id: Uuid,
    scope: &ScopeParameters,
    deprovision_mode: &str,
) -> Result<(), StagerError> {
    // Hash joins of a million narrow rows fit in memory instead of spilling to disk.
    sqlx::query("SET LOCAL work_mem = '256MB'")
        .execute(&mut *conn)
        .await?;
    let in_scope = scope.predicate();
    let table = table.name();
    let sql = format!(
        "WITH src AS (
            SELECT s.anchor, s.object_type, s.enabled, s.deleted_in_source, s.content_hash,
                   ({in_scope}) AS in_scope
            FROM source_objects s WHERE s.snapshot_id = $1
        ),
        tgt AS (
            SELECT d.object_id, d.anchor, d.object_type, d.enabled, d.content_hash, d.deleted_at
            FROM directory_objects d WHERE d.job_id = $2
        ),
        joined AS (
            SELECT COALESCE(src.anchor, tgt.anchor) AS anchor,
                   COALESCE(src.object_type, tgt.object_type) AS object_type,
                   tgt.object_id,
                   src.anchor IS NOT NULL AND src.in_scope AND NOT src.deleted_in_source AS wanted,
                   src.anchor IS NULL OR src.deleted_in_source AS gone_from_source,
                   src.enabled AS source_enabled, tgt.enabled AS target_enabled,
                   src.content_hash AS source_hash, tgt.content_hash AS target_hash,
                   tgt.deleted_at
            FROM src FULL JOIN tgt ON tgt.anchor = src.anchor
        ),
        planned AS (
            SELECT anchor, object_type, object_id,
                CASE WHEN wanted THEN
                         CASE WHEN object_id IS NULL THEN 'create'
                              WHEN deleted_at IS NOT NULL THEN 'restore'
                              WHEN NOT source_enabled AND target_enabled THEN 'disable'
                              WHEN source_enabled AND NOT target_enabled THEN 'enable'
                              WHEN source_hash <> target_hash THEN 'update' END
                     WHEN object_id IS NOT NULL AND deleted_at IS NULL THEN
                         CASE WHEN $6 = 'disable' THEN CASE WHEN target_enabled THEN 'disable' END
                              ELSE 'delete' END
                END AS action,
                CASE WHEN wanted THEN
                         CASE WHEN object_id IS NULL THEN 'new_in_source'
                              WHEN deleted_at IS NOT NULL THEN 'reappeared'
                              WHEN NOT source_enabled AND target_enabled THEN 'disabled_in_source'
                              WHEN source_enabled AND NOT target_enabled THEN 'enabled_in_source'
                              ELSE 'attributes_changed' END
                     WHEN gone_from_source THEN 'removed_from_source'
                     ELSE 'out_of_scope' END AS reason,
                wanted
            FROM joined
        ),
        actions AS (
            -- Per-action lookups by key (LIMIT 1 keeps them lookups: joined, the planner would
            -- hash both million-row tables to fetch a few thousand rows).
            SELECT p.*,
                   s.attributes AS source_attributes, s.member_anchors, s.distinguished_name AS source_dn,
                   d.attributes AS target_attributes, d.distinguished_name AS target_dn
            FROM planned p
            LEFT JOIN LATERAL (
                SELECT o.attributes, o.member_anchors, o.distinguished_name FROM source_objects o
                WHERE p.wanted AND o.snapshot_id = $1 AND o.anchor = p.anchor LIMIT 1
            ) s ON true
            LEFT JOIN LATERAL (
                SELECT t.attributes, t.distinguished_name FROM directory_objects t
                WHERE p.object_id IS NOT NULL AND t.object_id = p.object_id LIMIT 1
            ) d ON true
            WHERE p.action IS NOT NULL
        )
        INSERT INTO {table} (action_id, cycle_id, job_id, anchor, object_type, object_id, action,
                                    reason, status, changed_attributes, display_name)
        SELECT gen_random_uuid(), $7, $2, p.anchor, p.object_type, p.object_id, p.action, p.reason, 'staged',
            CASE WHEN p.action IN ('update', 'enable', 'disable') AND p.source_attributes IS NOT NULL THEN
                ARRAY(SELECT k FROM (SELECT jsonb_object_keys(p.source_attributes) AS k
                                     UNION SELECT jsonb_object_keys(p.target_attributes)) keys
                      WHERE p.source_attributes -> k IS DISTINCT FROM p.target_attributes -> k
                      ORDER BY k)
                || CASE WHEN p.object_type = 'group' AND p.member_anchors IS DISTINCT FROM COALESCE(
                        (SELECT array_agg(m.member_anchor ORDER BY m.member_anchor COLLATE \"C\")
                         FROM directory_memberships m WHERE m.job_id = $2 AND m.group_anchor = p.anchor),
                        '{{}}'::text[])
                   THEN ARRAY['members'] ELSE '{{}}'::text[] END
                || CASE WHEN p.source_dn IS DISTINCT FROM p.target_dn THEN ARRAY['distinguished_name']
                   ELSE '{{}}'::text[] END
            ELSE '{{}}'::text[] END,
            COALESCE(p.source_attributes -> 'displayname' ->> 0, p.source_attributes -> 'cn' ->> 0,
                     p.target_attributes -> 'displayname' ->> 0, p.target_attributes -> 'cn' ->> 0, p.anchor)
        FROM actions p"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(snapshot_id)
        .bind(job_id.0)
        .bind(&scope.attribute_matches)
        .bind(&scope.base_dns)
        .bind(&scope.member_of_group_anchor)
        .bind(deprovision_mode)
        .bind(cycle_id)
        .execute(&mut *conn)
        .await?;
    // A pinned object is never deleted or disabled: its planned action is kept, skipped.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} a SET status = 'skipped_pinned' FROM pins p
         WHERE a.cycle_id = $1 AND a.action IN ('delete', 'disable') AND p.job_id = a.job_id AND p.anchor = a.anchor"
    )))
    .bind(cycle_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Where staged actions are written: the real table, or a preview's temporary copy.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ActionTable {
    /// `staged_actions`.
    Staged,
    /// `preview_actions`, a temporary table dropped at the end of the transaction.
    Preview,
}

impl ActionTable {
    fn name(self) -> &'static str {
        match self {
            ActionTable::Staged => "staged_actions",
            ActionTable::Preview => "preview_actions",
        }
    }
}

/// Pins of objects that are back in scope in this snapshot clear by themselves.
async fn clear_returned_pins(
    conn: &mut PgConnection,
    job_id: JobId,
    snapshot_id: Uuid,
    scope: &ScopeParameters,
) -> Result<u64, StagerError> {
    let (pinned,): (bool,) = sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pins WHERE job_id = $1)")
        .bind(job_id.0)
        .fetch_one(&mut *conn)
        .await?;
    if !pinned {
        return Ok(0);
    }
    let sql = format!(
        "DELETE FROM pins p USING source_objects s
         WHERE p.job_id = $2 AND s.snapshot_id = $1 AND s.anchor = p.anchor AND NOT s.deleted_in_source
           AND ({})",
        scope.predicate()
    );
    let cleared = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(snapshot_id)
        .bind(job_id.0)
        .bind(&scope.attribute_matches)
        .bind(&scope.base_dns)
        .bind(&scope.member_of_group_anchor)
        .execute(conn)
        .await?;
    Ok(cleared.rows_affected())
}

async fn log_staged(conn: &mut PgConnection, cycle_id: Uuid) -> Result<(), StagerError> {
    sqlx::query(
        "INSERT INTO provisioning_log (job_id, cycle_id, action_id, object_id, anchor, object_type, action,
             status, reason, display_action, changed_attributes, actor)
         SELECT job_id, cycle_id, action_id, object_id, anchor, object_type, action, 'staged', reason,
             'Plan' || initcap(action), changed_attributes, 'service:stager'
         FROM staged_actions WHERE cycle_id = $1
         ON CONFLICT DO NOTHING",
    )
    .bind(cycle_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends a phase timing to the cycle.
pub async fn record_phase(
    conn: &mut PgConnection,
    cycle_id: Uuid,
    phase: &str,
    started_at: chrono::DateTime<chrono::Utc>,
    took: std::time::Duration,
) -> Result<(), StagerError> {
    Ok(syncguard_store::record_phase(conn, cycle_id, phase, started_at, took).await?)
}
