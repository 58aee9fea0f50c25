//! Notifications over real SMTP (aiosmtpd in its own process): delivered once, retried while
//! the server is down, failed on a permanent refusal, reminded while a quarantine stays open.

use std::time::Duration;

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::directory::{directory, push_snapshot};
use syncguard_e2e::smtp::{SmtpServer, free_port};
use syncguard_e2e::{Suite, SuiteOptions, wait_for};
use syncguard_notifier::settings::{Delivery, MailSettings};
use syncguard_proto::v1::{self, ActionKind, DeliveryStatus};
use tonic::Code;

use crate::jobs::push_job;

fn smtp_options(port: u16) -> SuiteOptions {
    SuiteOptions {
        mail: Some(MailSettings {
            delivery: Delivery::Smtp(format!("smtp://127.0.0.1:{port}")),
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(1),
            poll_interval: Duration::from_millis(200),
            ..MailSettings::default()
        }),
        maintenance_interval: Duration::from_secs(1),
        ..Default::default()
    }
}

/// A job with a threshold of 3 and two recipients, tripped by four leavers.
async fn tripped_job(suite: &Suite) -> anyhow::Result<(String, v1::Quarantine)> {
    let mut spec = push_job("HR to directory");
    spec.notification_recipients = vec![
        "identity-team@example.com".into(),
        "oncall@example.com".into(),
    ];
    spec.protection_rules = vec![v1::ProtectionRule {
        counted_actions: vec![ActionKind::Delete as i32, ActionKind::Disable as i32],
        max_count: Some(3),
        ..Default::default()
    }];
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .job_id;
    push_snapshot(&mut ingest, &job_id, &directory(20, 0)).await?;
    let leavers: Vec<_> = directory(20, 0).into_iter().skip(4).collect();
    push_snapshot(&mut ingest, &job_id, &leavers).await?;
    let quarantine = suite
        .gate(Some(&suite.tokens.reader))
        .get_quarantine(v1::GetQuarantineRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok((job_id, quarantine))
}

async fn notifications(suite: &Suite, job_id: &str) -> anyhow::Result<Vec<v1::Notification>> {
    Ok(suite
        .notifier(Some(&suite.tokens.reader))
        .list_notifications(v1::ListNotificationsRequest {
            job_id: job_id.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .notifications)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quarantine_email_arrives_with_what_happened_and_how_to_act() -> anyhow::Result<()> {
    let port = free_port();
    let server = SmtpServer::accepting(port).await?;
    let suite = Suite::start_with(smtp_options(port)).await?;
    let (_, quarantine) = tripped_job(&suite).await?;
    let message = wait_for("the quarantine email", Duration::from_secs(30), || {
        let messages = server.messages();
        async move { messages.into_iter().next() }
    })
    .await?;
    assert!(
        message.contains("To: identity-team@example.com, oncall@example.com"),
        "{message}"
    );
    assert!(
        message.contains("Subject: [syncguard] Delete threshold exceeded: HR to directory"),
        "{message}"
    );
    assert!(
        message.contains("multipart/alternative"),
        "plain text and HTML: {message}"
    );
    assert!(message.contains("text/html"), "{message}");
    let unfolded = message.replace("=\r\n", "").replace("=\n", "");
    assert!(unfolded.contains("4 user deletes"), "{unfolded}");
    assert!(unfolded.contains("u-00000"), "{unfolded}");
    assert!(unfolded.contains("removed from the source"), "{unfolded}");
    assert!(unfolded.contains(&quarantine.quarantine_id), "{unfolded}");
    assert!(unfolded.contains("GateService/AllowDeletes"), "{unfolded}");
    assert!(unfolded.contains("held until"), "{unfolded}");
    assert_eq!(server.messages().len(), 1);
    suite.stop().await?;
    server.stop().await
}

/// The parts of a delivered message as Python's `email` package decodes them, with the
/// HTML part parsed by `html.parser`: its text, its table rows (cells as text) and its
/// `<pre>` blocks. A real parser, not string matching, so broken markup shows.
fn parsed_html(message: &str) -> anyhow::Result<serde_json::Value> {
    const PARSE: &str = r#"
import email, json, sys
from email import policy
from html.parser import HTMLParser

msg = email.message_from_string(sys.stdin.read(), policy=policy.default)
html = msg.get_body(preferencelist=("html",)).get_content()
plain = msg.get_body(preferencelist=("plain",)).get_content()

class Reader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows, self.pre, self.text, self.tags = [], [], [], []
        self.row = None; self.cell = None; self.in_pre = False
    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr": self.row = []
        elif tag in ("td", "th"): self.cell = ""
        elif tag == "pre": self.in_pre = True; self.pre.append("")
    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.row is not None: self.row.append(self.cell); self.cell = None
        elif tag == "tr": self.rows.append(self.row); self.row = None
        elif tag == "pre": self.in_pre = False
    def handle_data(self, data):
        self.text.append(data)
        if self.cell is not None: self.cell += data
        if self.in_pre: self.pre[-1] += data

reader = Reader()
reader.feed(html)
reader.close()
print(json.dumps({"rows": reader.rows, "pre": reader.pre, "text": "".join(reader.text),
                  "tags": sorted(set(reader.tags)), "plain": plain}))
"#;
    use std::io::Write as _;
    let mut child = std::process::Command::new("python3")
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(message.as_bytes())?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(output.status.success(), "the message did not parse");
    Ok(serde_json::from_slice(&output.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quarantine_mail_is_real_html_escaped_and_the_allowed_mail_says_what_happened()
-> anyhow::Result<()> {
    let port = free_port();
    let server = SmtpServer::accepting(port).await?;
    let suite = Suite::start_with(smtp_options(port)).await?;
    let mut spec = push_job("HR <b>feed</b> & co");
    spec.protection_rules = vec![v1::ProtectionRule {
        max_count: Some(1),
        ..Default::default()
    }];
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .job_id;
    let mut people = directory(10, 0);
    people[0].attributes.insert(
        "cn".into(),
        v1::AttributeValues {
            values: vec!["<script>alert(1)</script> Ada & Co".into()],
        },
    );
    push_snapshot(&mut ingest, &job_id, &people).await?;
    push_snapshot(&mut ingest, &job_id, &people[3..]).await?;
    let opened = wait_for("the quarantine email", Duration::from_secs(30), || {
        let messages = server.messages();
        async move { messages.into_iter().next() }
    })
    .await?;
    let page = parsed_html(&opened)?;
    let rows = page["rows"].as_array().expect("rows");
    assert!(
        rows.iter()
            .any(|row| row[0] == "user delete" && row[1] == "3"),
        "the counts table: {rows:?}"
    );
    assert!(
        rows.iter()
            .any(|row| row[1] == "<script>alert(1)</script> Ada & Co"
                && row[2] == "u-00000"
                && row[3] == "removed from the source"),
        "the sample table shows the name as text: {rows:?}"
    );
    assert!(
        !page["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .any(|tag| tag == "script" || tag == "b"),
        "markup from the source or the job name is escaped: {page}"
    );
    let text = page["text"].as_str().unwrap_or_default();
    assert!(text.contains("HR <b>feed</b> & co"), "{text}");
    assert!(text.contains("sent 7 objects"), "{text}");
    assert!(text.contains("holds 10 live objects"), "{text}");
    assert!(text.contains("restorable for 30 days"), "{text}");
    let quarantine = suite
        .gate(Some(&suite.tokens.approver))
        .get_quarantine(v1::GetQuarantineRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(text.contains(&quarantine.digest), "the digest: {text}");
    let commands = page["pre"]
        .as_array()
        .expect("pre")
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        commands.contains(&format!("syncguard quarantine allow {job_id} --reason")),
        "commands keep their lines in <pre>: {commands}"
    );

    suite
        .gate(Some(&suite.tokens.approver))
        .allow_deletes(v1::AllowDeletesRequest {
            quarantine_id: quarantine.quarantine_id.clone(),
            digest: quarantine.digest.clone(),
            reason: "HR confirmed the three leavers".into(),
            anchors: vec![],
        })
        .await?;
    let allowed = wait_for("the allowed email", Duration::from_secs(30), || {
        let messages = server.messages();
        async move {
            messages
                .into_iter()
                .find(|m| m.contains("Subject: [syncguard] Deletes allowed"))
        }
    })
    .await?;
    let page = parsed_html(&allowed)?;
    let plain = page["plain"].as_str().unwrap_or_default();
    assert!(plain.contains("approver:alice allowed"), "who: {plain}");
    assert!(plain.contains("3 allowed, 0 rejected"), "counts: {plain}");
    assert!(
        plain.contains("holds 10 live objects before it"),
        "the target as the opening mail counted it, before the allowed deletes: {plain}"
    );
    assert!(
        plain.contains("HR confirmed the three leavers"),
        "why: {plain}"
    );
    assert!(plain.contains("restorable"), "until when: {plain}");
    assert!(
        plain.contains(&format!("syncguard directory deleted {job_id}")),
        "how to restore: {plain}"
    );
    assert!(
        plain.contains("syncguard directory restore <object id>"),
        "{plain}"
    );
    suite.stop().await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_queued_while_the_server_is_down_arrives_once_even_across_a_restart()
-> anyhow::Result<()> {
    let port = free_port();
    let mut suite = Suite::start_with(smtp_options(port)).await?;
    let (job_id, _) = tripped_job(&suite).await?;
    // The server is down: the notice is stored and attempts fail.
    let retried = wait_for("a failed attempt", Duration::from_secs(30), || {
        let suite = &suite;
        let job_id = job_id.clone();
        async move {
            let list = notifications(suite, &job_id).await.ok()?;
            list.into_iter()
                .find(|n| n.attempts >= 1 && n.status == DeliveryStatus::Pending as i32)
        }
    })
    .await?;
    assert!(!retried.last_error.is_empty());

    // The notifier restarts mid-retry, the server comes back: the notice arrives, once.
    suite.stop_service(ServiceName::Notifier).await?;
    let server = SmtpServer::accepting(port).await?;
    suite.start_service(ServiceName::Notifier).await?;
    let sent = wait_for("delivery after the outage", Duration::from_secs(30), || {
        let suite = &suite;
        let job_id = job_id.clone();
        async move {
            let list = notifications(suite, &job_id).await.ok()?;
            list.into_iter()
                .find(|n| n.status == DeliveryStatus::Sent as i32)
        }
    })
    .await?;
    assert!(sent.attempts >= 2, "{sent:?}");
    assert_eq!(server.messages().len(), 1, "exactly one email");
    suite.stop().await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_refusal_ends_as_failed_with_the_servers_words() -> anyhow::Result<()> {
    let port = free_port();
    let server = SmtpServer::rejecting(port).await?;
    let suite = Suite::start_with(smtp_options(port)).await?;
    let (job_id, _) = tripped_job(&suite).await?;
    let failed = wait_for("the refusal", Duration::from_secs(30), || {
        let suite = &suite;
        let job_id = job_id.clone();
        async move {
            let list = notifications(suite, &job_id).await.ok()?;
            list.into_iter()
                .find(|n| n.status == DeliveryStatus::Failed as i32)
        }
    })
    .await?;
    assert!(
        failed.last_error.contains("No such user here"),
        "{}",
        failed.last_error
    );
    assert_eq!(failed.attempts, 1, "a 5xx is not retried");
    suite.stop().await?;
    server.stop().await
}

/// Reminders go out at the interval while the quarantine is open and stop once it closes.
/// The second half asserts an absence, which takes time: it watches three more intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_arrive_at_the_interval_and_stop_when_the_quarantine_closes() -> anyhow::Result<()>
{
    let port = free_port();
    let server = SmtpServer::accepting(port).await?;
    let mut options = smtp_options(port);
    options.reminder_interval = Duration::from_secs(1);
    let suite = Suite::start_with(options).await?;
    let (job_id, quarantine) = tripped_job(&suite).await?;
    wait_for("two reminders", Duration::from_secs(30), || {
        let suite = &suite;
        let job_id = job_id.clone();
        async move {
            let list = notifications(suite, &job_id).await.ok()?;
            let reminders = list
                .iter()
                .filter(|n| n.idempotency_key.contains(":quarantine_reminder:"))
                .count();
            (reminders >= 2).then_some(())
        }
    })
    .await?;
    suite
        .gate(Some(&suite.tokens.approver))
        .allow_deletes(v1::AllowDeletesRequest {
            quarantine_id: quarantine.quarantine_id.clone(),
            digest: quarantine.digest.clone(),
            reason: "confirmed".into(),
            anchors: vec![],
        })
        .await?;
    let closed_at = notifications(&suite, &job_id)
        .await?
        .iter()
        .filter(|n| n.idempotency_key.contains(":quarantine_reminder:"))
        .count();
    let more = wait_for(
        "another reminder (none should come)",
        Duration::from_secs(3),
        || {
            let suite = &suite;
            let job_id = job_id.clone();
            async move {
                let list = notifications(suite, &job_id).await.ok()?;
                let reminders = list
                    .iter()
                    .filter(|n| n.idempotency_key.contains(":quarantine_reminder:"))
                    .count();
                (reminders > closed_at).then_some(())
            }
        },
    )
    .await;
    assert!(more.is_err(), "no reminder after the quarantine closed");
    suite.stop().await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_names_a_recorded_event_and_goes_to_the_jobs_recipients() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut spec = push_job("mailed");
    spec.notification_recipients = vec!["ops@example.com".into()];
    let job_id = suite
        .ingest(Some(&suite.tokens.operator))
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .job_id;
    let mut notifier = suite.notifier(Some(&suite.tokens.service));
    // Nothing in the request can become mail text or a recipient: it only names records.
    let unknown_kind = notifier
        .notify(v1::NotifyRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("a kind is required");
    assert_eq!(unknown_kind.code(), Code::InvalidArgument);
    assert!(
        unknown_kind.message().starts_with("kind"),
        "{}",
        unknown_kind.message()
    );
    let invented = notifier
        .notify(v1::NotifyRequest {
            kind: v1::NotificationKind::QuarantineOpened as i32,
            job_id: job_id.clone(),
            quarantine_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .await
        .expect_err("a quarantine that does not exist");
    assert_eq!(invented.code(), Code::InvalidArgument);
    assert!(
        invented.message().starts_with("quarantine_id"),
        "{}",
        invented.message()
    );
    let other_job = notifier
        .notify(v1::NotifyRequest {
            kind: v1::NotificationKind::CycleFailed as i32,
            job_id: uuid::Uuid::now_v7().to_string(),
            cycle_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .await
        .expect_err("a job that does not exist");
    assert_eq!(other_job.code(), Code::NotFound);
    // An operator's token cannot send mail at all.
    let operator = suite
        .notifier(Some(&suite.tokens.operator))
        .notify(v1::NotifyRequest::default())
        .await
        .expect_err("operators do not notify");
    assert_eq!(operator.code(), Code::PermissionDenied);
    suite.stop().await
}
