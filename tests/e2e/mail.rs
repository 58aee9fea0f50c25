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
    assert!(unfolded.contains("4 delete users"), "{unfolded}");
    assert!(
        unfolded.contains("(u-00000): removed from the source"),
        "{unfolded}"
    );
    assert!(unfolded.contains(&quarantine.quarantine_id), "{unfolded}");
    assert!(unfolded.contains("GateService/AllowDeletes"), "{unfolded}");
    assert!(unfolded.contains("held until"), "{unfolded}");
    assert_eq!(server.messages().len(), 1);
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
