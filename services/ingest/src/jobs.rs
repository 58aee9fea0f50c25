//! The `jobs` table: create, read, update, list and retire job configurations.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
pub use syncguard_bootstrap::timestamp;
use syncguard_domain::{Breach, CycleState, JobId, Principal, Role, ScopeRules};
use syncguard_proto::v1::{self, JobHealth};
use syncguard_store::StoreError;
use uuid::Uuid;

use crate::error::IngestError;
use crate::job_spec::{ValidJobSpec, scope_to_proto};
use crate::source_settings::SourceSettings;

const JOB_COLUMNS: &str = "job_id, name, source_kind, source_config, scope_rules, \
    schedule_interval_secs, deprovision_mode, notification_recipients, retention_days, \
    hold_limit_secs, required_approvals, allow_empty_source, targets, created_by, created_at, updated_at";

/// A job row as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct JobRow {
    job_id: Uuid,
    name: String,
    source_kind: String,
    source_config: serde_json::Value,
    scope_rules: serde_json::Value,
    schedule_interval_secs: i32,
    deprovision_mode: String,
    notification_recipients: Vec<String>,
    retention_days: i32,
    hold_limit_secs: i32,
    required_approvals: i16,
    allow_empty_source: bool,
    targets: serde_json::Value,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn duration(seconds: i32) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::from(seconds),
        nanos: 0,
    }
}

impl JobRow {
    /// The job's scope rules as stored.
    pub fn scope(&self) -> Result<ScopeRules, IngestError> {
        ScopeRules::from_stored(&self.scope_rules)
            .map_err(|error| IngestError::Store(StoreError::Corrupt(error.to_string())))
    }

    /// What `spec` changes among the settings that guard deletions, one line each
    /// (`required_approvals 2 -> 1`); empty when it changes none of them.
    pub fn guarded_changes(&self, spec: &ValidJobSpec) -> Result<Vec<String>, IngestError> {
        let mut changes = Vec::new();
        let mut compare = |name: &str, before: String, after: String| {
            if before != after {
                changes.push(format!("{name} {before} -> {after}"));
            }
        };
        compare(
            "required_approvals",
            self.required_approvals.to_string(),
            spec.required_approvals.to_string(),
        );
        compare(
            "hold_limit",
            format!("{}s", self.hold_limit_secs),
            format!("{}s", spec.hold_limit_secs),
        );
        compare(
            "notification_recipients",
            format!("{:?}", self.notification_recipients),
            format!("{:?}", spec.recipients),
        );
        compare(
            "retention_days",
            self.retention_days.to_string(),
            spec.retention_days.to_string(),
        );
        compare(
            "allow_empty_source",
            self.allow_empty_source.to_string(),
            spec.allow_empty_source.to_string(),
        );
        compare(
            "deprovision_mode",
            self.deprovision_mode.clone(),
            spec.deprovision_mode.to_owned(),
        );
        let scope = self.scope()?;
        if scope != spec.scope_rules {
            changes.push(format!(
                "scope {} -> {}",
                scope.to_stored(),
                spec.scope_rules.to_stored()
            ));
        }
        Ok(changes)
    }

    /// The API view, with the status computed by [`job_status`].
    pub fn to_proto(&self, status: v1::JobStatus) -> v1::Job {
        let scope = self.scope().unwrap_or_else(|error| {
            tracing::error!(job = %self.job_id, %error, "stored scope rules cannot be read");
            ScopeRules::default()
        });
        v1::Job {
            job_id: self.job_id.to_string(),
            spec: Some(v1::JobSpec {
                name: self.name.clone(),
                source: Some(
                    self.source()
                        .map(|source| source.to_proto())
                        .unwrap_or_else(|error| {
                            tracing::error!(job = %self.job_id, %error, "stored source settings cannot be read");
                            v1::JobSource::default()
                        }),
                ),
                scope: Some(scope_to_proto(&scope)),
                schedule_interval: Some(duration(self.schedule_interval_secs)),
                deprovision_mode: match self.deprovision_mode.as_str() {
                    "disable" => v1::DeprovisionMode::Disable as i32,
                    _ => v1::DeprovisionMode::Delete as i32,
                },
                notification_recipients: self.notification_recipients.clone(),
                retention_days: self.retention_days as u32,
                hold_limit: Some(duration(self.hold_limit_secs)),
                required_approvals: self.required_approvals as u32,
                allow_empty_source: self.allow_empty_source,
                targets: syncguard_domain::target::TargetSettings::list_from_stored(&self.targets)
                    .map(|targets| crate::targets::to_proto(&targets))
                    .unwrap_or_else(|error| {
                        tracing::error!(job = %self.job_id, %error, "stored targets cannot be read");
                        Vec::new()
                    }),
                ..Default::default()
            }),
            status: Some(status),
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(self.updated_at)),
            created_by: self.created_by.clone(),
        }
    }

    /// The job's id.
    pub fn job_id(&self) -> JobId {
        JobId(self.job_id)
    }

    /// Where the job's data comes from, as stored.
    pub fn source(&self) -> Result<SourceSettings, IngestError> {
        SourceSettings::from_stored(&self.source_kind, &self.source_config)
            .map_err(|error| IngestError::Store(StoreError::Corrupt(error.to_string())))
    }
}

