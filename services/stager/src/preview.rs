//! PreviewCycle: the diff of the job's latest snapshot, written to a temporary table inside a
//! transaction that is rolled back, judged by the gate's rules. Nothing changes.

use sqlx::PgPool;
use syncguard_bootstrap::PeerChannel;
use syncguard_domain::{DeprovisionMode, JobId, ScopeRules};
use syncguard_proto::names;
use syncguard_proto::v1;
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_store::StoreError;
use uuid::Uuid;

use crate::diff::{ActionTable, Diff, SourceTable};
use crate::error::StagerError;

/// One previewed action: anchor, type, action, reason, status, changed attributes, name.
type SampleRow = (String, String, String, String, String, Vec<String>, String);

/// Previews a cycle of `job_id` on its latest data (its newest full snapshot with every
/// later delta applied), or on `snapshot_id` alone.
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
    let scope = ScopeRules::from_stored(&scope_rules)
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    let deprovision: DeprovisionMode = deprovision_mode
        .parse()
        .map_err(|error: syncguard_domain::UnknownName| StoreError::Corrupt(error.to_string()))?;
    sqlx::query(
        "CREATE TEMP TABLE preview_source (LIKE source_objects INCLUDING DEFAULTS) ON COMMIT DROP",
    )
    .execute(&mut *transaction)
    .await?;
    let latest = Uuid::nil();
    let copied = match snapshot_id {
        Some(snapshot_id) => sqlx::query(
            "INSERT INTO preview_source SELECT $1, anchor, 'present', object_type, distinguished_name, \
                 attributes, enabled, member_anchors, deleted_in_source, content_hash \
             FROM source_objects o JOIN snapshots s USING (snapshot_id) \
             WHERE o.snapshot_id = $2 AND s.job_id = $3 AND s.kind = 'full'",
        )
        .bind(latest)
        .bind(snapshot_id)
        .bind(job_id.0),
        None => sqlx::query(
            "INSERT INTO preview_source SELECT $1, latest.anchor, 'present', latest.object_type, \
                 latest.distinguished_name, latest.attributes, latest.enabled, latest.member_anchors, \
                 latest.deleted_in_source, latest.content_hash \
             FROM (SELECT DISTINCT ON (o.anchor) o.* FROM source_objects o \
                   JOIN snapshots s ON s.snapshot_id = o.snapshot_id \
                   WHERE s.job_id = $2 AND s.seq >= COALESCE((SELECT max(f.seq) FROM snapshots f \
                       WHERE f.job_id = $2 AND f.kind = 'full' AND NOT f.rows_released), 0) \
                   ORDER BY o.anchor, s.seq DESC) latest \
             WHERE latest.change <> 'delete'",
        )
        .bind(latest)
        .bind(job_id.0),
    }
    .execute(&mut *transaction)
    .await?;
    let has_source: (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM snapshots s WHERE s.job_id = $1 AND s.seq IS NOT NULL \
                          AND ($2::uuid IS NULL OR s.snapshot_id = $2) AND NOT s.rows_released)",
    )
    .bind(job_id.0)
    .bind(snapshot_id)
    .fetch_one(&mut *transaction)
    .await?;
    if !has_source.0 {
        return Err(StagerError::WrongState(format!(
            "job {job_id} has no source data to preview (push a snapshot, or name a full one that still has its rows)"
        )));
    }
    tracing::debug!(job = %job_id, rows = copied.rows_affected(), "preview source ready");
    sqlx::query(
        "CREATE TEMP TABLE preview_actions (LIKE staged_actions INCLUDING DEFAULTS) ON COMMIT DROP",
    )
    .execute(&mut *transaction)
    .await?;
    let diff = Diff {
        table: ActionTable::Preview,
        source: SourceTable::Preview,
        cycle_id: Uuid::nil(),
        job_id,
        snapshot_id: latest,
        delta: false,
        scope: &scope,
        deprovision,
        small_delta: false,
    };
    // What the diff wrote, counted as it wrote it; pinned objects' actions never happen.
    let mut written = diff.write_actions(&mut transaction).await?;
    written.retain(|count| count.status != "skipped_pinned");
    let counts = syncguard_store::by_action_and_type(&written);
    let sample: Vec<SampleRow> = sqlx::query_as(
        "SELECT anchor, object_type, action, reason, status, changed_attributes, display_name FROM preview_actions \
         ORDER BY (action IN ('delete', 'disable')) DESC, anchor COLLATE \"C\" LIMIT $1",
    )
    .bind(i64::from(if sample_size == 0 { 100 } else { sample_size.min(1000) }))
    .fetch_all(&mut *transaction)
    .await?;
    // Nothing of the preview is kept.
    transaction.rollback().await.map_err(StoreError::from)?;

    let parse_err = |error: syncguard_domain::UnknownName| StoreError::Corrupt(error.to_string());
    let counts: Vec<v1::ActionCount> = counts
        .into_iter()
        .map(|(action, object_type, count)| {
            Ok::<_, StoreError>(v1::ActionCount {
                action: names::action_kind(action.parse().map_err(parse_err)?) as i32,
                object_type: names::object_type(object_type.parse().map_err(parse_err)?) as i32,
                count: count as u64,
            })
        })
        .collect::<Result<_, _>>()?;
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
        snapshot_id: snapshot_id.map(|id| id.to_string()).unwrap_or_default(),
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
                )| {
                    names::staged_action(names::StoredAction {
                        job_id: job_id.to_string(),
                        anchor,
                        object_type,
                        action,
                        reason,
                        status,
                        changed_attributes,
                        display_name,
                        ..Default::default()
                    })
                    .map_err(parse_err)
                },
            )
            .collect::<Result<_, _>>()?,
        would_quarantine: verdict.would_quarantine,
        breaches: verdict.breaches,
    })
}
