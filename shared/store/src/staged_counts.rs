//! A cycle's staged actions by action, object type and status, counted by the stager in the
//! statement that stages them and kept on the cycle (migration 20261129000006), so the
//! services that show or judge a cycle read a few numbers instead of counting its actions
//! again.

use std::collections::BTreeMap;

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// One group of a cycle's staged actions.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StagedCount {
    /// `create`, `update`, `delete`, ...
    pub action: String,
    /// `user` or `group`.
    pub object_type: String,
    /// `staged`, or `skipped_pinned` for a delete or disable a pin holds back.
    pub status: String,
    /// How many actions the group holds.
    pub count: i64,
}

/// The SQL value of `staged_counts` for counts bound by [`bind_staged_counts`] as the
/// parameters `$first` to `$first + 3`: so the statement that records the rest of a
/// staging sets them too, without an update of its own.
pub fn staged_counts_value(first: usize) -> String {
    let [actions, types, statuses, counts] = [first, first + 1, first + 2, first + 3];
    format!(
        "(SELECT COALESCE(jsonb_agg(jsonb_build_object('action', a, 'object_type', t, 'status', s,
                                                      'count', n) ORDER BY a, t, s), '[]')
          FROM unnest(${actions}::text[], ${types}::text[], ${statuses}::text[], ${counts}::bigint[])
               u (a, t, s, n))"
    )
}

/// Binds `counts` as the four parameters [`staged_counts_value`] reads.
pub fn bind_staged_counts<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    counts: &'q [StagedCount],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let column =
        |field: fn(&StagedCount) -> &str| -> Vec<&str> { counts.iter().map(field).collect() };
    query
        .bind(column(|count| &count.action))
        .bind(column(|count| &count.object_type))
        .bind(column(|count| &count.status))
        .bind(counts.iter().map(|count| count.count).collect::<Vec<_>>())
}

/// The counts kept on `cycle_id`, in (action, object type, status) order; empty for a cycle
/// that staged nothing or does not exist.
pub async fn staged_counts<'e>(
    executor: impl PgExecutor<'e>,
    cycle_id: Uuid,
) -> Result<Vec<StagedCount>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT e ->> 'action' AS action, e ->> 'object_type' AS object_type,
                e ->> 'status' AS status, (e ->> 'count')::bigint AS count
         FROM cycles c CROSS JOIN LATERAL jsonb_array_elements(c.staged_counts) e
         WHERE c.cycle_id = $1
         ORDER BY 1, 2, 3",
    )
    .bind(cycle_id)
    .fetch_all(executor)
    .await?)
}

/// Every status together, by (action, object type) in that order: what a cycle's summary
/// shows.
pub fn by_action_and_type(counts: &[StagedCount]) -> Vec<(String, String, i64)> {
    let mut summed: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for count in counts {
        *summed
            .entry((count.action.as_str(), count.object_type.as_str()))
            .or_default() += count.count;
    }
    summed
        .into_iter()
        .map(|((action, object_type), count)| (action.to_owned(), object_type.to_owned(), count))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::PgPool;

    fn count(action: &str, object_type: &str, status: &str, count: i64) -> StagedCount {
        StagedCount {
            action: action.into(),
            object_type: object_type.into(),
            status: status.into(),
            count,
        }
    }

    #[test]
    fn a_summary_adds_up_the_statuses_of_each_action_and_type() {
        let counts = [
            count("delete", "user", "staged", 7),
            count("create", "user", "staged", 3),
            count("delete", "user", "skipped_pinned", 2),
            count("create", "group", "staged", 1),
        ];
        assert_eq!(
            by_action_and_type(&counts),
            [
                ("create".into(), "group".into(), 1),
                ("create".into(), "user".into(), 3),
                ("delete".into(), "user".into(), 9),
            ]
        );
    }

    /// What the stager keeps on a cycle is what every reader gets back, in order; a cycle
    /// that staged nothing, or none at all, has no counts.
    #[sqlx::test(migrations = false)]
    async fn kept_counts_read_back_in_order(pool: PgPool) {
        crate::MIGRATOR.run(&pool).await.expect("migrated");
        let (job, snapshot, cycle) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO jobs (job_id, name, source_kind, source_config, created_by) VALUES ('{job}', 'counted', 'push', '{{}}', 'test');
             INSERT INTO snapshots (snapshot_id, job_id, kind, origin, object_count, cycle_id, seq)
                 VALUES ('{snapshot}', '{job}', 'delta', 'push', 3, '{cycle}', 1);
             INSERT INTO cycles (cycle_id, job_id, snapshot_id, state, seq, delta)
                 VALUES ('{cycle}', '{job}', '{snapshot}', 'staged', 1, true);"
        )))
        .execute(&pool)
        .await
        .expect("a cycle");
        assert_eq!(staged_counts(&pool, cycle).await.expect("read"), []);
        let kept = [
            count("update", "user", "staged", 2),
            count("delete", "user", "skipped_pinned", 1),
            count("create", "group", "staged", 5),
        ];
        let keep = format!(
            "UPDATE cycles SET staged_counts = {} WHERE cycle_id = $1",
            staged_counts_value(2)
        );
        bind_staged_counts(sqlx::query(sqlx::AssertSqlSafe(keep)).bind(cycle), &kept)
            .execute(&pool)
            .await
            .expect("kept");
        let mut in_order = kept.to_vec();
        in_order.sort_by(|a, b| (&a.action, &a.object_type).cmp(&(&b.action, &b.object_type)));
        assert_eq!(staged_counts(&pool, cycle).await.expect("read"), in_order);
        assert_eq!(
            staged_counts(&pool, Uuid::now_v7()).await.expect("read"),
            []
        );
    }
}
