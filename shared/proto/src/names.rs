//! The API enums for the domain's stored names, converted in one place. Text from the
//! database is parsed into the domain types first (strictly), then mapped here.

use syncguard_domain as domain;

use crate::v1;

/// API cycle state of a domain state.
pub fn cycle_state(state: domain::CycleState) -> v1::CycleState {
    use domain::CycleState as D;
    match state {
        D::Queued => v1::CycleState::Queued,
        D::Evaluating => v1::CycleState::Evaluating,
        D::Quarantined => v1::CycleState::Quarantined,
        D::Allowed => v1::CycleState::Allowed,
        D::Rejected => v1::CycleState::Rejected,
        D::Applying => v1::CycleState::Applying,
        D::Completed => v1::CycleState::Completed,
        D::Superseded => v1::CycleState::Superseded,
        D::Failed => v1::CycleState::Failed,
    }
}

/// Domain state of an API state; `None` for states no cycle is derived to (UNSPECIFIED,
/// and INGESTING/STAGED, which are inside one owner's step and never recorded).
pub fn domain_cycle_state(state: v1::CycleState) -> Option<domain::CycleState> {
    use domain::CycleState as D;
    Some(match state {
        v1::CycleState::Queued => D::Queued,
        v1::CycleState::Evaluating => D::Evaluating,
        v1::CycleState::Quarantined => D::Quarantined,
        v1::CycleState::Allowed => D::Allowed,
        v1::CycleState::Rejected => D::Rejected,
        v1::CycleState::Applying => D::Applying,
        v1::CycleState::Completed => D::Completed,
        v1::CycleState::Superseded => D::Superseded,
        v1::CycleState::Failed => D::Failed,
        v1::CycleState::Unspecified | v1::CycleState::Ingesting | v1::CycleState::Staged => {
            return None;
        }
    })
}

/// API action kind of a domain kind.
pub fn action_kind(kind: domain::ActionKind) -> v1::ActionKind {
    use domain::ActionKind as D;
    match kind {
        D::Create => v1::ActionKind::Create,
        D::Update => v1::ActionKind::Update,
        D::Disable => v1::ActionKind::Disable,
        D::Enable => v1::ActionKind::Enable,
        D::Delete => v1::ActionKind::Delete,
        D::Restore => v1::ActionKind::Restore,
    }
}

/// Domain kind of an API kind; `None` for UNSPECIFIED and PURGE (not a staged action).
pub fn domain_action_kind(kind: v1::ActionKind) -> Option<domain::ActionKind> {
    use domain::ActionKind as D;
    Some(match kind {
        v1::ActionKind::Create => D::Create,
        v1::ActionKind::Update => D::Update,
        v1::ActionKind::Disable => D::Disable,
        v1::ActionKind::Enable => D::Enable,
        v1::ActionKind::Delete => D::Delete,
        v1::ActionKind::Restore => D::Restore,
        v1::ActionKind::Unspecified | v1::ActionKind::Purge => return None,
    })
}

/// API action kind of a name stored in the provisioning log, which also records purges.
pub fn logged_action_kind(name: &str) -> v1::ActionKind {
    if name == "purge" {
        return v1::ActionKind::Purge;
    }
    name.parse::<domain::ActionKind>()
        .map(action_kind)
        .unwrap_or(v1::ActionKind::Unspecified)
}

/// API reason of a domain reason.
pub fn action_reason(reason: domain::ActionReason) -> v1::ActionReason {
    use domain::ActionReason as D;
    match reason {
        D::NewInSource => v1::ActionReason::NewInSource,
        D::AttributesChanged => v1::ActionReason::AttributesChanged,
        D::DisabledInSource => v1::ActionReason::DisabledInSource,
        D::EnabledInSource => v1::ActionReason::EnabledInSource,
        D::RemovedFromSource => v1::ActionReason::RemovedFromSource,
        D::OutOfScope => v1::ActionReason::OutOfScope,
        D::Reappeared => v1::ActionReason::Reappeared,
    }
}

/// API reason of a name stored in the provisioning log, which also records admin requests
/// and expired retention.
pub fn logged_reason(name: &str) -> v1::ActionReason {
    match name {
        "admin_request" => v1::ActionReason::AdminRequest,
        "retention_expired" => v1::ActionReason::RetentionExpired,
        other => other
            .parse::<domain::ActionReason>()
            .map(action_reason)
            .unwrap_or(v1::ActionReason::Unspecified),
    }
}

/// API status of a domain status.
pub fn action_status(status: domain::ActionStatus) -> v1::ActionStatus {
    use domain::ActionStatus as D;
    match status {
        D::Staged => v1::ActionStatus::Staged,
        D::Held => v1::ActionStatus::Held,
        D::Applied => v1::ActionStatus::Applied,
        D::Allowed => v1::ActionStatus::Allowed,
        D::Rejected => v1::ActionStatus::Rejected,
        D::Superseded => v1::ActionStatus::Superseded,
        D::SkippedPinned => v1::ActionStatus::SkippedPinned,
    }
}

