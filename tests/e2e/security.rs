//! The trust boundary: no role reaches the service's own secrets or files, the service token
//! cannot get around a quarantine, an operator cannot weaken the guard, one person is one
//! approver, and stalled pushes cannot take ingest down.

use std::time::{Duration, Instant};

use syncguard_e2e::directory::{directory, push_snapshot, snapshot_messages};
use syncguard_e2e::{Suite, SuiteOptions};
use syncguard_proto::v1::{self, CycleState, job_source};
use tokio::io::AsyncReadExt as _;
use tonic::Code;

use crate::cycle::live_objects;
use crate::jobs::push_job;

fn ldap_job(url: &str, change: impl FnOnce(&mut v1::LdapSource)) -> v1::JobSpec {
    let mut source = v1::LdapSource {
        url: url.into(),
        bind_dn: "cn=admin,dc=example,dc=org".into(),
        base_dn: "dc=example,dc=org".into(),
        ..Default::default()
    };
    change(&mut source);
    let mut spec = push_job("ldap job");
    spec.source = Some(v1::JobSource {
        kind: Some(job_source::Kind::Ldap(source)),
    });
    spec
}

fn file_job(path: &str) -> v1::JobSpec {
    let mut spec = push_job("file job");
    spec.source = Some(v1::JobSource {
        kind: Some(job_source::Kind::File(v1::FileSource {
            path: path.into(),
            format: v1::FileFormat::Ldif as i32,
            anchor_attribute: String::new(),
        })),
    });
    spec
}

