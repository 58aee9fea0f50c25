//! Deciding, the gate's step of a cycle: within every rule the cycle may be applied; over any
//! rule it is quarantined whole, its destructive actions held and logged as `StagedDelete` /
//! `StagedDisable`. The decision, the quarantine and its log rows are one transaction in the
//! gate's own tables; retention applies what was decided.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};
use syncguard_domain::{Breach, JobId, Verdict};
use syncguard_proto::v1;
use syncguard_store::{Claim, StoreError};
use uuid::Uuid;

use crate::error::GateError;
use crate::evaluate::{Counts, evaluate, needs_population};
use crate::protection::{self, StoredProtection};
use crate::rules::Rule;

/// Who an apply within limits is attributed to in the provisioning log.
pub const WITHIN_LIMITS_ACTOR: &str = "service:gate (within protection limits)";

/// The outcome of a decision.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The cycle decided.
    pub cycle_id: Uuid,
    /// Apply or quarantine.
    pub verdict: Verdict,
    /// Set when quarantined.
    pub quarantine_id: Option<Uuid>,
    /// The rules exceeded.
    pub breaches: Vec<Breach>,
}

/// What retention applied of `kinds` on `job_id` in the last `window_secs`: the cycles it
/// applied, and of each the actions that were carried out. Only the kinds a rule counts are
/// read (an index condition on each cycle's actions): counting every kind read all of a
/// first load's creates for each decision while that load was in the window (42-47 ms with
/// 100,000 creates, 0.8-1.1 ms with the condition; psql).
async fn applied_in_window(
    conn: &mut PgConnection,
    job_id: Uuid,
    window_secs: i32,
    kinds: &[String],
) -> Result<Counts, GateError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT s.action, s.object_type, count(*) FROM applied_cycles ac \
         JOIN action_states s ON s.cycle_id = ac.cycle_id \
         WHERE ac.job_id = $1 AND ac.applied_at >= now() - make_interval(secs => $2) \
           AND s.action = ANY($3) AND s.status = 'applied' \
         GROUP BY s.action, s.object_type",
    )
    .bind(job_id)
    .bind(window_secs)
    .bind(kinds)
    .fetch_all(conn)
    .await?;
    Ok(counts_of(rows))
}

/// Rows of (action, object type, count) as counts.
fn counts_of(rows: Vec<(String, String, i64)>) -> Counts {
    rows.into_iter()
        .map(|(action, object_type, count)| ((action, object_type), count as u64))
        .collect()
}

/// A cycle's staged actions by action and object type, from the counts the stager kept on
/// the cycle (pinned objects' actions, which nothing will touch, do not count): what the
/// rules count and what a quarantine shows, read once.
async fn cycle_counts(conn: &mut PgConnection, cycle_id: Uuid) -> Result<Counts, GateError> {
    let stored = syncguard_store::staged_counts(conn, cycle_id).await?;
    Ok(counts_of(
        stored
            .into_iter()
            .filter(|count| count.status == "staged")
            .map(|count| (count.action, count.object_type, count.count))
            .collect(),
    ))
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
                applied_in_window(conn, job_id.0, seconds, &rule.counted_actions).await?
            }
        };
        window_counts.push(counts);
    }
    // Counting the population is a scan of the job's objects: only percentage rules that
    // count something need it.
    let populations: HashMap<String, u64> = if needs_population(rules, cycle_counts, &window_counts)
    {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT object_type, count(*) FROM directory_objects WHERE job_id = $1 AND deleted_at IS NULL GROUP BY object_type",
        )
        .bind(job_id.0)
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter()
            .map(|(object_type, count)| (object_type, count as u64))
            .collect()
    } else {
        HashMap::new()
    };
    Ok(evaluate(rules, cycle_counts, &window_counts, &populations))
}

