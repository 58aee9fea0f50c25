//! A job's export targets as stored with the job (ingest validates them) and read by the
//! exporter. Secrets are names, resolved by the exporter from the places its deployment chose.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scope::StoredJsonError;

/// One target of a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TargetSettings {
    /// Unique within the job: `a-z`, `0-9`, `-`.
    pub name: String,
    /// Where and how.
    pub kind: TargetKind,
}

/// The kinds of target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// An LDAP directory.
    Ldap(LdapTargetSettings),
    /// A SCIM 2.0 service provider.
    Scim(ScimTargetSettings),
}

/// An LDAP target, as validated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LdapTargetSettings {
    /// `ldap://host:port` or `ldaps://...`.
    pub url: String,
    /// StartTLS on a plain connection.
    pub starttls: bool,
    /// Who writes.
    pub bind_dn: String,
    /// The name of the secret holding the bind password.
    pub password_secret: String,
    /// Where users go.
    pub users_base_dn: String,
    /// Where groups go.
    pub groups_base_dn: String,
    /// The users' RDN attribute (its value is the anchor).
    pub user_rdn_attribute: String,
    /// The groups' RDN attribute.
    pub group_rdn_attribute: String,
    /// Source attribute (lowercase) to target attribute.
    pub attribute_map: BTreeMap<String, String>,
    /// How a disable is written: attribute and value (empty: not written, unless AD).
    pub disabled_attribute: String,
    /// The value of `disabled_attribute` while disabled.
    pub disabled_value: String,
    /// Active Directory: userAccountControl 514 / 512.
    pub active_directory: bool,
}

/// A SCIM target, as validated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScimTargetSettings {
    /// The base URL, without a trailing slash.
    pub base_url: String,
    /// The name of the secret holding the bearer token.
    pub token_secret: String,
    /// Source attribute (lowercase) to SCIM attribute path.
    pub attribute_map: BTreeMap<String, String>,
}

impl TargetSettings {
    /// Reads a job's stored targets.
    pub fn list_from_stored(value: &serde_json::Value) -> Result<Vec<Self>, StoredJsonError> {
        serde_json::from_value(value.clone()).map_err(|source| StoredJsonError {
            what: "export targets",
            source,
        })
    }

    /// The stored form of a job's targets.
    pub fn list_to_stored(targets: &[Self]) -> serde_json::Value {
        serde_json::to_value(targets).unwrap_or_else(|_| serde_json::json!([]))
    }
}

/// The LDAP attributes written when a target names none: source name to target name.
pub fn default_ldap_attribute_map() -> BTreeMap<String, String> {
    [
        ("cn", "cn"),
        ("sn", "sn"),
        ("givenname", "givenName"),
        ("displayname", "displayName"),
        ("mail", "mail"),
        ("title", "title"),
        ("telephonenumber", "telephoneNumber"),
        ("employeenumber", "employeeNumber"),
        ("description", "description"),
    ]
    .into_iter()
    .map(|(from, to)| (from.to_owned(), to.to_owned()))
    .collect()
}

/// The SCIM attributes written when a target names none: source name to SCIM path.
pub fn default_scim_attribute_map() -> BTreeMap<String, String> {
    [
        ("uid", "userName"),
        ("mail", "emails"),
        ("givenname", "name.givenName"),
        ("sn", "name.familyName"),
        ("cn", "displayName"),
        ("displayname", "displayName"),
        ("title", "title"),
        ("telephonenumber", "phoneNumbers"),
    ]
    .into_iter()
    .map(|(from, to)| (from.to_owned(), to.to_owned()))
    .collect()
}
