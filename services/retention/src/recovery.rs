//! Restore and purge of soft-deleted objects, and the listing of what is restorable.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use syncguard_domain::{FieldError, Principal};
use syncguard_proto::v1::{self, ObjectType};
use syncguard_store::StoreError;
use uuid::Uuid;

use crate::clock::Clock;
use crate::directory::{self, Reference};
use crate::error::RetentionError;

/// Objects purged per statement by the retention loop: bounded batches keep transactions short.
pub const PURGE_BATCH: i64 = 500;

async fn locate(
    conn: &mut PgConnection,
    reference: &Reference,
) -> Result<Option<(Uuid, Option<DateTime<Utc>>)>, RetentionError> {
    let row: Option<(Uuid, Option<DateTime<Utc>>)> = match reference {
        Reference::Id(id) => {
            sqlx::query_as("SELECT object_id, deleted_at FROM directory_objects WHERE object_id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
        }
        Reference::Anchor(job_id, anchor) => {
            sqlx::query_as(
                "SELECT object_id, deleted_at FROM directory_objects WHERE job_id = $1 AND anchor = $2 FOR UPDATE",
            )
            .bind(job_id.0)
            .bind(anchor.as_str())
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    Ok(row)
}

/// Not found: and if it was purged, say so and when.
async fn missing(conn: &mut PgConnection, reference: &Reference) -> RetentionError {
    let purged: Result<Option<(Uuid, DateTime<Utc>, String)>, sqlx::Error> = match reference {
        Reference::Id(id) => {
            sqlx::query_as("SELECT object_id, purged_at, purged_by FROM purged_objects WHERE object_id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await
        }
        Reference::Anchor(job_id, anchor) => {
            sqlx::query_as(
                "SELECT object_id, purged_at, purged_by FROM purged_objects WHERE job_id = $1 AND anchor = $2 \
                 ORDER BY purged_at DESC LIMIT 1",
            )
            .bind(job_id.0)
            .bind(anchor.as_str())
            .fetch_optional(&mut *conn)
            .await
        }
    };
    match purged {
        Ok(Some((object_id, purged_at, purged_by))) => RetentionError::NotFound(format!(
            "object {object_id} was purged at {} by {purged_by} and can no longer be restored",
            purged_at.to_rfc3339()
        )),
        Ok(None) => RetentionError::NotFound("no such object in the directory".into()),
        Err(error) => RetentionError::Store(error.into()),
    }
}

fn reason_of(reason: &str) -> Result<String, FieldError> {
    syncguard_domain::text::reason("reason", reason)
}

/// Brings a soft-deleted object back with the same object id, attributes and group
/// memberships, while its retention lasts.
pub async fn restore(
    pool: &PgPool,
    clock: &Arc<dyn Clock>,
    request: &v1::RestoreObjectRequest,
    principal: &Principal,
) -> Result<v1::DirectoryObject, RetentionError> {
    let reference = directory::reference(request.object.as_ref())?;
    let reason = reason_of(&request.reason)?;
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let Some((object_id, deleted_at)) = locate(&mut transaction, &reference).await? else {
        return Err(missing(&mut transaction, &reference).await);
    };
    if deleted_at.is_none() {
        return Err(RetentionError::WrongState(format!(
            "object {object_id} is not deleted"
        )));
    }
    let restored: (Uuid, String, String) = sqlx::query_as(
        "UPDATE directory_objects SET deleted_at = NULL, purge_after = NULL, updated_at = $2 \
         WHERE object_id = $1 RETURNING job_id, anchor, object_type",
    )
    .bind(object_id)
    .bind(clock.now())
    .fetch_one(&mut *transaction)
    .await?;
    let (job_id, anchor, object_type) = restored;
    // The member rejoins the groups it was in (those that still exist).
    sqlx::query(
        "INSERT INTO directory_memberships (job_id, group_anchor, member_anchor) \
         SELECT d.job_id, g.group_anchor, d.anchor \
         FROM directory_objects d CROSS JOIN LATERAL unnest(d.memberships_at_deletion) AS g(group_anchor) \
         JOIN directory_objects live ON live.job_id = d.job_id AND live.object_type = 'group' \
              AND live.anchor = g.group_anchor AND live.deleted_at IS NULL \
         WHERE d.object_id = $1 ON CONFLICT DO NOTHING",
    )
    .bind(object_id)
    .execute(&mut *transaction)
    .await?;
    sqlx::query("UPDATE directory_objects SET memberships_at_deletion = '{}' WHERE object_id = $1")
        .bind(object_id)
        .execute(&mut *transaction)
        .await?;
    let batch = crate::feed::next_batch(&mut transaction, &[job_id]).await?;
    sqlx::query(
        "INSERT INTO directory_changes (batch, position, job_id, object_id, anchor, object_type, change,
             distinguished_name, attributes, enabled, member_anchors, at)
         SELECT $2, 1, d.job_id, d.object_id, d.anchor, d.object_type, 'restore', d.distinguished_name,
             d.attributes, d.enabled,
             CASE WHEN d.object_type = 'group' THEN COALESCE(
                 (SELECT array_agg(m.member_anchor ORDER BY m.member_anchor COLLATE \"C\")
                  FROM directory_memberships m WHERE m.job_id = d.job_id AND m.group_anchor = d.anchor), '{}')
             ELSE '{}' END, $3
         FROM directory_objects d WHERE d.object_id = $1",
    )
    .bind(object_id)
    .bind(batch)
    .bind(clock.now())
    .execute(&mut *transaction)
    .await?;
    log(
        &mut transaction,
        job_id,
        object_id,
        &anchor,
        &object_type,
        "restore",
        "Restore",
        "admin_request",
        &principal.to_string(),
        &reason,
    )
    .await?;
    transaction.commit().await.map_err(StoreError::from)?;
    tracing::info!(object = %object_id, actor = %principal, "object restored");
    directory::get_object(
        pool,
        &v1::GetObjectRequest {
            object: Some(v1::ObjectRef {
                by: Some(v1::object_ref::By::ObjectId(object_id.to_string())),
            }),
            attributes: Vec::new(),
        },
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn log(
    conn: &mut PgConnection,
    job_id: Uuid,
    object_id: Uuid,
    anchor: &str,
    object_type: &str,
    action: &str,
    display_action: &str,
    reason: &str,
    actor: &str,
    detail: &str,
) -> Result<(), RetentionError> {
    sqlx::query(
        "INSERT INTO provisioning_log (job_id, object_id, anchor, object_type, action, status, reason, \
             display_action, actor, detail) VALUES ($1, $2, $3, $4, $5, 'applied', $6, $7, $8, $9)",
    )
    .bind(job_id)
    .bind(object_id)
    .bind(anchor)
    .bind(object_type)
    .bind(action)
    .bind(reason)
    .bind(display_action)
    .bind(actor)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// Purges the soft-deleted objects `condition` selects (locked, skipping rows another
/// instance holds, at most one batch) and records each: a tombstone, a log row, a feed entry,
/// and its group memberships gone.
async fn purge_locked(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    condition: &str,
    parameter: PurgeSelector<'_>,
    actor: &str,
    reason_code: &str,
    detail: &str,
) -> Result<Vec<Uuid>, RetentionError> {
    let select = format!(
        "SELECT object_id, job_id FROM directory_objects WHERE deleted_at IS NOT NULL AND {condition} \
         ORDER BY purge_after LIMIT {PURGE_BATCH} FOR UPDATE SKIP LOCKED"
    );
    let query = sqlx::query_as::<_, (Uuid, Uuid)>(sqlx::AssertSqlSafe(select));
    let due: Vec<(Uuid, Uuid)> = match parameter {
        PurgeSelector::Due => query.bind(now),
        PurgeSelector::One(object_id) => query.bind(*object_id),
    }
    .fetch_all(&mut *conn)
    .await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let (due, jobs): (Vec<Uuid>, Vec<Uuid>) = due.into_iter().unzip();
    let batch = crate::feed::next_batch(&mut *conn, &jobs).await?;
    let purged: Vec<(Uuid,)> = sqlx::query_as(
        "WITH purged AS (
             DELETE FROM directory_objects d WHERE d.object_id = ANY($1)
             RETURNING d.object_id, d.job_id, d.anchor, d.object_type, d.deleted_at, d.distinguished_name,
                       d.attributes, d.enabled
         ),
         tombstones AS (
             INSERT INTO purged_objects (object_id, job_id, anchor, object_type, deleted_at, purged_at, purged_by, reason)
             SELECT object_id, job_id, anchor, object_type, deleted_at, $2, $3, $4 FROM purged
             RETURNING object_id
         ),
         logged AS (
             INSERT INTO provisioning_log (job_id, object_id, anchor, object_type, action, status, reason,
                 display_action, actor, detail)
             SELECT job_id, object_id, anchor, object_type, 'purge', 'applied', $5, 'Purge', $3, $4 FROM purged
         ),
         fed AS (
             INSERT INTO directory_changes (batch, position, job_id, object_id, anchor, object_type, change,
                 distinguished_name, attributes, enabled, at)
             SELECT $6, (row_number() OVER (ORDER BY object_id))::integer, job_id, object_id, anchor, object_type,
                 'purge', distinguished_name, attributes, enabled, $2
             FROM purged
         ),
         memberships AS (
             DELETE FROM directory_memberships m USING purged p
             WHERE m.job_id = p.job_id AND (m.group_anchor = p.anchor OR m.member_anchor = p.anchor)
         )
         SELECT object_id FROM tombstones",
    )
    .bind(&due)
    .bind(now)
    .bind(actor)
    .bind(detail)
    .bind(reason_code)
    .bind(batch)
    .fetch_all(conn)
    .await?;
    Ok(purged.into_iter().map(|(id,)| id).collect())
}

enum PurgeSelector<'a> {
    /// Everything whose retention ended.
    Due,
    /// One object, early.
    One(&'a Uuid),
}

/// Purges one batch of objects whose retention ended; several retention instances may run
/// this at once and each object is purged exactly once.
pub async fn purge_due(pool: &PgPool, clock: &Arc<dyn Clock>) -> Result<usize, RetentionError> {
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let purged = purge_locked(
        &mut transaction,
        clock.now(),
        "purge_after <= $1",
        PurgeSelector::Due,
        "service:retention",
        "retention_expired",
        "the retention period ended",
    )
    .await?;
    transaction.commit().await.map_err(StoreError::from)?;
    Ok(purged.len())
}

/// Soft-deleted objects whose retention ended and that wait for the purge.
pub async fn purge_backlog(pool: &PgPool, clock: &Arc<dyn Clock>) -> Result<u64, RetentionError> {
    let (backlog,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM directory_objects WHERE deleted_at IS NOT NULL AND purge_after <= $1",
    )
    .bind(clock.now())
    .fetch_one(pool)
    .await?;
    Ok(backlog.max(0) as u64)
}

/// Purges one soft-deleted object now (accelerated permanent deletion), for an approver.
pub async fn purge_early(
    pool: &PgPool,
    clock: &Arc<dyn Clock>,
    request: &v1::PurgeObjectRequest,
    principal: &Principal,
) -> Result<v1::PurgeObjectResponse, RetentionError> {
    let reference = directory::reference(request.object.as_ref())?;
    let reason = reason_of(&request.reason)?;
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let Some((object_id, deleted_at)) = locate(&mut transaction, &reference).await? else {
        return Err(missing(&mut transaction, &reference).await);
    };
    if deleted_at.is_none() {
        return Err(RetentionError::WrongState(format!(
            "object {object_id} is not deleted: only soft-deleted objects are purged"
        )));
    }
    let now = clock.now();
    let purged = purge_locked(
        &mut transaction,
        now,
        "object_id = $1",
        PurgeSelector::One(&object_id),
        &principal.to_string(),
        "admin_request",
        &reason,
    )
    .await?;
    if purged.is_empty() {
        return Err(RetentionError::WrongState(format!(
            "object {object_id} is being purged by another call"
        )));
    }
    transaction.commit().await.map_err(StoreError::from)?;
    tracing::info!(object = %object_id, actor = %principal, "object purged early");
    Ok(v1::PurgeObjectResponse {
        object_id: object_id.to_string(),
        purged_at: Some(prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: now.timestamp_subsec_nanos() as i32,
        }),
    })
}

fn time(
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, FieldError> {
    value
        .map(|ts| {
            DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32)
                .ok_or_else(|| FieldError::new(field, "not a valid time"))
        })
        .transpose()
}

/// Soft-deleted objects, oldest deletion first, with filters.
pub async fn list_deleted(
    pool: &PgPool,
    request: &v1::ListDeletedObjectsRequest,
) -> Result<v1::ListObjectsResponse, RetentionError> {
    let job_id = if request.job_id.is_empty() {
        None
    } else {
        Some(syncguard_domain::JobId::parse("job_id", &request.job_id)?.0)
    };
    let object_type = match ObjectType::try_from(request.object_type) {
        Ok(ObjectType::Unspecified) => None,
        Ok(ObjectType::User) => Some("user"),
        Ok(ObjectType::Group) => Some("group"),
        Err(_) => return Err(FieldError::new("object_type", "not an object type").into()),
    };
    if let Some(job_id) = job_id
        && !syncguard_store::job_exists(pool, job_id).await?
    {
        return Err(RetentionError::NotFound(format!("job {job_id} not found")));
    }
    let deleted_after = time("deleted_after", request.deleted_after.as_ref())?;
    let deleted_before = time("deleted_before", request.deleted_before.as_ref())?;
    let purge_before = time("purge_before", request.purge_before.as_ref())?;
    directory::list_deleted(
        pool,
        job_id,
        object_type,
        deleted_after,
        deleted_before,
        purge_before,
        request.page.as_ref(),
    )
    .await
}