/// The cycle of `job_id` waiting for a decision: its newest staged cycle, if the gate has not
/// decided it yet.
async fn undecided_cycle(
    conn: &mut PgConnection,
    job_id: JobId,
) -> Result<Option<Uuid>, GateError> {
    let cycle: Option<(Uuid,)> = sqlx::query_as(
        "SELECT c.cycle_id FROM (SELECT cycle_id, state FROM cycles WHERE job_id = $1 ORDER BY seq DESC LIMIT 1) c \
         WHERE c.state = 'staged' AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.cycle_id = c.cycle_id)",
    )
    .bind(job_id.0)
    .fetch_optional(conn)
    .await?;
    Ok(cycle.map(|(id,)| id))
}

/// Jobs whose newest staged cycle waits for a decision.
pub async fn due_jobs(pool: &PgPool) -> Result<Vec<JobId>, GateError> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT j.job_id FROM jobs j
         CROSS JOIN LATERAL (SELECT cycle_id, state FROM cycles c WHERE c.job_id = j.job_id
                             ORDER BY seq DESC LIMIT 1) latest
         WHERE latest.state = 'staged'
           AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.cycle_id = latest.cycle_id)
         LIMIT 200",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| JobId(id)).collect())
}

/// Decides `cycle_id`, the job's staged cycle the caller found waiting; `None` when it no
/// longer waits or another gate instance is deciding it.
pub async fn decide_next(
    pool: &PgPool,
    job_id: JobId,
    cycle_id: Uuid,
) -> Result<Option<Decided>, GateError> {
    let started = std::time::Instant::now();
    let started_at = chrono::Utc::now();
    let mut transaction = pool.begin().await.map_err(StoreError::from)?;
    if !syncguard_store::try_claim(&mut transaction, Claim::DecideCycle(cycle_id)).await? {
        return Ok(None);
    }
    // Another instance may have decided it between the caller's look and the claim.
    if undecided_cycle(&mut transaction, job_id).await? != Some(cycle_id) {
        return Ok(None);
    }
    let StoredProtection { enabled, rules, .. } =
        protection::ensure_recorded(&mut transaction, job_id).await?;
    let rules: Vec<Rule> = rules.into_iter().map(|(_, rule)| rule).collect();
    let counts = cycle_counts(&mut transaction, cycle_id).await?;
    let breaches = breaches_with(&mut transaction, job_id, &rules, &counts).await?;
    let quarantine_id = if enabled && !breaches.is_empty() {
        // The quarantine shows every kind the cycle plans, not only those the rules count.
        Some(quarantine(&mut transaction, job_id, cycle_id, &breaches, &counts).await?)
    } else {
        None
    };
    let verdict = if quarantine_id.is_some() {
        Verdict::Quarantine
    } else {
        Verdict::Apply
    };
    record_decision(
        &mut transaction,
        job_id,
        cycle_id,
        verdict,
        quarantine_id,
        started_at,
        started.elapsed().as_millis() as i64,
    )
    .await?;
    transaction.commit().await.map_err(StoreError::from)?;
    match verdict {
        Verdict::Quarantine => {
            syncguard_telemetry::cycle_outcome("quarantined");
            tracing::warn!(job = %job_id, cycle = %cycle_id, quarantine = ?quarantine_id, breach = %breaches[0].explanation, "cycle quarantined");
        }
        Verdict::Apply => {
            tracing::info!(job = %job_id, cycle = %cycle_id, "cycle within protection limits")
        }
    }
    Ok(Some(Decided {
        cycle_id,
        verdict,
        quarantine_id,
        breaches,
    }))
}

/// SHA-256 over the cycle and its sorted held action ids, computed in Postgres: what an
/// approver saw. Held: the cycle's deletes and disables not pinned and not decided yet.
pub async fn held_set_digest(conn: &mut PgConnection, cycle_id: Uuid) -> Result<String, GateError> {
    let (digest,): (String,) = sqlx::query_as(
        "SELECT encode(sha256(convert_to($1::text || ':' || COALESCE(string_agg(a.action_id::text, ',' ORDER BY a.action_id), ''), 'UTF8')), 'hex')
         FROM staged_actions a LEFT JOIN held_verdicts hv ON hv.action_id = a.action_id
         WHERE a.cycle_id = $1 AND a.status = 'staged' AND a.action IN ('delete', 'disable') AND hv.action_id IS NULL",
    )
    .bind(cycle_id)
    .fetch_one(conn)
    .await?;
    Ok(digest)
}

