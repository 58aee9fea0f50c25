//! What a page says when it cannot be shown or an action is refused: the services' own
//! words, with what to do next, and the HTTP status that fits.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use tonic::Code;

use crate::layout::{notice, page};

/// Why a request got no page of its own.
#[derive(Debug)]
pub enum Failure {
    /// Nobody is signed in (or the session ended): sign in, then come back to `next`.
    SignIn {
        /// Where to return after sign-in.
        next: String,
    },
    /// A service answered with an error.
    Service {
        /// What the console was doing ("reading the quarantine").
        doing: &'static str,
        /// The service's answer.
        status: tonic::Status,
        /// The page to go back to, when there is a better one than the jobs.
        back: Option<String>,
    },
    /// The form is not one this console rendered for this session.
    Forgery,
    /// The request itself is wrong (a missing field, a bad date); the text says which.
    BadRequest(String),
}

impl Failure {
    /// A service's error while doing `doing`.
    pub fn service(doing: &'static str) -> impl FnOnce(tonic::Status) -> Failure {
        move |status| Failure::Service {
            doing,
            status,
            back: None,
        }
    }

    /// A service's error while doing `doing`, with a link back to `back` (the page whose
    /// form was refused, to read it again).
    pub fn service_from(
        doing: &'static str,
        back: String,
    ) -> impl FnOnce(tonic::Status) -> Failure {
        move |status| Failure::Service {
            doing,
            status,
            back: Some(back),
        }
    }
}

fn error_page(code: StatusCode, title: &str, body: maud::Markup, back: Option<&str>) -> Response {
    let markup = page(
        title,
        None,
        html! {
            (notice("error", body))
            p {
                @if let Some(back) = back { a #back href=(back) { "Open it again as it is now" } " · " }
                a href="/jobs" { "Back to the jobs" }
            }
        },
    );
    (code, axum::response::Html(markup.into_string())).into_response()
}

/// Ends the browser's session cookie (its token is no longer accepted); the name is
/// `sessions::COOKIE`.
fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("syncguard_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Where to send someone who must sign in first.
pub fn sign_in_location(next: &str) -> String {
    format!("/signin?next={}", crate::web::encode_component(next))
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::SignIn { next } => Redirect::to(&sign_in_location(&next)).into_response(),
            Failure::Forgery => error_page(
                StatusCode::FORBIDDEN,
                "Refused",
                html! { "This form did not come from your current session (its CSRF token does not match). Nothing was changed. Reload the page and try again." },
                None,
            ),
            Failure::BadRequest(message) => error_page(
                StatusCode::BAD_REQUEST,
                "Cannot do that",
                html! { (message) },
                None,
            ),
            Failure::Service {
                doing,
                status,
                back,
            } => {
                let message = status.message().to_owned();
                let (code, title, advice) = match status.code() {
                    Code::Unauthenticated => {
                        let mut response = Redirect::to("/signin?expired=1").into_response();
                        response
                            .headers_mut()
                            .insert(header::SET_COOKIE, clear_cookie());
                        return response;
                    }
                    Code::PermissionDenied => (
                        StatusCode::FORBIDDEN,
                        "Not allowed",
                        "Your role does not allow this; nothing was changed. Ask someone with the approver or admin role.",
                    ),
                    Code::NotFound => (
                        StatusCode::NOT_FOUND,
                        "Not found",
                        "It may have been deleted, or the link is wrong.",
                    ),
                    Code::FailedPrecondition | Code::Aborted if doing.starts_with("deciding") => (
                        StatusCode::CONFLICT,
                        "Refused: the quarantine changed",
                        "Nothing was changed. What you reviewed is no longer what is held (someone decided part of it, or it was closed): open it again and review what is held now.",
                    ),
                    Code::FailedPrecondition | Code::Aborted | Code::AlreadyExists => (
                        StatusCode::CONFLICT,
                        "Refused",
                        "Nothing was changed: the object is not in a state that allows it.",
                    ),
                    Code::InvalidArgument | Code::OutOfRange => (
                        StatusCode::BAD_REQUEST,
                        "Cannot do that",
                        "Nothing was changed.",
                    ),
                    Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "A service cannot be reached",
                        "syncguard is restarting or a service is down; try again in a moment.",
                    ),
                    _ => (
                        StatusCode::BAD_GATEWAY,
                        "Something went wrong",
                        "The service reported an error; the operators' logs have the details.",
                    ),
                };
                error_page(
                    code,
                    title,
                    html! {
                        p { strong { "While " (doing) ": " } (message) }
                        p { (advice) }
                    },
                    back.as_deref(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cleared_cookie_is_the_session_cookie() {
        let cleared = super::clear_cookie();
        let cleared = cleared.to_str().expect("ascii");
        assert!(cleared.starts_with(&format!("{}=;", crate::sessions::COOKIE)));
        assert!(cleared.contains("Max-Age=0"));
    }
}
