//! Where each target's export stands, the objects targets refused, and trying them again.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use syncguard_bootstrap::timestamp;
use syncguard_domain::target::TargetKind;
use syncguard_domain::{FieldError, JobId};
use syncguard_proto::v1;
use uuid::Uuid;

use crate::error::ExporterError;
use crate::export::{job_targets, lag_seconds};

fn job(field: &str, value: &str) -> Result<Option<JobId>, ExporterError> {
    if value.is_empty() {
        return Ok(None);
    }
    Ok(Some(JobId::parse(field, value)?))
}

async fn known_job(pool: &PgPool, job_id: Option<JobId>) -> Result<(), ExporterError> {
    match job_id {
        Some(job) if !syncguard_store::job_exists(pool, job.0).await? => {
            Err(ExporterError::NotFound(format!("job {job} not found")))
        }
        _ => Ok(()),
    }
}

type CursorRow = (
    i64,
    i32,
    bool,
    i64,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<DateTime<Utc>>,
);

/// The status of every target of a job (or of every job).
pub async fn list_targets(
    pool: &PgPool,
    request: &v1::ListTargetsRequest,
) -> Result<v1::ListTargetsResponse, ExporterError> {
    let job_id = job("job_id", &request.job_id)?;
    known_job(pool, job_id).await?;
    let jobs: Vec<(Uuid,)> = match job_id {
        Some(job) => vec![(job.0,)],
        None => sqlx::query_as(
            "SELECT job_id FROM jobs WHERE deleted_at IS NULL AND targets <> '[]' ORDER BY job_id",
        )
        .fetch_all(pool)
        .await?,
    };
    let mut targets = Vec::new();
    for (job_id,) in jobs {
        for target in job_targets(pool, JobId(job_id)).await? {
            let cursor: Option<CursorRow> = sqlx::query_as(
                "SELECT batch, position, bootstrap_after IS NOT NULL, exported, last_success_at, last_error, last_error_at \
                 FROM export_cursors WHERE job_id = $1 AND target = $2",
            )
            .bind(job_id)
            .bind(&target.name)
            .fetch_optional(pool)
            .await?;
            // No cursor yet: the exporter has not begun, and begins with every live object.
            let (
                batch,
                position,
                bootstrapping,
                exported,
                last_success_at,
                last_error,
                last_error_at,
            ) = cursor.unwrap_or((0, 0, true, 0, None, None, None));
            let (pending, oldest): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
                "SELECT count(*), min(at) FROM directory_changes WHERE job_id = $1 AND (batch, position) > ($2, $3)",
            )
            .bind(job_id)
            .bind(batch)
            .bind(position)
            .fetch_one(pool)
            .await?;
            let (retrying, failed): (i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE status = 'retrying'), count(*) FILTER (WHERE status = 'failed') \
                 FROM export_failures WHERE job_id = $1 AND target = $2",
            )
            .bind(job_id)
            .bind(&target.name)
            .fetch_one(pool)
            .await?;
            targets.push(v1::TargetStatus {
                job_id: job_id.to_string(),
                target: target.name.clone(),
                kind: match target.kind {
                    TargetKind::Ldap(_) => v1::TargetKind::Ldap as i32,
                    TargetKind::Scim(_) => v1::TargetKind::Scim as i32,
                },
                cursor: format!("{batch}.{position}"),
                pending_changes: pending.max(0) as u64,
                lag_seconds: lag_seconds(oldest),
                last_success_at: last_success_at.map(timestamp),
                last_error: last_error.unwrap_or_default(),
                last_error_at: last_error_at.map(timestamp),
                exported: exported.max(0) as u64,
                retrying: retrying.max(0) as u64,
                failed: failed.max(0) as u64,
                bootstrapping,
            });
        }
    }
    Ok(v1::ListTargetsResponse { targets })
}

fn status_name(status: i32, index: usize) -> Result<&'static str, FieldError> {
    match v1::ExportFailureStatus::try_from(status) {
        Ok(v1::ExportFailureStatus::Retrying) => Ok("retrying"),
        Ok(v1::ExportFailureStatus::Failed) => Ok("failed"),
        Ok(v1::ExportFailureStatus::Resolved) => Ok("resolved"),
        _ => Err(FieldError::new(
            format!("statuses[{index}]"),
            format!("{status} is not a failure status"),
        )),
    }
}

type FailureRow = (
    Uuid,
    Uuid,
    String,
    String,
    Uuid,
    String,
    String,
    String,
    i32,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
);

