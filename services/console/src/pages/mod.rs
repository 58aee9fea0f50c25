//! One module per page family; each handler reads through the services as the viewer.

mod chart;
pub mod deleted;
pub mod jobs;
pub mod log;
pub mod pins;
pub mod quarantine;
pub mod signin;

use maud::{Markup, html};

/// The links between a job's pages.
fn job_tabs(job_id: &str) -> Markup {
    html! {
        nav.row aria-label="Job pages" {
            a href={ "/jobs/" (job_id) } { "Overview" }
            a href={ "/jobs/" (job_id) "/quarantine" } { "Quarantine" }
            a href={ "/jobs/" (job_id) "/deleted" } { "Recycle bin" }
            a href={ "/jobs/" (job_id) "/log" } { "Provisioning log" }
            a href={ "/jobs/" (job_id) "/pins" } { "Pins" }
        }
    }
}

/// The CSRF field every form of the viewer carries.
fn csrf(viewer: &crate::web::Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.session.csrf); }
}

/// The confirmation every change asks for: the reason to record, one button that says
/// what it does to how many objects, and a way back. `hidden` carries the choice made.
fn confirm_form(
    viewer: &crate::web::Viewer,
    action: &str,
    hidden: &[(&str, &str)],
    reason_label: &str,
    button: &str,
    danger: bool,
    cancel: &str,
) -> Markup {
    html! {
        form.card method="post" action=(action) {
            (csrf(viewer))
            @for (name, value) in hidden { input type="hidden" name=(name) value=(value); }
            label { (reason_label) textarea name="reason" id="reason" required {} }
            div.row {
                button type="submit" id="confirm" class=(if danger { "danger" } else { "" }) { (button) }
                a href=(cancel) { "Cancel" }
            }
        }
    }
}

/// The ticked objects of a form; none ticked is refused, since an empty list means "all"
/// to the services.
fn ticked(fields: &crate::web::Fields) -> Result<Vec<String>, crate::failure::Failure> {
    let anchors = fields.all("anchor");
    if anchors.is_empty() {
        return Err(crate::failure::Failure::BadRequest(
            "Tick at least one object first; nothing was changed.".into(),
        ));
    }
    Ok(anchors)
}
