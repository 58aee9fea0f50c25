//! The services' enums and timestamps in the words people read on a page.

/// `ACTION_KIND_DELETE` as "delete": the enum's own name without its prefix.
fn enum_word(name: Option<&'static str>, prefix: &str) -> String {
    name.and_then(|name| name.strip_prefix(prefix))
        .filter(|rest| *rest != "UNSPECIFIED")
        .map(|rest| rest.to_lowercase().replace('_', " "))
        .unwrap_or_else(|| "-".to_owned())
}

macro_rules! word_fn {
    ($(#[$doc:meta])* $name:ident, $enum:ty, $prefix:literal) => {
        $(#[$doc])*
        pub fn $name(value: i32) -> String {
            enum_word(
                <$enum>::try_from(value).ok().map(|value| value.as_str_name()),
                $prefix,
            )
        }
    };
}

use syncguard_proto::v1;

word_fn!(
    /// "delete", "disable", ...
    action, v1::ActionKind, "ACTION_KIND_"
);
word_fn!(
    /// "user" or "group".
    object_type, v1::ObjectType, "OBJECT_TYPE_"
);
word_fn!(
    /// "removed from source", ...
    reason, v1::ActionReason, "ACTION_REASON_"
);
word_fn!(
    /// "held", "applied", ...
    status, v1::ActionStatus, "ACTION_STATUS_"
);
word_fn!(
    /// "quarantined", "completed", ...
    cycle_state, v1::CycleState, "CYCLE_STATE_"
);
word_fn!(
    /// "open", "allowed", ...
    quarantine_state, v1::QuarantineState, "QUARANTINE_STATE_"
);
word_fn!(
    /// "healthy", "quarantined", "failed".
    health, v1::JobHealth, "JOB_HEALTH_"
);

/// A timestamp as "2026-11-27 10:30 UTC"; "-" when there is none.
pub fn when(at: Option<&prost_types::Timestamp>) -> String {
    at.and_then(|at| chrono::DateTime::from_timestamp(at.seconds, 0))
        .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// A timestamp as chrono's UTC time, when there is one.
pub fn utc(at: Option<&prost_types::Timestamp>) -> Option<chrono::DateTime<chrono::Utc>> {
    at.and_then(|at| chrono::DateTime::from_timestamp(at.seconds, 0))
}

/// The name people know an object by: its display name, else its common name, else its anchor.
pub fn object_name(object: &v1::DirectoryObject) -> String {
    ["displayName", "cn", "name"]
        .iter()
        .find_map(|key| object.attributes.get(*key))
        .and_then(|values| values.values.first())
        .cloned()
        .unwrap_or_else(|| object.anchor.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_read_as_words() {
        assert_eq!(action(v1::ActionKind::Delete as i32), "delete");
        assert_eq!(
            reason(v1::ActionReason::RemovedFromSource as i32),
            "removed from source"
        );
        assert_eq!(action(0), "-");
        assert_eq!(action(999), "-");
    }
}
