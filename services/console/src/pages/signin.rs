//! Signing in with a syncguard token and signing out.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use syncguard_domain::Role;

use crate::failure::Failure;
use crate::layout::{notice, page};
use crate::sessions::COOKIE;
use crate::web::{AppState, Fields, Viewer, html, local_path};

/// The sign-in page's query.
#[derive(Deserialize, Default)]
pub struct SignInQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    expired: Option<String>,
}

fn sign_in_page(next: &str, message: Option<maud::Markup>) -> maud::Markup {
    page(
        "Sign in",
        None,
        html! {
            @if let Some(message) = message { (message) }
            div.card {
                p { "Sign in with your syncguard token (the one your administrator gave you; with "
                    code { "scripts/run" } " the tokens are in " code { "target/dev/tokens" } ")." }
                form method="post" action="/signin" {
                    input type="hidden" name="next" value=(local_path(next));
                    div.row {
                        label { "Token"
                            input type="password" name="token" id="token" autocomplete="off" required autofocus;
                        }
                        button type="submit" id="sign-in" { "Sign in" }
                    }
                }
            }
        },
    )
}

/// GET /signin
pub async fn form(Query(query): Query<SignInQuery>) -> Response {
    let message = query.expired.map(|_| {
        notice(
            "",
            html! { "Your session ended, or your token is no longer accepted. Sign in again." },
        )
    });
    html(sign_in_page(&query.next, message))
}

/// POST /signin: checks the token against the token table; a known person's token starts
/// a session, whose cookie the script of no page can read and no other site can send.
pub async fn submit(
    State(app): State<AppState>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let fields = Fields(fields);
    let next = local_path(fields.one("next")).to_owned();
    let token = fields.one("token").trim();
    let principal = app.tokens.current().authenticate(token).cloned();
    let refuse = |text: &str| {
        (
            StatusCode::UNAUTHORIZED,
            html(sign_in_page(&next, Some(notice("error", html! { (text) })))),
        )
            .into_response()
    };
    let Some(principal) = principal else {
        return refuse("syncguard does not know that token. Check it and try again.");
    };
    if principal.role == Role::Service {
        return refuse(
            "That is a service's token, for the services themselves. Sign in with your own token.",
        );
    }
    tracing::info!(principal = %principal, "signed in to the console");
    let id = app.sessions.start(token.to_owned(), principal);
    let mut cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        app.sessions.lifetime().as_secs()
    );
    if app.secure_cookies {
        cookie.push_str("; Secure");
    }
    let mut response = Redirect::to(&next).into_response();
    match HeaderValue::from_str(&cookie) {
        Ok(value) => {
            response.headers_mut().insert(header::SET_COOKIE, value);
            response
        }
        Err(_) => refuse("The session could not be started."),
    }
}

/// POST /signout
pub async fn sign_out(
    State(app): State<AppState>,
    viewer: Viewer,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Failure> {
    viewer.check(&Fields(fields))?;
    app.sessions.end(&viewer.session_id);
    tracing::info!(principal = %viewer.session.principal, "signed out of the console");
    let mut response = html(sign_in_page(
        "/jobs",
        Some(notice("ok", html! { "You are signed out." })),
    ));
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "syncguard_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(response)
}
