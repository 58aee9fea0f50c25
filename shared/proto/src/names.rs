//! The names the database stores for actions, reasons, statuses, object types and cycle
//! states, mapped to and from the API enums in one place.

use crate::v1::{ActionKind, ActionReason, ActionStatus, CycleState, ObjectType};

/// API action kind of a stored action name.
pub fn action_kind(name: &str) -> ActionKind {
    match name {
        "create" => ActionKind::Create,
        "update" => ActionKind::Update,
        "disable" => ActionKind::Disable,
        "enable" => ActionKind::Enable,
        "delete" => ActionKind::Delete,
        "restore" => ActionKind::Restore,
        "purge" => ActionKind::Purge,
        _ => ActionKind::Unspecified,
    }
}

/// Stored action name of an API action kind.
pub fn action_name(kind: ActionKind) -> Option<&'static str> {
    match kind {
        ActionKind::Create => Some("create"),
        ActionKind::Update => Some("update"),
        ActionKind::Disable => Some("disable"),
        ActionKind::Enable => Some("enable"),
        ActionKind::Delete => Some("delete"),
        ActionKind::Restore => Some("restore"),
        ActionKind::Purge => Some("purge"),
        ActionKind::Unspecified => None,
    }
}

/// API reason of a stored reason.
pub fn action_reason(name: &str) -> ActionReason {
    match name {
        "new_in_source" => ActionReason::NewInSource,
        "attributes_changed" => ActionReason::AttributesChanged,
        "disabled_in_source" => ActionReason::DisabledInSource,
        "enabled_in_source" => ActionReason::EnabledInSource,
        "removed_from_source" => ActionReason::RemovedFromSource,
        "out_of_scope" => ActionReason::OutOfScope,
        "reappeared" => ActionReason::Reappeared,
        "admin_request" => ActionReason::AdminRequest,
        "retention_expired" => ActionReason::RetentionExpired,
        _ => ActionReason::Unspecified,
    }
}

/// API status of a stored status.
pub fn action_status(name: &str) -> ActionStatus {
    match name {
        "staged" => ActionStatus::Staged,
        "held" => ActionStatus::Held,
        "applied" => ActionStatus::Applied,
        "allowed" => ActionStatus::Allowed,
        "rejected" => ActionStatus::Rejected,
        "superseded" => ActionStatus::Superseded,
        "skipped_pinned" => ActionStatus::SkippedPinned,
        "failed" => ActionStatus::Failed,
        _ => ActionStatus::Unspecified,
    }
}

/// Stored status of an API status.
pub fn status_name(status: ActionStatus) -> Option<&'static str> {
    match status {
        ActionStatus::Staged => Some("staged"),
        ActionStatus::Held => Some("held"),
        ActionStatus::Applied => Some("applied"),
        ActionStatus::Allowed => Some("allowed"),
        ActionStatus::Rejected => Some("rejected"),
        ActionStatus::Superseded => Some("superseded"),
        ActionStatus::SkippedPinned => Some("skipped_pinned"),
        ActionStatus::Failed => Some("failed"),
        ActionStatus::Unspecified => None,
    }
}

/// API object type of a stored type.
pub fn object_type(name: &str) -> ObjectType {
    match name {
        "user" => ObjectType::User,
        "group" => ObjectType::Group,
        _ => ObjectType::Unspecified,
    }
}

/// API cycle state of a stored state.
pub fn cycle_state(name: &str) -> CycleState {
    match name {
        "ingesting" => CycleState::Ingesting,
        "staged" => CycleState::Staged,
        "evaluating" => CycleState::Evaluating,
        "applying" => CycleState::Applying,
        "completed" => CycleState::Completed,
        "quarantined" => CycleState::Quarantined,
        "allowed" => CycleState::Allowed,
        "rejected" => CycleState::Rejected,
        "superseded" => CycleState::Superseded,
        "failed" => CycleState::Failed,
        _ => CycleState::Unspecified,
    }
}

/// Stored state of an API cycle state.
pub fn state_name(state: CycleState) -> Option<&'static str> {
    match state {
        CycleState::Ingesting => Some("ingesting"),
        CycleState::Staged => Some("staged"),
        CycleState::Evaluating => Some("evaluating"),
        CycleState::Applying => Some("applying"),
        CycleState::Completed => Some("completed"),
        CycleState::Quarantined => Some("quarantined"),
        CycleState::Allowed => Some("allowed"),
        CycleState::Rejected => Some("rejected"),
        CycleState::Superseded => Some("superseded"),
        CycleState::Failed => Some("failed"),
        CycleState::Unspecified => None,
    }
}
