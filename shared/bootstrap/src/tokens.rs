//! The table of accepted bearer tokens, read from a file or variable of
//! `<role> <principal> <token>` lines, where the token may be given as its digest
//! (`sha256:<hex>`), so the file need not hold a secret in clear.

use sha2::{Digest, Sha256};
use syncguard_domain::{Principal, Role};

/// Tokens shorter than this are refused: they are guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// Accepted tokens, kept only as SHA-256 digests so the table never holds a secret in clear.
#[derive(Clone, Default)]
pub struct TokenTable {
    entries: Vec<([u8; 32], Principal)>,
}

impl std::fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenTable")
            .field("tokens", &self.entries.len())
            .finish()
    }
}

/// Why a token table could not be used; names the source and line, never a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenTableError {
    /// The file could not be read.
    #[error("cannot read token file {path}: {error}")]
    Unreadable {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// Every user on the host may read the file.
    #[error(
        "token file {path} is readable by every user (mode {mode:o}): make it private to the service, e.g. `chmod 600 {path}` (or `chmod 640` and give its group to the service's user)"
    )]
    WorldReadable {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A line is malformed.
    #[error("{source_name} line {line}: {message}")]
    BadLine {
        /// File path or variable name.
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No token at all: nobody could call the service.
    #[error("{0} lists no tokens")]
    Empty(String),
}

/// The SHA-256 digest of a token: what the table keeps and what a tokens file may list.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two digests in time independent of where they differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

impl TokenTable {
    /// Reads a token file; refuses one every user on the host may read.
    pub fn from_file(path: &str) -> Result<Self, TokenTableError> {
        let unreadable = |error| TokenTableError::Unreadable {
            path: path.to_owned(),
            error,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path)
                .map_err(unreadable)?
                .permissions()
                .mode();
            if mode & 0o004 != 0 {
                return Err(TokenTableError::WorldReadable {
                    path: path.to_owned(),
                    mode: mode & 0o777,
                });
            }
        }
        let text = std::fs::read_to_string(path).map_err(unreadable)?;
        Self::parse(path, &text)
    }

    /// Parses `<role> <principal> <token>` lines; the token may be `sha256:<64 hex digits>`.
    /// Blank lines and `#` comments are skipped.
    pub fn parse(source_name: &str, text: &str) -> Result<Self, TokenTableError> {
        let mut table = Self::default();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: String| TokenTableError::BadLine {
                source_name: source_name.to_owned(),
                line: index + 1,
                message,
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [role, principal, token] = fields[..] else {
                return Err(bad(format!(
                    "expected `<role> <principal> <token>`, found {} fields",
                    fields.len()
                )));
            };
            let role: Role = role.parse().map_err(|error| bad(format!("{error}")))?;
            let digest = match token.strip_prefix("sha256:") {
                Some(hex_digest) => hex::decode(hex_digest)
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "the token of {principal} is not a sha256:<64 hex digits> digest"
                        ))
                    })?,
                None if token.len() < MIN_TOKEN_LEN => {
                    return Err(bad(format!(
                        "the token of {principal} is shorter than {MIN_TOKEN_LEN} characters"
                    )));
                }
                None => token_digest(token),
            };
            table.entries.push((
                digest,
                Principal {
                    name: principal.to_owned(),
                    role,
                },
            ));
        }
        if table.entries.is_empty() {
            return Err(TokenTableError::Empty(source_name.to_owned()));
        }
        Ok(table)
    }

    /// Adds a token (tests and embedding).
    pub fn insert(&mut self, principal: &str, role: Role, token: &str) {
        self.entries.push((
            token_digest(token),
            Principal {
                name: principal.to_owned(),
                role,
            },
        ));
    }

    /// The principal a presented token belongs to. Every entry is compared, each in
    /// constant time, so the answer's timing tells nothing about near misses.
    pub fn authenticate(&self, token: &str) -> Option<&Principal> {
        let presented = token_digest(token);
        let mut found = None;
        for (digest, principal) in &self.entries {
            if same_digest(digest, &presented) && found.is_none() {
                found = Some(principal);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_authenticates_by_token_or_digest() {
        let bob_digest = hex::encode(token_digest("bob-token-0123456789"));
        let table = TokenTable::parse(
            "tokens",
            &format!(
                "# who\nreader alice alice-token-0123456789\n\napprover bob sha256:{bob_digest}\n"
            ),
        )
        .unwrap();
        let bob = table.authenticate("bob-token-0123456789").unwrap();
        assert_eq!((bob.name.as_str(), bob.role), ("bob", Role::Approver));
        assert!(table.authenticate("bob-token-012345678").is_none());
        assert!(
            table
                .authenticate(&format!("sha256:{bob_digest}"))
                .is_none(),
            "the digest is not the token"
        );
        let alice = table.authenticate("alice-token-0123456789").unwrap();
        assert_eq!(alice.role, Role::Reader);
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let error = TokenTable::parse(
            "f",
            "reader alice alice-token-0123456789\nroot x y-token-0123456789",
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "f line 2: unknown role \"root\" (expected reader, operator, approver, admin or service)"
        );
        let short = TokenTable::parse("f", "reader alice short").unwrap_err();
        assert!(short.to_string().contains("shorter than 16"), "{short}");
        let digest = TokenTable::parse("f", "reader alice sha256:abcd").unwrap_err();
        assert!(digest.to_string().contains("64 hex digits"), "{digest}");
        assert!(matches!(
            TokenTable::parse("f", "# none\n"),
            Err(TokenTableError::Empty(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_token_file_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt as _;
        let path = std::env::temp_dir().join(format!("syncguard-tokens-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "admin ada ada-token-0123456789\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = TokenTable::from_file(path.to_str().unwrap()).unwrap_err();
        assert!(refused.to_string().contains("chmod 600"), "{refused}");
        assert!(!refused.to_string().contains("ada-token"), "{refused}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(TokenTable::from_file(path.to_str().unwrap()).is_ok());
        std::fs::remove_file(path).unwrap();
    }
}
