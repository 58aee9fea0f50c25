//! Applying a decided cycle to the target directory: creates, updates, enables and disables
//! set-wise in one transaction; deletes through the retention service; then the cycle
//! completes. Every step touches only actions still `staged` or `allowed`, so running an
//! apply again (after a crash, or a retried call) changes nothing twice.

use std::time::Instant;

use sqlx::{PgConnection, PgPool};
use syncguard_bootstrap::PeerChannel;
use syncguard_proto::v1;
use syncguard_proto::v1::retention_service_client::RetentionServiceClient;
use syncguard_store::StoreError;
use uuid::Uuid;

use crate::error::StagerError;
use crate::stage::record_phase;

/// Deletes are handed to retention in calls of at most this many actions.
const DELETE_CHUNK: usize = 10_000;

/// Actions an apply may still carry out.
const PENDING: &str = "a.status IN ('staged', 'allowed')";

/// Applies every pending action of `cycle_id`. `actor` is who caused the apply (the gate
/// within limits, or an approver's principal) and is written to the log.
pub async fn apply(
    pool: &PgPool,
    retention: &RetentionServiceClient<PeerChannel>,
    cycle_id: Uuid,
    actor: &str,
) -> Result<(), StagerError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let cycle: Option<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT job_id, snapshot_id, state FROM cycles WHERE cycle_id = $1 FOR UPDATE",
    )
    .bind(cycle_id)
    .fetch_optional(&mut *transaction)
    .await?;
    let Some((_job_id, snapshot_id, state)) = cycle else {
        return Err(StagerError::NotFound(format!("cycle {cycle_id} not found")));
    };
    match state.as_str() {
        "completed" => return Ok(()),
        "staged" | "evaluating" | "allowed" | "rejected" | "applying" => {}
        other => {
            return Err(StagerError::WrongState(format!(
                "cycle {cycle_id} is {other}; only a decided cycle is applied"
            )));
        }
    }
    sqlx::query("UPDATE cycles SET state = 'applying', updated_at = now() WHERE cycle_id = $1")
        .bind(cycle_id)
        .execute(&mut *transaction)
        .await?;
    apply_to_target(&mut transaction, cycle_id, snapshot_id).await?;
    mark_applied(&mut transaction, cycle_id, "a.action <> 'delete'", actor).await?;
    transaction.commit().await.map_err(StoreError::from)?;

    let deletes: Vec<(Uuid,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT a.action_id FROM staged_actions a WHERE a.cycle_id = $1 AND a.action = 'delete' AND {PENDING}"
    )))
    .bind(cycle_id)
    .fetch_all(pool)
    .await?;
    for chunk in deletes.chunks(DELETE_CHUNK) {
        let request = v1::SoftDeleteObjectsRequest {
            cycle_id: cycle_id.to_string(),
            action_ids: chunk.iter().map(|(id,)| id.to_string()).collect(),
        };
        retention
            .clone()
            .soft_delete_objects(request)
            .await
            .map_err(|status| StagerError::Peer {
                service: "retention",
                status,
            })?;
    }

    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    mark_applied(&mut transaction, cycle_id, "a.action = 'delete'", actor).await?;
    sqlx::query(
        "UPDATE cycles SET state = 'completed', finished_at = now(), updated_at = now() WHERE cycle_id = $1",
    )
    .bind(cycle_id)
    .execute(&mut *transaction)
    .await?;
    record_phase(
        &mut transaction,
        cycle_id,
        "apply",
        started_at,
        started.elapsed(),
    )
    .await?;
    transaction.commit().await.map_err(StoreError::from)?;
    syncguard_telemetry::cycle_outcome("completed");
    tracing::info!(cycle = %cycle_id, deletes = deletes.len(), millis = started.elapsed().as_millis() as u64, "cycle applied");
    // Cleaning up is not part of the cycle: the caller need not wait for it.
    tokio::spawn(release_older_snapshots(pool.clone(), cycle_id));
    Ok(())
}

/// Source rows of snapshots older than this cycle's are no longer needed by any diff or
/// apply: drop them so a job keeps one directory's worth of rows, not one per cycle.
/// The snapshot headers stay for the history of cycles.
async fn release_older_snapshots(pool: PgPool, cycle_id: Uuid) {
    let released = sqlx::query(
        "DELETE FROM source_objects o USING snapshots old, cycles c, snapshots cur
         WHERE c.cycle_id = $1 AND cur.snapshot_id = c.snapshot_id
           AND old.job_id = cur.job_id AND old.received_at < cur.received_at
           AND o.snapshot_id = old.snapshot_id",
    )
    .bind(cycle_id)
    .execute(&pool)
    .await;
    match released {
        Ok(result) => {
            tracing::debug!(cycle = %cycle_id, rows = result.rows_affected(), "older snapshot rows released")
        }
        Err(error) => {
            tracing::warn!(cycle = %cycle_id, %error, "older snapshot rows not released; retried after the next cycle")
        }
    }
}

