//! Commit-or-rollback around one unit of work.

use sqlx::{PgConnection, PgPool};

use crate::StoreError;

/// Runs `work` in one transaction: commits when it returns `Ok`, rolls back otherwise, so a
/// failure half-way through a bulk write leaves nothing behind.
pub async fn in_transaction<T, E, F>(pool: &PgPool, work: F) -> Result<T, E>
where
    F: AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let outcome = work(&mut transaction).await;
    match outcome {
        Ok(value) => {
            transaction.commit().await.map_err(StoreError::from)?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback_error) = transaction.rollback().await {
                tracing::warn!(error = %rollback_error, "rollback failed; the connection is discarded");
            }
            Err(error)
        }
    }
}
