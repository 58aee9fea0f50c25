//! One transition of a cycle's actions into the provisioning log (`staged`, `applied`, ...).
//!
//! Many entries are stored in the log's compact form (migration 20261127000008): chunks of
//! 256 in the order given, which `QueryProvisioningLogs` expands entry by entry; a few are
//! plain rows. A fresh transition is written in its form by one `INSERT ... SELECT` from the
//! rows that name the actions; a transition that is already partly logged (a retried step)
//! goes through `syncguard_log_actions`, which logs each action once whichever form holds it.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::StoreError;

/// From this many entries a transition is kept in chunks, below it as plain entries: the
/// same line as `syncguard_log_actions` draws (`total < 64`). Written straight from the rows, 1,000,000 staged actions
/// took 1.18-1.21 s, against 1.86-1.89 s aggregated into arrays for the function, which
/// splits them up again (psql after a checkpoint, this machine kind; the chunks compared
/// equal, array by array).
const CHUNKED_FROM: i64 = 64;

/// What a transition writes beside each of its actions.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    /// The job the cycle belongs to.
    pub job_id: Uuid,
    /// The cycle whose actions change state.
    pub cycle_id: Uuid,
    /// The state they reach (`staged`, `applied`, ...).
    pub status: &'static str,
    /// Put before the action's name in the log's display action (`Plan` + `Create`).
    pub prefix: &'static str,
    /// Who made the change (`service:stager`, an approver, ...).
    pub actor: &'a str,
    /// Free text kept with every entry.
    pub detail: &'a str,
    /// Whether the rows name each action's object, which the log then keeps.
    pub with_objects: bool,
}

/// Logs `transition` for the actions `rows` yields, in the order it yields them. `rows` is a
/// `SELECT action_id, anchor, action, object_id ...` that may use `$1` (the cycle) and `$2`
/// (the job); `total` is how many it yields; `mark` goes before each statement (see
/// [`crate::SMALL_DELTA_MARK`]).
pub async fn log_transition(
    conn: &mut PgConnection,
    transition: &Transition<'_>,
    rows: &str,
    total: i64,
    mark: &str,
) -> Result<(), StoreError> {
    if total == 0 {
        return Ok(());
    }
    // Nothing is written straight once the cycle has entries of this status: then the
    // function logs only what is missing.
    let direct = if total >= CHUNKED_FROM {
        chunks_from_rows(rows, transition.with_objects)
    } else {
        entries_from_rows(rows, transition.with_objects)
    };
    let written = bind(
        sqlx::query(sqlx::AssertSqlSafe(format!("{mark}{direct}"))),
        transition,
    )
    .execute(&mut *conn)
    .await?;
    if written.rows_affected() > 0 {
        return Ok(());
    }
    let objects = if transition.with_objects {
        "array_agg(x.object_id)"
    } else {
        "NULL::uuid[]"
    };
    let sql = format!(
        "{mark}SELECT syncguard_log_actions($2, $1, NULL, $3, $4, $5, $6, array_agg(x.action_id),
             array_agg(x.anchor), array_agg(x.action), {objects})
         FROM ({rows}) x"
    );
    bind(sqlx::query(sqlx::AssertSqlSafe(sql)), transition)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Logs `transition` (with objects) for a cycle all of whose `total` staged actions are
/// creates and were all applied, by writing its `staged` chunks again: the same actions in the
/// same order and chunks, each create's object being its action id (the id a created object
/// takes). Aggregating the applied rows anew took 2.0 s of a 1,000,000-object first load's
/// apply (statement log); copying the chunks reads 3,907 rows instead of a million. Returns
/// whether it wrote them: `false` when the cycle's staged transition is not such a set of
/// chunks (fewer than [`CHUNKED_FROM`] actions, other kinds of action, or a different
/// count), or the transition is already logged; the caller then logs it from its rows.
pub async fn log_applied_creates(
    conn: &mut PgConnection,
    transition: &Transition<'_>,
    total: i64,
    mark: &str,
) -> Result<bool, StoreError> {
    if total < CHUNKED_FROM || !transition.with_objects {
        return Ok(false);
    }
    let written = bind(
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{mark}INSERT INTO provisioning_log_sets (entries, job_id, cycle_id, quarantine_id, status,
                 display_prefix, actor, detail, anchor_first, anchor_last, kinds, action_ids, anchors,
                 actions, object_ids)
             SELECT s.entries, $2, $1, NULL, $3, $4, $5, $6, s.anchor_first, s.anchor_last, s.kinds,
                    s.action_ids, s.anchors, s.actions, s.action_ids
             FROM provisioning_log_sets s
             WHERE s.cycle_id = $1 AND s.status = 'staged'
               AND (SELECT sum(c.entries) = $7 AND bool_and(c.kinds = '{{create}}')
                    FROM provisioning_log_sets c WHERE c.cycle_id = $1 AND c.status = 'staged')
               AND NOT (SELECT syncguard_transition_logged($1, $3))
             ORDER BY s.first_log_id
             ON CONFLICT DO NOTHING"
        ))),
        transition,
    )
    .bind(total)
    .execute(conn)
    .await?;
    Ok(written.rows_affected() > 0)
}

