//! A quarantine: what tripped, what is held (paged, searchable), and the decisions: allow
//! or reject all or the ticked objects, or restart the job, each confirmed with a reason
//! and the number of objects it touches. The digest the page was rendered with travels
//! with the decision, so a page that went stale is refused by the gate, not applied.

use axum::Form;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use syncguard_proto::v1::{self, ActionKind, ActionStatus, QuarantineState};
use tonic::Code;

use super::{confirm_form, csrf, job_tabs, ticked};
use crate::failure::Failure;
use crate::layout::{notice, page};
use crate::web::{Fields, Viewer, encode_component, html};
use crate::words;

/// Held actions per page.
const PAGE_SIZE: u32 = 50;

/// The quarantine page's query: a search and where the page starts.
#[derive(Deserialize, Default)]
pub struct HeldQuery {
    #[serde(default)]
    search: String,
    #[serde(default)]
    after: String,
}

async fn job_of(viewer: &mut Viewer, job_id: &str) -> Result<v1::Job, Failure> {
    Ok(viewer
        .calls
        .ingest
        .get_job(v1::GetJobRequest {
            job_id: job_id.to_owned(),
        })
        .await
        .map_err(Failure::service("reading the job"))?
        .into_inner())
}

fn job_name(job: &v1::Job) -> &str {
    job.spec
        .as_ref()
        .map(|spec| spec.name.as_str())
        .unwrap_or("")
}

