//! A cycle's staged actions counted by kind and object type, the one way every service
//! counts them (see migration 20261129000004: one plan per session instead of one per call).

use sqlx::PgExecutor;
use syncguard_domain::ActionKind;
use uuid::Uuid;

use crate::StoreError;

/// Which of a cycle's staged actions a count includes.
#[derive(Debug, Clone, Copy)]
pub enum Counted<'a> {
    /// Every action, pinned ones included: what the cycle planned.
    Planned,
    /// The actions of these kinds (stored names; others match nothing) that will be carried
    /// out (pinned objects' are not): what protection rules count.
    Carried(&'a [String]),
}

/// A cycle's actions by (action, object type), in that order, as `counted` says.
pub async fn count_staged_actions<'e>(
    executor: impl PgExecutor<'e>,
    cycle_id: Uuid,
    counted: Counted<'_>,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    let (kinds, carried_only): (Vec<&str>, bool) = match counted {
        Counted::Planned => (
            ActionKind::ALL.iter().map(|kind| kind.as_str()).collect(),
            false,
        ),
        Counted::Carried(kinds) => (kinds.iter().map(String::as_str).collect(), true),
    };
    Ok(sqlx::query_as(
        "SELECT counted_action, counted_type, sum(actions)::bigint \
         FROM syncguard_staged_counts($1, $2) \
         WHERE NOT $3 OR counted_status = 'staged' \
         GROUP BY counted_action, counted_type ORDER BY counted_action, counted_type",
    )
    .bind(cycle_id)
    .bind(kinds)
    .bind(carried_only)
    .fetch_all(executor)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::PgPool;

    /// A cycle of three user creates, two user deletes (one on a pinned object) and a group
    /// disable.
    async fn staged_cycle(pool: &PgPool) -> Uuid {
        crate::MIGRATOR.run(pool).await.expect("migrated");
        let cycle_id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO staged_actions (action_id, cycle_id, job_id, anchor, object_type, action, reason, status)
             SELECT gen_random_uuid(), $1, $2, a.anchor, a.object_type, a.action, a.reason, a.status
             FROM (VALUES ('u1', 'user', 'create', 'new_in_source', 'staged'),
                          ('u2', 'user', 'create', 'new_in_source', 'staged'),
                          ('u3', 'user', 'create', 'new_in_source', 'staged'),
                          ('u4', 'user', 'delete', 'removed_from_source', 'staged'),
                          ('u5', 'user', 'delete', 'removed_from_source', 'skipped_pinned'),
                          ('g1', 'group', 'disable', 'removed_from_source', 'staged'))
                  a (anchor, object_type, action, reason, status)",
        )
        .bind(cycle_id)
        .bind(Uuid::now_v7())
        .execute(pool)
        .await
        .expect("staged");
        cycle_id
    }

    fn counts(rows: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
        rows.iter()
            .map(|(action, object_type, count)| ((*action).into(), (*object_type).into(), *count))
            .collect()
    }

    #[sqlx::test(migrations = false)]
    async fn what_a_cycle_planned_counts_every_action_pinned_ones_included(pool: PgPool) {
        let cycle_id = staged_cycle(&pool).await;
        let planned = count_staged_actions(&pool, cycle_id, Counted::Planned)
            .await
            .expect("counted");
        assert_eq!(
            planned,
            counts(&[
                ("create", "user", 3),
                ("delete", "user", 2),
                ("disable", "group", 1)
            ])
        );
    }

    #[sqlx::test(migrations = false)]
    async fn what_rules_count_is_the_carried_actions_of_their_kinds(pool: PgPool) {
        let cycle_id = staged_cycle(&pool).await;
        let kinds = [
            "delete".to_owned(),
            "disable".to_owned(),
            "no-such-kind".to_owned(),
        ];
        let carried = count_staged_actions(&pool, cycle_id, Counted::Carried(&kinds))
            .await
            .expect("counted");
        assert_eq!(
            carried,
            counts(&[("delete", "user", 1), ("disable", "group", 1)])
        );
        let other_cycle = count_staged_actions(&pool, Uuid::now_v7(), Counted::Planned)
            .await
            .expect("counted");
        assert!(other_cycle.is_empty(), "{other_cycle:?}");
    }
}
