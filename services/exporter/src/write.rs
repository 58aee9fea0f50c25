//! One interface over the kinds of target: connect with the target's secret, make the target
//! show an object's state, and say whether a failure is the object's (retry it alone) or the
//! target's (stop, keep the cursor, try again later).

use sqlx::PgPool;
use syncguard_bootstrap::{SecretName, SecretStore};
use syncguard_domain::target::{TargetKind, TargetSettings};

use crate::ldap_target::LdapWriter;
use crate::scim_target::ScimWriter;
use crate::state::ObjectState;

/// Why a write did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The target refused this object (a schema or uniqueness error): retried alone, later.
    #[error("{0}")]
    Object(String),
    /// The target cannot be reached or refuses everyone: the export waits and retries.
    #[error("{0}")]
    Target(String),
    /// syncguard's own database failed while preparing the write.
    #[error("{0}")]
    Internal(String),
}

/// A connected target.
pub enum Writer {
    /// An LDAP directory.
    Ldap(Box<LdapWriter>),
    /// A SCIM 2.0 service provider.
    Scim(ScimWriter),
}

impl Writer {
    /// Connects to `target`, resolving its secret from the exporter's own secret store.
    pub async fn connect(
        target: &TargetSettings,
        secrets: &SecretStore,
    ) -> Result<Self, WriteError> {
        let resolve = |field: &str, name: &str| {
            let name = SecretName::parse(field, name)
                .map_err(|error| WriteError::Target(error.to_string()))?;
            secrets
                .resolve(&name)
                .map_err(|error| WriteError::Target(error.to_string()))
        };
        match &target.kind {
            TargetKind::Ldap(settings) => {
                let password = resolve("password_secret", &settings.password_secret)?;
                Ok(Writer::Ldap(
                    LdapWriter::connect(settings, password.expose())
                        .await?
                        .into(),
                ))
            }
            TargetKind::Scim(settings) => {
                let token = resolve("token_secret", &settings.token_secret)?;
                Ok(Writer::Scim(ScimWriter::connect(settings, token.expose())?))
            }
        }
    }

    /// Makes the target `target` of the job show `state`. Returns the object's reference in
    /// the target (DN or SCIM id), or `None` once it is gone from it.
    pub async fn write(
        &mut self,
        pool: &PgPool,
        state: &ObjectState,
        target: &str,
    ) -> Result<Option<String>, WriteError> {
        match self {
            Writer::Ldap(writer) => writer.write(pool, state).await,
            Writer::Scim(writer) => writer.write(pool, state, target).await,
        }
    }

    /// Ends the session politely.
    pub async fn close(self) {
        match self {
            Writer::Ldap(writer) => writer.close().await,
            Writer::Scim(_) => {}
        }
    }
}
