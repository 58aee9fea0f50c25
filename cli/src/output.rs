//! Printing results: aligned tables for people, JSON for scripts.

use serde_json::{Value, json};

use crate::failure::Failure;
use syncguard_proto::v1::{self, ActionKind, ActionReason, ActionStatus, CycleState, ObjectType};

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
    pub fn print(&self) {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            println!("{}", padded.join("  ").trim_end());
        };
        line(self.headers.iter().map(|h| (*h).to_owned()).collect());
        for row in &self.rows {
            line(row.clone());
        }
        if self.rows.is_empty() {
            println!("(none)");
        }
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &Value) -> Result<(), Failure> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into())
    );
    Ok(())
}

/// A timestamp as RFC 3339 (empty when absent).
pub fn time(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(|ts| chrono::DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32))
        .map(|at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
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

/// "delete user 3, create user 10"
pub fn counts(counts: &[v1::ActionCount]) -> String {
    counts
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                action(c.action),
                object_type(c.object_type),
                c.count
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
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
        "created_at": time(cycle.created_at.as_ref()),
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
        "hold_until": time(quarantine.hold_until.as_ref()),
        "breaches": quarantine.breaches.iter().map(|b| b.explanation.clone()).collect::<Vec<_>>(),
        "counts": quarantine.counts.iter().map(|c| json!({
            "action": action(c.action), "object_type": object_type(c.object_type), "count": c.count,
        })).collect::<Vec<_>>(),
        "held": quarantine.held.iter().filter_map(|h| h.action.as_ref().map(|a| json!({
            "anchor": a.anchor, "name": a.display_name, "action": action(a.action),
            "reason": reason(a.reason), "status": status(a.status),
            "soft_delete": h.soft_delete, "restorable_until": time(h.restorable_until.as_ref()),
        }))).collect::<Vec<_>>(),
        "approvals": quarantine.approvals.iter().map(|a| json!({
            "principal": a.principal, "reason": a.reason, "at": time(a.at.as_ref()),
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
        "deleted_at": time(object.deleted_at.as_ref()),
        "restorable_until": time(object.restorable_until.as_ref()),
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
