//! Reading quarantines: one with a page of its held actions (each with what allowing it
//! means for restorability), or a list of summaries.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use syncguard_bootstrap::{Page, timestamp};
use syncguard_domain::{ActionKind, ActionStatus, Breach, FieldError, JobId, QuarantineState};
use syncguard_proto::names;
use syncguard_proto::v1;
use syncguard_store::{SnapshotCache, StoreError};
use uuid::Uuid;

use crate::decide::breach_view;
use crate::error::GateError;
use crate::protection;

/// A quarantine row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuarantineRow {
    /// Its id.
    pub quarantine_id: Uuid,
    /// The job.
    pub job_id: Uuid,
    /// The held cycle.
    pub cycle_id: Uuid,
    state: String,
    breaches: serde_json::Value,
    /// What approvers must quote.
    pub digest: String,
    /// 1 or 2.
    pub required_approvals: i16,
    opened_at: DateTime<Utc>,
    /// After this the cycle is never applied.
    pub hold_until: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
    counts: Option<serde_json::Value>,
}

/// The columns of [`QuarantineRow`].
pub const QUARANTINE_COLUMNS: &str = "quarantine_id, job_id, cycle_id, state, breaches, digest, required_approvals, \
    opened_at, hold_until, closed_at, counts";

/// A stored value outside what the schema allows, reported rather than read as a default.
pub fn corrupt(error: impl std::fmt::Display) -> GateError {
    GateError::Store(StoreError::Corrupt(error.to_string()))
}

impl QuarantineRow {
    /// Where the quarantine stands.
    pub fn state(&self) -> Result<QuarantineState, GateError> {
        self.state.parse().map_err(corrupt)
    }

    /// The rules the held cycle exceeded.
    pub fn breaches(&self) -> Result<Vec<Breach>, GateError> {
        Breach::list_from_stored(&self.breaches).map_err(corrupt)
    }
}

/// One quarantine with a page of its held actions, read in one statement (one snapshot and
/// one round trip; see the quarantine_page migration): the quarantine named by id, or the
/// open one of `job_id`. A page read again while nothing has committed in the database is
/// answered from `cache`.
pub async fn read(
    pool: &PgPool,
    cache: &QuarantinePages,
    quarantine_id: &str,
    job_id: &str,
    page: Option<&v1::PageRequest>,
    search: &str,
) -> Result<v1::Quarantine, GateError> {
    // Arguments are checked before the database is asked: a malformed request costs it nothing.
    let named = Named::parse(quarantine_id, job_id)?;
    let pattern = search_pattern(search)?;
    let page = held_page(page);
    let key = format!("{named:?}\n{}\n{:?}\n{pattern:?}", page.size, page.token);
    let paged = cache
        .read(pool, key.into_bytes(), || {
            read_page(pool, named, page, pattern)
        })
        .await?;
    // When a held delete stays restorable depends on the clock: computed per call.
    let mut quarantine = paged.quarantine.clone();
    quarantine.held = paged
        .held
        .iter()
        .map(|action| held_view(action.clone(), paged.retention_days))
        .collect::<Result<_, _>>()?;
    Ok(quarantine)
}

/// Quarantine pages as read at the database's last commit point (see
/// [`syncguard_store::SnapshotCache`]): reviewers page and refresh an open quarantine far
/// more often than anything commits. Each page is at most 5,000 held actions.
pub type QuarantinePages = SnapshotCache<PagedQuarantine>;

/// How many pages [`QuarantinePages`] keeps (of 5,000 actions at most, about 1.5 MB each).
pub const CACHED_PAGES: usize = 32;

/// A quarantine's view and a page of its held actions as stored, before what depends on the
/// clock.
pub struct PagedQuarantine {
    /// The view, with its next page token and without its held actions.
    quarantine: v1::Quarantine,
    held: Vec<HeldRow>,
    retention_days: i32,
}

