//! Printing results: aligned tables for people, JSON for scripts. Everything goes through
//! [`emit`], so a reader that stops early (`syncguard logs | head`) ends the command quietly
//! instead of a panic.

use std::io::Write as _;

use serde_json::{Value, json};

use crate::failure::Failure;
use syncguard_proto::v1::{self, ActionKind, ActionReason, ActionStatus, CycleState, ObjectType};

/// Writes `text` and a newline to standard output. A closed pipe is not an error of ours:
/// it ends the command with exit 0 and no message.
pub fn emit(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").map_err(|error| {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::reader_gone()
        } else {
            Failure::other(format!("cannot write the output: {error}"))
        }
    })
}

/// `println!` through [`emit`]: `out!("{x}")?` in functions returning `Result<_, Failure>`.
#[macro_export]
macro_rules! out {
    () => {
        $crate::output::emit("")
    };
    ($($arg:tt)*) => {
        $crate::output::emit(&format!($($arg)*))
    };
}

/// A table of rows under headers.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns.
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Prints it with columns aligned.
    pub fn print(&self) -> Result<(), Failure> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            emit(padded.join("  ").trim_end())
        };
        let headers: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        line(&headers)?;
        for row in &self.rows {
            line(row)?;
        }
        if self.rows.is_empty() {
            emit("(none)")?;
        }
        Ok(())
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &Value) -> Result<(), Failure> {
    emit(&serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()))
}

