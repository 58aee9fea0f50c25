//! Reading and writing a job's protection; every change is logged with principal and reason.

use chrono::{DateTime, Utc};
use prost::Message as _;
use sqlx::{PgConnection, PgPool};
use syncguard_domain::{FieldError, JobId};
use syncguard_proto::v1;
use syncguard_store::StoreError;
use uuid::Uuid;

use crate::error::GateError;
use crate::rules::{Rule, default_rules, parse_rules};

/// A job's protection as stored.
#[derive(Debug, Clone)]
pub struct StoredProtection {
    /// Whether cycles are checked at all.
    pub enabled: bool,
    /// The rules with their ids (no ids for the implicit default).
    pub rules: Vec<(Option<Uuid>, Rule)>,
    /// Who set it (`default` when never set).
    pub updated_by: String,
    /// Why.
    pub reason: String,
    /// When.
    pub updated_at: Option<DateTime<Utc>>,
}

impl StoredProtection {
    /// The API view.
    pub fn to_proto(&self, job_id: JobId) -> v1::Protection {
        v1::Protection {
            job_id: job_id.to_string(),
            enabled: self.enabled,
            rules: self
                .rules
                .iter()
                .map(|(id, rule)| rule.to_proto(id.map(|id| id.to_string()).unwrap_or_default()))
                .collect(),
            updated_by: self.updated_by.clone(),
            reason: self.reason.clone(),
            updated_at: self.updated_at.map(|at| prost_types::Timestamp {
                seconds: at.timestamp(),
                nanos: at.timestamp_subsec_nanos() as i32,
            }),
        }
    }
}

async fn ensure_job_exists(conn: &mut PgConnection, job_id: JobId) -> Result<(), GateError> {
    let exists: Option<(Uuid,)> =
        sqlx::query_as("SELECT job_id FROM jobs WHERE job_id = $1 AND deleted_at IS NULL")
            .bind(job_id.0)
            .fetch_optional(&mut *conn)
            .await?;
    exists.map(|_| ()).ok_or(GateError::JobNotFound(job_id))
}

/// One row of [`stored`]: the job, its recorded settings (absent before the gate recorded
/// any) and one of its rules (absent when it has none).
#[derive(serde::Deserialize)]
struct ProtectionRow {
    live: bool,
    enabled: Option<bool>,
    updated_by: Option<String>,
    reason: Option<String>,
    updated_at: Option<DateTime<Utc>>,
    rule_id: Option<Uuid>,
    name: Option<String>,
    counted_actions: Option<Vec<String>>,
    object_type: Option<String>,
    max_count: Option<i64>,
    max_percent: Option<f64>,
    min_population: Option<i64>,
    window_secs: Option<i32>,
}

/// What is stored of a job's protection, as read by [`rows_json`] beside something else in
/// the same statement (a quarantine view reads it with the quarantine).
#[derive(serde::Deserialize)]
#[serde(transparent)]
pub struct StoredRows(Vec<ProtectionRow>);

/// An SQL expression reading what is stored of the protection of the job `job` (an SQL
/// expression for its id) as one JSON array of [`StoredRows`]: the job, its recorded
/// settings and its rules in order. Empty when the job does not exist.
pub fn rows_json(job: &str) -> String {
    format!(
        "(SELECT coalesce(json_agg(row_to_json(stored) ORDER BY stored.position), '[]') FROM \
           (SELECT j.deleted_at IS NULL AS live, p.enabled, p.updated_by, p.reason, p.updated_at, \
                   r.rule_id, r.name, r.counted_actions, r.object_type, r.max_count, r.max_percent, \
                   r.min_population, r.window_secs, r.position \
            FROM jobs j LEFT JOIN job_protection p ON p.job_id = j.job_id \
            LEFT JOIN protection_rules r ON r.job_id = p.job_id \
            WHERE j.job_id = {job}) stored)"
    )
}

/// What is stored of a job's protection, read in one statement (it is on the path of every
/// decision and quarantine view): `None` when the job does not exist, else whether it is
/// live and its recorded protection (`None` when the gate never recorded one).
async fn stored(
    conn: &mut PgConnection,
    job_id: JobId,
) -> Result<Option<(bool, Option<StoredProtection>)>, GateError> {
    let (rows,): (sqlx::types::Json<StoredRows>,) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {}", rows_json("$1"))))
            .bind(job_id.0)
            .fetch_one(&mut *conn)
            .await?;
    assemble(job_id, rows.0)
}