/// Domain status of an API status; `None` for UNSPECIFIED and FAILED (never recorded).
pub fn domain_action_status(status: v1::ActionStatus) -> Option<domain::ActionStatus> {
    use domain::ActionStatus as D;
    Some(match status {
        v1::ActionStatus::Staged => D::Staged,
        v1::ActionStatus::Held => D::Held,
        v1::ActionStatus::Applied => D::Applied,
        v1::ActionStatus::Allowed => D::Allowed,
        v1::ActionStatus::Rejected => D::Rejected,
        v1::ActionStatus::Superseded => D::Superseded,
        v1::ActionStatus::SkippedPinned => D::SkippedPinned,
        v1::ActionStatus::Unspecified | v1::ActionStatus::Failed => return None,
    })
}

/// API object type of a domain kind.
pub fn object_type(kind: domain::ObjectKind) -> v1::ObjectType {
    match kind {
        domain::ObjectKind::User => v1::ObjectType::User,
        domain::ObjectKind::Group => v1::ObjectType::Group,
    }
}

/// Domain kind of an API type; `None` for UNSPECIFIED ("any").
pub fn domain_object_type(kind: v1::ObjectType) -> Option<domain::ObjectKind> {
    match kind {
        v1::ObjectType::User => Some(domain::ObjectKind::User),
        v1::ObjectType::Group => Some(domain::ObjectKind::Group),
        v1::ObjectType::Unspecified => None,
    }
}

/// API quarantine state of a domain state.
pub fn quarantine_state(state: domain::QuarantineState) -> v1::QuarantineState {
    use domain::QuarantineState as D;
    match state {
        D::Open => v1::QuarantineState::Open,
        D::Allowed => v1::QuarantineState::Allowed,
        D::PartiallyAllowed => v1::QuarantineState::PartiallyAllowed,
        D::Rejected => v1::QuarantineState::Rejected,
        D::Superseded => v1::QuarantineState::Superseded,
    }
}

/// Domain quarantine state of an API state; `None` for UNSPECIFIED.
pub fn domain_quarantine_state(state: v1::QuarantineState) -> Option<domain::QuarantineState> {
    use domain::QuarantineState as D;
    Some(match state {
        v1::QuarantineState::Open => D::Open,
        v1::QuarantineState::Allowed => D::Allowed,
        v1::QuarantineState::PartiallyAllowed => D::PartiallyAllowed,
        v1::QuarantineState::Rejected => D::Rejected,
        v1::QuarantineState::Superseded => D::Superseded,
        v1::QuarantineState::Unspecified => return None,
    })
}

/// A staged action as a row stores it (names as text), for its API view.
#[derive(Debug, Clone, Default)]
pub struct StoredAction {
    /// The action's id (empty in previews).
    pub action_id: String,
    /// Its cycle (empty in previews).
    pub cycle_id: String,
    /// Its job.
    pub job_id: String,
    /// The object's anchor.
    pub anchor: String,
    /// `user` or `group`.
    pub object_type: String,
    /// `create`, `delete`, ...
    pub action: String,
    /// `removed_from_source`, ...
    pub reason: String,
    /// `staged`, `held`, `applied`, ...
    pub status: String,
    /// For updates: what changed.
    pub changed_attributes: Vec<String>,
    /// The object's name for people.
    pub display_name: String,
}

/// The API view of a stored action; a name outside the schema's set is an error.
pub fn staged_action(stored: StoredAction) -> Result<v1::StagedAction, domain::UnknownName> {
    Ok(v1::StagedAction {
        object_type: object_type(stored.object_type.parse()?) as i32,
        action: action_kind(stored.action.parse()?) as i32,
        reason: action_reason(stored.reason.parse()?) as i32,
        status: action_status(stored.status.parse()?) as i32,
        action_id: stored.action_id,
        cycle_id: stored.cycle_id,
        job_id: stored.job_id,
        anchor: stored.anchor,
        changed_attributes: stored.changed_attributes,
        display_name: stored.display_name,
    })
}

/// Parses a stored name into its domain type, as an error for the caller's store error type
/// (a name the schema's CHECK constraints should have refused).
pub fn parse_stored<T>(value: &str) -> Result<T, domain::UnknownName>
where
    T: std::str::FromStr<Err = domain::UnknownName>,
{
    value.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_value_maps_to_the_api_and_back() {
        for state in domain::CycleState::ALL {
            assert_eq!(domain_cycle_state(cycle_state(*state)), Some(*state));
        }
        for kind in domain::ActionKind::ALL {
            assert_eq!(domain_action_kind(action_kind(*kind)), Some(*kind));
        }
        for status in domain::ActionStatus::ALL {
            assert_eq!(domain_action_status(action_status(*status)), Some(*status));
        }
        for state in domain::QuarantineState::ALL {
            assert_eq!(
                domain_quarantine_state(quarantine_state(*state)),
                Some(*state)
            );
        }
        assert_eq!(logged_action_kind("purge"), v1::ActionKind::Purge);
        assert_eq!(
            logged_reason("admin_request"),
            v1::ActionReason::AdminRequest
        );
    }
}
