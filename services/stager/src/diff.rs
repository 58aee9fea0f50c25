//! The diff itself: a cycle's source rows against the target directory under the job's
//! scope rules, written as staged actions by one `INSERT ... SELECT` inside Postgres.
//!
//! A full read is joined whole (`FULL JOIN`: what the source no longer has is removed). A
//! delta is joined only on the anchors it names (`LEFT JOIN`): its cost is its size.

use sqlx::FromRow as _;
use sqlx::PgConnection;
use syncguard_domain::{DeprovisionMode, JobId, ScopeRules};
use syncguard_store::{BatchIds, SMALL_DELTA_MARK, StagedCount};
use uuid::Uuid;

use crate::error::StagerError;

/// Closes an action-writing statement whose insert is the CTE `inserted`: the actions it
/// wrote, counted as they were written (the cycle keeps these counts; counted again from the
/// table, each reader planned and ran its own count).
const COUNTED: &str = "RETURNING action, object_type, status)
     SELECT action, object_type, status, count(*) AS count FROM inserted GROUP BY 1, 2, 3";

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

/// Where the cycle's source rows are read from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SourceTable {
    /// `source_objects` of the cycle's snapshot.
    Snapshot,
    /// `preview_source`, a temporary table holding the job's latest data.
    Preview,
}

impl SourceTable {
    fn name(self) -> &'static str {
        match self {
            SourceTable::Snapshot => "source_objects",
            SourceTable::Preview => "preview_source",
        }
    }
}

/// What to diff: parameters `$1` snapshot, `$2` job, `$3` attribute matches (jsonb), `$4`
/// base DNs, `$5` scoping group, `$6` deprovision mode, `$7` cycle (and, for the actions
/// written, `$8`/`$9` their [`BatchIds`]).
pub(crate) struct Diff<'a> {
    /// Where the actions go.
    pub table: ActionTable,
    /// Where the source rows come from.
    pub source: SourceTable,
    /// The cycle the actions belong to.
    pub cycle_id: Uuid,
    /// The job.
    pub job_id: JobId,
    /// The snapshot whose rows are diffed.
    pub snapshot_id: Uuid,
    /// A delta: only its anchors are compared.
    pub delta: bool,
    /// The job's scope.
    pub scope: &'a ScopeRules,
    /// Delete or disable what leaves.
    pub deprovision: DeprovisionMode,
    /// The statements run under a small delta's planner settings (key probes, generic plans):
    /// their text is marked so a plan cached under those settings serves only small deltas.
    pub small_delta: bool,
}

