//! Pins: objects a rejected decision protects from later deletes and disables, and their
//! release (ticked, with a reason, confirmed with the count).

use axum::Form;
use axum::extract::{Path, Query};
use axum::response::Response;
use maud::html;
use syncguard_proto::v1;

use super::jobs::After;
use super::{confirm_form, csrf, job_tabs, ticked};
use crate::failure::Failure;
use crate::layout::{notice, page};
use crate::web::{Fields, Viewer, encode_component, html};
use crate::words;

/// GET /jobs/{job_id}/pins
pub async fn list(
    mut viewer: Viewer,
    Path(job_id): Path<String>,
    Query(query): Query<After>,
) -> Result<Response, Failure> {
    let answer = viewer
        .calls
        .gate
        .list_pins(v1::ListPinsRequest {
            job_id: job_id.clone(),
            page: Some(v1::PageRequest {
                page_size: 200,
                page_token: query.after().to_owned(),
            }),
        })
        .await
        .map_err(Failure::service("reading the pins"))?
        .into_inner();
    let approver = viewer.can_approve();
    let table = html! {
        div.scroll { table #pins {
            thead { tr { @if approver { th { span.muted { "Tick" } } } th { "Anchor" } th { "Pinned by" } th { "Reason" } th { "Since" } } }
            tbody { @for pin in &answer.pins { tr {
                @if approver { td { input type="checkbox" name="anchor" value=(pin.anchor) aria-label={ "Tick " (pin.anchor) }; } }
                td { code { (pin.anchor) } }
                td { (pin.pinned_by) }
                td { (pin.reason) }
                td { (words::when(pin.pinned_at.as_ref())) }
            } } }
        } }
    };
    let body = html! {
        (job_tabs(&job_id))
        p { "A pinned object is never deleted or disabled by a cycle until it is back in the source or its pin is released." }
        @if answer.pins.is_empty() {
            p { "No object of this job is pinned." }
        } @else if approver {
            form method="post" action={ "/jobs/" (job_id) "/pins/review" } {
                (csrf(&viewer))
                (table)
                div.row { button type="submit" id="release" { "Release ticked…" } }
            }
        } @else {
            (table)
        }
        @if !answer.next_page_token.is_empty() {
            p { a href={ "/jobs/" (job_id) "/pins?after=" (encode_component(&answer.next_page_token)) } { "More" } }
        }
    };
    Ok(html(page("Pins", Some(&viewer.session), body)))
}

/// POST /jobs/{job_id}/pins/review
pub async fn review(
    viewer: Viewer,
    Path(job_id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Failure> {
    let fields = Fields(fields);
    viewer.check(&fields)?;
    let anchors = ticked(&fields)?;
    let hidden: Vec<(&str, &str)> = anchors
        .iter()
        .map(|anchor| ("anchor", anchor.as_str()))
        .collect();
    let body = html! {
        (notice("", html! { strong { "Release " (anchors.len()) " pins?" }
            " The next cycles may delete or disable those objects again (guarded by the job's protection)." }))
        (confirm_form(&viewer, &format!("/jobs/{job_id}/pins/release"), &hidden, "Your reason",
            &format!("Release {} pins", anchors.len()), false, &format!("/jobs/{job_id}/pins")))
    };
    Ok(html(page("Confirm", Some(&viewer.session), body)))
}

/// POST /jobs/{job_id}/pins/release
pub async fn release(
    mut viewer: Viewer,
    Path(job_id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Failure> {
    let fields = Fields(fields);
    viewer.check(&fields)?;
    // An empty list would release every pin of the job: never from a form.
    let anchors = ticked(&fields)?;
    let released = viewer
        .calls
        .gate
        .release_pins(v1::ReleasePinsRequest {
            job_id: job_id.clone(),
            anchors,
            reason: fields.one("reason").to_owned(),
        })
        .await
        .map_err(Failure::service("releasing the pins"))?
        .into_inner();
    let body = html! {
        (notice("ok", html! { "Released " (released.released) " pins." }))
        p { a href={ "/jobs/" (job_id) "/pins" } { "Back to the pins" } }
    };
    Ok(html(page("Pins released", Some(&viewer.session), body)))
}