/// The counts a quarantine shows, as stored with it: `[[action, object type, count], ...]`.
fn stored_counts(counts: &Counts) -> serde_json::Value {
    let mut rows: Vec<(&String, &String, u64)> = counts
        .iter()
        .map(|((action, object_type), count)| (action, object_type, *count))
        .collect();
    rows.sort();
    serde_json::json!(rows)
}

async fn quarantine(
    conn: &mut PgConnection,
    job_id: JobId,
    cycle_id: Uuid,
    breaches: &[Breach],
    counts: &Counts,
) -> Result<Uuid, GateError> {
    let quarantine_id = Uuid::now_v7();
    let digest = held_set_digest(conn, cycle_id).await?;
    sqlx::query(
        "INSERT INTO quarantines (quarantine_id, job_id, cycle_id, state, breaches, digest, required_approvals, hold_until, counts) \
         SELECT $1, $2, $3, 'open', $4, $5, j.required_approvals, now() + make_interval(secs => j.hold_limit_secs), $6 \
         FROM jobs j WHERE j.job_id = $2",
    )
    .bind(quarantine_id)
    .bind(job_id.0)
    .bind(cycle_id)
    .bind(Breach::list_to_stored(breaches))
    .bind(&digest)
    .bind(stored_counts(counts))
    .execute(&mut *conn)
    .await?;
    // One `held` entry per held action: StagedDelete, StagedDisable.
    sqlx::query(
        "SELECT syncguard_log_actions($4, $1, $2, 'held', 'Staged', 'service:gate', $3, \
             array_agg(a.action_id), array_agg(a.anchor), array_agg(a.action), NULL) \
         FROM (SELECT action_id, anchor, action FROM staged_actions \
               WHERE cycle_id = $1 AND status = 'staged' AND action IN ('delete', 'disable') \
               ORDER BY anchor COLLATE \"C\") a",
    )
    .bind(cycle_id)
    .bind(quarantine_id)
    .bind(format!(
        "Delete threshold exceeded: {}",
        breaches
            .iter()
            .map(|b| b.explanation.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    ))
    .bind(job_id.0)
    .execute(&mut *conn)
    .await?;
    Ok(quarantine_id)
}

/// Records the decision and, in the same statement, releases the pins the cycle's source
/// showed back (logged as `PinCleared`): the stager found them, the gate owns pins.
async fn record_decision(
    conn: &mut PgConnection,
    job_id: JobId,
    cycle_id: Uuid,
    verdict: Verdict,
    quarantine_id: Option<Uuid>,
    started_at: chrono::DateTime<chrono::Utc>,
    millis: i64,
) -> Result<(), GateError> {
    let released: Vec<(String,)> = sqlx::query_as(
        "WITH decided AS (
             INSERT INTO decisions (cycle_id, job_id, verdict, quarantine_id, actor, started_at, millis)
             VALUES ($2, $1, $3, $4, $5, $6, $7)
         ),
         released AS (
             DELETE FROM pins p USING cycles c
             WHERE c.cycle_id = $2 AND p.job_id = $1 AND p.anchor = ANY(c.returned_pins)
             RETURNING p.anchor
         )
         INSERT INTO provisioning_log (job_id, cycle_id, anchor, display_action, actor, detail)
         SELECT $1, $2, anchor, 'PinCleared', 'service:gate',
                'the source shows the object back in the state the rejected change would have changed'
         FROM released RETURNING anchor",
    )
    .bind(job_id.0)
    .bind(cycle_id)
    .bind(verdict.as_str())
    .bind(quarantine_id)
    .bind(WITHIN_LIMITS_ACTOR)
    .bind(started_at)
    .bind(millis)
    .fetch_all(conn)
    .await?;
    if !released.is_empty() {
        tracing::info!(job = %job_id, cycle = %cycle_id, cleared = released.len(), "pins cleared: the objects are back");
    }
    Ok(())
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