/// A fresh transition of many actions as chunks, in the rows' order: the rows are numbered
/// as they come, sorted by (chunk, number) (already in that order, so the sort only checks
/// it) and grouped by chunk over that sorted input, which feeds each chunk's aggregates in
/// row order.
fn chunks_from_rows(rows: &str, with_objects: bool) -> String {
    let objects = if with_objects {
        "array_agg(e.object_id)"
    } else {
        "NULL::uuid[]"
    };
    format!(
        "INSERT INTO provisioning_log_sets (entries, job_id, cycle_id, quarantine_id, status,
             display_prefix, actor, detail, anchor_first, anchor_last, kinds, action_ids, anchors,
             actions, object_ids)
         SELECT count(*), $2, $1, NULL, $3, $4, $5, $6, min(e.anchor COLLATE \"C\"),
                max(e.anchor COLLATE \"C\"), array_agg(DISTINCT e.action), array_agg(e.action_id),
                array_agg(e.anchor), array_agg(e.action), {objects}
         FROM (SELECT n.action_id, n.anchor, n.action, n.object_id, (n.ord - 1) / 256 AS chunk
               FROM (SELECT r.*, row_number() OVER () AS ord FROM ({rows}) r) n
               ORDER BY chunk, n.ord) e
         WHERE NOT (SELECT syncguard_transition_logged($1, $3))
         GROUP BY e.chunk
         ORDER BY e.chunk
         ON CONFLICT DO NOTHING"
    )
}

/// A fresh transition of a few actions as one plain entry each, in the rows' order, with
/// the staged action's type, reason and changed attributes (and its object unless the rows
/// name one): the rows the function writes, without building and taking apart its arrays.
fn entries_from_rows(rows: &str, with_objects: bool) -> String {
    let object = if with_objects {
        "e.object_id"
    } else {
        "a.object_id"
    };
    format!(
        "INSERT INTO provisioning_log (job_id, cycle_id, action_id, quarantine_id, object_id, anchor,
             object_type, action, status, reason, display_action, changed_attributes, actor, detail)
         SELECT $2, $1, a.action_id, NULL, {object}, a.anchor, a.object_type, a.action, $3, a.reason,
                $4 || initcap(a.action), a.changed_attributes, $5, $6
         FROM (SELECT r.action_id, r.object_id, row_number() OVER () AS ord FROM ({rows}) r) e
         JOIN staged_actions a ON a.action_id = e.action_id
         WHERE NOT (SELECT syncguard_transition_logged($1, $3))
         ORDER BY e.ord
         ON CONFLICT DO NOTHING"
    )
}