async fn apply_to_target(
    conn: &mut PgConnection,
    cycle_id: Uuid,
    snapshot_id: Uuid,
) -> Result<(), StagerError> {
    let statements = [
        // New objects get a new object id.
        format!(
            "INSERT INTO directory_objects (object_id, job_id, anchor, object_type, distinguished_name,
                 attributes, enabled, content_hash)
             SELECT gen_random_uuid(), a.job_id, s.anchor, s.object_type, s.distinguished_name, s.attributes,
                 s.enabled, s.content_hash
             FROM staged_actions a JOIN source_objects s ON s.snapshot_id = $2 AND s.anchor = a.anchor
             WHERE a.cycle_id = $1 AND a.action = 'create' AND {PENDING}
             ON CONFLICT (job_id, anchor) DO NOTHING"
        ),
        // Objects still in the source take its attributes (updates, enables, disables in the source,
        // and restores of a reappeared anchor, which keep their object id).
        format!(
            "UPDATE directory_objects d SET distinguished_name = s.distinguished_name, attributes = s.attributes,
                 enabled = s.enabled, content_hash = s.content_hash, updated_at = now(),
                 deleted_at = NULL, purge_after = NULL
             FROM staged_actions a JOIN source_objects s ON s.snapshot_id = $2 AND s.anchor = a.anchor
             WHERE a.cycle_id = $1 AND {PENDING} AND d.job_id = a.job_id AND d.anchor = a.anchor
               AND (a.action IN ('update', 'enable', 'restore')
                    OR (a.action = 'disable' AND a.reason = 'disabled_in_source'))"
        ),
        // A restored member rejoins the groups it was in when it was soft-deleted.
        format!(
            "WITH restored AS (
                 UPDATE directory_objects d SET memberships_at_deletion = '{{}}'
                 FROM staged_actions a
                 WHERE a.cycle_id = $1 AND {PENDING} AND a.action = 'restore'
                   AND d.job_id = a.job_id AND d.anchor = a.anchor
                 RETURNING d.job_id, d.anchor, (SELECT o.memberships_at_deletion FROM directory_objects o
                                                WHERE o.object_id = d.object_id) AS groups
             )
             INSERT INTO directory_memberships (job_id, group_anchor, member_anchor)
             SELECT r.job_id, g.group_anchor, r.anchor
             FROM restored r CROSS JOIN LATERAL unnest(r.groups) AS g(group_anchor)
             JOIN directory_objects live ON live.job_id = r.job_id AND live.anchor = g.group_anchor
                                        AND live.deleted_at IS NULL
             ON CONFLICT DO NOTHING"
        ),
        // Deprovisioning by disabling: the object left the source or the scope.
        format!(
            "UPDATE directory_objects d SET enabled = false, updated_at = now()
             FROM staged_actions a
             WHERE a.cycle_id = $1 AND {PENDING} AND a.action = 'disable'
               AND a.reason IN ('removed_from_source', 'out_of_scope')
               AND d.job_id = a.job_id AND d.anchor = a.anchor"
        ),
        // Group memberships follow the source for every group created, updated or restored.
        format!(
            "DELETE FROM directory_memberships m USING staged_actions a
             WHERE a.cycle_id = $1 AND {PENDING} AND a.object_type = 'group'
               AND a.action IN ('create', 'update', 'enable', 'disable', 'restore')
               AND m.job_id = a.job_id AND m.group_anchor = a.anchor"
        ),
        format!(
            "INSERT INTO directory_memberships (job_id, group_anchor, member_anchor)
             SELECT a.job_id, a.anchor, unnest(s.member_anchors)
             FROM staged_actions a JOIN source_objects s ON s.snapshot_id = $2 AND s.anchor = a.anchor
             WHERE a.cycle_id = $1 AND {PENDING} AND a.object_type = 'group'
               AND a.action IN ('create', 'update', 'enable', 'disable', 'restore')
             ON CONFLICT DO NOTHING"
        ),
        // Record the object id each action touched (creates learn theirs now).
        format!(
            "UPDATE staged_actions a SET object_id = d.object_id
             FROM directory_objects d
             WHERE a.cycle_id = $1 AND {PENDING} AND a.object_id IS NULL
               AND d.job_id = a.job_id AND d.anchor = a.anchor"
        ),
    ];
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(cycle_id)
            .bind(snapshot_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Marks the pending actions matching `which` applied and logs each, in the caller's
/// transaction.
async fn mark_applied(
    conn: &mut PgConnection,
    cycle_id: Uuid,
    which: &str,
    actor: &str,
) -> Result<(), StagerError> {
    let sql = format!(
        "WITH applied AS (
             UPDATE staged_actions a SET status = 'applied', applied_at = now()
             WHERE a.cycle_id = $1 AND {PENDING} AND {which}
             RETURNING a.job_id, a.cycle_id, a.action_id, a.object_id, a.anchor, a.object_type, a.action,
                       a.reason, a.changed_attributes
         )
         INSERT INTO provisioning_log (job_id, cycle_id, action_id, object_id, anchor, object_type, action,
             status, reason, display_action, changed_attributes, actor)
         SELECT job_id, cycle_id, action_id, object_id, anchor, object_type, action, 'applied', reason,
             initcap(action), changed_attributes, $2
         FROM applied
         ON CONFLICT DO NOTHING"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(cycle_id)
        .bind(actor)
        .execute(conn)
        .await?;
    Ok(())
}