/// Inserts a new job with the protection its creator asked for (an encoded
/// `InitialProtection`, recorded by the gate); its first scheduled cycle is one interval
/// away (TriggerCycle runs one now).
pub async fn insert(
    pool: &PgPool,
    job_id: JobId,
    spec: &ValidJobSpec,
    created_by: &str,
    initial_protection: &[u8],
) -> Result<JobRow, IngestError> {
    let sql = format!(
        "INSERT INTO jobs (job_id, name, source_kind, source_config, scope_rules, \
             schedule_interval_secs, deprovision_mode, notification_recipients, retention_days, \
             hold_limit_secs, required_approvals, allow_empty_source, targets, created_by, \
             initial_protection, next_run_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 now() + make_interval(secs => $6)) \
         RETURNING {JOB_COLUMNS}"
    );
    Ok(bind_spec(
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(job_id.0),
        spec,
    )
    .bind(created_by)
    .bind(initial_protection)
    .fetch_one(pool)
    .await?)
}

fn bind_spec<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, JobRow, sqlx::postgres::PgArguments>,
    spec: &'q ValidJobSpec,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, JobRow, sqlx::postgres::PgArguments> {
    query
        .bind(&spec.name)
        .bind(spec.source.kind())
        .bind(spec.source.to_stored())
        .bind(spec.scope_rules.to_stored())
        .bind(spec.schedule_interval_secs)
        .bind(spec.deprovision_mode)
        .bind(&spec.recipients)
        .bind(spec.retention_days)
        .bind(spec.hold_limit_secs)
        .bind(spec.required_approvals)
        .bind(spec.allow_empty_source)
        .bind(syncguard_domain::target::TargetSettings::list_to_stored(
            &spec.targets,
        ))
}

/// Replaces a job's settings. Changes to the settings that guard deletions need the admin
/// role and a reason, and are recorded in the provisioning log in the same transaction.
pub async fn update(
    pool: &PgPool,
    job_id: JobId,
    spec: &ValidJobSpec,
    caller: &Principal,
    reason: &str,
) -> Result<JobRow, IngestError> {
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let current: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = $1 AND deleted_at IS NULL FOR UPDATE"
    )))
    .bind(job_id.0)
    .fetch_optional(&mut *transaction)
    .await?;
    let current = current.ok_or(IngestError::JobNotFound(job_id))?;
    let changes = current.guarded_changes(spec)?;
    if !changes.is_empty() {
        if caller.role != Role::Admin {
            return Err(IngestError::NotAllowed(format!(
                "changing {} guards deletions and needs the admin role; {} has role {}",
                changes
                    .iter()
                    .map(|change| change.split(' ').next().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(", "),
                caller.name,
                caller.role
            )));
        }
        if reason.is_empty() {
            return Err(syncguard_domain::FieldError::new(
                "reason",
                "a reason is required to change settings that guard deletions; it is logged",
            )
            .into());
        }
        sqlx::query(
            "INSERT INTO provisioning_log (job_id, display_action, actor, detail) \
             VALUES ($1, 'UpdateJob', $2, $3)",
        )
        .bind(job_id.0)
        .bind(caller.to_string())
        .bind(format!("{reason} [{}]", changes.join("; ")))
        .execute(&mut *transaction)
        .await?;
        tracing::info!(job = %job_id, actor = %caller, changes = changes.join("; "), "guarded job settings changed");
    }
    let sql = format!(
        "UPDATE jobs SET name = $2, source_kind = $3, source_config = $4, scope_rules = $5, \
             schedule_interval_secs = $6, deprovision_mode = $7, notification_recipients = $8, \
             retention_days = $9, hold_limit_secs = $10, required_approvals = $11, \
             allow_empty_source = $12, targets = $13, updated_at = now() \
         WHERE job_id = $1 AND deleted_at IS NULL RETURNING {JOB_COLUMNS}"
    );
    let row = bind_spec(
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(job_id.0),
        spec,
    )
    .fetch_optional(&mut *transaction)
    .await?
    .ok_or(IngestError::JobNotFound(job_id))?;
    transaction.commit().await.map_err(StoreError::from)?;
    Ok(row)
}

