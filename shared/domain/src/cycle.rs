//! The cycle state machine of DESIGN.md, as one type every service shares.
//!
//! No service stores "the" state of a cycle: each records its own step (ingest the accepted
//! push, the stager the staging, the gate the decision, retention the apply) and the state is
//! derived from those records by the `cycle_states` view, whose names are these.

use crate::names::stored_names;

stored_names!(
    /// Where a cycle stands.
    CycleState, "cycle state" {
        /// Accepted and recorded by ingest; waits for the stager (or for the job's open cycle).
        Queued = "queued",
        /// Staged; waits for the gate's decision.
        Evaluating = "evaluating",
        /// Over a protection rule: held until an approver decides.
        Quarantined = "quarantined",
        /// Allowed (wholly or partly); waits for retention to apply it.
        Allowed = "allowed",
        /// Rejected; its non-destructive actions wait for retention to apply them.
        Rejected = "rejected",
        /// Within limits; waits for retention to apply it.
        Applying = "applying",
        /// Every change of the cycle is in the target directory.
        Completed = "completed",
        /// Never applied: a newer full read replaced it, a restart, or the hold limit passed.
        Superseded = "superseded",
        /// Stopped with the error kept (e.g. an empty read of a populated directory).
        Failed = "failed",
    }
);

/// The services that own a step of a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOwner {
    /// Stages queued cycles.
    Stager,
    /// Decides staged cycles.
    Gate,
    /// Applies decided cycles.
    Retention,
}

impl CycleState {
    /// Nothing more will happen to the cycle.
    pub const fn is_finished(self) -> bool {
        matches!(
            self,
            CycleState::Completed | CycleState::Superseded | CycleState::Failed
        )
    }

    /// Staged but not finished: while a job has such a cycle, its next one waits.
    pub const fn is_open(self) -> bool {
        !self.is_finished() && !matches!(self, CycleState::Queued)
    }

    /// The service whose step comes next, or `None` when the cycle is finished or waits for
    /// people (a quarantine).
    pub const fn next_step_owner(self) -> Option<StepOwner> {
        match self {
            CycleState::Queued => Some(StepOwner::Stager),
            CycleState::Evaluating => Some(StepOwner::Gate),
            CycleState::Allowed | CycleState::Rejected | CycleState::Applying => {
                Some(StepOwner::Retention)
            }
            CycleState::Quarantined
            | CycleState::Completed
            | CycleState::Superseded
            | CycleState::Failed => None,
        }
    }
}

stored_names!(
    /// The gate's decision on a staged cycle.
    Verdict, "verdict" {
        /// Within every rule: apply it whole.
        Apply = "apply",
        /// Over a rule: hold it for an approver.
        Quarantine = "quarantine",
    }
);

stored_names!(
    /// Where a quarantine stands.
    QuarantineState, "quarantine state" {
        /// Held, waiting for a decision.
        Open = "open",
        /// Every held action allowed.
        Allowed = "allowed",
        /// Some held actions allowed, the rest rejected.
        PartiallyAllowed = "partially_allowed",
        /// Every held action rejected; the rest of the cycle applied.
        Rejected = "rejected",
        /// Never applied (restart, or the hold limit passed).
        Superseded = "superseded",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for state in CycleState::ALL {
            assert_eq!(state.as_str().parse::<CycleState>(), Ok(*state));
        }
        let error = "done".parse::<CycleState>().unwrap_err();
        assert_eq!(error.to_string(), "\"done\" is not a known cycle state");
    }

    #[test]
    fn open_and_finished_states_and_their_owners() {
        assert!(!CycleState::Queued.is_open());
        assert!(CycleState::Quarantined.is_open());
        assert!(CycleState::Completed.is_finished());
        assert_eq!(
            CycleState::Allowed.next_step_owner(),
            Some(StepOwner::Retention)
        );
        assert_eq!(CycleState::Quarantined.next_step_owner(), None);
    }
}
