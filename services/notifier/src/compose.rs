//! Writing a notification event as an email: a plain-text and an HTML part, with the counts,
//! a sample of affected objects, and how to act.

use std::fmt::Write as _;

use syncguard_proto::v1::{self, ActionKind, ActionReason, NotificationKind, ObjectType};

fn action_word(action: i32) -> &'static str {
    match ActionKind::try_from(action).unwrap_or_default() {
        ActionKind::Create => "create",
        ActionKind::Update => "update",
        ActionKind::Disable => "disable",
        ActionKind::Enable => "enable",
        ActionKind::Delete => "delete",
        ActionKind::Restore => "restore",
        ActionKind::Purge => "purge",
        ActionKind::Unspecified => "action",
    }
}

fn type_word(object_type: i32) -> &'static str {
    match ObjectType::try_from(object_type).unwrap_or_default() {
        ObjectType::User => "users",
        ObjectType::Group => "groups",
        ObjectType::Unspecified => "objects",
    }
}

fn reason_word(reason: i32) -> &'static str {
    match ActionReason::try_from(reason).unwrap_or_default() {
        ActionReason::RemovedFromSource => "removed from the source",
        ActionReason::OutOfScope => "moved out of scope",
        ActionReason::DisabledInSource => "sign-in blocked in the source",
        ActionReason::AttributesChanged => "attributes changed",
        ActionReason::NewInSource => "new in the source",
        ActionReason::EnabledInSource => "enabled in the source",
        ActionReason::Reappeared => "reappeared in the source",
        ActionReason::AdminRequest => "an administrator's request",
        ActionReason::RetentionExpired => "retention ended",
        ActionReason::Unspecified => "",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn hold_until(event: &v1::NotificationEvent) -> String {
    event
        .hold_until
        .and_then(|ts| chrono::DateTime::from_timestamp(ts.seconds, 0))
        .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "the job's hold limit".into())
}

/// The plain-text body.
pub fn text(event: &v1::NotificationEvent) -> String {
    let mut out = String::new();
    let kind = NotificationKind::try_from(event.kind).unwrap_or_default();
    let _ = writeln!(out, "Job: {} ({})", event.job_name, event.job_id);
    match kind {
        NotificationKind::QuarantineOpened | NotificationKind::QuarantineReminder => {
            let _ = writeln!(
                out,
                "\nDelete threshold exceeded: the sync cycle {} is quarantined. Nothing of it has been applied.",
                event.cycle_id
            );
            for breach in &event.breaches {
                let _ = writeln!(out, "  - {}", breach.explanation);
            }
            let _ = writeln!(out, "\nPlanned actions:");
            for count in &event.counts {
                let _ = writeln!(
                    out,
                    "  {:>8} {} {}",
                    count.count,
                    action_word(count.action),
                    type_word(count.object_type)
                );
            }
            if !event.sample.is_empty() {
                let _ = writeln!(out, "\nAffected objects (first {}):", event.sample.len());
                for action in &event.sample {
                    let _ = writeln!(
                        out,
                        "  {} {} ({}): {}",
                        action_word(action.action),
                        action.display_name,
                        action.anchor,
                        reason_word(action.reason)
                    );
                }
            }
            let _ = writeln!(
                out,
                "\nThe cycle is held until {}; after that it is never applied and a fresh cycle runs.",
                hold_until(event)
            );
            let _ = writeln!(
                out,
                "\nTo decide, read the quarantine and quote its digest:"
            );
            let _ = writeln!(
                out,
                "  grpcurl -plaintext -H 'authorization: Bearer <approver token>' -d '{{\"quarantine_id\": \"{}\"}}' <gate>:50053 syncguard.v1.GateService/GetQuarantine",
                event.quarantine_id
            );
            let _ = writeln!(
                out,
                "  allow:  ... -d '{{\"quarantine_id\": \"{}\", \"digest\": \"<digest>\", \"reason\": \"<why>\"}}' <gate>:50053 syncguard.v1.GateService/AllowDeletes",
                event.quarantine_id
            );
            let _ = writeln!(
                out,
                "  reject: ... -d '{{\"quarantine_id\": \"{}\", \"digest\": \"<digest>\", \"reason\": \"<why>\"}}' <gate>:50053 syncguard.v1.GateService/RejectDeletes",
                event.quarantine_id
            );
            let _ = writeln!(
                out,
                "\nOr with the admin command line:\n  syncguard quarantine show {0}\n  syncguard quarantine allow {0} --reason '<why>'\n  syncguard quarantine reject {0} --reason '<why>'",
                event.job_id
            );
        }
        NotificationKind::QuarantineAllowed => {
            let _ = writeln!(
                out,
                "\nThe held deletes of cycle {} were allowed by {}: {}",
                event.cycle_id, event.actor, event.detail
            );
        }
        NotificationKind::QuarantineRejected => {
            let _ = writeln!(
                out,
                "\nThe held deletes of cycle {} were rejected by {}: {}\nThose objects are pinned until they return to the source or the pins are released.",
                event.cycle_id, event.actor, event.detail
            );
        }
        NotificationKind::QuarantineSuperseded => {
            let _ = writeln!(
                out,
                "\nThe quarantined cycle {} was superseded ({}: {}); none of it was applied and a fresh cycle runs.",
                event.cycle_id, event.actor, event.detail
            );
        }
        NotificationKind::CycleFailed => {
            let _ = writeln!(
                out,
                "\nThe sync cycle {} failed: {}",
                event.cycle_id, event.detail
            );
        }
        NotificationKind::Unspecified => {}
    }
    out
}

/// The HTML body: the same facts, escaped.
pub fn html(event: &v1::NotificationEvent) -> String {
    let mut out = String::from("<html><body style=\"font-family: sans-serif\">");
    for paragraph in text(event).split("\n\n") {
        let _ = write!(out, "<p>{}</p>", escape(paragraph).replace('\n', "<br>"));
    }
    out.push_str("</body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_mail_has_counts_sample_and_how_to_act() {
        let event = v1::NotificationEvent {
            kind: NotificationKind::QuarantineOpened as i32,
            job_name: "HR <feed>".into(),
            quarantine_id: "q-1".into(),
            counts: vec![v1::ActionCount {
                action: ActionKind::Delete as i32,
                object_type: ObjectType::User as i32,
                count: 612,
            }],
            sample: vec![v1::StagedAction {
                anchor: "E-1".into(),
                display_name: "Ada".into(),
                action: ActionKind::Delete as i32,
                reason: ActionReason::RemovedFromSource as i32,
                ..Default::default()
            }],
            breaches: vec![v1::RuleBreach {
                explanation: "rule \"default\" counted 612, limit 500".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let body = text(&event);
        assert!(body.contains("612 delete users"), "{body}");
        assert!(
            body.contains("delete Ada (E-1): removed from the source"),
            "{body}"
        );
        assert!(body.contains("GateService/AllowDeletes"), "{body}");
        assert!(html(&event).contains("HR &lt;feed&gt;"));
    }
}
