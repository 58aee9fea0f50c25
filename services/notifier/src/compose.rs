//! Writing a notification event as an email. The message is built once as a few blocks
//! (paragraphs, tables, commands) and rendered twice: as plain text, and as HTML where every
//! value is escaped, tables are tables and commands keep their lines.

use std::fmt::Write as _;

use syncguard_proto::v1::{self, ActionKind, ActionReason, NotificationKind, ObjectType};

/// One block of a message.
enum Block {
    /// A paragraph of text.
    Text(String),
    /// A list of short lines.
    Items(Vec<String>),
    /// A table: headers and rows.
    Table(Vec<&'static str>, Vec<Vec<String>>),
    /// Commands to copy, one per line.
    Commands(Vec<String>),
    /// A link to the web console: its words and its address.
    Link(String, String),
}

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
        ObjectType::User => "user",
        ObjectType::Group => "group",
        ObjectType::Unspecified => "object",
    }
}

/// "612 user deletes", "1 group disable".
fn counted(count: u64, object_type: i32, action: i32) -> String {
    let plural = if count == 1 { "" } else { "s" };
    format!(
        "{count} {} {}{plural}",
        type_word(object_type),
        action_word(action)
    )
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
        .replace('\'', "&#39;")
}

fn date(ts: Option<prost_types::Timestamp>) -> Option<String> {
    ts.and_then(|ts| chrono::DateTime::from_timestamp(ts.seconds, 0))
        .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// "400 objects in this read; the target holds 1,000": the context of the counts.
fn sizes(event: &v1::NotificationEvent) -> String {
    if event.delta {
        format!(
            "This cycle is a delta of {} changes; the target holds {} live objects.",
            event.source_objects, event.target_objects
        )
    } else {
        format!(
            "The source sent {} objects in this read; the target holds {} live objects before it.",
            event.source_objects, event.target_objects
        )
    }
}

fn counts_table(event: &v1::NotificationEvent) -> Block {
    Block::Table(
        vec!["planned", "count"],
        event
            .counts
            .iter()
            .map(|count| {
                vec![
                    format!(
                        "{} {}",
                        type_word(count.object_type),
                        action_word(count.action)
                    ),
                    count.count.to_string(),
                ]
            })
            .collect(),
    )
}

fn sample_table(event: &v1::NotificationEvent) -> Block {
    Block::Table(
        vec!["action", "name", "anchor", "why"],
        event
            .sample
            .iter()
            .map(|action| {
                vec![
                    action_word(action.action).to_owned(),
                    action.display_name.clone(),
                    action.anchor.clone(),
                    reason_word(action.reason).to_owned(),
                ]
            })
            .collect(),
    )
}

fn quarantine_blocks(event: &v1::NotificationEvent, console: Option<&str>) -> Vec<Block> {
    let summary: Vec<String> = event
        .counts
        .iter()
        .map(|count| counted(count.count, count.object_type, count.action))
        .collect();
    let mut blocks = Vec::new();
    if let Some(console) = console {
        blocks.push(Block::Link(
            "Review and decide in the console".into(),
            format!("{console}/quarantines/{}", event.quarantine_id),
        ));
    }
    blocks.extend([
        Block::Text(format!(
            "Delete threshold exceeded: sync cycle {} of job {} is quarantined and nothing of it has been applied. It plans {}.",
            event.cycle_id,
            event.job_name,
            summary.join(", ")
        )),
        Block::Text(sizes(event)),
        Block::Items(
            event
                .breaches
                .iter()
                .map(|b| b.explanation.clone())
                .collect(),
        ),
        counts_table(event),
    ]);
    if !event.sample.is_empty() {
        blocks.push(Block::Text(format!(
            "Held deletes and disables (the first {}):",
            event.sample.len()
        )));
        blocks.push(sample_table(event));
    }
    blocks.push(Block::Text(format!(
        "If they are allowed, deleted objects are soft-deleted, not erased: each stays restorable for {} days (with its object id, attributes and group memberships). The cycle is held until {}; after that it is never applied and a fresh cycle runs.",
        event.retention_days,
        date(event.hold_until).unwrap_or_else(|| "the job's hold limit".into())
    )));
    blocks.push(Block::Text(format!(
        "To decide, review the held actions and quote the digest {} (it proves what you reviewed):",
        event.digest
    )));
    blocks.push(Block::Commands(vec![
        format!("syncguard quarantine show {}", event.job_id),
        format!(
            "syncguard quarantine allow {} --reason '<why>'",
            event.job_id
        ),
        format!(
            "syncguard quarantine reject {} --reason '<why>'",
            event.job_id
        ),
    ]));
    blocks.push(Block::Text(format!(
        "Over gRPC: GateService/GetQuarantine, then GateService/AllowDeletes or RejectDeletes with quarantine_id {} and the digest.",
        event.quarantine_id
    )));
    blocks
}

fn allowed_blocks(event: &v1::NotificationEvent, console: Option<&str>) -> Vec<Block> {
    let mut blocks = vec![Block::Text(format!(
        "{} allowed the held deletes and disables of cycle {} (job {}): {} allowed, {} rejected.",
        event.actor, event.cycle_id, event.job_name, event.allowed, event.rejected
    ))];
    blocks.push(Block::Text(format!("Their reason: {}", event.detail)));
    blocks.push(Block::Text(sizes(event)));
    blocks.push(counts_table(event));
    if !event.sample.is_empty() {
        blocks.push(Block::Text(format!(
            "Among them (the first {}):",
            event.sample.len()
        )));
        blocks.push(sample_table(event));
    }
    let until = date(event.restorable_until).unwrap_or_default();
    blocks.push(Block::Text(if event.applied {
        format!(
            "The deleted objects are soft-deleted and restorable until {until} (then they are purged)."
        )
    } else {
        format!(
            "The deletes are being applied: the objects will be soft-deleted and restorable for {} days (until about {until}).",
            event.retention_days
        )
    }));
    blocks.push(Block::Text(
        "To see them and bring one back (same object id, attributes and groups):".into(),
    ));
    if let Some(console) = console {
        blocks.push(Block::Link(
            "Open the recycle bin in the console".into(),
            format!("{console}/jobs/{}/deleted", event.job_id),
        ));
    }
    blocks.push(Block::Commands(vec![
        format!("syncguard directory deleted {}", event.job_id),
        "syncguard directory restore <object id> --reason '<why>'".into(),
    ]));
    if event.rejected > 0 {
        blocks.push(Block::Text(
            "The rejected objects are pinned: no later cycle deletes or disables them until the source undoes the change or the pins are released.".into(),
        ));
    }
    blocks
}

fn blocks(event: &v1::NotificationEvent, console: Option<&str>) -> Vec<Block> {
    match NotificationKind::try_from(event.kind).unwrap_or_default() {
        NotificationKind::QuarantineOpened | NotificationKind::QuarantineReminder => {
            quarantine_blocks(event, console)
        }
        NotificationKind::QuarantineAllowed => allowed_blocks(event, console),
        NotificationKind::QuarantineRejected => vec![
            Block::Text(format!(
                "{} rejected the held deletes and disables of cycle {} (job {}): {} rejected. Nothing of them was applied; the cycle's other changes were.",
                event.actor, event.cycle_id, event.job_name, event.rejected
            )),
            Block::Text(format!("Their reason: {}", event.detail)),
            counts_table(event),
            Block::Text(
                "Those objects are pinned until they return to the source or the pins are released:".into(),
            ),
            Block::Commands(vec![format!("syncguard quarantine pins {}", event.job_id)]),
        ],
        NotificationKind::QuarantineSuperseded => vec![Block::Text(format!(
            "The quarantined cycle {} of job {} was superseded ({}: {}); none of it was applied and a fresh cycle runs.",
            event.cycle_id, event.job_name, event.actor, event.detail
        ))],
        NotificationKind::CycleFailed => vec![
            Block::Text(format!(
                "A sync cycle of job {} failed; nothing of it was applied.",
                event.job_name
            )),
            Block::Text(event.detail.clone()),
            Block::Commands(vec![format!("syncguard jobs show {}", event.job_id)]),
        ],
        NotificationKind::Unspecified => Vec::new(),
    }
}

/// The plain-text body; `console` is the web console's base URL, when there is one.
pub fn text(event: &v1::NotificationEvent, console: Option<&str>) -> String {
    let mut out = format!("Job: {} ({})\n", event.job_name, event.job_id);
    for block in blocks(event, console) {
        out.push('\n');
        match block {
            Block::Text(text) => {
                let _ = writeln!(out, "{text}");
            }
            Block::Items(items) => {
                for item in items {
                    let _ = writeln!(out, "  - {item}");
                }
            }
            Block::Table(headers, rows) => {
                let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
                for row in &rows {
                    for (width, cell) in widths.iter_mut().zip(row) {
                        *width = (*width).max(cell.chars().count());
                    }
                }
                let line = |cells: Vec<String>| {
                    cells
                        .iter()
                        .zip(&widths)
                        .map(|(cell, width)| format!("{cell:<width$}"))
                        .collect::<Vec<_>>()
                        .join("  ")
                        .trim_end()
                        .to_owned()
                };
                let _ = writeln!(
                    out,
                    "  {}",
                    line(headers.iter().map(|h| (*h).to_owned()).collect())
                );
                for row in rows {
                    let _ = writeln!(out, "  {}", line(row));
                }
            }
            Block::Commands(commands) => {
                for command in commands {
                    let _ = writeln!(out, "    {command}");
                }
            }
            Block::Link(words, url) => {
                let _ = writeln!(out, "{words}:\n    {url}");
            }
        }
    }
    out
}

/// The HTML body: the same blocks, every value escaped.
pub fn html(event: &v1::NotificationEvent, console: Option<&str>) -> String {
    let mut out = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body style=\"font-family: sans-serif\">",
    );
    let _ = write!(
        out,
        "<p>Job: <strong>{}</strong> ({})</p>",
        escape(&event.job_name),
        escape(&event.job_id)
    );
    for block in blocks(event, console) {
        match block {
            Block::Link(words, url) => {
                let _ = write!(
                    out,
                    "<p><a href=\"{}\" style=\"font-weight: bold\">{}</a></p>",
                    escape(&url),
                    escape(&words)
                );
            }
            Block::Text(text) => {
                let _ = write!(out, "<p>{}</p>", escape(&text));
            }
            Block::Items(items) => {
                out.push_str("<ul>");
                for item in items {
                    let _ = write!(out, "<li>{}</li>", escape(&item));
                }
                out.push_str("</ul>");
            }
            Block::Table(headers, rows) => {
                out.push_str("<table border=\"1\" cellpadding=\"4\" style=\"border-collapse: collapse\"><thead><tr>");
                for header in headers {
                    let _ = write!(out, "<th>{}</th>", escape(header));
                }
                out.push_str("</tr></thead><tbody>");
                for row in rows {
                    out.push_str("<tr>");
                    for cell in row {
                        let _ = write!(out, "<td>{}</td>", escape(&cell));
                    }
                    out.push_str("</tr>");
                }
                out.push_str("</tbody></table>");
            }
            Block::Commands(commands) => {
                let _ = write!(
                    out,
                    "<pre>{}</pre>",
                    commands
                        .iter()
                        .map(|command| escape(command))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
    }
    out.push_str("</body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quarantine_event() -> v1::NotificationEvent {
        v1::NotificationEvent {
            kind: NotificationKind::QuarantineOpened as i32,
            job_id: "j-1".into(),
            job_name: "HR <feed>".into(),
            quarantine_id: "q-1".into(),
            digest: "abc123".into(),
            source_objects: 400,
            target_objects: 1000,
            retention_days: 30,
            counts: vec![v1::ActionCount {
                action: ActionKind::Delete as i32,
                object_type: ObjectType::User as i32,
                count: 612,
            }],
            sample: vec![v1::StagedAction {
                anchor: "E-1".into(),
                display_name: "Ada <script>".into(),
                action: ActionKind::Delete as i32,
                reason: ActionReason::RemovedFromSource as i32,
                ..Default::default()
            }],
            breaches: vec![v1::RuleBreach {
                explanation: "rule \"default\" counted 612, limit 500".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn quarantine_mail_has_counts_sample_context_and_how_to_act() {
        let event = quarantine_event();
        let body = text(&event, None);
        assert!(body.contains("It plans 612 user deletes."), "{body}");
        assert!(body.contains("sent 400 objects"), "{body}");
        assert!(body.contains("holds 1000 live objects"), "{body}");
        assert!(body.contains("digest abc123"), "{body}");
        assert!(body.contains("restorable for 30 days"), "{body}");
        assert!(body.contains("Ada <script>"), "{body}");
        assert!(body.contains("syncguard quarantine allow j-1"), "{body}");
        let page = html(&event, None);
        assert!(page.contains("HR &lt;feed&gt;"), "{page}");
        assert!(page.contains("<td>Ada &lt;script&gt;</td>"), "{page}");
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            page.contains("<pre>syncguard quarantine show j-1"),
            "{page}"
        );
    }

    #[test]
    fn the_allowed_mail_says_who_why_what_and_how_to_restore() {
        let event = v1::NotificationEvent {
            kind: NotificationKind::QuarantineAllowed as i32,
            actor: "approver:alice".into(),
            detail: "HR confirmed the leavers".into(),
            allowed: 612,
            rejected: 0,
            applied: true,
            restorable_until: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            ..quarantine_event()
        };
        let body = text(&event, None);
        assert!(body.contains("approver:alice allowed"), "{body}");
        assert!(body.contains("612 allowed, 0 rejected"), "{body}");
        assert!(body.contains("HR confirmed the leavers"), "{body}");
        assert!(body.contains("restorable until 2027-01-15"), "{body}");
        assert!(body.contains("syncguard directory restore"), "{body}");
    }

    #[test]
    fn with_a_console_the_quarantine_mail_leads_with_its_page() {
        let event = v1::NotificationEvent {
            quarantine_id: "q-1".into(),
            ..quarantine_event()
        };
        let console = Some("https://syncguard.example.com");
        let body = text(&event, console);
        let link = body
            .find("https://syncguard.example.com/quarantines/q-1")
            .expect("the link is in the text");
        let command = body
            .find("syncguard quarantine allow")
            .expect("the commands stay");
        assert!(link < command, "the link comes first: {body}");
        let page = html(&event, console);
        assert!(
            page.contains("<a href=\"https://syncguard.example.com/quarantines/q-1\""),
            "{page}"
        );
        assert!(
            !text(&event, None).contains("/quarantines/"),
            "no console, no link"
        );
    }
}
