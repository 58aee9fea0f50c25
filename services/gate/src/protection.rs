//! Reading and writing a job's protection; every change is logged with principal and reason.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use syncguard_domain::JobId;
use syncguard_proto::v1;
use uuid::Uuid;

use crate::error::GateError;
use crate::rules::{Rule, default_rules};

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

type RuleRow = (
    Uuid,
    String,
    Vec<String>,
    Option<String>,
    Option<i64>,
    Option<f64>,
    i64,
    Option<i32>,
);

/// The effective protection of a job: its stored rules, or the default when none were set.
pub async fn load(pool: &PgPool, job_id: JobId) -> Result<StoredProtection, GateError> {
    let mut conn = pool.acquire().await?;
    ensure_job_exists(&mut conn, job_id).await?;
    let settings: Option<(bool, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT enabled, updated_by, reason, updated_at FROM job_protection WHERE job_id = $1",
    )
    .bind(job_id.0)
    .fetch_optional(&mut *conn)
    .await?;
    let rows: Vec<RuleRow> = sqlx::query_as(
        "SELECT rule_id, name, counted_actions, object_type, max_count, max_percent, \
                min_population, window_secs \
         FROM protection_rules WHERE job_id = $1 ORDER BY position",
    )
    .bind(job_id.0)
    .fetch_all(&mut *conn)
    .await?;
    let rules: Vec<(Option<Uuid>, Rule)> = if rows.is_empty() {
        default_rules()
            .into_iter()
            .map(|rule| (None, rule))
            .collect()
    } else {
        rows.into_iter()
            .map(|row| {
                (
                    Some(row.0),
                    Rule {
                        name: row.1,
                        counted_actions: row.2,
                        object_type: row.3,
                        max_count: row.4,
                        max_percent: row.5,
                        min_population: row.6,
                        window_secs: row.7,
                    },
                )
            })
            .collect()
    };
    Ok(match settings {
        Some((enabled, updated_by, reason, updated_at)) => StoredProtection {
            enabled,
            rules,
            updated_by,
            reason,
            updated_at: Some(updated_at),
        },
        None => StoredProtection {
            enabled: true,
            rules,
            updated_by: "default".into(),
            reason: String::new(),
            updated_at: None,
        },
    })
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
