//! Soft delete: the object leaves the active directory but keeps its object id, attributes
//! and group memberships until its job's retention ends.

use sqlx::PgPool;
use syncguard_store::StoreError;
use uuid::Uuid;

use crate::error::RetentionError;

/// Soft-deletes the objects of the given delete actions of `cycle_id`. Objects already
/// soft-deleted are left as they are, so a retried call changes nothing.
/// Returns (soft-deleted now, already deleted).
pub async fn soft_delete(
    pool: &PgPool,
    now: chrono::DateTime<chrono::Utc>,
    cycle_id: Uuid,
    action_ids: &[Uuid],
) -> Result<(u64, u64), RetentionError> {
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let deleted: Vec<(String, Uuid)> = sqlx::query_as(
        "WITH targets AS (
             SELECT d.object_id, d.job_id, d.anchor
             FROM staged_actions a
             JOIN directory_objects d ON d.job_id = a.job_id AND d.anchor = a.anchor
             WHERE a.cycle_id = $1 AND a.action_id = ANY($2) AND a.action = 'delete' AND d.deleted_at IS NULL
             FOR UPDATE OF d
         )
         UPDATE directory_objects d
         SET deleted_at = $3,
             purge_after = $3 + make_interval(days => j.retention_days),
             memberships_at_deletion = COALESCE(
                 (SELECT array_agg(m.group_anchor ORDER BY m.group_anchor)
                  FROM directory_memberships m WHERE m.job_id = d.job_id AND m.member_anchor = d.anchor),
                 '{}'),
             updated_at = $3
         FROM targets t JOIN jobs j ON j.job_id = t.job_id
         WHERE d.object_id = t.object_id
         RETURNING d.anchor, d.job_id",
    )
    .bind(cycle_id)
    .bind(action_ids)
    .bind(now)
    .fetch_all(&mut *transaction)
    .await?;
    let anchors: Vec<String> = deleted.iter().map(|(anchor, _)| anchor.clone()).collect();
    if let Some((_, job_id)) = deleted.first() {
        // A soft-deleted member leaves its groups; the memberships are kept on the object.
        sqlx::query(
            "DELETE FROM directory_memberships WHERE job_id = $1 AND member_anchor = ANY($2)",
        )
        .bind(job_id)
        .bind(&anchors)
        .execute(&mut *transaction)
        .await?;
    }
    transaction.commit().await.map_err(StoreError::from)?;
    let now = deleted.len() as u64;
    Ok((
        now,
        action_ids.len() as u64 - now.min(action_ids.len() as u64),
    ))
}
