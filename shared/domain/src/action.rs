//! What a staged action does, why, and to which kind of object.

use crate::names::stored_names;

stored_names!(
    /// One planned change to the target directory.
    ActionKind, "action" {
        /// A new object.
        Create = "create",
        /// Changed attributes or members.
        Update = "update",
        /// Sign-in blocked, or deprovisioned by disabling.
        Disable = "disable",
        /// Sign-in allowed again.
        Enable = "enable",
        /// Soft delete (restorable for the job's retention).
        Delete = "delete",
        /// A soft-deleted object whose anchor reappeared.
        Restore = "restore",
    }
);

impl ActionKind {
    /// Deletes and disables: what protection rules count by default and quarantines hold.
    pub const fn is_destructive(self) -> bool {
        matches!(self, ActionKind::Delete | ActionKind::Disable)
    }
}

stored_names!(
    /// Why an action was planned.
    ActionReason, "reason" {
        /// The anchor is not in the target yet.
        NewInSource = "new_in_source",
        /// Attributes, DN or members differ.
        AttributesChanged = "attributes_changed",
        /// The source blocks sign-in.
        DisabledInSource = "disabled_in_source",
        /// The source allows sign-in again.
        EnabledInSource = "enabled_in_source",
        /// Gone from the source (or soft-deleted there).
        RemovedFromSource = "removed_from_source",
        /// Still in the source but outside the job's scope.
        OutOfScope = "out_of_scope",
        /// A soft-deleted object's anchor is back.
        Reappeared = "reappeared",
    }
);

stored_names!(
    /// Users or groups.
    ObjectKind, "object type" {
        /// A person's account.
        User = "user",
        /// A group of users (and groups).
        Group = "group",
    }
);

stored_names!(
    /// Where one staged action stands, derived like the cycle's state (`action_states` view).
    ActionStatus, "action status" {
        /// Planned, not applied yet.
        Staged = "staged",
        /// Held in a quarantine.
        Held = "held",
        /// In the target directory.
        Applied = "applied",
        /// Allowed by approvers, not applied yet.
        Allowed = "allowed",
        /// Rejected by approvers: never applied, the object is pinned.
        Rejected = "rejected",
        /// Never applied: the cycle was superseded.
        Superseded = "superseded",
        /// Not planned for real: the object is pinned by an earlier rejection.
        SkippedPinned = "skipped_pinned",
    }
);

stored_names!(
    /// What happens to an object that leaves the source or the scope.
    DeprovisionMode, "deprovision mode" {
        /// Soft-delete it.
        Delete = "delete",
        /// Disable it and keep it.
        Disable = "disable",
    }
);
