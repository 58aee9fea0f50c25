//! The change feed's order: each transaction that changes the target directory takes the
//! next batch number just before it commits, holding `feed_clock`'s row lock until the
//! commit. Batches therefore become visible in number order, and a reader that saw batch N
//! has seen every batch before it.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::RetentionError;

/// Numbers the caller's transaction in the feed and announces the `jobs` whose changes it
/// writes to the feed's readers (the exporter, WatchChanges), which hear it when the
/// transaction commits; call it last, just before committing.
///
/// The writer announces, not a trigger: a statement trigger needs the inserted rows as a
/// transition table, and Postgres copies every inserted row into it (a first load's whole
/// objects, spilled to disk past `work_mem`) only for the trigger to find the one job in them.
pub async fn next_batch(conn: &mut PgConnection, jobs: &[Uuid]) -> Result<i64, RetentionError> {
    let (batch,): (i64,) = sqlx::query_as(
        "WITH numbered AS (UPDATE feed_clock SET batch = batch + 1 RETURNING batch), \
              announced AS (SELECT count(pg_notify('syncguard_feed', job::text)) \
                            FROM (SELECT DISTINCT unnest($1::uuid[]) AS job) jobs) \
         SELECT numbered.batch FROM numbered, announced",
    )
    .bind(jobs)
    .fetch_one(conn)
    .await?;
    Ok(batch)
}

/// Changes kept this many days when the deployment says nothing (`SYNCGUARD_FEED_RETENTION_DAYS`).
pub const DEFAULT_FEED_RETENTION_DAYS: u32 = 30;

/// Drops whole batches older than `keep` before `now` (in bounded steps) and records the
/// last one dropped, so a reader asking to resume before it is told the oldest cursor kept.
/// Returns the changes dropped.
pub async fn prune(
    pool: &sqlx::PgPool,
    now: chrono::DateTime<chrono::Utc>,
    keep: chrono::Duration,
) -> Result<u64, RetentionError> {
    let cutoff = now - keep;
    let mut dropped = 0;
    loop {
        let mut transaction = pool.begin().await?;
        // The newest batch whose every change is older than the cutoff, at most 50 batches
        // past the last pruned one (each step is a short transaction).
        let (through,): (Option<i64>,) = sqlx::query_as(
            "SELECT max(batch) FROM (SELECT batch FROM directory_changes \
             WHERE batch > (SELECT pruned_through FROM feed_clock) GROUP BY batch \
             HAVING max(at) < $1 ORDER BY batch LIMIT 50) old",
        )
        .bind(cutoff)
        .fetch_one(&mut *transaction)
        .await?;
        let Some(through) = through else {
            return Ok(dropped);
        };
        let deleted = sqlx::query("DELETE FROM directory_changes WHERE batch <= $1")
            .bind(through)
            .execute(&mut *transaction)
            .await?;
        sqlx::query("UPDATE feed_clock SET pruned_through = greatest(pruned_through, $1)")
            .bind(through)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        dropped += deleted.rows_affected();
    }
}
