//! Whether a job exists, for every service that lists what belongs to one: an unknown job
//! is `NOT_FOUND` everywhere, never an empty list that looks like "nothing there".

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// Whether `job_id` names a job, deleted or not (a deleted job's objects and logs outlive
/// its configuration).
pub async fn job_exists<'e>(
    executor: impl PgExecutor<'e>,
    job_id: Uuid,
) -> Result<bool, StoreError> {
    let (exists,): (bool,) = sqlx::query_as("SELECT EXISTS (SELECT 1 FROM jobs WHERE job_id = $1)")
        .bind(job_id)
        .fetch_one(executor)
        .await?;
    Ok(exists)
}