/// GET /jobs/{job_id}/quarantine: the open quarantine, or the job's past ones.
pub async fn of_job(mut viewer: Viewer, Path(job_id): Path<String>) -> Result<Response, Failure> {
    match quarantine_summary(&mut viewer, "", &job_id).await {
        Ok(open) => {
            return Ok(
                Redirect::to(&format!("/quarantines/{}", open.quarantine_id)).into_response(),
            );
        }
        Err(status) if status.code() == Code::NotFound => {}
        Err(status) => return Err(Failure::service("reading the open quarantine")(status)),
    }
    let job = job_of(&mut viewer, &job_id).await?;
    let past = viewer
        .calls
        .gate
        .list_quarantines(v1::ListQuarantinesRequest {
            job_id: job_id.clone(),
            page: Some(v1::PageRequest {
                page_size: 20,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await
        .map_err(Failure::service("listing the job's quarantines"))?
        .into_inner()
        .quarantines;
    let body = html! {
        (job_tabs(&job_id))
        (notice("ok", html! { "No cycle of this job is quarantined." }))
        @if !past.is_empty() {
            h2 { "Earlier quarantines" }
            div.scroll { table {
                thead { tr { th { "Opened" } th { "State" } th { "Closed" } } }
                tbody { @for quarantine in &past { tr {
                    td { a href={ "/quarantines/" (quarantine.quarantine_id) } { (words::when(quarantine.opened_at.as_ref())) } }
                    td { (words::quarantine_state(quarantine.state)) }
                    td { (words::when(quarantine.closed_at.as_ref())) }
                } } }
            } }
        }
    };
    let title = format!("Quarantine of {}", job_name(&job));
    Ok(html(page(&title, Some(&viewer.session), body)))
}

/// Held deletes and disables planned by the cycle (its counts, not this page's rows).
fn held_total(quarantine: &v1::Quarantine) -> u64 {
    quarantine
        .counts
        .iter()
        .filter(|count| {
            count.action == ActionKind::Delete as i32 || count.action == ActionKind::Disable as i32
        })
        .map(|count| count.count)
        .sum()
}

/// What allowing this held action means for its object.
fn outcome(held: &v1::HeldAction, action: &v1::StagedAction) -> String {
    let status = ActionStatus::try_from(action.status).unwrap_or_default();
    let until = words::when(held.restorable_until.as_ref());
    match (status, held.soft_delete) {
        (ActionStatus::Applied, true) => format!("soft-deleted; restorable until {until}"),
        (ActionStatus::Held | ActionStatus::Allowed, true) => {
            format!("if allowed: soft-deleted, restorable until about {until}")
        }
        (ActionStatus::Held | ActionStatus::Allowed, false) => {
            "if allowed: disabled, stays in the directory".into()
        }
        (ActionStatus::Applied, false) => "disabled".into(),
        (ActionStatus::Rejected, _) => "kept (rejected, pinned)".into(),
        _ => words::status(action.status),
    }
}

fn summary(quarantine: &v1::Quarantine) -> Markup {
    let state = words::quarantine_state(quarantine.state);
    html! {
        div.card { dl {
            dt { "State" } dd { span class={ "badge " (state) } { (state) } }
            dt { "Why" } dd { ul { @for breach in &quarantine.breaches {
                li { (breach.explanation) " (" (breach.counted.saturating_sub(breach.limit)) " over the limit)" }
            } } }
            dt { "Planned" } dd { ul { @for count in &quarantine.counts {
                li { (count.count) " " (words::object_type(count.object_type)) " " (words::action(count.action)) "s" }
            } } }
            dt { "Opened" } dd { (words::when(quarantine.opened_at.as_ref())) }
            dt { "Held until" } dd { (words::when(quarantine.hold_until.as_ref())) " (after that it is never applied)" }
            dt { "Approvals" } dd {
                (quarantine.approvals.len()) " of " (quarantine.required_approvals.max(1)) " required"
                @for approval in &quarantine.approvals {
                    br; (approval.principal) ": " (approval.reason) " (" (words::when(approval.at.as_ref())) ")"
                }
            }
            dt { "Digest" } dd { code #digest { (quarantine.digest) } }
            dt { "Cycle" } dd { code { (quarantine.cycle_id) } }
        } }
    }
}

/// GET /quarantines/{quarantine_id}
pub async fn show(
    mut viewer: Viewer,
    Path(quarantine_id): Path<String>,
    Query(query): Query<HeldQuery>,
) -> Result<Response, Failure> {
    let quarantine = viewer
        .calls
        .gate
        .get_quarantine(v1::GetQuarantineRequest {
            quarantine_id: quarantine_id.clone(),
            page: Some(v1::PageRequest {
                page_size: PAGE_SIZE,
                page_token: query.after.clone(),
            }),
            search: query.search.clone(),
            ..Default::default()
        })
        .await
        .map_err(Failure::service("reading the quarantine"))?
        .into_inner();
    let job = job_of(&mut viewer, &quarantine.job_id).await?;
    let open = quarantine.state == QuarantineState::Open as i32;
    let decides = open && viewer.can_approve();
    let held_table = html! {
        div.scroll { table #held {
            thead { tr {
                @if decides { th { span.muted { "Tick" } } }
                th { "Anchor" } th { "Name" } th { "Type" } th { "Action" } th { "Reason" } th { "Status" } th { "What allowing means" }
            } }
            tbody { @for held in &quarantine.held { @if let Some(action) = &held.action {
                tr {
                    @if decides { td {
                        input type="checkbox" name="anchor" value=(action.anchor) id={ "tick-" (action.anchor) }
                            aria-label={ "Tick " (action.anchor) };
                    } }
                    td { code { (action.anchor) } }
                    td { (action.display_name) }
                    td { (words::object_type(action.object_type)) }
                    td { (words::action(action.action)) }
                    td { (words::reason(action.reason)) }
                    td { (words::status(action.status)) }
                    td { (outcome(held, action)) }
                }
            } } }
        } }
        @if quarantine.held.is_empty() {
            p { @if query.search.is_empty() { "Nothing is held." } @else { "No held object matches “" (query.search) "”." } }
        }
    };
    let body = html! {
        (job_tabs(&quarantine.job_id))
        (summary(&quarantine))
        h2 { "Held deletes and disables" }
        form.row method="get" action={ "/quarantines/" (quarantine.quarantine_id) } role="search" {
            label { "Search by anchor, name or reason"
                input type="search" name="search" id="search" value=(query.search);
            }
            button.secondary type="submit" id="search-button" { "Search" }
            @if !query.search.is_empty() { a href={ "/quarantines/" (quarantine.quarantine_id) } { "Show all" } }
        }
        @if decides {
            form method="post" action={ "/quarantines/" (quarantine.quarantine_id) "/review" } id="decide" {
                (csrf(&viewer))
                input type="hidden" name="digest" value=(quarantine.digest);
                (held_table)
                div.row {
                    button type="submit" name="intent" value="allow-ticked" id="allow-ticked" { "Allow ticked…" }
                    button type="submit" name="intent" value="allow-all" id="allow-all" { "Allow all…" }
                    button.danger type="submit" name="intent" value="reject-ticked" id="reject-ticked" { "Reject ticked…" }
                    button.danger type="submit" name="intent" value="reject-all" id="reject-all" { "Reject all…" }
                    button.secondary type="submit" name="intent" value="restart" id="restart" { "Restart the job…" }
                }
                p.muted { "Each asks for your reason and shows how many objects it touches before anything happens." }
            }
        } @else {
            (held_table)
            @if open {
                p.muted { "Your role (" (viewer.role().as_str()) ") can read this quarantine; approvers and admins decide it." }
            }
        }
        @if !quarantine.next_page_token.is_empty() {
            p { a #next-page href={ "/quarantines/" (quarantine.quarantine_id) "?search=" (encode_component(&query.search))
                "&after=" (encode_component(&quarantine.next_page_token)) } { "Next " (PAGE_SIZE) " held objects" } }
        }
    };
    let title = format!("Quarantine of {}", job_name(&job));
    Ok(html(page(&title, Some(&viewer.session), body)))
}

/// What a decision form asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Intent {
    AllowTicked,
    AllowAll,
    RejectTicked,
    RejectAll,
    Restart,
}

impl Intent {
    fn parse(value: &str) -> Result<Self, Failure> {
        Ok(match value {
            "allow-ticked" => Intent::AllowTicked,
            "allow-all" => Intent::AllowAll,
            "reject-ticked" => Intent::RejectTicked,
            "reject-all" => Intent::RejectAll,
            "restart" => Intent::Restart,
            other => {
                return Err(Failure::BadRequest(format!(
                    "intent {other:?} is not a decision (allow-ticked, allow-all, reject-ticked, reject-all, restart)"
                )));
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Intent::AllowTicked => "allow-ticked",
            Intent::AllowAll => "allow-all",
            Intent::RejectTicked => "reject-ticked",
            Intent::RejectAll => "reject-all",
            Intent::Restart => "restart",
        }
    }

    fn ticked(self) -> bool {
        matches!(self, Intent::AllowTicked | Intent::RejectTicked)
    }
}

/// A quarantine's summary (with one held action), by its id or as a job's open one.
async fn quarantine_summary(
    viewer: &mut Viewer,
    quarantine_id: &str,
    job_id: &str,
) -> Result<v1::Quarantine, tonic::Status> {
    viewer
        .calls
        .gate
        .get_quarantine(v1::GetQuarantineRequest {
            quarantine_id: quarantine_id.to_owned(),
            job_id: job_id.to_owned(),
            page: Some(v1::PageRequest {
                page_size: 1,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

/// POST /quarantines/{quarantine_id}/review: the confirmation, with the reason to give.
pub async fn review(
    mut viewer: Viewer,
    Path(quarantine_id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Failure> {
    let fields = Fields(fields);
    viewer.check(&fields)?;
    let intent = Intent::parse(fields.one("intent"))?;
    let anchors = if intent.ticked() {
        ticked(&fields)?
    } else {
        Vec::new()
    };
    let quarantine = quarantine_summary(&mut viewer, &quarantine_id, "")
        .await
        .map_err(Failure::service("reading the quarantine"))?;
    let job = job_of(&mut viewer, &quarantine.job_id).await?;
    let retention_days = job
        .spec
        .as_ref()
        .map(|spec| spec.retention_days)
        .unwrap_or(30);
    let total = held_total(&quarantine);
    let ticked = anchors.len() as u64;
    let rest = total.saturating_sub(ticked);
    let (question, consequence, button) = match intent {
        Intent::AllowTicked => (
            format!("Allow {ticked} of the {total} held objects?"),
            format!("The {ticked} ticked objects are changed now: deleted ones are soft-deleted and stay restorable for {retention_days} days with their ids. The other {rest} held actions are rejected: nothing happens to those objects and they are pinned."),
            format!("Allow {ticked} objects"),
        ),
        Intent::AllowAll => (
            format!("Allow all {total} held deletes and disables?"),
            format!("Every held action is applied: deleted objects are soft-deleted and stay restorable for {retention_days} days with their ids."),
            format!("Allow {total} objects"),
        ),
        Intent::RejectTicked => (
            format!("Reject {ticked} of the {total} held objects?"),
            format!("The {ticked} ticked objects are kept and pinned; the other {rest} stay held for a decision."),
            format!("Reject {ticked} objects"),
        ),
        Intent::RejectAll => (
            format!("Reject all {total} held deletes and disables?"),
            "Nothing held is applied; those objects are kept and pinned. The cycle's other changes are applied.".to_owned(),
            format!("Reject {total} objects"),
        ),
        Intent::Restart => (
            "Restart the job?".to_owned(),
            format!("The held cycle is superseded: none of its {total} held actions is applied, and a fresh cycle runs now (it is guarded like any other)."),
            "Restart the job".to_owned(),
        ),
    };
    let action = if intent == Intent::Restart {
        format!("/jobs/{}/restart", quarantine.job_id)
    } else {
        format!("/quarantines/{quarantine_id}/decide")
    };
    let mut hidden = vec![
        ("intent", intent.as_str()),
        ("digest", fields.one("digest")),
    ];
    hidden.extend(anchors.iter().map(|anchor| ("anchor", anchor.as_str())));
    let body = html! {
        (notice("", html! { strong { (question) } br; (consequence) }))
        @if intent.ticked() {
            p { "Ticked: " @for (index, anchor) in anchors.iter().enumerate() {
                @if index > 0 { ", " } code { (anchor) }
            } }
        }
        (confirm_form(
            &viewer,
            &action,
            &hidden,
            "Your reason (recorded in the provisioning log and sent to the job's recipients)",
            &button,
            !matches!(intent, Intent::AllowTicked | Intent::AllowAll),
            &format!("/quarantines/{quarantine_id}"),
        ))
    };
    let title = format!("Confirm: {}", job_name(&job));
    Ok(html(page(&title, Some(&viewer.session), body)))
}

/// POST /quarantines/{quarantine_id}/decide: allows or rejects as confirmed.
pub async fn decide(
    mut viewer: Viewer,
    Path(quarantine_id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Failure> {
    let fields = Fields(fields);
    viewer.check(&fields)?;
    let intent = Intent::parse(fields.one("intent"))?;
    // An empty list means "every held action" to the gate: never from a "ticked" form.
    let anchors = if intent.ticked() {
        ticked(&fields)?
    } else {
        Vec::new()
    };
    let digest = fields.one("digest").to_owned();
    let reason = fields.one("reason").to_owned();
    let decided = match intent {
        Intent::AllowTicked | Intent::AllowAll => viewer
            .calls
            .gate
            .allow_deletes(v1::AllowDeletesRequest {
                quarantine_id: quarantine_id.clone(),
                digest,
                reason,
                anchors,
            })
            .await
            .map_err(Failure::service_from(
                "deciding the quarantine (allow)",
                format!("/quarantines/{quarantine_id}"),
            ))?,
        Intent::RejectTicked | Intent::RejectAll => viewer
            .calls
            .gate
            .reject_deletes(v1::RejectDeletesRequest {
                quarantine_id: quarantine_id.clone(),
                digest,
                reason,
                anchors,
            })
            .await
            .map_err(Failure::service_from(
                "deciding the quarantine (reject)",
                format!("/quarantines/{quarantine_id}"),
            ))?,
        Intent::Restart => {
            return Err(Failure::BadRequest(
                "A restart is confirmed on the job, not here.".into(),
            ));
        }
    }
    .into_inner();
    let quarantine = decided.quarantine.clone().unwrap_or_default();
    let allowing = matches!(intent, Intent::AllowTicked | Intent::AllowAll);
    let message = if allowing && !decided.applied {
        html! { "Your approval is recorded (" (quarantine.approvals.len()) " of " (quarantine.required_approvals)
        " required). Nothing is applied until another approver allows it too." }
    } else if allowing {
        html! { "Allowed: " strong #applied-count { (decided.actions_applied) } " applied, "
        strong #rejected-count { (decided.actions_rejected) } " rejected. The cycle is "
        (words::cycle_state(decided.cycle_state)) "." }
    } else {
        html! { "Rejected: " strong #rejected-count { (decided.actions_rejected) } " held actions are not applied; their objects are pinned. The cycle is "
        (words::cycle_state(decided.cycle_state)) "." }
    };
    let body = html! {
        (notice("ok", message))
        p {
            a href={ "/quarantines/" (quarantine_id) } { "Back to the quarantine" } " · "
            a href={ "/jobs/" (quarantine.job_id) "/deleted" } { "Recycle bin" } " · "
            a href={ "/jobs/" (quarantine.job_id) "/log" } { "Provisioning log" }
        }
    };
    Ok(html(page("Decision recorded", Some(&viewer.session), body)))
}

/// POST /jobs/{job_id}/restart: supersedes the held cycle and runs a fresh one.
pub async fn restart(
    mut viewer: Viewer,
    Path(job_id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Failure> {
    let fields = Fields(fields);
    viewer.check(&fields)?;
    let restarted = viewer
        .calls
        .gate
        .restart_job(v1::RestartJobRequest {
            job_id: job_id.clone(),
            reason: fields.one("reason").to_owned(),
        })
        .await
        .map_err(Failure::service("restarting the job"))?
        .into_inner();
    let body = html! {
        (notice("ok", html! {
            @if restarted.superseded_quarantine_id.is_empty() { "A fresh cycle runs now." }
            @else { "The held cycle is superseded and a fresh cycle runs now." }
        }))
        p { a href={ "/jobs/" (job_id) } { "Back to the job" } }
    };
    Ok(html(page("Job restarted", Some(&viewer.session), body)))
}
