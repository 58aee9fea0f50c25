//! What this deployment lets jobs reach, and how much work one caller may hold: where
//! secrets come from, the directory file sources live in, the LDAP hosts jobs may connect
//! to, and the limits on push streams. Read from the environment at start.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use syncguard_bootstrap::{AllowedHosts, SecretStore};
use syncguard_domain::FieldError;

/// Default time a push stream may send nothing before it is aborted.
const DEFAULT_PUSH_IDLE_SECS: u64 = 30;

/// The deployment's limits on what jobs may reach.
#[derive(Debug, Clone)]
pub struct IngestPolicy {
    /// Where secrets come from.
    pub secrets: SecretStore,
    /// File sources live here (canonical path); `None` disables file sources.
    pub import_dir: Option<PathBuf>,
    /// Where LDAP jobs (sources and targets) may connect.
    pub ldap_hosts: AllowedHosts,
    /// Where SCIM targets may be (`SYNCGUARD_SCIM_ALLOWED_HOSTS`).
    pub scim_hosts: AllowedHosts,
    /// A push stream that sends nothing for this long is aborted and rolled back.
    pub push_idle: Duration,
    /// Push streams served at once; more are refused (each holds a database connection).
    pub max_pushes: usize,
}

impl IngestPolicy {
    /// The policy the environment sets: `SYNCGUARD_SECRETS_DIR`, `SYNCGUARD_SECRET_*`,
    /// `SYNCGUARD_IMPORT_DIR`, `SYNCGUARD_LDAP_ALLOWED_HOSTS`, `SYNCGUARD_PUSH_IDLE_SECS`,
    /// `SYNCGUARD_MAX_CONCURRENT_PUSHES` (default: half the database pool).
    pub fn from_env(pool_size: u32) -> anyhow::Result<Self> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        };
        let import_dir = var("SYNCGUARD_IMPORT_DIR").map(PathBuf::from);
        let number = |name: &str, default: u64| -> anyhow::Result<u64> {
            var(name)
                .map(|value| {
                    value
                        .trim()
                        .parse()
                        .map_err(|_| anyhow::anyhow!("{name}={value:?} is not a number"))
                })
                .transpose()
                .map(|value| value.unwrap_or(default))
        };
        let mut policy = Self::new(
            SecretStore::from_env(),
            import_dir,
            AllowedHosts::from_env("SYNCGUARD_LDAP_ALLOWED_HOSTS").map_err(anyhow::Error::msg)?,
            Duration::from_secs(number("SYNCGUARD_PUSH_IDLE_SECS", DEFAULT_PUSH_IDLE_SECS)?),
            number(
                "SYNCGUARD_MAX_CONCURRENT_PUSHES",
                u64::from((pool_size / 2).max(1)),
            )? as usize,
        )?;
        policy.scim_hosts =
            AllowedHosts::from_env("SYNCGUARD_SCIM_ALLOWED_HOSTS").map_err(anyhow::Error::msg)?;
        Ok(policy)
    }

    /// A policy from its parts; the import directory must exist.
    pub fn new(
        secrets: SecretStore,
        import_dir: Option<PathBuf>,
        ldap_hosts: AllowedHosts,
        push_idle: Duration,
        max_pushes: usize,
    ) -> anyhow::Result<Self> {
        let import_dir = import_dir
            .map(|dir| {
                dir.canonicalize().map_err(|error| {
                    anyhow::anyhow!(
                        "SYNCGUARD_IMPORT_DIR {} cannot be used: {error}",
                        dir.display()
                    )
                })
            })
            .transpose()?;
        Ok(Self {
            secrets,
            import_dir,
            ldap_hosts,
            scim_hosts: AllowedHosts::default(),
            push_idle: push_idle.max(Duration::from_secs(1)),
            max_pushes: max_pushes.max(1),
        })
    }

    /// A policy without file sources, secrets or host limits (tests, embedding).
    pub fn permissive_for_tests() -> Self {
        Self {
            secrets: SecretStore::default(),
            import_dir: None,
            ldap_hosts: AllowedHosts::default(),
            scim_hosts: AllowedHosts::default(),
            push_idle: Duration::from_secs(DEFAULT_PUSH_IDLE_SECS),
            max_pushes: 8,
        }
    }

    /// Checks a file source's path as a request gives it: relative, inside the import
    /// directory, no `..`. Returns it normalized.
    pub fn check_import_path(&self, field: &str, path: &str) -> Result<String, FieldError> {
        if self.import_dir.is_none() {
            return Err(FieldError::new(
                field,
                "file sources are disabled on this deployment: set SYNCGUARD_IMPORT_DIR on the ingest service",
            ));
        }
        let relative = Path::new(path.trim());
        let inside = !path.trim().is_empty()
            && relative
                .components()
                .all(|component| matches!(component, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(FieldError::new(
                field,
                "a file source is a path inside the import directory (SYNCGUARD_IMPORT_DIR): relative, without `..`",
            ));
        }
        Ok(relative.display().to_string())
    }

    /// The file a file source reads, resolved now: inside the import directory after
    /// following symlinks, and a regular file. Errors never quote the file.
    pub fn resolve_import(&self, path: &str) -> Result<PathBuf, String> {
        let dir = self.import_dir.as_ref().ok_or(
            "file sources are disabled on this deployment (SYNCGUARD_IMPORT_DIR is not set)",
        )?;
        self.check_import_path("path", path)
            .map_err(|error| error.message)?;
        let resolved = dir.join(path).canonicalize().map_err(|error| {
            format!(
                "{path} in the import directory cannot be opened: {}",
                error.kind()
            )
        })?;
        if !resolved.starts_with(dir) {
            return Err(format!(
                "{path} leads outside the import directory (a symlink?): refused"
            ));
        }
        let metadata = std::fs::metadata(&resolved)
            .map_err(|error| format!("{path} cannot be read: {}", error.kind()))?;
        if !metadata.is_file() {
            return Err(format!("{path} is not a regular file: refused"));
        }
        Ok(resolved)
    }
}
