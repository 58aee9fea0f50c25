//! The access each gRPC method needs: one table, reviewed in one place, checked by the
//! role-matrix test against every method the reflection descriptor lists, and printed into
//! the README's roles table.

use syncguard_domain::{Access, Role};

/// Paths every caller may use without a token: health checks and reflection.
const OPEN_PREFIXES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Every syncguard method (`package.Service/Method`) and the access it needs. A method not
/// listed here is refused to everyone, so an RPC added without a declared role fails closed.
pub const METHOD_ACCESS: &[(&str, Access)] = &[
    // Jobs, pushes and triggers.
    ("syncguard.v1.IngestService/CreateJob", Access::Operate),
    ("syncguard.v1.IngestService/UpdateJob", Access::Operate),
    ("syncguard.v1.IngestService/GetJob", Access::Read),
    ("syncguard.v1.IngestService/ListJobs", Access::Read),
    ("syncguard.v1.IngestService/DeleteJob", Access::Administer),
    ("syncguard.v1.IngestService/PushSnapshot", Access::Operate),
    ("syncguard.v1.IngestService/PushDelta", Access::Operate),
    ("syncguard.v1.IngestService/ImportFile", Access::Operate),
    ("syncguard.v1.IngestService/TriggerCycle", Access::Trigger),
    // Staging, cycles and the provisioning log.
    ("syncguard.v1.StagerService/StageCycle", Access::Internal),
    ("syncguard.v1.StagerService/GetCycle", Access::Read),
    ("syncguard.v1.StagerService/ListCycles", Access::Read),
    ("syncguard.v1.StagerService/ListStagedActions", Access::Read),
    (
        "syncguard.v1.StagerService/QueryProvisioningLogs",
        Access::Read,
    ),
    ("syncguard.v1.StagerService/PreviewCycle", Access::Read),
    // Protection, decisions and quarantines.
    ("syncguard.v1.GateService/DecideCycle", Access::Internal),
    ("syncguard.v1.GateService/EvaluateCounts", Access::Read),
    ("syncguard.v1.GateService/GetProtection", Access::Read),
    ("syncguard.v1.GateService/SetProtection", Access::Administer),
    ("syncguard.v1.GateService/InitProtection", Access::Internal),
    ("syncguard.v1.GateService/GetQuarantine", Access::Read),
    ("syncguard.v1.GateService/ListQuarantines", Access::Read),
    ("syncguard.v1.GateService/AllowDeletes", Access::Approve),
    ("syncguard.v1.GateService/RejectDeletes", Access::Approve),
    ("syncguard.v1.GateService/RestartJob", Access::Approve),
    ("syncguard.v1.GateService/ListPins", Access::Read),
    ("syncguard.v1.GateService/ReleasePins", Access::Approve),
    // Mail.
    ("syncguard.v1.NotifierService/Notify", Access::Internal),
    ("syncguard.v1.NotifierService/GetNotification", Access::Read),
    (
        "syncguard.v1.NotifierService/ListNotifications",
        Access::Read,
    ),
    // The target directory.
    ("syncguard.v1.RetentionService/ApplyCycle", Access::Internal),
    (
        "syncguard.v1.RetentionService/RestoreObject",
        Access::Approve,
    ),
    ("syncguard.v1.RetentionService/PurgeObject", Access::Approve),
    (
        "syncguard.v1.RetentionService/ListDeletedObjects",
        Access::Read,
    ),
    ("syncguard.v1.RetentionService/GetObject", Access::Read),
    ("syncguard.v1.RetentionService/ListObjects", Access::Read),
    ("syncguard.v1.RetentionService/WatchChanges", Access::Read),
    // Export to targets.
    ("syncguard.v1.ExporterService/ListTargets", Access::Read),
    (
        "syncguard.v1.ExporterService/ListExportFailures",
        Access::Read,
    ),
    ("syncguard.v1.ExporterService/RetryExport", Access::Operate),
];

/// What a call to a path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Health and reflection: no token.
    Open,
    /// A token whose role grants this access.
    Token(Access),
    /// A path no role may call (it is not in [`METHOD_ACCESS`]).
    Undeclared,
}

/// Health checks and reflection: answered without a token, and while the database is away.
pub fn is_open_path(path: &str) -> bool {
    OPEN_PREFIXES.iter().any(|prefix| path.starts_with(prefix))
}

/// What a call to `path` (`/package.Service/Method`) needs.
pub fn requirement(path: &str) -> Requirement {
    if is_open_path(path) {
        return Requirement::Open;
    }
    let method = path.strip_prefix('/').unwrap_or(path);
    METHOD_ACCESS
        .iter()
        .find(|(declared, _)| *declared == method)
        .map_or(Requirement::Undeclared, |(_, access)| {
            Requirement::Token(*access)
        })
}

/// The README's method-by-role table, generated from [`METHOD_ACCESS`] (a test keeps the
/// README equal to it).
pub fn roles_markdown() -> String {
    let mut table = String::from("| method |");
    for role in Role::ALL {
        table.push_str(&format!(" {role} |"));
    }
    table.push_str("\n| --- |");
    for _ in Role::ALL {
        table.push_str(" :-: |");
    }
    table.push('\n');
    for (method, access) in METHOD_ACCESS {
        let short = method.strip_prefix("syncguard.v1.").unwrap_or(method);
        table.push_str(&format!("| `{short}` |"));
        for role in Role::ALL {
            table.push_str(if role.grants(*access) { " yes |" } else { " |" });
        }
        table.push('\n');
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_and_reflection_are_open_and_undeclared_methods_are_refused() {
        assert_eq!(
            requirement("/grpc.health.v1.Health/Check"),
            Requirement::Open
        );
        assert_eq!(
            requirement("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Requirement::Open
        );
        assert_eq!(
            requirement("/syncguard.v1.GateService/AllowDeletes"),
            Requirement::Token(Access::Approve)
        );
        assert_eq!(
            requirement("/syncguard.v1.GateService/BrandNew"),
            Requirement::Undeclared
        );
        assert_eq!(
            requirement("/syncguard.v1.IngestService/AllowDeletes"),
            Requirement::Undeclared,
            "a method is declared on its own service only"
        );
    }

    #[test]
    fn each_method_is_declared_once() {
        let mut seen = std::collections::HashSet::new();
        for (method, _) in METHOD_ACCESS {
            assert!(seen.insert(*method), "{method} is declared twice");
        }
    }
}