/// Binds `$1` to `$6` of both statements.
fn bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    transition: &Transition<'q>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(transition.cycle_id)
        .bind(transition.job_id)
        .bind(transition.status)
        .bind(transition.prefix)
        .bind(transition.actor)
        .bind(transition.detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::PgPool;

    /// The rows the stager logs a cycle's plans from.
    const STAGED_ROWS: &str = "SELECT action_id, anchor, action, NULL::uuid AS object_id \
         FROM staged_actions WHERE cycle_id = $1 ORDER BY anchor COLLATE \"C\"";

    /// A cycle of `count` staged actions, every `deletes_every`th a delete (none if 0) and the
    /// others creates, whose anchors are written in an order unlike their byte order.
    async fn staged_cycle(pool: &PgPool, count: i64, deletes_every: i64) -> Transition<'static> {
        crate::MIGRATOR.run(pool).await.expect("migrated");
        let transition = Transition {
            job_id: Uuid::now_v7(),
            cycle_id: Uuid::now_v7(),
            status: "staged",
            prefix: "Plan",
            actor: "service:stager",
            detail: "",
            with_objects: false,
        };
        sqlx::query(
            "INSERT INTO staged_actions (action_id, cycle_id, job_id, anchor, object_type, action, reason, status)
             SELECT gen_random_uuid(), $1, $2, 'a-' || md5(n::text), 'user',
                    CASE WHEN $4 > 0 AND n % $4 = 0 THEN 'delete' ELSE 'create' END,
                    CASE WHEN $4 > 0 AND n % $4 = 0 THEN 'removed_from_source' ELSE 'new_in_source' END,
                    'staged'
             FROM generate_series(1, $3) n",
        )
        .bind(transition.cycle_id)
        .bind(transition.job_id)
        .bind(count)
        .bind(deletes_every)
        .execute(pool)
        .await
        .expect("staged");
        transition
    }

    /// A transition's chunks in log order: entries, first and last anchor, kinds, ids,
    /// anchors, actions.
    type Chunk = (
        i32,
        String,
        String,
        Vec<String>,
        Vec<Uuid>,
        Vec<String>,
        Vec<String>,
    );

    async fn chunks(pool: &PgPool, cycle_id: Uuid, status: &str) -> Vec<Chunk> {
        sqlx::query_as(
            "SELECT entries, anchor_first, anchor_last, kinds, action_ids, anchors, actions
             FROM provisioning_log_sets WHERE cycle_id = $1 AND status = $2 ORDER BY first_log_id",
        )
        .bind(cycle_id)
        .bind(status)
        .fetch_all(pool)
        .await
        .expect("chunks read")
    }

    /// Logs a staged cycle of `count` actions twice: straight from its rows as `staged`, and
    /// through `syncguard_log_actions` as `held`, for comparing the two.
    async fn logged_both_ways(pool: &PgPool, count: i64) -> Transition<'static> {
        let transition = staged_cycle(pool, count, 3).await;
        let mut conn = pool.acquire().await.expect("connection");
        log_transition(&mut conn, &transition, STAGED_ROWS, count, "")
            .await
            .expect("logged");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT syncguard_log_actions($2, $1, NULL, 'held', 'Plan', 'service:stager', '',
                 array_agg(x.action_id), array_agg(x.anchor), array_agg(x.action), NULL)
             FROM ({STAGED_ROWS}) x"
        )))
        .bind(transition.cycle_id)
        .bind(transition.job_id)
        .execute(&mut *conn)
        .await
        .expect("logged by the function");
        transition
    }

    fn assert_in_byte_order(anchors: &[&String]) {
        let mut in_byte_order = anchors.to_vec();
        in_byte_order.sort();
        assert_eq!(anchors, in_byte_order, "entries follow the rows' order");
    }

    #[sqlx::test(migrations = false)]
    async fn a_large_transition_is_chunked_in_row_order_as_the_function_chunks_it(pool: PgPool) {
        let transition = logged_both_ways(&pool, 1000).await;
        let direct = chunks(&pool, transition.cycle_id, "staged").await;
        let by_function = chunks(&pool, transition.cycle_id, "held").await;
        assert_eq!(
            direct.iter().map(|chunk| chunk.0).collect::<Vec<_>>(),
            [256, 256, 256, 232]
        );
        assert_eq!(direct, by_function);
        assert_in_byte_order(&direct.iter().flat_map(|chunk| &chunk.5).collect::<Vec<_>>());
    }

    /// A transition's plain entries in log order: every column but the id and the time.
    type Entry = (
        Uuid,
        Option<Uuid>,
        String,
        String,
        String,
        String,
        String,
        Vec<String>,
        String,
        String,
    );

    async fn entries(pool: &PgPool, cycle_id: Uuid, status: &str) -> Vec<Entry> {
        sqlx::query_as(
            "SELECT action_id, object_id, anchor, object_type, action, reason, display_action,
                    changed_attributes, actor, detail
             FROM provisioning_log WHERE cycle_id = $1 AND status = $2 ORDER BY log_id",
        )
        .bind(cycle_id)
        .bind(status)
        .fetch_all(pool)
        .await
        .expect("entries read")
    }

    #[sqlx::test(migrations = false)]
    async fn a_small_transition_is_logged_entry_by_entry_as_the_function_logs_it(pool: PgPool) {
        let transition = logged_both_ways(&pool, 40).await;
        let direct = entries(&pool, transition.cycle_id, "staged").await;
        assert_eq!(direct.len(), 40);
        assert_eq!(direct, entries(&pool, transition.cycle_id, "held").await);
        assert!(direct.iter().any(|entry| entry.6 == "PlanDelete"));
        assert_in_byte_order(&direct.iter().map(|entry| &entry.2).collect::<Vec<_>>());
        let mut conn = pool.acquire().await.expect("connection");
        for _ in 0..2 {
            log_transition(&mut conn, &transition, STAGED_ROWS, 40, "")
                .await
                .expect("logged again");
        }
        assert_eq!(
            entries(&pool, transition.cycle_id, "staged").await.len(),
            40
        );
    }

    #[sqlx::test(migrations = false)]
    async fn a_transition_logged_again_adds_nothing(pool: PgPool) {
        let transition = staged_cycle(&pool, 300, 3).await;
        let mut conn = pool.acquire().await.expect("connection");
        for _ in 0..2 {
            log_transition(&mut conn, &transition, STAGED_ROWS, 300, "")
                .await
                .expect("logged");
        }
        let logged: Vec<Uuid> = chunks(&pool, transition.cycle_id, "staged")
            .await
            .into_iter()
            .flat_map(|chunk| chunk.4)
            .collect();
        assert_eq!(logged.len(), 300, "each action logged once");
    }

    /// The chunks of a transition with what the applied form adds: prefix, actor and objects.
    async fn chunk_objects(
        pool: &PgPool,
        cycle_id: Uuid,
        status: &str,
    ) -> Vec<(String, String, Vec<Uuid>, Option<Vec<Uuid>>)> {
        sqlx::query_as(
            "SELECT display_prefix, actor, action_ids, object_ids FROM provisioning_log_sets
             WHERE cycle_id = $1 AND status = $2 ORDER BY first_log_id",
        )
        .bind(cycle_id)
        .bind(status)
        .fetch_all(pool)
        .await
        .expect("chunks read")
    }

    /// A cycle of 600 staged actions (every `deletes_every`th a delete) with its `staged`
    /// transition logged, the `applied` transition its apply would log, and a connection.
    async fn staged_then_applying(
        pool: &PgPool,
        deletes_every: i64,
    ) -> (
        Transition<'static>,
        Transition<'static>,
        sqlx::pool::PoolConnection<sqlx::Postgres>,
    ) {
        let staged = staged_cycle(pool, 600, deletes_every).await;
        let mut conn = pool.acquire().await.expect("connection");
        log_transition(&mut conn, &staged, STAGED_ROWS, 600, "")
            .await
            .expect("staged logged");
        let applied = Transition {
            status: "applied",
            prefix: "",
            actor: "service:gate",
            with_objects: true,
            ..staged
        };
        (staged, applied, conn)
    }

    #[sqlx::test(migrations = false)]
    async fn an_applied_first_load_repeats_its_staged_chunks_with_the_created_ids(pool: PgPool) {
        let (staged, applied, mut conn) = staged_then_applying(&pool, 0).await;
        assert!(
            log_applied_creates(&mut conn, &applied, 600, "")
                .await
                .expect("applied logged")
        );
        assert_eq!(
            chunks(&pool, staged.cycle_id, "applied").await,
            chunks(&pool, staged.cycle_id, "staged").await,
            "the same actions in the same chunks and order"
        );
        let written = chunk_objects(&pool, staged.cycle_id, "applied").await;
        assert_eq!(written.len(), 3);
        for (prefix, actor, action_ids, object_ids) in &written {
            assert_eq!((prefix.as_str(), actor.as_str()), ("", "service:gate"));
            assert_eq!(
                object_ids.as_ref(),
                Some(action_ids),
                "a create's object is its id"
            );
        }
        // The expanded log names each created object.
        let (entries, with_own_id): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE object_id = action_id AND display_action = 'Create')
             FROM provisioning_log_entries WHERE cycle_id = $1 AND status = 'applied'",
        )
        .bind(staged.cycle_id)
        .fetch_one(&pool)
        .await
        .expect("entries read");
        assert_eq!((entries, with_own_id), (600, 600));
        assert!(
            !log_applied_creates(&mut conn, &applied, 600, "")
                .await
                .expect("asked again"),
            "a logged transition is not written twice"
        );
        assert_eq!(
            chunk_objects(&pool, staged.cycle_id, "applied").await,
            written
        );
    }

    #[sqlx::test(migrations = false)]
    async fn a_cycle_with_more_than_creates_is_left_to_its_rows(pool: PgPool) {
        let (staged, applied, mut conn) = staged_then_applying(&pool, 3).await;
        for total in [600, 400] {
            assert!(
                !log_applied_creates(&mut conn, &applied, total, "")
                    .await
                    .expect("asked")
            );
        }
        assert!(chunks(&pool, staged.cycle_id, "applied").await.is_empty());
    }
}
