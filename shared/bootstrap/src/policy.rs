//! The access each gRPC method needs, in one table to review.

use syncguard_domain::Access;

/// Paths every caller may use without a token: health checks and reflection.
const OPEN_PREFIXES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Health checks and reflection: answered without a token, and while the database is away.
pub fn is_open_path(path: &str) -> bool {
    OPEN_PREFIXES.iter().any(|prefix| path.starts_with(prefix))
}

/// The access a call to `path` (`/package.Service/Method`) needs; `None` for open paths.
/// A syncguard method missing from the table needs admin, so forgetting an entry fails closed.
pub fn required_access(path: &str) -> Option<Access> {
    if is_open_path(path) {
        return None;
    }
    let method = path.rsplit('/').next().unwrap_or_default();
    let access = match method {
        // Reads.
        "GetJob"
        | "ListJobs"
        | "GetCycle"
        | "ListCycles"
        | "ListStagedActions"
        | "QueryProvisioningLogs"
        | "PreviewCycle"
        | "GetProtection"
        | "GetQuarantine"
        | "ListQuarantines"
        | "ListPins"
        | "GetNotification"
        | "ListNotifications"
        | "ListDeletedObjects"
        | "GetObject"
        | "ListObjects"
        | "EvaluateCounts" => Access::Read,
        // Jobs, triggers and pushes.
        "CreateJob" | "UpdateJob" | "PushSnapshot" | "PushDelta" | "ImportFile"
        | "TriggerCycle" => Access::Operate,
        // Decisions over what gets deleted.
        "AllowDeletes" | "RejectDeletes" | "RestartJob" | "ReleasePins" | "RestoreObject"
        | "PurgeObject" => Access::Approve,
        // Settings that weaken protection or remove configuration.
        "SetProtection" | "DeleteJob" => Access::Administer,
        // Service-to-service steps of a cycle.
        "StageCycle" | "ApplyCycle" | "DecideCycle" | "InitProtection" | "Notify"
        | "SoftDeleteObjects" => Access::Internal,
        _ => Access::Administer,
    };
    Some(access)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_and_reflection_are_open_and_unknown_methods_need_admin() {
        assert_eq!(required_access("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            required_access("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            None
        );
        assert_eq!(
            required_access("/syncguard.v1.GateService/AllowDeletes"),
            Some(Access::Approve)
        );
        assert_eq!(
            required_access("/syncguard.v1.GateService/Brand_New"),
            Some(Access::Administer)
        );
    }
}
