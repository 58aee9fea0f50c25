//! The jobs at a glance (quarantined first) and one job's overview.

use axum::extract::{Path, Query};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use syncguard_proto::v1::{self, ActionKind, JobHealth, job_source, protection_window};

use super::chart::{Bar, chart};
use super::job_tabs;
use crate::failure::Failure;
use crate::layout::{notice, page};
use crate::web::{Viewer, html};
use crate::words;

/// A page of a listing.
#[derive(Deserialize, Default)]
pub struct After {
    #[serde(default)]
    after: String,
}

impl After {
    /// The page token to continue from ("" for the first page).
    pub fn after(&self) -> &str {
        &self.after
    }
}

fn health_rank(job: &v1::Job) -> u8 {
    match job
        .status
        .as_ref()
        .and_then(|status| JobHealth::try_from(status.health).ok())
    {
        Some(JobHealth::Quarantined) => 0,
        Some(JobHealth::Failed) => 1,
        _ => 2,
    }
}

/// GET /jobs
pub async fn list(mut viewer: Viewer, Query(query): Query<After>) -> Result<Response, Failure> {
    let answer = viewer
        .calls
        .ingest
        .list_jobs(v1::ListJobsRequest {
            page: Some(v1::PageRequest {
                page_size: 200,
                page_token: query.after,
            }),
        })
        .await
        .map_err(Failure::service("listing the jobs"))?
        .into_inner();
    let mut jobs = answer.jobs;
    jobs.sort_by_key(|job| {
        (
            health_rank(job),
            job.spec.as_ref().map(|spec| spec.name.clone()),
        )
    });
    let body = html! {
        @if jobs.is_empty() {
            p { "No jobs yet." }
        } @else {
            div.scroll { table {
                thead { tr { th { "Job" } th { "Health" } th { "Status" } th { "Last cycle" } } }
                tbody { @for job in &jobs {
                    @let status = job.status.clone().unwrap_or_default();
                    @let health = words::health(status.health);
                    tr {
                        td { a href={ "/jobs/" (job.job_id) } { (job.spec.as_ref().map(|spec| spec.name.as_str()).unwrap_or("")) } }
                        td { span class={ "badge " (health) } { (health) } }
                        td {
                            (status.message)
                            @if !status.open_quarantine_id.is_empty() {
                                " " a href={ "/quarantines/" (status.open_quarantine_id) } { "Review the quarantine" }
                            }
                        }
                        td { (words::when(status.last_cycle_at.as_ref())) }
                    }
                } }
            } }
        }
        @if !answer.next_page_token.is_empty() {
            p { a href={ "/jobs?after=" (crate::web::encode_component(&answer.next_page_token)) } { "More jobs" } }
        }
    };
    Ok(html(page("Jobs", Some(&viewer.session), body)))
}

/// The count limit of the first rule that has one, for the chart's line.
fn count_threshold(protection: &v1::Protection) -> Option<u64> {
    protection.rules.iter().find_map(|rule| rule.max_count)
}

fn rule_text(rule: &v1::ProtectionRule) -> String {
    let counted: Vec<String> = if rule.counted_actions.is_empty() {
        vec!["delete".into(), "disable".into()]
    } else {
        rule.counted_actions
            .iter()
            .map(|a| words::action(*a))
            .collect()
    };
    let what = match words::object_type(rule.object_type).as_str() {
        "-" => "users and groups".to_owned(),
        kind => format!("{kind}s"),
    };
    let mut limits = Vec::new();
    if let Some(count) = rule.max_count {
        limits.push(format!("more than {count}"));
    }
    if let Some(percent) = rule.max_percent {
        limits.push(format!(
            "more than {percent}% of them (from {} objects)",
            rule.min_population
        ));
    }
    let window = match rule.window.as_ref().and_then(|window| window.kind.as_ref()) {
        Some(protection_window::Kind::Rolling(duration)) => {
            format!("within {} hours", duration.seconds / 3600)
        }
        _ => "in one cycle".to_owned(),
    };
    format!(
        "{}: {} of {what}, {} {window}",
        if rule.name.is_empty() {
            "rule"
        } else {
            &rule.name
        },
        counted.join(" + "),
        limits.join(" or ")
    )
}

fn next_run(job: &v1::Job) -> String {
    let spec = job.spec.clone().unwrap_or_default();
    let scheduled = matches!(
        spec.source.and_then(|source| source.kind),
        Some(job_source::Kind::File(_) | job_source::Kind::Ldap(_))
    );
    if !scheduled {
        return "when the source pushes (no schedule)".into();
    }
    let every = spec
        .schedule_interval
        .map(|interval| interval.seconds)
        .filter(|seconds| *seconds > 0)
        .unwrap_or(30 * 60);
    match words::utc(
        job.status
            .as_ref()
            .and_then(|status| status.last_cycle_at.as_ref()),
    ) {
        Some(last) => (last + chrono::Duration::seconds(every))
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
        None => "at the next schedule tick".into(),
    }
}