async fn read_page(
    pool: &PgPool,
    named: Named,
    page: Page,
    pattern: Option<String>,
) -> Result<PagedQuarantine, GateError> {
    let mut viewed = find(pool, &named, &page, pattern).await?;
    let mut held = std::mem::take(&mut viewed.held.0);
    let next_page_token = page.finish(&mut held, |row| row.anchor.clone());
    let retention_days = viewed.retention_days;
    let mut quarantine = summary(pool, viewed).await?;
    quarantine.next_page_token = next_page_token;
    Ok(PagedQuarantine {
        quarantine,
        held,
        retention_days,
    })
}

/// A page of held actions: 1,000 unless asked, at most 5,000 (a larger size is cut, not
/// refused), after the anchor the token names.
fn held_page(page: Option<&v1::PageRequest>) -> Page {
    let size = match page.map_or(0, |page| page.page_size) {
        0 => 1000,
        size => size.min(5000),
    };
    Page {
        size: i64::from(size),
        token: page
            .map(|page| page.page_token.clone())
            .filter(|token| !token.is_empty()),
    }
}

/// An approval as the quarantine's read gathers it.
#[derive(serde::Deserialize)]
struct ApprovalRow {
    principal: String,
    reason: String,
    at: DateTime<Utc>,
    anchors: Vec<String>,
}

/// A quarantine with what its view needs from beside it, read in one statement: the job's
/// retention (how long an allowed delete stays restorable), the approvals so far, the job's
/// protection (the rules its breaches name) and, for a single quarantine's view, a page of
/// its held actions.
#[derive(sqlx::FromRow)]
struct ViewedQuarantine {
    #[sqlx(flatten)]
    row: QuarantineRow,
    retention_days: i32,
    approvals: sqlx::types::Json<Vec<ApprovalRow>>,
    protection: sqlx::types::Json<protection::StoredRows>,
    /// The page and one row more (there is a next page when it is there); empty in a list.
    #[sqlx(default)]
    held: sqlx::types::Json<Vec<HeldRow>>,
}

/// The columns of [`ViewedQuarantine`] from `quarantines q`, all but the page.
fn viewed_columns() -> String {
    format!(
        "{QUARANTINE_COLUMNS}, \
         (SELECT j.retention_days FROM jobs j WHERE j.job_id = q.job_id) AS retention_days, \
         (SELECT coalesce(json_agg(json_build_object('principal', a.principal, 'reason', a.reason, \
                                                     'at', a.at, 'anchors', a.anchors) ORDER BY a.at), '[]') \
          FROM approvals a WHERE a.quarantine_id = q.quarantine_id AND a.decision = 'allow') AS approvals, \
         {} AS protection",
        protection::rows_json("q.job_id")
    )
}

/// Which quarantine a view names.
#[derive(Debug)]
enum Named {
    /// A quarantine by its id.
    Id(Uuid),
    /// The open quarantine of a job.
    OpenOf(JobId),
}

impl Named {
    fn parse(quarantine_id: &str, job_id: &str) -> Result<Self, FieldError> {
        if !quarantine_id.is_empty() {
            Uuid::parse_str(quarantine_id)
                .map(Named::Id)
                .map_err(|_| FieldError::new("quarantine_id", "not a quarantine id (a UUID)"))
        } else if !job_id.is_empty() {
            Ok(Named::OpenOf(JobId::parse("job_id", job_id)?))
        } else {
            Err(FieldError::new(
                "quarantine_id",
                "name a quarantine, or a job for its open quarantine",
            ))
        }
    }
}

