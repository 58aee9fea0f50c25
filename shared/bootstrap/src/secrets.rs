//! Secrets by reference: a job names a secret (`hr-ldap-bind`); the service resolves the name
//! only in places the deployment chose: a file of that name in `SYNCGUARD_SECRETS_DIR`, or
//! the variable `SYNCGUARD_SECRET_<NAME>`. A request can never name a file path or an
//! arbitrary variable of the server, and no error ever carries a secret's value.

use std::path::PathBuf;

use syncguard_domain::FieldError;

/// Largest secret file read (a password or token, not a document).
const MAX_SECRET_BYTES: u64 = 64 * 1024;
/// Prefix of the variables secrets may come from.
pub const SECRET_VARIABLE_PREFIX: &str = "SYNCGUARD_SECRET_";

/// A validated secret name: 1 to 128 of `A-Z a-z 0-9 . _ -`, not starting with a dot (so
/// no `/`, no `..`, nothing that leaves the secrets directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretName(String);

impl SecretName {
    /// Parses a request field, naming it in the error.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
        let valid = !value.is_empty()
            && value.len() <= 128
            && !value.starts_with('.')
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(FieldError::new(
                field,
                "a secret name is 1 to 128 letters, digits, '.', '_' or '-' (not a path or a variable): \
                 store the secret as a file of that name in SYNCGUARD_SECRETS_DIR or as SYNCGUARD_SECRET_<NAME>",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The variable this secret may come from: `SYNCGUARD_SECRET_` and the name in upper case
    /// with `.` and `-` as `_`.
    pub fn variable(&self) -> String {
        let upper: String = self
            .0
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{SECRET_VARIABLE_PREFIX}{upper}")
    }
}

/// A secret's value; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that sends it (a bind, an authorization header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a secret could not be resolved; says where it was looked for, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Neither a file nor a variable of that name exists.
    #[error(
        "secret {name:?} is not defined: add the file {name} to SYNCGUARD_SECRETS_DIR{dir_note} or set {variable}"
    )]
    Missing {
        /// The name.
        name: String,
        /// Its variable.
        variable: String,
        /// A note when no secrets directory is configured.
        dir_note: &'static str,
    },
    /// The file exists but cannot be used (not a regular file, too large, unreadable).
    #[error("secret {name:?} cannot be read from SYNCGUARD_SECRETS_DIR: {reason}")]
    Unreadable {
        /// The name.
        name: String,
        /// Why (never the content).
        reason: String,
    },
}

/// Where this deployment keeps secrets.
#[derive(Debug, Clone, Default)]
pub struct SecretStore {
    dir: Option<PathBuf>,
    variables: Vec<(String, String)>,
}

impl SecretStore {
    /// The store the environment configures: `SYNCGUARD_SECRETS_DIR` and the
    /// `SYNCGUARD_SECRET_*` variables.
    pub fn from_env() -> Self {
        Self::new(
            std::env::var_os("SYNCGUARD_SECRETS_DIR")
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
            std::env::vars().filter(|(name, _)| name.starts_with(SECRET_VARIABLE_PREFIX)),
        )
    }

    /// A store over `dir` and `variables` (tests, embedding).
    pub fn new(
        dir: Option<PathBuf>,
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        Self {
            dir,
            variables: variables
                .into_iter()
                .filter(|(name, _)| name.starts_with(SECRET_VARIABLE_PREFIX))
                .collect(),
        }
    }

    /// The secret `name` names: its file in the secrets directory (trailing newline
    /// removed), else its variable.
    pub fn resolve(&self, name: &SecretName) -> Result<Secret, SecretError> {
        if let Some(dir) = &self.dir {
            let path = dir.join(name.as_str());
            match std::fs::symlink_metadata(&path) {
                Ok(_) => return read_secret_file(name, &path),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(SecretError::Unreadable {
                        name: name.as_str().to_owned(),
                        reason: error.kind().to_string(),
                    });
                }
            }
        }
        let variable = name.variable();
        if let Some((_, value)) = self.variables.iter().find(|(key, _)| *key == variable) {
            return Ok(Secret(value.clone()));
        }
        Err(SecretError::Missing {
            name: name.as_str().to_owned(),
            variable,
            dir_note: if self.dir.is_some() {
                ""
            } else {
                " (not configured)"
            },
        })
    }
}

fn read_secret_file(name: &SecretName, path: &std::path::Path) -> Result<Secret, SecretError> {
    let unreadable = |reason: String| SecretError::Unreadable {
        name: name.as_str().to_owned(),
        reason,
    };
    // Kubernetes and compose mount secrets through symlinks: follow them, but read only a
    // regular file of a password's size.
    let metadata = std::fs::metadata(path).map_err(|error| unreadable(error.kind().to_string()))?;
    if !metadata.is_file() {
        return Err(unreadable("not a regular file".into()));
    }
    if metadata.len() > MAX_SECRET_BYTES {
        return Err(unreadable(format!("larger than {MAX_SECRET_BYTES} bytes")));
    }
    let bytes = std::fs::read(path).map_err(|error| unreadable(error.kind().to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8 text".into()))?;
    Ok(Secret(text.trim_end_matches(['\n', '\r']).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_never_paths_or_variables() {
        for bad in [
            "",
            "../tokens",
            "a/b",
            ".hidden",
            "DATABASE_URL=x",
            "/etc/shadow",
            "x y",
        ] {
            assert!(
                SecretName::parse("spec.password_secret", bad).is_err(),
                "{bad:?}"
            );
        }
        let name = SecretName::parse("f", "hr-ldap.bind_pw").unwrap();
        assert_eq!(name.variable(), "SYNCGUARD_SECRET_HR_LDAP_BIND_PW");
    }

    #[test]
    fn secrets_come_from_the_directory_or_the_prefixed_variables_only() {
        let dir = std::env::temp_dir().join(format!("syncguard-secrets-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bind"), "s3cret\n").unwrap();
        std::fs::create_dir(dir.join("folder")).unwrap();
        let store = SecretStore::new(
            Some(dir.clone()),
            [
                ("SYNCGUARD_SECRET_TOKEN".to_owned(), "t0ken".to_owned()),
                ("DATABASE_URL".to_owned(), "postgres://x".to_owned()),
            ],
        );
        let name = |n: &str| SecretName::parse("f", n).unwrap();
        assert_eq!(store.resolve(&name("bind")).unwrap().expose(), "s3cret");
        assert_eq!(store.resolve(&name("token")).unwrap().expose(), "t0ken");
        assert!(matches!(
            store.resolve(&name("folder")),
            Err(SecretError::Unreadable { .. })
        ));
        let missing = store.resolve(&name("database-url")).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("SYNCGUARD_SECRET_DATABASE_URL")
        );
        assert!(!missing.to_string().contains("postgres://"));
        assert_eq!(
            format!("{:?}", store.resolve(&name("bind")).unwrap()),
            "Secret(..)"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
