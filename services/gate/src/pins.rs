//! Pins: objects no cycle may delete or disable after an approver rejected that, until the
//! source undoes the change or an approver releases them.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use syncguard_bootstrap::timestamp;
use syncguard_domain::{JobId, Principal, SourceAnchor};
use syncguard_proto::v1;
use syncguard_store::StoreError;
use uuid::Uuid;

use crate::error::GateError;

/// anchor, quarantine, pinned by, reason, pinned at.
type PinRow = (String, Option<Uuid>, String, String, DateTime<Utc>);

/// A job's pins.
pub async fn pins(
    pool: &PgPool,
    request: &v1::ListPinsRequest,
) -> Result<v1::ListPinsResponse, GateError> {
    let job_id = JobId::parse("job_id", &request.job_id)?;
    if !syncguard_store::job_exists(pool, job_id.0).await? {
        return Err(GateError::JobNotFound(job_id));
    }
    let page = syncguard_bootstrap::page(request.page.as_ref())?;
    let size = page.size;
    let after = page.token;
    let rows: Vec<PinRow> = sqlx::query_as(
        "SELECT anchor, quarantine_id, pinned_by, reason, pinned_at FROM pins \
         WHERE job_id = $1 AND ($2::text IS NULL OR anchor COLLATE \"C\" > $2) ORDER BY anchor COLLATE \"C\" LIMIT $3",
    )
    .bind(job_id.0)
    .bind(after)
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > size;
    let pins: Vec<v1::Pin> = rows
        .into_iter()
        .take(size as usize)
        .map(
            |(anchor, quarantine_id, pinned_by, reason, pinned_at)| v1::Pin {
                job_id: job_id.to_string(),
                anchor,
                quarantine_id: quarantine_id.map(|id| id.to_string()).unwrap_or_default(),
                pinned_by,
                reason,
                pinned_at: Some(timestamp(pinned_at)),
            },
        )
        .collect();
    let next_page_token = if more {
        pins.last()
            .map(|pin| pin.anchor.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(v1::ListPinsResponse {
        pins,
        next_page_token,
    })
}

/// Releases pins (all of a job, or the named anchors), logged with principal and reason.
pub async fn release_pins(
    pool: &PgPool,
    request: &v1::ReleasePinsRequest,
    principal: &Principal,
) -> Result<u64, GateError> {
    let job_id = JobId::parse("job_id", &request.job_id)?;
    let reason = syncguard_domain::text::reason("reason", &request.reason)?;
    let mut anchors = Vec::with_capacity(request.anchors.len());
    for (index, anchor) in request.anchors.iter().enumerate() {
        anchors.push(SourceAnchor::parse(&format!("anchors[{index}]"), anchor)?.to_string());
    }
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let released: Vec<(String,)> = sqlx::query_as(
        "DELETE FROM pins WHERE job_id = $1 AND (cardinality($2::text[]) = 0 OR anchor = ANY($2)) RETURNING anchor",
    )
    .bind(job_id.0)
    .bind(&anchors)
    .fetch_all(&mut *transaction)
    .await?;
    sqlx::query(
        "INSERT INTO provisioning_log (job_id, anchor, display_action, actor, detail) \
         SELECT $1, anchor, 'ReleasePins', $2, $3 FROM unnest($4::text[]) AS released(anchor)",
    )
    .bind(job_id.0)
    .bind(principal.to_string())
    .bind(&reason)
    .bind(
        released
            .iter()
            .map(|(anchor,)| anchor.clone())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await.map_err(StoreError::from)?;
    Ok(released.len() as u64)
}
