//! Who may do what: roles granted to bearer tokens and the access each call needs.

use std::fmt;
use std::str::FromStr;

/// A role a bearer token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reads jobs, cycles, logs, quarantines and the directory.
    Reader,
    /// Manages jobs, triggers cycles, pushes source data; can read.
    Operator,
    /// Decides quarantines, restores and purges objects; can read.
    Approver,
    /// Everything, including protection settings and deleting jobs.
    Admin,
    /// Another syncguard service: internal calls, reads, and asking for a fresh cycle.
    Service,
}

impl Role {
    /// Every role, in the order tables list them.
    pub const ALL: [Role; 5] = [
        Role::Reader,
        Role::Operator,
        Role::Approver,
        Role::Admin,
        Role::Service,
    ];
}

/// What a call needs from its caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Any authenticated caller.
    Read,
    /// Jobs, triggers, pushes.
    Operate,
    /// Allow, reject, restart, restore, purge, release pins.
    Approve,
    /// Protection settings and job deletion.
    Administer,
    /// Asking for a fresh cycle of a job: operators, admins, and the gate after a restart.
    Trigger,
    /// Calls only services make to each other (stage, apply, decide, notify).
    Internal,
}

impl Role {
    /// Whether a caller with this role may make a call that needs `access`.
    pub fn grants(self, access: Access) -> bool {
        matches!(
            (self, access),
            (_, Access::Read)
                | (
                    Role::Admin,
                    Access::Operate | Access::Approve | Access::Administer
                )
                | (Role::Admin | Role::Operator, Access::Trigger)
                | (Role::Operator, Access::Operate)
                | (Role::Approver, Access::Approve)
                | (Role::Service, Access::Trigger | Access::Internal)
        )
    }

    /// The name used in token files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected reader, operator, approver, admin or service)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "reader" => Ok(Role::Reader),
            "operator" => Ok(Role::Operator),
            "approver" => Ok(Role::Approver),
            "admin" => Ok(Role::Admin),
            "service" => Ok(Role::Service),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "reader",
            Access::Operate => "operator",
            Access::Approve => "approver",
            Access::Administer => "admin",
            Access::Trigger => "operator",
            Access::Internal => "service",
        })
    }
}

/// The authenticated caller of a request, recorded as the actor of what it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Name from the token table (`alice`, `gate`, ...).
    pub name: String,
    /// The role its token carries.
    pub role: Role,
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.role, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_only_read_and_services_cannot_approve() {
        assert!(Role::Reader.grants(Access::Read));
        assert!(!Role::Reader.grants(Access::Approve));
        assert!(!Role::Reader.grants(Access::Operate));
        assert!(!Role::Operator.grants(Access::Approve));
        assert!(!Role::Approver.grants(Access::Operate));
        assert!(!Role::Service.grants(Access::Approve));
        assert!(
            !Role::Service.grants(Access::Operate),
            "services push no data"
        );
        assert!(Role::Service.grants(Access::Trigger));
        assert!(!Role::Admin.grants(Access::Internal));
        assert!(Role::Admin.grants(Access::Administer));
    }

    #[test]
    fn role_names_round_trip_and_unknown_names_are_refused() {
        for role in [
            Role::Reader,
            Role::Operator,
            Role::Approver,
            Role::Admin,
            Role::Service,
        ] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert_eq!("root".parse::<Role>(), Err(UnknownRole("root".into())));
    }
}
