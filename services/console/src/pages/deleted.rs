//! The recycle bin: a job's soft-deleted objects with when they stop being restorable,
//! restore (same object id, attributes and groups) and, for approvers, purge.

use axum::Form;
use axum::extract::{Path, Query};
use axum::response::Response;
use maud::html;
use syncguard_proto::v1::{self, object_ref};

use super::jobs::After;
use super::{confirm_form, csrf, job_tabs};
use crate::failure::Failure;
use crate::layout::{notice, page};
use crate::web::{Fields, Viewer, encode_component, html};
use crate::words;

fn by_id(object_id: &str) -> Option<v1::ObjectRef> {
    Some(v1::ObjectRef {
        by: Some(object_ref::By::ObjectId(object_id.to_owned())),
    })
}

/// GET /jobs/{job_id}/deleted
pub async fn list(
    mut viewer: Viewer,
    Path(job_id): Path<String>,
    Query(query): Query<After>,
) -> Result<Response, Failure> {
    let answer = viewer
        .calls
        .retention
        .list_deleted_objects(v1::ListDeletedObjectsRequest {
            job_id: job_id.clone(),
            page: Some(v1::PageRequest {
                page_size: 100,
                page_token: query.after().to_owned(),
            }),
            ..Default::default()
        })
        .await
        .map_err(Failure::service("reading the recycle bin"))?
        .into_inner();
    let approver = viewer.can_approve();
    let body = html! {
        (job_tabs(&job_id))
        p { "Deleted objects stay here, restorable with their object id, attributes and group memberships, until their retention ends; then they are purged." }
        @if answer.objects.is_empty() {
            p { "The recycle bin is empty." }
        } @else {
            div.scroll { table #deleted {
                thead { tr { th { "Anchor" } th { "Name" } th { "Type" } th { "Object id" } th { "Deleted" } th { "Restorable until" }
                    @if approver { th { "Actions" } } } }
                tbody { @for object in &answer.objects { tr {
                    td { code { (object.anchor) } }
                    td { (words::object_name(object)) }
                    td { (words::object_type(object.object_type)) }
                    td { code { (object.object_id) } }
                    td { (words::when(object.deleted_at.as_ref())) }
                    td { (words::when(object.restorable_until.as_ref())) }
                    @if approver { td {
                        form.inline method="post" action={ "/jobs/" (job_id) "/deleted/review" } {
                            (csrf(&viewer))
                            input type="hidden" name="object_id" value=(object.object_id);
                            input type="hidden" name="anchor" value=(object.anchor);
                            button type="submit" name="intent" value="restore" id={ "restore-" (object.anchor) } { "Restore…" }
                            " "
                            button.danger type="submit" name="intent" value="purge" id={ "purge-" (object.anchor) } { "Purge…" }
                        }
                    } }
                } } }
            } }
        }
        @if !answer.next_page_token.is_empty() {
            p { a href={ "/jobs/" (job_id) "/deleted?after=" (encode_component(&answer.next_page_token)) } { "More" } }
        }
    };
    Ok(html(page("Recycle bin", Some(&viewer.session), body)))
}

fn restoring(fields: &Fields) -> Result<bool, Failure> {
    match fields.one("intent") {
        "restore" => Ok(true),
        "purge" => Ok(false),
        other => Err(Failure::BadRequest(format!(
            "intent {other:?} is neither restore nor purge; nothing was changed"
        ))),
    }
}

/// POST /jobs/{job_id}/deleted/review: the confirmation, with the reason to give.
pub async fn review(
    viewer: Viewer,
    Path(job_id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Failure> {
    let fields = Fields(fields);
    viewer.check(&fields)?;
    let restore = restoring(&fields)?;
    let anchor = fields.one("anchor");
    let (question, button) = if restore {
        (
            format!(
                "Restore 1 object ({anchor})? It comes back with its object id, attributes and group memberships."
            ),
            "Restore 1 object",
        )
    } else {
        (
            format!(
                "Purge 1 object ({anchor})? It is erased for good and can no longer be restored."
            ),
            "Purge 1 object",
        )
    };
    let body = html! {
        (notice("", html! { strong { (question) } }))
        (confirm_form(
            &viewer,
            &format!("/jobs/{job_id}/deleted/apply"),
            &[("intent", fields.one("intent")), ("object_id", fields.one("object_id")), ("anchor", anchor)],
            "Your reason (recorded in the provisioning log)",
            button,
            !restore,
            &format!("/jobs/{job_id}/deleted"),
        ))
    };
    Ok(html(page("Confirm", Some(&viewer.session), body)))
}

/// POST /jobs/{job_id}/deleted/apply
pub async fn apply(
    mut viewer: Viewer,
    Path(job_id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Failure> {
    let fields = Fields(fields);
    viewer.check(&fields)?;
    let object_id = fields.one("object_id").to_owned();
    let reason = fields.one("reason").to_owned();
    let message = if restoring(&fields)? {
        let object = viewer
            .calls
            .retention
            .restore_object(v1::RestoreObjectRequest {
                object: by_id(&object_id),
                reason,
            })
            .await
            .map_err(Failure::service("restoring the object"))?
            .into_inner();
        html! { "Restored " code { (object.anchor) } " (" (words::object_name(&object)) ") with its object id "
        code #restored-id { (object.object_id) } "." }
    } else {
        let purged = viewer
            .calls
            .retention
            .purge_object(v1::PurgeObjectRequest {
                object: by_id(&object_id),
                reason,
            })
            .await
            .map_err(Failure::service("purging the object"))?
            .into_inner();
        html! { "Purged object " code { (purged.object_id) } "; it can no longer be restored." }
    };
    let body = html! {
        (notice("ok", message))
        p { a href={ "/jobs/" (job_id) "/deleted" } { "Back to the recycle bin" } }
    };
    Ok(html(page("Done", Some(&viewer.session), body)))
}
