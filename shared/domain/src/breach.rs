//! A protection rule a cycle exceeded, as the gate records it with a quarantine and as the
//! other services read it (job status, notifications).

use serde::{Deserialize, Serialize};

use crate::scope::StoredJsonError;

/// A rule the cycle exceeds, and by how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Breach {
    /// Index of the rule in the job's rules.
    pub rule_index: usize,
    /// The rule's name.
    pub rule_name: String,
    /// What the rule counted (this cycle plus its rolling window).
    pub counted: u64,
    /// The most the rule allows.
    pub limit: u64,
    /// Objects of the rule's type in scope (for percentage rules).
    pub population: u64,
    /// One line for people: which rule, what it counted, its limit.
    pub explanation: String,
}

impl Breach {
    /// Decodes the breaches stored with a quarantine.
    pub fn list_from_stored(value: &serde_json::Value) -> Result<Vec<Self>, StoredJsonError> {
        Vec::<Self>::deserialize(value).map_err(|source| StoredJsonError {
            what: "quarantine breaches",
            source,
        })
    }

    /// The JSON stored with a quarantine.
    pub fn list_to_stored(breaches: &[Self]) -> serde_json::Value {
        serde_json::to_value(breaches).unwrap_or_else(|_| serde_json::json!([]))
    }
}
