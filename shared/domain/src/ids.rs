//! Identifiers parsed from requests, with errors that name the offending field.

use std::fmt;

use uuid::Uuid;

/// A request field that failed validation; services turn it into `InvalidArgument` with a
/// field violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Dotted path of the field (`spec.retention_days`, `objects[3].anchor`).
    pub field: String,
    /// What is wrong with it, and what would be right.
    pub message: String,
}

impl FieldError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn parse_uuid(field: &str, value: &str, what: &str) -> Result<Uuid, FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, format!("a {what} id is required")));
    }
    Uuid::parse_str(value)
        .map_err(|_| FieldError::new(field, format!("{value:?} is not a {what} id (a UUID)")))
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses a request field, naming it in the error.
            pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
                parse_uuid(field, value, $what).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// Identifies a sync job.
    JobId,
    "job"
);
uuid_id!(
    /// Identifies one run of a job.
    CycleId,
    "cycle"
);

/// The immutable id of an object in the source. Identity is the anchor, never the name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceAnchor(String);

impl SourceAnchor {
    /// Longest anchor accepted; real anchors (GUIDs, UUIDs, HR ids) are far shorter.
    pub const MAX_LEN: usize = 512;

    /// Parses a request field: non-empty, at most [`Self::MAX_LEN`] bytes, no control characters.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
        if value.trim().is_empty() {
            return Err(FieldError::new(field, "an anchor is required"));
        }
        if value.len() > Self::MAX_LEN {
            return Err(FieldError::new(
                field,
                format!(
                    "anchor is {} bytes, at most {} allowed",
                    value.len(),
                    Self::MAX_LEN
                ),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(FieldError::new(field, "anchor contains control characters"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The anchor text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_field_when_invalid() {
        let error = JobId::parse("job_id", "nope").unwrap_err();
        assert_eq!(error.field, "job_id");
        assert!(error.message.contains("not a job id"), "{error}");
        assert_eq!(
            JobId::parse("job_id", "").unwrap_err().message,
            "a job id is required"
        );
        let id = JobId::generate();
        assert_eq!(JobId::parse("job_id", &id.to_string()), Ok(id));
    }

    #[test]
    fn anchors_refuse_empty_long_and_control_text() {
        assert!(SourceAnchor::parse("a", " ").is_err());
        assert!(SourceAnchor::parse("a", &"x".repeat(513)).is_err());
        assert!(SourceAnchor::parse("a", "ab\ncd").is_err());
        assert_eq!(
            SourceAnchor::parse("a", "E-1001").unwrap().as_str(),
            "E-1001"
        );
    }
}
