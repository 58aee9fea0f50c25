//! Which source objects a job manages, as stored with the job and read by the stager.

use serde::{Deserialize, Serialize};

/// The scope rules of a job; an object must pass every rule that is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScopeRules {
    /// Each must match: the attribute holds one of the values (case-insensitive).
    #[serde(default)]
    pub attribute_matches: Vec<AttributeMatch>,
    /// The DN must end with one of these (case-insensitive, literally: no wildcards).
    #[serde(default)]
    pub base_dns: Vec<String>,
    /// Users must be members of this group (by anchor); the group itself is in scope.
    #[serde(default)]
    pub member_of_group_anchor: String,
}

/// One attribute condition of a scope.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AttributeMatch {
    /// Attribute name (matched lowercased, as attributes are stored).
    pub attribute: String,
    /// Accepted values.
    pub values: Vec<String>,
}

/// Stored JSON that does not decode as the type it must be: a bug or a hand edit, reported
/// instead of read as "no rules".
#[derive(Debug, thiserror::Error)]
#[error("stored {what} cannot be read: {source}")]
pub struct StoredJsonError {
    /// What was read.
    pub what: &'static str,
    /// Why it failed.
    #[source]
    pub source: serde_json::Error,
}

impl ScopeRules {
    /// Decodes the rules as stored in `jobs.scope_rules`.
    pub fn from_stored(value: &serde_json::Value) -> Result<Self, StoredJsonError> {
        Self::deserialize(value).map_err(|source| StoredJsonError {
            what: "scope rules",
            source,
        })
    }

    /// The JSON stored in `jobs.scope_rules`.
    pub fn to_stored(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({}))
    }

    /// True when every object of the source is in scope.
    pub fn is_unscoped(&self) -> bool {
        self.attribute_matches.is_empty()
            && self.base_dns.is_empty()
            && self.member_of_group_anchor.is_empty()
    }

    /// The base DNs normalized as compared (lowercase, no spaces around commas).
    pub fn normalized_base_dns(&self) -> Vec<String> {
        self.base_dns
            .iter()
            .map(|dn| {
                dn.split(',')
                    .map(|part| part.trim().to_lowercase())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_rules_round_trip_and_bad_json_is_an_error() {
        let rules = ScopeRules {
            attribute_matches: vec![AttributeMatch {
                attribute: "department".into(),
                values: vec!["Sales".into()],
            }],
            base_dns: vec!["OU=People, DC=example,DC=com".into()],
            member_of_group_anchor: String::new(),
        };
        assert_eq!(ScopeRules::from_stored(&rules.to_stored()).unwrap(), rules);
        assert_eq!(rules.normalized_base_dns(), ["ou=people,dc=example,dc=com"]);
        assert!(ScopeRules::from_stored(&serde_json::json!({"base_dn": "x"})).is_err());
        assert!(ScopeRules::from_stored(&serde_json::json!({"base_dns": "x"})).is_err());
        assert!(
            ScopeRules::from_stored(&serde_json::json!({}))
                .unwrap()
                .is_unscoped()
        );
    }
}
