//! The table of accepted bearer tokens, read from a file or variable of
//! `<role> <principal> <token>` lines.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use syncguard_domain::{Principal, Role};

/// Tokens shorter than this are refused: they are guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// Accepted tokens, kept only as SHA-256 digests so the table never holds a secret in clear.
#[derive(Clone, Default)]
pub struct TokenTable {
    by_digest: HashMap<[u8; 32], Principal>,
}

impl std::fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenTable")
            .field("tokens", &self.by_digest.len())
            .finish()
    }
}

/// Why a token table could not be used; names the source and line.
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

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenTable {
    /// Reads a token file.
    pub fn from_file(path: &str) -> Result<Self, TokenTableError> {
        let text = std::fs::read_to_string(path).map_err(|error| TokenTableError::Unreadable {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `<role> <principal> <token>` lines; blank lines and `#` comments are skipped.
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
            if token.len() < MIN_TOKEN_LEN {
                return Err(bad(format!(
                    "the token of {principal} is shorter than {MIN_TOKEN_LEN} characters"
                )));
            }
            table.insert(principal, role, token);
        }
        if table.by_digest.is_empty() {
            return Err(TokenTableError::Empty(source_name.to_owned()));
        }
        Ok(table)
    }

    /// Adds a token (tests and embedding).
    pub fn insert(&mut self, principal: &str, role: Role, token: &str) {
        self.by_digest.insert(
            digest(token),
            Principal {
                name: principal.to_owned(),
                role,
            },
        );
    }

    /// The principal a presented token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<&Principal> {
        self.by_digest.get(&digest(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_authenticates_by_token() {
        let table = TokenTable::parse(
            "tokens",
            "# who\nreader alice alice-token-0123456789\n\napprover bob bob-token-0123456789\n",
        )
        .unwrap();
        let bob = table.authenticate("bob-token-0123456789").unwrap();
        assert_eq!((bob.name.as_str(), bob.role), ("bob", Role::Approver));
        assert!(table.authenticate("bob-token-012345678").is_none());
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
        assert!(matches!(
            TokenTable::parse("f", "# none\n"),
            Err(TokenTableError::Empty(_))
        ));
    }
}