/// Finds a quarantine by id, or the open one of a job, with the `page` of its held actions
/// (and one more, to tell whether another page follows), only those matching the search
/// `pattern` (see [`search_pattern`]) when there is one.
async fn find(
    pool: &PgPool,
    named: &Named,
    page: &Page,
    pattern: Option<String>,
) -> Result<ViewedQuarantine, GateError> {
    let (condition, id) = match named {
        Named::Id(id) => ("q.quarantine_id = $1", *id),
        Named::OpenOf(job) => ("q.job_id = $1 AND q.state = 'open'", job.0),
    };
    let row: Option<ViewedQuarantine> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {}, \
                (SELECT coalesce(json_agg(h ORDER BY h.anchor COLLATE \"C\"), '[]') \
                 FROM quarantine_held_page(q.cycle_id, $2, $3, $4) h) AS held \
         FROM quarantines q WHERE {condition}",
        viewed_columns()
    )))
    .bind(id)
    .bind(page.token.as_deref())
    .bind(page.fetch())
    .bind(pattern)
    .fetch_optional(pool)
    .await?;
    match (row, named) {
        (Some(row), _) => Ok(row),
        (None, Named::OpenOf(job)) => {
            if syncguard_store::job_exists(pool, job.0).await? {
                Err(GateError::NotFound(format!(
                    "job {job} has no open quarantine"
                )))
            } else {
                Err(GateError::JobNotFound(*job))
            }
        }
        (None, Named::Id(id)) => Err(GateError::NotFound(format!("quarantine {id} not found"))),
    }
}

/// A held action as the `quarantine_held_page` function gives it.
#[derive(Clone, serde::Deserialize)]
struct HeldRow {
    action_id: Uuid,
    cycle_id: Uuid,
    job_id: Uuid,
    anchor: String,
    object_type: String,
    action: String,
    reason: String,
    status: String,
    changed_attributes: Vec<String>,
    display_name: String,
    /// For an applied delete: the object's deadline while it is still soft-deleted.
    purge_after: Option<DateTime<Utc>>,
}

/// When a held delete's object stays restorable: an estimate (now plus retention) while the
/// delete waits, the object's real deadline once it is soft-deleted, nothing once it was
/// restored, rejected or superseded.
fn restorable_until(
    kind: ActionKind,
    status: ActionStatus,
    purge_after: Option<DateTime<Utc>>,
    retention_days: i32,
) -> Option<prost_types::Timestamp> {
    if kind != ActionKind::Delete {
        return None;
    }
    match status {
        ActionStatus::Held | ActionStatus::Allowed => Some(timestamp(
            Utc::now() + chrono::Duration::days(i64::from(retention_days)),
        )),
        ActionStatus::Applied => purge_after.map(timestamp),
        _ => None,
    }
}

fn held_view(row: HeldRow, retention_days: i32) -> Result<v1::HeldAction, GateError> {
    let kind: ActionKind = row.action.parse().map_err(corrupt)?;
    let status: ActionStatus = row.status.parse().map_err(corrupt)?;
    Ok(v1::HeldAction {
        soft_delete: kind == ActionKind::Delete,
        restorable_until: restorable_until(kind, status, row.purge_after, retention_days),
        action: Some(
            names::staged_action(names::StoredAction {
                action_id: row.action_id.to_string(),
                cycle_id: row.cycle_id.to_string(),
                job_id: row.job_id.to_string(),
                anchor: row.anchor,
                object_type: row.object_type,
                action: row.action,
                reason: row.reason,
                status: row.status,
                changed_attributes: row.changed_attributes,
                display_name: row.display_name,
            })
            .map_err(corrupt)?,
        ),
    })
}

/// Longest search text a reviewer may send.
const MAX_SEARCH_CHARS: usize = 200;

/// The `ILIKE` pattern for a reviewer's search: their text anywhere, wildcards taken
/// literally; `None` for an empty search.
fn search_pattern(search: &str) -> Result<Option<String>, FieldError> {
    let search = search.trim();
    if search.is_empty() {
        return Ok(None);
    }
    if search.chars().count() > MAX_SEARCH_CHARS {
        return Err(FieldError::new(
            "search",
            format!("at most {MAX_SEARCH_CHARS} characters"),
        ));
    }
    if search.chars().any(char::is_control) {
        return Err(FieldError::new("search", "contains control characters"));
    }
    let escaped = search
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Ok(Some(format!("%{escaped}%")))
}

