//! The change feed's order: each transaction that changes the target directory takes the
//! next batch number just before it commits, holding `feed_clock`'s row lock until the
//! commit. Batches therefore become visible in number order, and a reader that saw batch N
//! has seen every batch before it.

use sqlx::PgConnection;

use crate::error::RetentionError;

/// Numbers the caller's transaction in the feed; call it last, just before committing.
pub async fn next_batch(conn: &mut PgConnection) -> Result<i64, RetentionError> {
    let (batch,): (i64,) =
        sqlx::query_as("UPDATE feed_clock SET batch = batch + 1 RETURNING batch")
            .fetch_one(conn)
            .await?;
    Ok(batch)
}