/// [`stored`] from its rows.
fn assemble(
    job_id: JobId,
    StoredRows(rows): StoredRows,
) -> Result<Option<(bool, Option<StoredProtection>)>, GateError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let live = first.live;
    let (Some(enabled), Some(updated_by), Some(reason), Some(updated_at)) = (
        first.enabled,
        first.updated_by.clone(),
        first.reason.clone(),
        first.updated_at,
    ) else {
        return Ok(Some((live, None)));
    };
    let mut rules = Vec::with_capacity(rows.len());
    for row in rows {
        // No rule id: the job has no rules (the outer join's one row of NULLs).
        let Some(rule_id) = row.rule_id else {
            continue;
        };
        // The schema keeps these NOT NULL; a rule missing one is reported, never dropped
        // (a dropped rule would weaken the protection without a word).
        let (Some(name), Some(counted_actions), Some(min_population)) =
            (row.name, row.counted_actions, row.min_population)
        else {
            return Err(GateError::Store(StoreError::Corrupt(format!(
                "protection rule {rule_id} of job {job_id} lacks its name, counted actions or minimum population"
            ))));
        };
        rules.push((
            Some(rule_id),
            Rule {
                name,
                counted_actions,
                object_type: row.object_type,
                max_count: row.max_count,
                max_percent: row.max_percent,
                min_population,
                window_secs: row.window_secs,
            },
        ));
    }
    if rules.is_empty() {
        rules = default_rules()
            .into_iter()
            .map(|rule| (None, rule))
            .collect();
    }
    Ok(Some((
        live,
        Some(StoredProtection {
            enabled,
            rules,
            updated_by,
            reason,
            updated_at: Some(updated_at),
        }),
    )))
}

/// The recorded protection of a job, or `None` when the gate never recorded one.
async fn recorded(
    conn: &mut PgConnection,
    job_id: JobId,
) -> Result<Option<StoredProtection>, GateError> {
    Ok(stored(conn, job_id).await?.and_then(|(_, stored)| stored))
}

/// What the job's creator asked for, validated: (enabled, rules, reason, creator). Errors
/// name the field of the job's specification.
async fn requested(
    conn: &mut PgConnection,
    job_id: JobId,
) -> Result<(bool, Vec<Rule>, String, String), GateError> {
    let (encoded, created_by): (Vec<u8>, String) =
        sqlx::query_as("SELECT initial_protection, created_by FROM jobs WHERE job_id = $1")
            .bind(job_id.0)
            .fetch_one(&mut *conn)
            .await?;
    let initial = v1::InitialProtection::decode(encoded.as_slice()).map_err(|error| {
        StoreError::Corrupt(format!("initial protection of job {job_id}: {error}"))
    })?;
    let rules = parse_rules(&initial.rules).map_err(|error| {
        FieldError::new(format!("spec.protection_{}", error.field), error.message)
    })?;
    let reason = if initial.reason.is_empty() {
        "protection set when the job was created".to_owned()
    } else {
        initial.reason
    };
    Ok((!initial.disabled, rules, reason, created_by))
}

/// The effective protection of a job: what the gate recorded, or (before it recorded
/// anything) what the job's creator asked for.
pub async fn load(pool: &PgPool, job_id: JobId) -> Result<StoredProtection, GateError> {
    load_on(&mut *pool.acquire().await?, job_id).await
}

/// [`load`] on a connection the caller holds (inside its read transaction).
pub async fn load_on(
    conn: &mut PgConnection,
    job_id: JobId,
) -> Result<StoredProtection, GateError> {
    match recorded_or_asked(job_id, stored(conn, job_id).await?)? {
        Some(recorded) => Ok(recorded),
        None => asked(conn, job_id).await,
    }
}

/// [`load`] from the rows a statement read with [`rows_json`]: the database is asked again
/// only when the gate never recorded the job's protection.
pub async fn load_from(
    pool: &PgPool,
    job_id: JobId,
    rows: StoredRows,
) -> Result<StoredProtection, GateError> {
    match recorded_or_asked(job_id, assemble(job_id, rows)?)? {
        Some(recorded) => Ok(recorded),
        None => asked(&mut *pool.acquire().await?, job_id).await,
    }
}

/// The recorded protection of a live job, or `None` when the gate never recorded one (what
/// the job's creator asked for is then in force); a missing or deleted job is not found.
fn recorded_or_asked(
    job_id: JobId,
    stored: Option<(bool, Option<StoredProtection>)>,
) -> Result<Option<StoredProtection>, GateError> {
    match stored {
        Some((true, recorded)) => Ok(recorded),
        _ => Err(GateError::JobNotFound(job_id)),
    }
}