fn field_of(status: &tonic::Status) -> String {
    use tonic_types::StatusExt as _;
    status
        .get_details_bad_request()
        .and_then(|bad| bad.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

/// A fake LDAP server: accepts one connection and keeps every byte the client sends.
async fn listening_capture() -> anyhow::Result<(u16, tokio::task::JoinHandle<Vec<u8>>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let captured = tokio::spawn(async move {
        let mut seen = Vec::new();
        if let Ok(Ok((mut socket, _))) =
            tokio::time::timeout(Duration::from_secs(10), listener.accept()).await
        {
            let mut buffer = [0u8; 4096];
            while let Ok(Ok(read)) =
                tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buffer)).await
            {
                if read == 0 {
                    break;
                }
                seen.extend_from_slice(&buffer[..read]);
            }
        }
        seen
    });
    Ok((port, captured))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_job_can_name_the_services_secrets_or_files() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let refused = |spec: v1::JobSpec| {
        let mut ingest = ingest.clone();
        async move {
            ingest
                .create_job(v1::CreateJobRequest { spec: Some(spec) })
                .await
                .expect_err("refused at creation")
        }
    };
    for (spec, field) in [
        (
            ldap_job("ldap://127.0.0.1:9", |s| {
                s.password_env = "SYNCGUARD_SERVICE_TOKEN".into()
            }),
            "spec.source.ldap.password_env",
        ),
        (
            ldap_job("ldap://127.0.0.1:9", |s| {
                s.password_file = "/proc/self/environ".into()
            }),
            "spec.source.ldap.password_file",
        ),
        (
            ldap_job("ldap://127.0.0.1:9", |s| {
                s.password_secret = "../../tokens".into()
            }),
            "spec.source.ldap.password_secret",
        ),
        (
            ldap_job("ldap://127.0.0.1:9", |s| {
                s.password_secret = "database-url".into()
            }),
            "spec.source.ldap.password_secret",
        ),
        (file_job("../../etc/shadow"), "spec.source.file.path"),
        (file_job("/etc/passwd"), "spec.source.file.path"),
    ] {
        let status = refused(spec).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(field_of(&status), field, "{status:?}");
        assert!(!status.message().contains("postgres://"), "{status:?}");
    }

    // A job naming its own secret reaches the LDAP server it names with that secret and
    // nothing else of the service.
    suite.add_secret("job-bind", "the-jobs-own-password")?;
    let (port, captured) = listening_capture().await?;
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(ldap_job(&format!("ldap://127.0.0.1:{port}"), |s| {
                s.password_secret = "job-bind".into()
            })),
        })
        .await?
        .into_inner()
        .job_id;
    let _ = tokio::time::timeout(
        Duration::from_secs(20),
        ingest.trigger_cycle(v1::TriggerCycleRequest {
            job_id: job_id.clone(),
        }),
    )
    .await;
    let seen = String::from_utf8_lossy(&captured.await?).into_owned();
    assert!(
        seen.contains("the-jobs-own-password"),
        "the bind carries the job's secret"
    );
    for secret in [
        &suite.tokens.service,
        &suite.tokens.admin,
        &suite.database().url(),
    ] {
        assert!(
            !seen.contains(secret.as_str()),
            "nothing of the service reaches the server"
        );
    }

    // A link inside the import directory that leads out of it is refused when read, and
    // neither the error, nor the job's status, nor the failure notice quotes the file.
    std::os::unix::fs::symlink("/etc/passwd", suite.import_dir().join("passwd.ldif"))?;
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(file_job("passwd.ldif")),
        })
        .await?
        .into_inner()
        .job_id;
    let error = ingest
        .trigger_cycle(v1::TriggerCycleRequest {
            job_id: job_id.clone(),
        })
        .await
        .expect_err("outside the import directory");
    assert!(
        error.message().contains("outside the import directory"),
        "{error:?}"
    );
    let status = ingest
        .get_job(v1::GetJobRequest {
            job_id: job_id.clone(),
        })
        .await?
        .into_inner()
        .status
        .expect("status");
    assert!(!status.message.contains("root:"), "{}", status.message);
    let notices = suite
        .notifier(Some(&suite.tokens.reader))
        .list_notifications(v1::ListNotificationsRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .notifications;
    assert!(
        notices
            .iter()
            .all(|n| !n.event.as_ref().is_some_and(|e| e.detail.contains("root:")))
    );

    // A FIFO and /dev/zero are not regular files: refused at once, never read forever.
    let fifo = suite.import_dir().join("pipe.ldif");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    assert!(made.success(), "mkfifo is part of coreutils");
    std::os::unix::fs::symlink("/dev/zero", suite.import_dir().join("zero.ldif"))?;
    for (path, said) in [
        ("pipe.ldif", "not a regular file"),
        ("zero.ldif", "outside the import directory"),
    ] {
        let job_id = ingest
            .create_job(v1::CreateJobRequest {
                spec: Some(file_job(path)),
            })
            .await?
            .into_inner()
            .job_id;
        let started = Instant::now();
        let error = ingest
            .trigger_cycle(v1::TriggerCycleRequest { job_id })
            .await
            .expect_err("refused");
        assert!(error.message().contains(said), "{path}: {error:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path} was not read"
        );
    }
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_jobs_connect_only_to_allowed_hosts() -> anyhow::Result<()> {
    let suite = Suite::start_with(SuiteOptions {
        ldap_allowed_hosts: Some("ldap.corp.example:636,127.0.0.1:10389".into()),
        ..Default::default()
    })
    .await?;
    suite.add_secret("bind", "pw")?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let refused = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(ldap_job("ldap://127.0.0.1:389", |s| {
                s.password_secret = "bind".into()
            })),
        })
        .await
        .expect_err("not an allowed host");
    assert_eq!(field_of(&refused), "spec.source.ldap.url");
    assert!(refused.message().contains("SYNCGUARD_LDAP_ALLOWED_HOSTS"));
    ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(ldap_job("ldaps://ldap.corp.example", |s| {
                s.password_secret = "bind".into()
            })),
        })
        .await?;
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_token_cannot_get_around_a_quarantine() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut spec = push_job("guarded");
    spec.protection_rules = vec![v1::ProtectionRule {
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
    let held = push_snapshot(
        &mut ingest,
        &job_id,
        &directory(20, 0).into_iter().skip(6).collect::<Vec<_>>(),
    )
    .await?;
    assert_eq!(held.cycle_state, CycleState::Quarantined as i32);

    // Asking retention to apply a held cycle applies nothing: it applies only what the gate
    // decided.
    suite
        .retention(Some(&suite.tokens.service))
        .apply_cycle(v1::ApplyCycleRequest {
            cycle_id: held.cycle_id.clone(),
            ..Default::default()
        })
        .await?;
    // Nor does the form the gate's own wake-up takes, with the job named; a job that is not
    // an id is refused by name.
    suite
        .retention(Some(&suite.tokens.service))
        .apply_cycle(v1::ApplyCycleRequest {
            cycle_id: held.cycle_id.clone(),
            job_id: job_id.clone(),
        })
        .await?;
    let refused = suite
        .retention(Some(&suite.tokens.service))
        .apply_cycle(v1::ApplyCycleRequest {
            cycle_id: held.cycle_id.clone(),
            job_id: "not-a-job".into(),
        })
        .await
        .expect_err("a malformed job id is refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("job_id"),
        "{}",
        refused.message()
    );
    let cycle = suite
        .stager(Some(&suite.tokens.reader))
        .get_cycle(v1::GetCycleRequest {
            cycle_id: held.cycle_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(cycle.state, CycleState::Quarantined as i32);
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert_eq!(live.len(), 20, "nothing held was deleted");

    // Protection is recorded once, at creation: the service token cannot reset it.
    let reset = suite
        .gate(Some(&suite.tokens.service))
        .init_protection(v1::InitProtectionRequest {
            job_id: job_id.clone(),
        })
        .await
        .expect_err("already recorded");
    assert_eq!(reset.code(), Code::FailedPrecondition);
    // Nor decide the quarantine.
    let quarantine = suite
        .gate(Some(&suite.tokens.reader))
        .get_quarantine(v1::GetQuarantineRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let allow = suite
        .gate(Some(&suite.tokens.service))
        .allow_deletes(v1::AllowDeletesRequest {
            quarantine_id: quarantine.quarantine_id.clone(),
            digest: quarantine.digest.clone(),
            reason: "service".into(),
            anchors: vec![],
        })
        .await
        .expect_err("the service token is not an approver");
    assert_eq!(allow.code(), Code::PermissionDenied);
    // Nor mail anyone anything (Notify only names recorded events; see mail tests).
    let invented = suite
        .notifier(Some(&suite.tokens.service))
        .notify(v1::NotifyRequest {
            kind: v1::NotificationKind::QuarantineAllowed as i32,
            job_id: job_id.clone(),
            quarantine_id: quarantine.quarantine_id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("the quarantine is not decided");
    assert_eq!(invented.code(), Code::InvalidArgument);

    // One person is one approver, whatever roles their tokens carry.
    let mut two = push_job("two approvers");
    two.required_approvals = 2;
    two.protection_rules = vec![v1::ProtectionRule {
        max_count: Some(1),
        ..Default::default()
    }];
    let guarded = ingest
        .create_job(v1::CreateJobRequest { spec: Some(two) })
        .await?
        .into_inner()
        .job_id;
    push_snapshot(&mut ingest, &guarded, &directory(5, 0)).await?;
    push_snapshot(&mut ingest, &guarded, &directory(2, 0)).await?;
    let quarantine = suite
        .gate(Some(&suite.tokens.reader))
        .get_quarantine(v1::GetQuarantineRequest {
            job_id: guarded.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let request = v1::AllowDeletesRequest {
        quarantine_id: quarantine.quarantine_id.clone(),
        digest: quarantine.digest.clone(),
        reason: "leavers".into(),
        anchors: vec![],
    };
    let first = suite
        .gate(Some(&suite.tokens.approver))
        .allow_deletes(request.clone())
        .await?
        .into_inner();
    assert!(!first.applied, "a second approver is needed");
    let again = suite
        .gate(Some(&suite.tokens.alice_admin))
        .allow_deletes(request)
        .await
        .expect_err("alice with another token is still alice");
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(again.message().contains("alice"), "{again:?}");

    // An operator cannot weaken the guard of a job.
    let mut weaker = push_job("two approvers");
    weaker.required_approvals = 1;
    let refused = ingest
        .update_job(v1::UpdateJobRequest {
            job_id: guarded.clone(),
            spec: Some(weaker),
            reason: "faster".into(),
        })
        .await
        .expect_err("an operator may not lower the approvals");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("required_approvals"),
        "{refused:?}"
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_pushes_leave_ingest_serving_and_keep_nothing() -> anyhow::Result<()> {
    let suite = Suite::start_with(SuiteOptions {
        push_idle: Duration::from_secs(2),
        max_pushes: 2,
        ..Default::default()
    })
    .await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("stalled")),
        })
        .await?
        .into_inner()
        .job_id;
    // Ten pushes send their header and a batch, then nothing.
    let mut stalled = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..10 {
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let mut messages = snapshot_messages(&job_id, &directory(10, 0), 5);
        messages.truncate(2);
        for message in messages {
            sender.send(message).await?;
        }
        senders.push(sender);
        let mut client = suite.ingest(Some(&suite.tokens.operator));
        stalled.push(tokio::spawn(async move {
            client
                .push_snapshot(tokio_stream::wrappers::ReceiverStream::new(receiver))
                .await
        }));
    }
    // Meanwhile ingest answers everything else at once.
    let started = Instant::now();
    ingest
        .get_job(v1::GetJobRequest {
            job_id: job_id.clone(),
        })
        .await?;
    ingest
        .push_delta(v1::PushDeltaRequest {
            job_id: job_id.clone(),
            idempotency_key: "while-stalled".into(),
            upserts: directory(1, 0),
            deleted_anchors: vec![],
        })
        .await?;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "not blocked by the stalled pushes"
    );
    let mut codes = Vec::new();
    for push in stalled {
        codes.push(push.await?.expect_err("a stalled push fails").code());
    }
    drop(senders);
    codes.sort_by_key(|code| *code as i32);
    let exhausted = codes
        .iter()
        .filter(|c| **c == Code::ResourceExhausted)
        .count();
    let aborted = codes.iter().filter(|c| **c == Code::Aborted).count();
    assert_eq!((exhausted, aborted), (8, 2), "{codes:?}");
    let mut conn = suite.database().connect().await?;
    let (kept,): (i64,) = sqlx::query_as("SELECT count(*) FROM snapshots WHERE kind = 'full'")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(kept, 0, "nothing of a stalled push is kept");
    drop(conn);
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_base_dns_match_literally() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    for (bases, expected) in [
        (vec!["%".to_owned()], 0),
        (vec!["ou=p_ople,dc=example,dc=org".to_owned()], 0),
        (vec!["OU=People, DC=example,DC=org".to_owned()], 10),
    ] {
        let mut spec = push_job("literal scope");
        spec.scope = Some(v1::ScopeRules {
            base_dns: bases.clone(),
            ..Default::default()
        });
        let job_id = ingest
            .create_job(v1::CreateJobRequest { spec: Some(spec) })
            .await?
            .into_inner()
            .job_id;
        push_snapshot(&mut ingest, &job_id, &directory(10, 0)).await?;
        let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
        assert_eq!(live.len(), expected, "{bases:?}");
    }
    suite.stop().await
}
