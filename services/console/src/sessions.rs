//! Signed-in sessions: the console's only state. Each holds the person's token (so the
//! services see them, not the console, on every call), their principal, and the CSRF token
//! every form of theirs must carry. Kept in memory: a restart signs everyone out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use syncguard_domain::Principal;

/// The cookie that names a session.
pub const COOKIE: &str = "syncguard_session";

/// One signed-in person.
#[derive(Debug)]
pub struct Session {
    /// The token they signed in with; sent to the services on their behalf.
    pub token: String,
    /// Who they are and what they may do.
    pub principal: Principal,
    /// Must come back with every form they post.
    pub csrf: String,
}

struct Entry {
    session: Arc<Session>,
    started: Instant,
    last_seen: Instant,
}

/// Every live session, by id.
pub struct Sessions {
    entries: Mutex<HashMap<String, Entry>>,
    lifetime: Duration,
    idle: Duration,
}

/// An unguessable id: 244 random bits from the system's generator, as hex.
fn random_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Compares secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// An empty store whose sessions end `lifetime` after sign-in or `idle` after last use.
    pub fn new(lifetime: Duration, idle: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            lifetime,
            idle,
        }
    }

    /// How long the cookie may live in the browser.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic elsewhere cannot leave the map half-written: every change is one call.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a session; returns its id for the cookie.
    pub fn start(&self, token: String, principal: Principal) -> String {
        let id = random_id();
        let now = Instant::now();
        let session = Arc::new(Session {
            token,
            principal,
            csrf: random_id(),
        });
        let mut entries = self.entries();
        // Sign-in is the one way in: expired sessions are swept here.
        entries.retain(|_, entry| self.live(entry, now));
        entries.insert(
            id.clone(),
            Entry {
                session,
                started: now,
                last_seen: now,
            },
        );
        id
    }

    fn live(&self, entry: &Entry, now: Instant) -> bool {
        now.duration_since(entry.started) < self.lifetime
            && now.duration_since(entry.last_seen) < self.idle
    }

    /// The live session with this id (and marks it used), or `None`.
    pub fn find(&self, id: &str) -> Option<Arc<Session>> {
        let now = Instant::now();
        let mut entries = self.entries();
        let entry = entries.get_mut(id)?;
        if !self.live(entry, now) {
            entries.remove(id);
            return None;
        }
        entry.last_seen = now;
        Some(entry.session.clone())
    }

    /// Ends a session (sign-out, or a token the services no longer accept).
    pub fn end(&self, id: &str) {
        self.entries().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncguard_domain::Role;

    fn principal() -> Principal {
        Principal {
            name: "ann".into(),
            role: Role::Approver,
        }
    }

    #[test]
    fn a_session_is_found_until_it_ends() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let id = sessions.start("token".into(), principal());
        assert_eq!(id.len(), 64);
        let session = sessions.find(&id).expect("live");
        assert_eq!(session.principal.name, "ann");
        assert_ne!(session.csrf, id);
        sessions.end(&id);
        assert!(sessions.find(&id).is_none());
        assert!(sessions.find("made-up").is_none());
    }

    #[test]
    fn an_expired_session_is_gone() {
        let sessions = Sessions::new(Duration::ZERO, Duration::from_secs(60));
        let id = sessions.start("token".into(), principal());
        assert!(sessions.find(&id).is_none());
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