impl Diff<'_> {
    /// The mark a statement of this diff carries, so its cached plans stay with diffs of the
    /// same kind.
    pub(crate) fn mark(&self) -> &'static str {
        if self.small_delta {
            SMALL_DELTA_MARK
        } else {
            ""
        }
    }

    /// The scope rules compiled to a predicate over a source row `s`. Only the rules a job
    /// sets become SQL, so an unscoped job pays nothing for scoping. Base DNs match as
    /// literal suffixes (no LIKE wildcards).
    fn in_scope(&self) -> String {
        let source = self.source.name();
        let mut clauses = vec!["true".to_owned()];
        if !self.scope.attribute_matches.is_empty() {
            clauses.push(
                "NOT EXISTS (SELECT 1 FROM jsonb_array_elements($3::jsonb) m WHERE NOT EXISTS (
                     SELECT 1 FROM jsonb_array_elements_text(COALESCE(s.attributes -> lower(m ->> 'attribute'), '[]'::jsonb)) v
                     WHERE lower(v) IN (SELECT lower(x) FROM jsonb_array_elements_text(m -> 'values') x)))"
                    .to_owned(),
            );
        }
        if !self.scope.base_dns.is_empty() {
            clauses.push(
                "EXISTS (SELECT 1 FROM unnest($4::text[]) b
                         WHERE lower(s.distinguished_name) = b
                            OR right(lower(s.distinguished_name), length(b) + 1) = ',' || b)"
                    .to_owned(),
            );
        }
        if !self.scope.member_of_group_anchor.is_empty() {
            // The scoping group's members as the source gives them, matched by a hashed
            // subquery (built once per statement): `s.anchor = ANY(members)` compared each
            // row with the whole array, quadratic in the read (200,000 rows against a group
            // of 50,000 members: 225 s, against 73 ms hashed; psql).
            let source_members = format!(
                "SELECT unnest(g.member_anchors) FROM {source} g
                 WHERE g.snapshot_id = $1 AND g.anchor = $5 AND g.change <> 'delete'"
            );
            let member = if self.delta {
                // A delta that does not carry the scoping group reads membership from the
                // target, one key probe per row.
                format!(
                    "CASE WHEN EXISTS (SELECT 1 FROM {source} g
                                       WHERE g.snapshot_id = $1 AND g.anchor = $5 AND g.change <> 'delete')
                          THEN s.anchor IN ({source_members})
                          ELSE EXISTS (SELECT 1 FROM directory_memberships m
                                       WHERE m.job_id = $2 AND m.group_anchor = $5
                                         AND m.member_anchor = s.anchor) END"
                )
            } else {
                format!("s.anchor IN ({source_members})")
            };
            clauses.push(format!("(s.object_type = 'group' OR {member})"));
        }
        clauses.join(" AND ")
    }

    fn attribute_matches(&self) -> serde_json::Value {
        serde_json::to_value(&self.scope.attribute_matches)
            .unwrap_or_else(|_| serde_json::json!([]))
    }

    fn bind<'q>(
        &'q self,
        sql: &'q str,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.snapshot_id)
            .bind(self.job_id.0)
            .bind(self.attribute_matches())
            .bind(self.scope.normalized_base_dns())
            .bind(&self.scope.member_of_group_anchor)
            .bind(self.deprovision.as_str())
            .bind(self.cycle_id)
    }

    /// Writes the cycle's actions. The diff is one join of narrow rows (anchor, type,
    /// enabled, hash, scope verdict) between the source rows and the job's target;
    /// attributes are read back by key only for the rows that changed. Pinned objects'
    /// deletes and disables are kept, marked `skipped_pinned`.
    pub(crate) async fn write_actions(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Vec<StagedCount>, StagerError> {
        if !self.delta && !self.job_has_objects(&mut *conn).await? {
            return self.write_first_load(conn).await;
        }
        let in_scope = self.in_scope();
        let table = self.table.name();
        let source = self.source.name();
        // A delta's target rows are probed by key, one per anchor it names, behind a fence
        // (OFFSET 0) the planner cannot pull up: a job loaded since the last ANALYZE is
        // estimated at a few rows, and the semi-join read all of its objects instead (33-52 ms
        // for a one-object delta on a fresh 100,000-object job, statement log).
        let (target, join) = if self.delta {
            (
                "FROM src CROSS JOIN LATERAL (
                     SELECT o.object_id, o.anchor, o.object_type, o.enabled, o.content_hash, o.deleted_at
                     FROM directory_objects o WHERE o.job_id = $2 AND o.anchor = src.anchor OFFSET 0) d",
                "LEFT JOIN",
            )
        } else {
            ("FROM directory_objects d WHERE d.job_id = $2", "FULL JOIN")
        };
        let sql = format!(
            "{mark}WITH src AS (
                SELECT s.anchor, s.object_type, s.enabled, (s.deleted_in_source OR s.change = 'delete') AS gone,
                       s.content_hash, ({in_scope}) AS in_scope
                FROM {source} s WHERE s.snapshot_id = $1
            ),
            tgt AS (
                SELECT d.object_id, d.anchor, d.object_type, d.enabled, d.content_hash, d.deleted_at
                {target}
            ),
            joined AS (
                SELECT COALESCE(src.anchor, tgt.anchor) AS anchor,
                       -- A wanted object is what the source says it is; one that goes is the
                       -- object the target holds under that anchor, whatever type the source
                       -- now gives it (the log and the change feed name that type).
                       CASE WHEN src.anchor IS NOT NULL AND src.in_scope AND NOT src.gone
                            THEN src.object_type
                            ELSE COALESCE(tgt.object_type, src.object_type) END AS object_type,
                       tgt.object_id,
                       src.anchor IS NOT NULL AND src.in_scope AND NOT src.gone AS wanted,
                       src.anchor IS NULL OR src.gone AS gone_from_source,
                       src.enabled AS source_enabled, tgt.enabled AS target_enabled,
                       src.content_hash AS source_hash, tgt.content_hash AS target_hash,
                       tgt.deleted_at
                FROM src {join} tgt ON tgt.anchor = src.anchor
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
                -- Per-action lookups by key (LIMIT 1 keeps them lookups: joined, the planner
                -- would hash both million-row tables to fetch a few thousand rows).
                SELECT p.*,
                       s.attributes AS source_attributes, s.member_anchors, s.distinguished_name AS source_dn,
                       d.attributes AS target_attributes, d.distinguished_name AS target_dn
                FROM planned p
                LEFT JOIN LATERAL (
                    SELECT o.attributes, o.member_anchors, o.distinguished_name FROM {source} o
                    WHERE p.wanted AND o.snapshot_id = $1 AND o.anchor = p.anchor LIMIT 1
                ) s ON true
                LEFT JOIN LATERAL (
                    SELECT t.attributes, t.distinguished_name FROM directory_objects t
                    WHERE p.object_id IS NOT NULL AND t.object_id = p.object_id LIMIT 1
                ) d ON true
                WHERE p.action IS NOT NULL
            ),
            inserted AS (INSERT INTO {table} (action_id, cycle_id, job_id, anchor, object_type, object_id, action,
                                 reason, status, changed_attributes, display_name)
            SELECT syncguard_batch_id($8, $9, row_number() OVER ()), $7, $2, p.anchor, p.object_type, p.object_id, p.action, p.reason,
                CASE WHEN p.action IN ('delete', 'disable')
                          AND EXISTS (SELECT 1 FROM pins pin WHERE pin.job_id = $2 AND pin.anchor = p.anchor)
                     THEN 'skipped_pinned' ELSE 'staged' END,
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
            FROM actions p
            {COUNTED}",
            mark = self.mark(),
        );
        self.insert_actions(conn, &sql).await
    }

    /// Runs an action-writing statement (its insert named `inserted`, closed by
    /// [`COUNTED`]): the diff's parameters, then the ids (`$8`, `$9`) its rows are numbered
    /// under. Returns the actions it wrote, counted by action, object type and status.
    async fn insert_actions(
        &self,
        conn: &mut PgConnection,
        sql: &str,
    ) -> Result<Vec<StagedCount>, StagerError> {
        let ids = BatchIds::draw();
        let counts = self
            .bind(sql)
            .bind(&ids.prefix)
            .bind(ids.start)
            .try_map(|row: sqlx::postgres::PgRow| StagedCount::from_row(&row))
            .fetch_all(conn)
            .await?;
        Ok(counts)
    }

    /// Whether the job's target holds any object, live or soft-deleted. Read while the job
    /// has no open cycle (checked under the stage claim), so no apply of the job runs
    /// beside it, and restores and purges only act on objects that exist.
    async fn job_has_objects(&self, conn: &mut PgConnection) -> Result<bool, StagerError> {
        let (any,): (bool,) =
            sqlx::query_as("SELECT EXISTS (SELECT 1 FROM directory_objects WHERE job_id = $1)")
                .bind(self.job_id.0)
                .fetch_one(conn)
                .await?;
        Ok(any)
    }

    /// The diff of a full read against an empty target: every wanted source row is a create
    /// and nothing else happens, so the actions are written straight from the source rows,
    /// without the join to the target and without looking each create's row up again for
    /// its display name (0.25 s of a 100,000-object first load). The columns are those the
    /// general diff gives a create: no changed attributes, never pinned (pins hold deletes
    /// and disables only), the display name from the same attributes in the same order.
    async fn write_first_load(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Vec<StagedCount>, StagerError> {
        let sql = format!(
            "WITH inserted AS (
             INSERT INTO {table} (action_id, cycle_id, job_id, anchor, object_type, object_id, action,
                                 reason, status, changed_attributes, display_name)
             SELECT syncguard_batch_id($8, $9, row_number() OVER ()), $7, $2, s.anchor, s.object_type,
                    NULL, 'create', 'new_in_source', 'staged', '{{}}',
                    COALESCE(s.attributes -> 'displayname' ->> 0, s.attributes -> 'cn' ->> 0, s.anchor)
             FROM {source} s
             WHERE s.snapshot_id = $1 AND NOT (s.deleted_in_source OR s.change = 'delete')
               AND ({in_scope})
             {COUNTED}",
            table = self.table.name(),
            source = self.source.name(),
            in_scope = self.in_scope(),
        );
        self.insert_actions(conn, &sql).await
    }

    /// Records on the cycle the pinned anchors this source shows back in the state their
    /// rejected action would have changed (present, in scope, and, for a rejected disable of
    /// a sign-in block, enabled), when staging started and how long it took, and the counts
    /// of what it staged.
    pub(crate) async fn record_staging(
        &self,
        conn: &mut PgConnection,
        started_at: chrono::DateTime<chrono::Utc>,
        millis: i64,
        counts: &[StagedCount],
    ) -> Result<(), StagerError> {
        let sql = format!(
            "{mark}UPDATE cycles SET returned_pins = (
                 SELECT COALESCE(array_agg(p.anchor ORDER BY p.anchor), '{{}}') FROM pins p
                 JOIN {source} s ON s.snapshot_id = $1 AND s.anchor = p.anchor
                 WHERE p.job_id = $2 AND s.change <> 'delete' AND NOT s.deleted_in_source AND ({in_scope})
                   AND (p.rejected_reason <> 'disabled_in_source' OR s.enabled)),
                 stage_started_at = $8, stage_millis = $9, staged_counts = {counts}, updated_at = now()
             WHERE cycle_id = $7",
            mark = self.mark(),
            counts = syncguard_store::staged_counts_value(10),
            source = self.source.name(),
            in_scope = self.in_scope(),
        );
        syncguard_store::bind_staged_counts(self.bind(&sql).bind(started_at).bind(millis), counts)
            .execute(conn)
            .await?;
        Ok(())
    }
}
