//! Deciding a staged cycle: within limits it is applied at once; over any rule it is
//! quarantined whole, its destructive actions held and logged as `StagedDelete` /
//! `StagedDisable`, in one transaction with the cycle's state change.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use syncguard_bootstrap::PeerChannel;
use syncguard_domain::JobId;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use syncguard_proto::v1::{self, CycleState, Decision};
use syncguard_store::StoreError;
use uuid::Uuid;

use crate::error::GateError;
use crate::evaluate::{Breach, Counts, evaluate};
use crate::protection::{self, StoredProtection};
use crate::rules::Rule;

/// The outcome of a decision.
#[derive(Debug, Clone)]
pub struct Decided {
    /// Applied or quarantined.
    pub decision: Decision,
    /// Set when quarantined.
    pub quarantine_id: Option<Uuid>,
    /// The rules exceeded.
    pub breaches: Vec<Breach>,
    /// True only for the call that opened the quarantine (so people are told once).
    pub newly_quarantined: bool,
}

async fn grouped_counts(
    conn: &mut PgConnection,
    sql: &'static str,
    id: Uuid,
    window_secs: Option<i32>,
) -> Result<Counts, GateError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(sql)
        .bind(id)
        .bind(window_secs.unwrap_or(0))
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(action, object_type, count)| ((action, object_type), count as u64))
        .collect())
}

/// The rules' verdict on a cycle's counts (pinned objects, which nothing will touch, do
/// not count), with rolling windows and populations read from the database.
pub async fn breaches_of_cycle(
    conn: &mut PgConnection,
    job_id: JobId,
    cycle_id: Uuid,
    rules: &[Rule],
) -> Result<(Counts, Vec<Breach>), GateError> {
    let cycle_counts = grouped_counts(
        conn,
        "SELECT action, object_type, count(*) FROM staged_actions \
         WHERE cycle_id = $1 AND status <> 'skipped_pinned' AND $2 >= 0 \
         GROUP BY action, object_type",
        cycle_id,
        None,
    )
    .await?;
    let breaches = breaches_with(conn, job_id, rules, &cycle_counts).await?;
    Ok((cycle_counts, breaches))
}

/// The rules' verdict on counts that are not stored as a cycle (a preview).
pub async fn breaches_of_counts(
    pool: &PgPool,
    job_id: JobId,
    rules: &[Rule],
    counts: &Counts,
) -> Result<Vec<Breach>, GateError> {
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    breaches_with(&mut conn, job_id, rules, counts).await
}

async fn breaches_with(
    conn: &mut PgConnection,
    job_id: JobId,
    rules: &[Rule],
    cycle_counts: &Counts,
) -> Result<Vec<Breach>, GateError> {
    let mut window_counts = Vec::with_capacity(rules.len());
    for rule in rules {
        let counts = match rule.window_secs {
            None => Counts::new(),
            Some(seconds) => {
                grouped_counts(
                    conn,
                    "SELECT action, object_type, count(*) FROM staged_actions \
                     WHERE job_id = $1 AND applied_at >= now() - make_interval(secs => $2) \
                     GROUP BY action, object_type",
                    job_id.0,
                    Some(seconds),
                )
                .await?
            }
        };
        window_counts.push(counts);
    }
    let populations: Vec<(String, i64)> = sqlx::query_as(
        "SELECT object_type, count(*) FROM directory_objects WHERE job_id = $1 AND deleted_at IS NULL GROUP BY object_type",
    )
    .bind(job_id.0)
    .fetch_all(&mut *conn)
    .await?;
    let populations: HashMap<String, u64> = populations
        .into_iter()
        .map(|(object_type, count)| (object_type, count as u64))
        .collect();
    Ok(evaluate(rules, cycle_counts, &window_counts, &populations))
}

