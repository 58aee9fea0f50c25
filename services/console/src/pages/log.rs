//! The provisioning log of a job with the filters of `QueryProvisioningLogs`.

use axum::extract::{Path, Query};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use syncguard_proto::v1::{self, ActionStatus, LogActionFilter};

use super::job_tabs;
use crate::failure::Failure;
use crate::layout::page;
use crate::web::{Viewer, encode_component, html};
use crate::words;

/// The log page's filters, as the form sends them.
#[derive(Deserialize, Default, Clone)]
pub struct LogQuery {
    #[serde(default)]
    cycle: String,
    #[serde(default)]
    anchor: String,
    #[serde(default)]
    action: i32,
    #[serde(default)]
    status: i32,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    after: String,
}

/// A date of the form (YYYY-MM-DD) as the start of that day in UTC, plus `days`.
fn day(field: &str, value: &str, days: i64) -> Result<Option<prost_types::Timestamp>, Failure> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let date = chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").map_err(|_| {
        Failure::BadRequest(format!("{field}: {value:?} is not a date like 2026-11-27"))
    })?;
    let start = date.and_time(chrono::NaiveTime::MIN).and_utc() + chrono::Duration::days(days);
    Ok(Some(prost_types::Timestamp {
        seconds: start.timestamp(),
        nanos: 0,
    }))
}

fn filter_word(value: i32) -> String {
    LogActionFilter::try_from(value)
        .ok()
        .and_then(|filter| filter.as_str_name().strip_prefix("LOG_ACTION_FILTER_"))
        .map(|name| name.to_lowercase().replace('_', " "))
        .unwrap_or_default()
}

/// GET /jobs/{job_id}/log
pub async fn show(
    mut viewer: Viewer,
    Path(job_id): Path<String>,
    Query(query): Query<LogQuery>,
) -> Result<Response, Failure> {
    let answer = viewer
        .calls
        .stager
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            cycle_id: query.cycle.trim().to_owned(),
            anchor: query.anchor.trim().to_owned(),
            action: query.action,
            status: query.status,
            since: day("since", &query.since, 0)?,
            // The whole "until" day is included.
            until: day("until", &query.until, 1)?,
            actor: query.actor.trim().to_owned(),
            page: Some(v1::PageRequest {
                page_size: 100,
                page_token: query.after.clone(),
            }),
        })
        .await
        .map_err(Failure::service("reading the provisioning log"))?
        .into_inner();
    let next = (!answer.next_page_token.is_empty()).then(|| {
        format!(
            "/jobs/{job_id}/log?cycle={}&anchor={}&action={}&status={}&actor={}&since={}&until={}&after={}",
            encode_component(&query.cycle),
            encode_component(&query.anchor),
            query.action,
            query.status,
            encode_component(&query.actor),
            encode_component(&query.since),
            encode_component(&query.until),
            encode_component(&answer.next_page_token)
        )
    });
    let body = html! {
        (job_tabs(&job_id))
        form.card method="get" action={ "/jobs/" (job_id) "/log" } {
            div.row {
                label { "Anchor" input type="text" name="anchor" value=(query.anchor); }
                label { "Cycle id" input type="text" name="cycle" value=(query.cycle); }
                label { "Actor" input type="text" name="actor" value=(query.actor); }
                label { "Action" select name="action" {
                    option value="0" { "any" }
                    @for value in 1..=13 {
                        option value=(value) selected[query.action == value] { (filter_word(value)) }
                    }
                } }
                label { "Status" select name="status" {
                    option value="0" { "any" }
                    @for value in 1..=8 {
                        @if ActionStatus::try_from(value).is_ok() {
                            option value=(value) selected[query.status == value] { (words::status(value)) }
                        }
                    }
                } }
                label { "Since" input type="date" name="since" value=(query.since); }
                label { "Until" input type="date" name="until" value=(query.until); }
                button type="submit" { "Filter" }
            }
        }
        @if answer.entries.is_empty() {
            p { "No log rows match." }
        } @else {
            div.scroll { table #log {
                thead { tr { th { "When" } th { "Action" } th { "Anchor" } th { "Type" } th { "Status" } th { "Reason" } th { "Actor" } th { "Detail" } } }
                tbody { @for entry in &answer.entries { tr {
                    td { (words::when(entry.at.as_ref())) }
                    td { (entry.display_action) }
                    td { code { (entry.anchor) } }
                    td { (words::object_type(entry.object_type)) }
                    td { (words::status(entry.status)) }
                    td { (words::reason(entry.reason)) }
                    td { (entry.actor) }
                    td { (entry.detail) }
                } } }
            } }
        }
        @if let Some(next) = next { p { a href=(next) { "Older rows" } } }
    };
    Ok(html(page("Provisioning log", Some(&viewer.session), body)))
}