/// Objects refused by targets, newest first.
pub async fn list_failures(
    pool: &PgPool,
    request: &v1::ListExportFailuresRequest,
) -> Result<v1::ListExportFailuresResponse, ExporterError> {
    let job_id = job("job_id", &request.job_id)?;
    known_job(pool, job_id).await?;
    let statuses: Vec<&str> = if request.statuses.is_empty() {
        vec!["retrying", "failed"]
    } else {
        request
            .statuses
            .iter()
            .enumerate()
            .map(|(index, status)| status_name(*status, index))
            .collect::<Result<_, _>>()?
    };
    let page = syncguard_bootstrap::page(request.page.as_ref())?;
    let before = page.token_as::<Uuid>()?;
    let target = Some(request.target.trim()).filter(|target| !target.is_empty());
    let rows: Vec<FailureRow> = sqlx::query_as(
        "SELECT failure_id, job_id, target, anchor, object_id, object_type, change, status, attempts, last_error, \
                next_attempt_at, updated_at FROM export_failures \
         WHERE ($1::uuid IS NULL OR job_id = $1) AND ($2::text IS NULL OR target = $2) AND status = ANY($3) \
           AND ($4::uuid IS NULL OR failure_id < $4) ORDER BY failure_id DESC LIMIT $5",
    )
    .bind(job_id.map(|job| job.0))
    .bind(target)
    .bind(&statuses)
    .bind(before)
    .bind(page.fetch())
    .fetch_all(pool)
    .await?;
    let more = rows.len() as i64 > page.size;
    let failures: Vec<v1::ExportFailure> = rows
        .into_iter()
        .take(page.size as usize)
        .map(
            |(
                failure_id,
                job_id,
                target,
                anchor,
                object_id,
                object_type,
                change,
                status,
                attempts,
                last_error,
                next,
                updated,
            )| {
                v1::ExportFailure {
                    failure_id: failure_id.to_string(),
                    job_id: job_id.to_string(),
                    target,
                    anchor,
                    object_id: object_id.to_string(),
                    object_type: if object_type == "group" {
                        v1::ObjectType::Group as i32
                    } else {
                        v1::ObjectType::User as i32
                    },
                    change,
                    status: match status.as_str() {
                        "retrying" => v1::ExportFailureStatus::Retrying,
                        "failed" => v1::ExportFailureStatus::Failed,
                        _ => v1::ExportFailureStatus::Resolved,
                    } as i32,
                    attempts: attempts.max(0) as u32,
                    last_error,
                    next_attempt_at: (status == "retrying").then(|| timestamp(next)),
                    updated_at: Some(timestamp(updated)),
                }
            },
        )
        .collect();
    let next_page_token = if more {
        failures
            .last()
            .map(|f| f.failure_id.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(v1::ListExportFailuresResponse {
        failures,
        next_page_token,
    })
}

/// Marks failures to be tried again now; returns the job to wake and how many.
pub async fn retry(
    pool: &PgPool,
    request: &v1::RetryExportRequest,
) -> Result<(JobId, u64), ExporterError> {
    let (job_id, updated) = if !request.failure_id.is_empty() {
        let id = Uuid::parse_str(&request.failure_id)
            .map_err(|_| FieldError::new("failure_id", "not a failure id (a UUID)"))?;
        let row: Option<(Uuid,)> = sqlx::query_as(
            "UPDATE export_failures SET status = 'retrying', attempts = 0, next_attempt_at = now(), updated_at = now() \
             WHERE failure_id = $1 AND status <> 'resolved' RETURNING job_id",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?;
        let (job_id,) =
            row.ok_or_else(|| ExporterError::NotFound(format!("no unresolved failure {id}")))?;
        (JobId(job_id), 1)
    } else {
        let job_id = job("job_id", &request.job_id)?.ok_or_else(|| {
            FieldError::new("failure_id", "name a failure, or a job and its target")
        })?;
        known_job(pool, Some(job_id)).await?;
        let target = request.target.trim();
        if !job_targets(pool, job_id)
            .await?
            .iter()
            .any(|t| t.name == target)
        {
            return Err(ExporterError::NotFound(format!(
                "job {job_id} has no target {target:?}"
            )));
        }
        let updated = sqlx::query(
            "UPDATE export_failures SET status = 'retrying', attempts = 0, next_attempt_at = now(), updated_at = now() \
             WHERE job_id = $1 AND target = $2 AND status <> 'resolved'",
        )
        .bind(job_id.0)
        .bind(target)
        .execute(pool)
        .await?
        .rows_affected();
        (job_id, updated)
    };
    Ok((job_id, updated))
}