/// The API view of a quarantine without its held actions.
async fn summary(pool: &PgPool, viewed: ViewedQuarantine) -> Result<v1::Quarantine, GateError> {
    let row = &viewed.row;
    let counts: Vec<(String, String, i64)> = match &row.counts {
        // Stored when the quarantine opened.
        Some(stored) => serde_json::from_value(stored.clone()).map_err(corrupt)?,
        None => syncguard_store::by_action_and_type(
            &syncguard_store::staged_counts(pool, row.cycle_id).await?,
        ),
    };
    let rules = protection::load_from(pool, JobId(row.job_id), viewed.protection.0)
        .await?
        .rules;
    let breaches = row.breaches()?;
    Ok(v1::Quarantine {
        quarantine_id: row.quarantine_id.to_string(),
        job_id: row.job_id.to_string(),
        cycle_id: row.cycle_id.to_string(),
        state: names::quarantine_state(row.state()?) as i32,
        breaches: breaches
            .iter()
            .map(|breach| breach_view(breach, &rules))
            .collect(),
        counts: counts
            .into_iter()
            .map(|(action, object_type, count)| {
                Ok(v1::ActionCount {
                    action: names::action_kind(action.parse().map_err(corrupt)?) as i32,
                    object_type: names::object_type(object_type.parse().map_err(corrupt)?) as i32,
                    count: count as u64,
                })
            })
            .collect::<Result<_, GateError>>()?,
        held: Vec::new(),
        digest: row.digest.clone(),
        opened_at: Some(timestamp(row.opened_at)),
        hold_until: Some(timestamp(row.hold_until)),
        closed_at: row.closed_at.map(timestamp),
        required_approvals: row.required_approvals as u32,
        approvals: viewed
            .approvals
            .iter()
            .map(|approval| v1::Approval {
                principal: approval.principal.clone(),
                reason: approval.reason.clone(),
                at: Some(timestamp(approval.at)),
                anchors: approval.anchors.clone(),
            })
            .collect(),
        next_page_token: String::new(),
    })
}

/// Quarantines newest first.
pub async fn list(
    pool: &PgPool,
    request: &v1::ListQuarantinesRequest,
) -> Result<v1::ListQuarantinesResponse, GateError> {
    let job_id = if request.job_id.is_empty() {
        None
    } else {
        let job = JobId::parse("job_id", &request.job_id)?;
        if !syncguard_store::job_exists(pool, job.0).await? {
            return Err(GateError::JobNotFound(job));
        }
        Some(job.0)
    };
    let states: Vec<String> = request
        .states
        .iter()
        .enumerate()
        .map(|(index, state)| {
            v1::QuarantineState::try_from(*state)
                .ok()
                .and_then(names::domain_quarantine_state)
                .map(|state| state.as_str().to_owned())
                .ok_or_else(|| {
                    FieldError::new(
                        format!("states[{index}]"),
                        format!("{state} is not a quarantine state"),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    let page = syncguard_bootstrap::page(request.page.as_ref())?;
    let before = page.token_as::<Uuid>()?;
    // One statement: one snapshot for the whole list.
    let mut rows: Vec<ViewedQuarantine> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM quarantines q \
         WHERE ($1::uuid IS NULL OR job_id = $1) AND (cardinality($2::text[]) = 0 OR state = ANY($2)) \
           AND ($3::uuid IS NULL OR quarantine_id < $3) ORDER BY quarantine_id DESC LIMIT $4",
        viewed_columns()
    )))
    .bind(job_id)
    .bind(&states)
    .bind(before)
    .bind(page.fetch())
    .fetch_all(pool)
    .await?;
    let next_page_token = page.finish(&mut rows, |row| row.row.quarantine_id.to_string());
    let mut quarantines = Vec::with_capacity(rows.len());
    // The list shows summaries; the held actions are read with GetQuarantine.
    for row in rows {
        quarantines.push(summary(pool, row).await?);
    }
    Ok(v1::ListQuarantinesResponse {
        quarantines,
        next_page_token,
    })
}
