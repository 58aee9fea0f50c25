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
        // The last of the batches past the last pruned one that are all older than the
        // cutoff, at most 50 (each step is a short transaction); a younger batch stops the
        // step, so no batch is dropped before its time. Every change of a batch carries the
        // one time its writer bound for the batch, so a batch is looked at in its first
        // change only, found by key: grouping every change kept to find them read the whole
        // feed on each maintenance tick (99 ms with 300,000 changes kept, beside an allow it
        // slowed by a third).
        let (through,): (Option<i64>,) = sqlx::query_as(
            "WITH RECURSIVE batches AS (
                 (SELECT batch, at, 1 AS seen FROM directory_changes
                  WHERE batch > (SELECT pruned_through FROM feed_clock)
                  ORDER BY batch, position LIMIT 1)
                 UNION ALL
                 SELECT next.batch, next.at, b.seen + 1 FROM batches b
                 CROSS JOIN LATERAL (
                     SELECT c.batch, c.at FROM directory_changes c WHERE c.batch > b.batch
                     ORDER BY c.batch, c.position LIMIT 1
                 ) next
                 WHERE b.at < $1 AND b.seen < 50
             )
             SELECT max(batch) FROM batches WHERE at < $1",
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