/// The protection the job's creator asked for, in force until the gate records it.
async fn asked(conn: &mut PgConnection, job_id: JobId) -> Result<StoredProtection, GateError> {
    let (enabled, rules, reason, created_by) = requested(conn, job_id).await?;
    Ok(StoredProtection {
        enabled,
        rules: rules.into_iter().map(|rule| (None, rule)).collect(),
        updated_by: created_by,
        reason,
        updated_at: None,
    })
}

/// Records the protection the job's creator asked for. Refused when the job's protection is
/// recorded already: changes go through SetProtection (admin, with a reason).
pub async fn initialize(conn: &mut PgConnection, job_id: JobId) -> Result<(), GateError> {
    ensure_job_exists(conn, job_id).await?;
    if recorded(conn, job_id).await?.is_some() {
        return Err(GateError::WrongState(format!(
            "the protection of job {job_id} is recorded already; change it with SetProtection"
        )));
    }
    let (enabled, rules, reason, created_by) = requested(conn, job_id).await?;
    save(conn, job_id, enabled, &rules, &created_by, &reason).await
}

/// The job's recorded protection, recording what its creator asked for first if the gate
/// never did (a job created while the gate was away is protected all the same).
pub async fn ensure_recorded(
    conn: &mut PgConnection,
    job_id: JobId,
) -> Result<StoredProtection, GateError> {
    if let Some(stored) = recorded(conn, job_id).await? {
        return Ok(stored);
    }
    let (enabled, rules, reason, created_by) = requested(conn, job_id).await?;
    save(conn, job_id, enabled, &rules, &created_by, &reason).await?;
    recorded(conn, job_id)
        .await?
        .ok_or_else(|| GateError::Store(StoreError::Corrupt("protection not recorded".into())))
}

/// Replaces a job's protection and appends the change to the provisioning log, in the
/// caller's transaction.
pub async fn save(
    conn: &mut PgConnection,
    job_id: JobId,
    enabled: bool,
    rules: &[Rule],
    actor: &str,
    reason: &str,
) -> Result<(), GateError> {
    ensure_job_exists(conn, job_id).await?;
    sqlx::query(
        "INSERT INTO job_protection (job_id, enabled, updated_by, reason, updated_at) \
         VALUES ($1, $2, $3, $4, now()) \
         ON CONFLICT (job_id) DO UPDATE SET enabled = EXCLUDED.enabled, \
             updated_by = EXCLUDED.updated_by, reason = EXCLUDED.reason, updated_at = now()",
    )
    .bind(job_id.0)
    .bind(enabled)
    .bind(actor)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM protection_rules WHERE job_id = $1")
        .bind(job_id.0)
        .execute(&mut *conn)
        .await?;
    for (position, rule) in rules.iter().enumerate() {
        sqlx::query(
            "INSERT INTO protection_rules (rule_id, job_id, position, name, counted_actions, \
                 object_type, max_count, max_percent, min_population, window_secs) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(Uuid::now_v7())
        .bind(job_id.0)
        .bind(position as i32)
        .bind(&rule.name)
        .bind(&rule.counted_actions)
        .bind(&rule.object_type)
        .bind(rule.max_count)
        .bind(rule.max_percent)
        .bind(rule.min_population)
        .bind(rule.window_secs)
        .execute(&mut *conn)
        .await?;
    }
    let summary = rules
        .iter()
        .map(describe_rule)
        .collect::<Vec<_>>()
        .join("; ");
    let display_action = if enabled {
        "SetProtection"
    } else {
        "DisableProtection"
    };
    sqlx::query(
        "INSERT INTO provisioning_log (job_id, display_action, actor, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(job_id.0)
    .bind(display_action)
    .bind(actor)
    .bind(format!("{reason} [{summary}]"))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One line a person can read: `default: delete+disable of any type above 500 per cycle`.
pub fn describe_rule(rule: &Rule) -> String {
    let mut limits = Vec::new();
    if let Some(count) = rule.max_count {
        limits.push(format!("above {count}"));
    }
    if let Some(percent) = rule.max_percent {
        limits.push(format!(
            "above {percent}% (population >= {})",
            rule.min_population
        ));
    }
    let window = match rule.window_secs {
        None => "per cycle".to_owned(),
        Some(seconds) => format!("in a rolling {}h", f64::from(seconds) / 3600.0),
    };
    format!(
        "{}: {} of {} {} {}",
        rule.name,
        rule.counted_actions.join("+"),
        rule.object_type.as_deref().unwrap_or("any type"),
        limits.join(" or "),
        window
    )
}