/// Decides `cycle_id`. Idempotent: a cycle decided before returns its decision again.
pub async fn decide(
    pool: &PgPool,
    stager: &StagerServiceClient<PeerChannel>,
    cycle_id: Uuid,
) -> Result<Decided, GateError> {
    let started = std::time::Instant::now();
    let started_at = chrono::Utc::now();
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    let cycle: Option<(Uuid, String)> =
        sqlx::query_as("SELECT job_id, state FROM cycles WHERE cycle_id = $1 FOR UPDATE")
            .bind(cycle_id)
            .fetch_optional(&mut *transaction)
            .await?;
    let Some((job_id, state)) = cycle else {
        return Err(GateError::CycleNotFound(cycle_id));
    };
    let job_id = JobId(job_id);
    match state.as_str() {
        "staged" | "evaluating" => {}
        "quarantined" => {
            let (quarantine_id, breaches): (Uuid, serde_json::Value) = sqlx::query_as(
                "SELECT quarantine_id, breaches FROM quarantines WHERE cycle_id = $1",
            )
            .bind(cycle_id)
            .fetch_one(&mut *transaction)
            .await?;
            return Ok(Decided {
                decision: Decision::Quarantined,
                quarantine_id: Some(quarantine_id),
                breaches: serde_json::from_value(breaches).unwrap_or_default(),
                newly_quarantined: false,
            });
        }
        "applying" | "completed" | "allowed" | "rejected" => {
            return Ok(Decided {
                decision: Decision::Applied,
                quarantine_id: None,
                breaches: Vec::new(),
                newly_quarantined: false,
            });
        }
        other => {
            return Err(GateError::WrongState(format!(
                "cycle {cycle_id} is {other}, not staged"
            )));
        }
    }
    sqlx::query("UPDATE cycles SET state = 'evaluating', updated_at = now() WHERE cycle_id = $1")
        .bind(cycle_id)
        .execute(&mut *transaction)
        .await?;
    let StoredProtection { enabled, rules, .. } = protection::load(pool, job_id).await?;
    let rules: Vec<Rule> = rules.into_iter().map(|(_, rule)| rule).collect();
    let (_, breaches) = breaches_of_cycle(&mut transaction, job_id, cycle_id, &rules).await?;

    if enabled && !breaches.is_empty() {
        let quarantine_id = quarantine(&mut transaction, job_id, cycle_id, &breaches).await?;
        syncguard_store::record_phase(
            &mut transaction,
            cycle_id,
            "decide",
            started_at,
            started.elapsed(),
        )
        .await?;
        transaction.commit().await.map_err(StoreError::from)?;
        syncguard_telemetry::cycle_outcome("quarantined");
        tracing::warn!(job = %job_id, cycle = %cycle_id, quarantine = %quarantine_id, breach = %breaches[0].explanation, "cycle quarantined");
        return Ok(Decided {
            decision: Decision::Quarantined,
            quarantine_id: Some(quarantine_id),
            breaches,
            newly_quarantined: true,
        });
    }
    syncguard_store::record_phase(
        &mut transaction,
        cycle_id,
        "decide",
        started_at,
        started.elapsed(),
    )
    .await?;
    transaction.commit().await.map_err(StoreError::from)?;
    stager
        .clone()
        .apply_cycle(v1::ApplyCycleRequest {
            cycle_id: cycle_id.to_string(),
            scope: v1::ApplyScope::All as i32,
            allowed_action_ids: Vec::new(),
            via_state: CycleState::Evaluating as i32,
            actor: "service:gate (within protection limits)".into(),
        })
        .await
        .map_err(|status| GateError::Peer {
            service: "stager",
            status,
        })?;
    Ok(Decided {
        decision: Decision::Applied,
        quarantine_id: None,
        breaches,
        newly_quarantined: false,
    })
}

/// SHA-256 over the cycle and its sorted held action ids: what an approver saw.
pub fn held_set_digest(cycle_id: Uuid, held_action_ids: &[Uuid]) -> String {
    let mut sorted = held_action_ids.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha256::new();
    hasher.update(cycle_id.as_bytes());
    for id in sorted {
        hasher.update(id.as_bytes());
    }
    hex::encode(hasher.finalize())
}

async fn quarantine(
    conn: &mut PgConnection,
    job_id: JobId,
    cycle_id: Uuid,
    breaches: &[Breach],
) -> Result<Uuid, GateError> {
    let held: Vec<(Uuid,)> = sqlx::query_as(
        "UPDATE staged_actions SET status = 'held' \
         WHERE cycle_id = $1 AND action IN ('delete', 'disable') AND status = 'staged' RETURNING action_id",
    )
    .bind(cycle_id)
    .fetch_all(&mut *conn)
    .await?;
    let held_ids: Vec<Uuid> = held.into_iter().map(|(id,)| id).collect();
    let quarantine_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO quarantines (quarantine_id, job_id, cycle_id, state, breaches, digest, required_approvals, hold_until) \
         SELECT $1, $2, $3, 'open', $4, $5, j.required_approvals, now() + make_interval(secs => j.hold_limit_secs) \
         FROM jobs j WHERE j.job_id = $2",
    )
    .bind(quarantine_id)
    .bind(job_id.0)
    .bind(cycle_id)
    .bind(serde_json::to_value(breaches).unwrap_or_default())
    .bind(held_set_digest(cycle_id, &held_ids))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO provisioning_log (job_id, cycle_id, action_id, quarantine_id, object_id, anchor, object_type, \
             action, status, reason, display_action, changed_attributes, actor, detail) \
         SELECT job_id, cycle_id, action_id, $2, object_id, anchor, object_type, action, 'held', reason, \
             CASE action WHEN 'delete' THEN 'StagedDelete' ELSE 'StagedDisable' END, changed_attributes, \
             'service:gate', $3 \
         FROM staged_actions WHERE cycle_id = $1 AND status = 'held' \
         ON CONFLICT DO NOTHING",
    )
    .bind(cycle_id)
    .bind(quarantine_id)
    .bind(format!(
        "Delete threshold exceeded: {}",
        breaches.iter().map(|b| b.explanation.as_str()).collect::<Vec<_>>().join("; ")
    ))
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE cycles SET state = 'quarantined', updated_at = now() WHERE cycle_id = $1")
        .bind(cycle_id)
        .execute(&mut *conn)
        .await?;
    Ok(quarantine_id)
}

/// The API view of a breach.
pub fn breach_view(breach: &Breach, rules: &[(Option<Uuid>, Rule)]) -> v1::RuleBreach {
    v1::RuleBreach {
        rule: rules
            .get(breach.rule_index)
            .map(|(id, rule)| rule.to_proto(id.map(|id| id.to_string()).unwrap_or_default())),
        counted: breach.counted,
        limit: breach.limit,
        population: breach.population,
        explanation: breach.explanation.clone(),
    }
}
