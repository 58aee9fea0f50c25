//! A job's source settings as stored (`jobs.source_kind`, `jobs.source_config`), one type per
//! kind, read strictly: stored JSON that does not decode is an error, not an empty setting.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use syncguard_domain::StoredJsonError;
use syncguard_proto::v1::{self, FileFormat, LdapScope, job_source};

/// An export file in the import directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// Relative to SYNCGUARD_IMPORT_DIR.
    pub path: String,
    /// `ldif` or `json`.
    pub format: String,
    /// LDIF anchor attribute; empty detects it per entry.
    #[serde(default)]
    pub anchor_attribute: String,
}

/// An LDAP or Active Directory tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSettings {
    /// `ldap://` or `ldaps://`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// Empty binds anonymously.
    #[serde(default)]
    pub bind_dn: String,
    /// The bind password's secret name.
    #[serde(default)]
    pub password_secret: String,
    /// Jobs created before secrets by reference named a file here; they must be migrated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password_file: String,
    /// As `password_file`, for a variable.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password_env: String,
    /// Where the search starts.
    pub base_dn: String,
    /// Empty: `(objectClass=*)`.
    #[serde(default)]
    pub filter: String,
    /// `base`, `one` or `sub`.
    pub scope: String,
    /// Empty: all user attributes.
    #[serde(default)]
    pub attributes: Vec<String>,
    /// Entries per page.
    pub page_size: u32,
    /// `entryUUID` or `objectGUID`.
    pub anchor_attribute: String,
    /// An attribute and value that mark an account disabled.
    #[serde(default)]
    pub disabled_attribute: String,
    /// See `disabled_attribute`.
    #[serde(default)]
    pub disabled_value: String,
}

/// Where a job's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSettings {
    /// Pushed by another backend.
    Push,
    /// An export file ingest reads.
    File(FileSettings),
    /// A directory ingest reads.
    Ldap(Box<LdapSettings>),
}

impl SourceSettings {
    /// The stored kind (`push`, `file`, `ldap`).
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSettings::Push => "push",
            SourceSettings::File(_) => "file",
            SourceSettings::Ldap(_) => "ldap",
        }
    }

    /// The stored JSON.
    pub fn to_stored(&self) -> Value {
        let value = match self {
            SourceSettings::Push => Ok(serde_json::json!({})),
            SourceSettings::File(file) => serde_json::to_value(file),
            SourceSettings::Ldap(ldap) => serde_json::to_value(ldap),
        };
        value.unwrap_or_else(|_| serde_json::json!({}))
    }

    /// Reads the stored kind and JSON.
    pub fn from_stored(kind: &str, value: &Value) -> Result<Self, StoredJsonError> {
        let decode_error = |source| StoredJsonError {
            what: "source settings",
            source,
        };
        match kind {
            "file" => FileSettings::deserialize(value)
                .map(SourceSettings::File)
                .map_err(decode_error),
            "ldap" => LdapSettings::deserialize(value)
                .map(|ldap| SourceSettings::Ldap(Box::new(ldap)))
                .map_err(decode_error),
            _ => Ok(SourceSettings::Push),
        }
    }

    /// The API's source message (never a secret: only its name).
    pub fn to_proto(&self) -> v1::JobSource {
        let kind = match self {
            SourceSettings::Push => job_source::Kind::Push(v1::PushSource {}),
            SourceSettings::File(file) => job_source::Kind::File(v1::FileSource {
                path: file.path.clone(),
                format: match file.format.as_str() {
                    "ldif" => FileFormat::Ldif as i32,
                    "json" => FileFormat::Json as i32,
                    _ => FileFormat::Unspecified as i32,
                },
                anchor_attribute: file.anchor_attribute.clone(),
            }),
            SourceSettings::Ldap(ldap) => job_source::Kind::Ldap(v1::LdapSource {
                url: ldap.url.clone(),
                starttls: ldap.starttls,
                bind_dn: ldap.bind_dn.clone(),
                password_file: ldap.password_file.clone(),
                password_env: ldap.password_env.clone(),
                password_secret: ldap.password_secret.clone(),
                base_dn: ldap.base_dn.clone(),
                filter: ldap.filter.clone(),
                scope: match ldap.scope.as_str() {
                    "base" => LdapScope::Base as i32,
                    "one" => LdapScope::OneLevel as i32,
                    _ => LdapScope::Subtree as i32,
                },
                attributes: ldap.attributes.clone(),
                page_size: ldap.page_size,
                anchor_attribute: ldap.anchor_attribute.clone(),
                disabled_attribute: ldap.disabled_attribute.clone(),
                disabled_value: ldap.disabled_value.clone(),
            }),
        };
        v1::JobSource { kind: Some(kind) }
    }
}