/// A timestamp for people: `2026-11-27 05:30:21 UTC` (empty when absent).
pub fn time(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(|ts| chrono::DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32))
        .map(|at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// A timestamp for scripts: RFC 3339 (`2026-11-27T05:30:21Z`), or null when absent.
pub fn rfc3339(ts: Option<&prost_types::Timestamp>) -> Value {
    ts.and_then(|ts| chrono::DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32))
        .map(|at| Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
        .unwrap_or(Value::Null)
}

fn short(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_ascii_lowercase()
}

/// `delete`, `create`, ...
pub fn action(value: i32) -> String {
    short(
        ActionKind::try_from(value)
            .unwrap_or_default()
            .as_str_name(),
        "ACTION_KIND_",
    )
}

/// `removed_from_source`, ...
pub fn reason(value: i32) -> String {
    short(
        ActionReason::try_from(value)
            .unwrap_or_default()
            .as_str_name(),
        "ACTION_REASON_",
    )
}

/// `held`, `applied`, ...
pub fn status(value: i32) -> String {
    short(
        ActionStatus::try_from(value)
            .unwrap_or_default()
            .as_str_name(),
        "ACTION_STATUS_",
    )
}

/// `user` or `group`.
pub fn object_type(value: i32) -> String {
    short(
        ObjectType::try_from(value)
            .unwrap_or_default()
            .as_str_name(),
        "OBJECT_TYPE_",
    )
}

/// `completed`, `quarantined`, ...
pub fn cycle_state(value: i32) -> String {
    short(
        CycleState::try_from(value)
            .unwrap_or_default()
            .as_str_name(),
        "CYCLE_STATE_",
    )
}

/// "600 user deletes, 10 group creates"
pub fn counts(counts: &[v1::ActionCount]) -> String {
    counts
        .iter()
        .map(|c| counted(c.count, &object_type(c.object_type), &action(c.action)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "1 user delete", "600 user deletes".
pub fn counted(count: u64, object_type: &str, action: &str) -> String {
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {object_type} {action}{plural}")
}

/// A protection rule for people: `"threshold": user+group delete+disable above 500 per cycle`.
pub fn rule(rule: &v1::ProtectionRule) -> String {
    let counted: Vec<String> = if rule.counted_actions.is_empty() {
        vec!["delete".into(), "disable".into()]
    } else {
        rule.counted_actions.iter().map(|a| action(*a)).collect()
    };
    let types = if rule.object_type == 0 {
        "user+group".to_owned()
    } else {
        object_type(rule.object_type)
    };
    let mut limits = Vec::new();
    if let Some(count) = rule.max_count {
        limits.push(format!("above {count}"));
    }
    if let Some(percent) = rule.max_percent {
        limits.push(format!(
            "above {percent}% (from {} objects)",
            rule.min_population
        ));
    }
    let window = match rule.window.as_ref().and_then(|w| w.kind.as_ref()) {
        Some(v1::protection_window::Kind::Rolling(duration)) => {
            format!("within {} h", duration.seconds / 3600)
        }
        _ => "per cycle".to_owned(),
    };
    let name = if rule.name.is_empty() {
        "rule"
    } else {
        &rule.name
    };
    format!(
        "{name:?}: {types} {} {} {window}",
        counted.join("+"),
        limits.join(" or ")
    )
}

/// A rule for scripts.
pub fn rule_json(rule: &v1::ProtectionRule) -> Value {
    json!({
        "name": rule.name,
        "counted": rule.counted_actions.iter().map(|a| action(*a)).collect::<Vec<_>>(),
        "object_type": if rule.object_type == 0 { "any".to_owned() } else { object_type(rule.object_type) },
        "max_count": rule.max_count,
        "max_percent": rule.max_percent,
        "min_population": rule.min_population,
    })
}

/// A job's protection for scripts.
pub fn protection_json(protection: &v1::Protection) -> Value {
    json!({
        "job_id": protection.job_id,
        "enabled": protection.enabled,
        "rules": protection.rules.iter().map(rule_json).collect::<Vec<_>>(),
        "updated_by": protection.updated_by,
        "reason": protection.reason,
        "updated_at": rfc3339(protection.updated_at.as_ref()),
    })
}

/// A job for scripts.
pub fn job_json(job: &v1::Job) -> Value {
    let spec = job.spec.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    json!({
        "job_id": job.job_id,
        "name": spec.name,
        "recipients": spec.notification_recipients,
        "retention_days": spec.retention_days,
        "health": short(v1::JobHealth::try_from(status.health).unwrap_or_default().as_str_name(), "JOB_HEALTH_"),
        "status": status.message,
        "open_quarantine_id": status.open_quarantine_id,
        "last_cycle_id": status.last_cycle_id,
        "created_by": job.created_by,
    })
}

/// A cycle for scripts.
pub fn cycle_json(cycle: &v1::Cycle) -> Value {
    json!({
        "cycle_id": cycle.cycle_id,
        "job_id": cycle.job_id,
        "state": cycle_state(cycle.state),
        "source_objects": cycle.source_objects,
        "quarantine_id": cycle.quarantine_id,
        "error": cycle.error,
        "created_at": rfc3339(cycle.created_at.as_ref()),
        "phases": cycle.phases.iter().map(|p| json!({
            "phase": p.phase,
            "millis": p.duration.map(|d| d.seconds * 1000 + i64::from(d.nanos) / 1_000_000),
        })).collect::<Vec<_>>(),
        "counts": cycle.counts.iter().map(|c| json!({
            "action": action(c.action), "object_type": object_type(c.object_type), "count": c.count,
        })).collect::<Vec<_>>(),
    })
}

/// A quarantine for scripts.
pub fn quarantine_json(quarantine: &v1::Quarantine) -> Value {
    json!({
        "quarantine_id": quarantine.quarantine_id,
        "job_id": quarantine.job_id,
        "cycle_id": quarantine.cycle_id,
        "state": short(v1::QuarantineState::try_from(quarantine.state).unwrap_or_default().as_str_name(), "QUARANTINE_STATE_"),
        "digest": quarantine.digest,
        "hold_until": rfc3339(quarantine.hold_until.as_ref()),
        "breaches": quarantine.breaches.iter().map(|b| b.explanation.clone()).collect::<Vec<_>>(),
        "counts": quarantine.counts.iter().map(|c| json!({
            "action": action(c.action), "object_type": object_type(c.object_type), "count": c.count,
        })).collect::<Vec<_>>(),
        "held": quarantine.held.iter().filter_map(|h| h.action.as_ref().map(|a| json!({
            "anchor": a.anchor, "name": a.display_name, "action": action(a.action),
            "reason": reason(a.reason), "status": status(a.status),
            "soft_delete": h.soft_delete, "restorable_until": rfc3339(h.restorable_until.as_ref()),
        }))).collect::<Vec<_>>(),
        "approvals": quarantine.approvals.iter().map(|a| json!({
            "principal": a.principal, "reason": a.reason, "at": rfc3339(a.at.as_ref()),
        })).collect::<Vec<_>>(),
    })
}

/// A directory object for scripts.
pub fn object_json(object: &v1::DirectoryObject) -> Value {
    let attributes: serde_json::Map<String, Value> = object
        .attributes
        .iter()
        .map(|(name, values)| (name.clone(), json!(values.values)))
        .collect();
    json!({
        "object_id": object.object_id,
        "anchor": object.anchor,
        "object_type": object_type(object.object_type),
        "enabled": object.enabled,
        "attributes": attributes,
        "members": object.member_anchors,
        "deleted_at": rfc3339(object.deleted_at.as_ref()),
        "restorable_until": rfc3339(object.restorable_until.as_ref()),
    })
}

/// The display name of an object: displayname or cn, else its anchor.
pub fn display_name(object: &v1::DirectoryObject) -> String {
    ["displayname", "cn"]
        .iter()
        .find_map(|name| {
            object
                .attributes
                .get(*name)
                .and_then(|v| v.values.first().cloned())
        })
        .unwrap_or_else(|| object.anchor.clone())
}
