//! PreviewCycle: the diff of the job's latest snapshot, written to a temporary table inside a
//! transaction that is rolled back, judged by the gate's rules. Nothing changes.

use sqlx::PgPool;
use syncguard_bootstrap::PeerChannel;
use syncguard_domain::JobId;
use syncguard_proto::names;
use syncguard_proto::v1;
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_store::StoreError;
use uuid::Uuid;

use crate::error::StagerError;
use crate::stage::{ActionTable, ScopeParameters, insert_actions};

/// One previewed action: anchor, type, action, reason, status, changed attributes, name.
type SampleRow = (String, String, String, String, String, Vec<String>, String);

/// Previews a cycle of `job_id` on `snapshot_id` (or the latest snapshot).
pub async fn preview(
    pool: &PgPool,
    gate: &GateServiceClient<PeerChannel>,
    job_id: JobId,
    snapshot_id: Option<Uuid>,
    sample_size: u32,
) -> Result<v1::PreviewCycleResponse, StagerError> {
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let job: Option<(serde_json::Value, String)> = sqlx::query_as(
        "SELECT scope_rules, deprovision_mode FROM jobs WHERE job_id = $1 AND deleted_at IS NULL",
    )
    .bind(job_id.0)
    .fetch_optional(&mut *transaction)
    .await?;
    let Some((scope_rules, deprovision_mode)) = job else {
        return Err(StagerError::NotFound(format!("job {job_id} not found")));
    };
    let snapshot: Option<(Uuid,)> = sqlx::query_as(
        "SELECT snapshot_id FROM snapshots WHERE job_id = $1 AND ($2::uuid IS NULL OR snapshot_id = $2) \
           AND EXISTS (SELECT 1 FROM source_objects o WHERE o.snapshot_id = snapshots.snapshot_id) \
         ORDER BY received_at DESC LIMIT 1",
    )
    .bind(job_id.0)
    .bind(snapshot_id)
    .fetch_optional(&mut *transaction)
    .await?;
    let Some((snapshot_id,)) = snapshot else {
        return Err(StagerError::WrongState(format!(
            "job {job_id} has no source data to preview (push a snapshot, or name one that still has its rows)"
        )));
    };
    sqlx::query(
        "CREATE TEMP TABLE preview_actions (LIKE staged_actions INCLUDING DEFAULTS) ON COMMIT DROP",
    )
    .execute(&mut *transaction)
    .await?;
    let scope = ScopeParameters::from_rules(&scope_rules);
    let preview_cycle = Uuid::nil();
    insert_actions(
        &mut transaction,
        ActionTable::Preview,
        preview_cycle,
        job_id,
        snapshot_id,
        &scope,
        &deprovision_mode,
    )
    .await?;
    let counts: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT action, object_type, count(*) FROM preview_actions WHERE status <> 'skipped_pinned' \
         GROUP BY action, object_type ORDER BY action, object_type",
    )
    .fetch_all(&mut *transaction)
    .await?;
    let sample: Vec<SampleRow> = sqlx::query_as(
        "SELECT anchor, object_type, action, reason, status, changed_attributes, display_name FROM preview_actions \
         ORDER BY (action IN ('delete', 'disable')) DESC, anchor COLLATE \"C\" LIMIT $1",
    )
    .bind(i64::from(if sample_size == 0 { 100 } else { sample_size.min(1000) }))
    .fetch_all(&mut *transaction)
    .await?;
    // Nothing of the preview is kept.
    transaction.rollback().await.map_err(StoreError::from)?;

    let counts: Vec<v1::ActionCount> = counts
        .into_iter()
        .map(|(action, object_type, count)| v1::ActionCount {
            action: names::action_kind(&action) as i32,
            object_type: names::object_type(&object_type) as i32,
            count: count as u64,
        })
        .collect();
    let verdict = gate
        .clone()
        .evaluate_counts(v1::EvaluateCountsRequest {
            job_id: job_id.to_string(),
            counts: counts.clone(),
            user_population: 0,
            group_population: 0,
        })
        .await
        .map_err(|status| StagerError::Peer {
            service: "gate",
            status,
        })?
        .into_inner();
    Ok(v1::PreviewCycleResponse {
        job_id: job_id.to_string(),
        snapshot_id: snapshot_id.to_string(),
        counts,
        sample: sample
            .into_iter()
            .map(
                |(
                    anchor,
                    object_type,
                    action,
                    reason,
                    status,
                    changed_attributes,
                    display_name,
                )| v1::StagedAction {
                    action_id: String::new(),
                    cycle_id: String::new(),
                    job_id: job_id.to_string(),
                    anchor,
                    object_type: names::object_type(&object_type) as i32,
                    action: names::action_kind(&action) as i32,
                    reason: names::action_reason(&reason) as i32,
                    status: names::action_status(&status) as i32,
                    changed_attributes,
                    display_name,
                },
            )
            .collect(),
        would_quarantine: verdict.would_quarantine,
        breaches: verdict.breaches,
    })
}