/// GET /jobs/{job_id}
pub async fn show(mut viewer: Viewer, Path(job_id): Path<String>) -> Result<Response, Failure> {
    // Four services answer for one page: asked at once, the page waits for the slowest.
    let calls = &mut viewer.calls;
    let (job, protection, cycles, targets) = tokio::join!(
        calls.ingest.get_job(v1::GetJobRequest {
            job_id: job_id.clone(),
        }),
        calls.gate.get_protection(v1::GetProtectionRequest {
            job_id: job_id.clone(),
        }),
        calls.stager.list_cycles(v1::ListCyclesRequest {
            job_id: job_id.clone(),
            page: Some(v1::PageRequest {
                page_size: 30,
                page_token: String::new(),
            }),
            ..Default::default()
        }),
        calls.exporter.list_targets(v1::ListTargetsRequest {
            job_id: job_id.clone(),
        }),
    );
    let job = job
        .map_err(Failure::service("reading the job"))?
        .into_inner();
    let protection = protection
        .map_err(Failure::service("reading the job's protection"))?
        .into_inner();
    let cycles = cycles
        .map_err(Failure::service("reading the job's cycles"))?
        .into_inner()
        .cycles;
    // The exporter may be down or not deployed: the page still shows everything else.
    let targets = targets.map(|answer| answer.into_inner().targets);
    let count = |cycle: &v1::Cycle, kind: ActionKind| -> u64 {
        cycle
            .counts
            .iter()
            .filter(|count| count.action == kind as i32)
            .map(|count| count.count)
            .sum()
    };
    let bars: Vec<Bar> = cycles
        .iter()
        .rev()
        .map(|cycle| Bar {
            label: words::when(cycle.created_at.as_ref()),
            deletes: count(cycle, ActionKind::Delete),
            disables: count(cycle, ActionKind::Disable),
        })
        .collect();
    let spec = job.spec.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    let health = words::health(status.health);
    let body = html! {
        (job_tabs(&job_id))
        @if !status.open_quarantine_id.is_empty() {
            (notice("error", html! {
                (status.message) " "
                a href={ "/quarantines/" (status.open_quarantine_id) } { "Review the quarantine" }
            }))
        }
        div.card { dl {
            dt { "Health" } dd { span class={ "badge " (health) } { (health) } " " (status.message) }
            dt { "Last cycle" } dd { (words::when(status.last_cycle_at.as_ref())) }
            dt { "Next run" } dd { (next_run(&job)) }
            dt { "Retention" } dd { (spec.retention_days) " days in the recycle bin" }
            dt { "Approvals needed" } dd { (spec.required_approvals.max(1)) }
            dt { "Job id" } dd { code { (job.job_id) } }
        } }
        h2 { "Protection" }
        div.card {
            @if !protection.enabled {
                p { strong { "Deletion protection is off" } " for this job (" (protection.reason) ")." }
            }
            ul { @for rule in &protection.rules { li { (rule_text(rule)) } } }
        }
        h2 { "Deletes and disables of the last cycles" }
        div.card {
            @if bars.is_empty() { p { "No cycles yet." } } @else { (chart(&bars, count_threshold(&protection))) }
        }
        h2 { "Last cycles" }
        div.scroll { table {
            thead { tr { th { "Started" } th { "State" } th { "Objects read" } th { "Deletes" } th { "Disables" } th { "Kind" } } }
            tbody { @for cycle in cycles.iter().take(10) {
                @let state = words::cycle_state(cycle.state);
                tr {
                    td { (words::when(cycle.created_at.as_ref())) }
                    td { span class={ "badge " (state) } { (state) }
                        @if !cycle.quarantine_id.is_empty() { " " a href={ "/quarantines/" (cycle.quarantine_id) } { "quarantine" } } }
                    td { (cycle.source_objects) }
                    td { (count(cycle, ActionKind::Delete)) }
                    td { (count(cycle, ActionKind::Disable)) }
                    td { @if cycle.delta { "delta" } @else { "full read" } }
                }
            } }
        } }
        h2 { "Targets" }
        @match &targets {
            Ok(targets) if targets.is_empty() => p { "This job exports to no directory or application." },
            Ok(targets) => div.scroll { table {
                thead { tr { th { "Target" } th { "Pending" } th { "Exported" } th { "Failed" } th { "Last success" } th { "Last error" } } }
                tbody { @for target in targets { tr {
                    td { (target.target) @if target.bootstrapping { " (first export running)" } }
                    td { (target.pending_changes) }
                    td { (target.exported) }
                    td { (target.failed) }
                    td { (words::when(target.last_success_at.as_ref())) }
                    td { (target.last_error) }
                } } }
            } },
            Err(status) => p.muted { "The exporter cannot say: " (status.message()) },
        }
    };
    let title = format!("Job {}", spec.name);
    Ok(html(page(&title, Some(&viewer.session), body)))
}