/// One live job.
pub async fn get(pool: &PgPool, job_id: JobId) -> Result<JobRow, IngestError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = $1 AND deleted_at IS NULL");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(job_id.0)
        .fetch_optional(pool)
        .await?
        .ok_or(IngestError::JobNotFound(job_id))
}

/// A page of live jobs in creation order, after `after` when given.
pub async fn list(
    pool: &PgPool,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<JobRow>, IngestError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE deleted_at IS NULL AND ($1::uuid IS NULL OR job_id > $1) \
         ORDER BY job_id LIMIT $2"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

/// Retires a job's configuration; its objects and logs stay.
pub async fn retire(pool: &PgPool, job_id: JobId) -> Result<(), IngestError> {
    let result = sqlx::query(
        "UPDATE jobs SET deleted_at = now(), next_run_at = NULL WHERE job_id = $1 AND deleted_at IS NULL",
    )
    .bind(job_id.0)
    .execute(pool)
    .await?;
    if result.rows_affected() == 0 {
        return Err(IngestError::JobNotFound(job_id));
    }
    Ok(())
}

/// Removes a job that was never usable (its protection could not be recorded).
pub async fn remove_unused(pool: &PgPool, job_id: JobId) -> Result<(), IngestError> {
    sqlx::query("DELETE FROM jobs WHERE job_id = $1")
        .bind(job_id.0)
        .execute(pool)
        .await?;
    Ok(())
}

/// The status line of a job: quarantined, failed, or healthy, from what the other services
/// recorded.
pub async fn job_status(pool: &PgPool, job_id: JobId) -> Result<v1::JobStatus, IngestError> {
    let quarantine: Option<(Uuid, serde_json::Value)> = sqlx::query_as(
        "SELECT quarantine_id, breaches FROM quarantines WHERE job_id = $1 AND state = 'open'",
    )
    .bind(job_id.0)
    .fetch_optional(pool)
    .await?;
    // The newest cycle that got past the queue (a queued one has no outcome yet).
    let last_cycle: Option<(Uuid, String, Option<String>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT cs.cycle_id, cs.state, cs.error, cs.received_at FROM cycle_states cs \
         WHERE cs.job_id = $1 AND cs.state <> 'queued' ORDER BY cs.seq DESC LIMIT 1",
    )
    .bind(job_id.0)
    .fetch_optional(pool)
    .await?;
    let mut status = v1::JobStatus {
        health: JobHealth::Healthy as i32,
        message: "Healthy".into(),
        ..Default::default()
    };
    if let Some((cycle_id, state, error, at)) = &last_cycle {
        status.last_cycle_id = cycle_id.to_string();
        status.last_cycle_at = Some(timestamp(*at));
        let state: CycleState = state
            .parse()
            .map_err(|error: syncguard_domain::UnknownName| {
                StoreError::Corrupt(error.to_string())
            })?;
        if state == CycleState::Failed {
            status.health = JobHealth::Failed as i32;
            status.message = format!(
                "Last cycle failed: {}",
                error.as_deref().unwrap_or("no error recorded")
            );
        }
    }
    let last_failure: Option<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT error, failed_at FROM source_failures WHERE job_id = $1 ORDER BY failed_at DESC LIMIT 1",
    )
    .bind(job_id.0)
    .fetch_optional(pool)
    .await?;
    if let Some((error, failed_at)) = last_failure
        && last_cycle
            .as_ref()
            .is_none_or(|(_, _, _, at)| failed_at > *at)
    {
        status.health = JobHealth::Failed as i32;
        status.message = format!("Source read failed: {error}");
    }
    if let Some((quarantine_id, breaches)) = quarantine {
        let explanation = Breach::list_from_stored(&breaches)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?
            .iter()
            .map(|breach| breach.explanation.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        status.health = JobHealth::Quarantined as i32;
        status.open_quarantine_id = quarantine_id.to_string();
        status.message = if explanation.is_empty() {
            "Delete threshold exceeded".into()
        } else {
            format!("Delete threshold exceeded: {explanation}")
        };
    }
    Ok(status)
}
