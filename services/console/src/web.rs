//! What every handler shares: the console's state, the signed-in viewer taken from the
//! session cookie, posted forms with their CSRF check, and small HTTP helpers.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::response::{Html, IntoResponse, Response};
use maud::Markup;
use syncguard_bootstrap::SharedTokens;
use syncguard_domain::{Access, Role};

use crate::failure::Failure;
use crate::services::{Calls, Services};
use crate::sessions::{COOKIE, Session, Sessions, same_secret};

/// The console's state, shared by every request.
pub struct Console {
    /// Channels to the services.
    pub services: Services,
    /// Who is signed in.
    pub sessions: Sessions,
    /// Tokens and their roles, as the services read them.
    pub tokens: SharedTokens,
    /// Mark the session cookie `Secure`.
    pub secure_cookies: bool,
}

/// The state handlers receive.
pub type AppState = Arc<Console>;

/// The signed-in person making this request, with clients that act as them.
pub struct Viewer {
    /// Their session.
    pub session: Arc<Session>,
    /// The session's id (sign-out ends it).
    pub session_id: String,
    /// The services, called with their token.
    pub calls: Calls,
}

impl Viewer {
    /// Whether their role may allow, reject, restart, restore, purge and release pins:
    /// pages show those buttons only then (the services check again on every call).
    pub fn can_approve(&self) -> bool {
        self.session.principal.role.grants(Access::Approve)
    }

    /// The role's name, for pages that explain what it may do.
    pub fn role(&self) -> Role {
        self.session.principal.role
    }

    /// Refuses a posted form that does not carry this session's CSRF token.
    pub fn check(&self, form: &Fields) -> Result<(), Failure> {
        if same_secret(form.one("csrf"), &self.session.csrf) {
            Ok(())
        } else {
            Err(Failure::Forgery)
        }
    }
}

/// The value of cookie `name` in the request, if sent.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        // After sign-in, a page comes back as it was asked for; a form post cannot be
        // replayed, so it returns to the jobs.
        let next = if parts.method == Method::GET {
            parts
                .uri
                .path_and_query()
                .map(|path| path.as_str().to_owned())
                .unwrap_or_else(|| "/jobs".to_owned())
        } else {
            "/jobs".to_owned()
        };
        let sign_in = || Failure::SignIn { next: next.clone() };
        let id = cookie(parts, COOKIE).ok_or_else(sign_in)?;
        let session = state.sessions.find(id).ok_or_else(sign_in)?;
        let calls = state
            .services
            .as_person(&session.token)
            .ok_or_else(sign_in)?;
        Ok(Viewer {
            session_id: id.to_owned(),
            session,
            calls,
        })
    }
}

/// A posted form as its fields in order; a field may repeat (ticked anchors).
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, or "" when it is missing.
    pub fn one(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or("")
    }

    /// Every non-empty value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.clone())
            .collect()
    }
}

/// A rendered page as a response.
pub fn html(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// Percent-encodes a query-string value.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A `next` address that stays on this console: a path, never another site.
pub fn local_path(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if local { next } else { "/jobs" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_never_leaves_the_console() {
        assert_eq!(
            local_path("/quarantines/1?search=a"),
            "/quarantines/1?search=a"
        );
        assert_eq!(local_path("//evil.example.com/"), "/jobs");
        assert_eq!(local_path("https://evil.example.com/"), "/jobs");
        assert_eq!(local_path("/\\evil.example.com"), "/jobs");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_component("/q/1?a=b c"), "%2Fq%2F1%3Fa%3Db%20c");
    }
}
