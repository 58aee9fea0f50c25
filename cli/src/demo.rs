//! `syncguard demo`: the product documents' story, played against a running suite.
//! Sync 1,000 users; 600 vanish from the source; the cycle is quarantined and an email goes
//! out; the held deletes are reviewed and allowed; they are soft-deleted; one is restored
//! with the same object id. With `--ldap-target` the job also writes to a real LDAP directory,
//! and each step says what the directory received (and what it did not).

use std::collections::HashMap;
use std::time::Duration;

use syncguard_proto::v1::{self, push_snapshot_request::Part};

use crate::args::DemoArgs;
use crate::client::Clients;
use crate::commands::print_quarantine;
use crate::failure::Failure;
use crate::out;
use crate::output;

fn user(n: usize) -> v1::SourceObject {
    let value = |text: String| v1::AttributeValues { values: vec![text] };
    let attributes = HashMap::from([
        ("cn".to_owned(), value(format!("Demo User {n:04}"))),
        (
            "mail".to_owned(),
            value(format!("user{n:04}@demo.example.org")),
        ),
        ("title".to_owned(), value("Engineer".into())),
    ]);
    v1::SourceObject {
        anchor: format!("DEMO-{n:05}"),
        object_type: v1::ObjectType::User as i32,
        distinguished_name: format!("uid=user{n:04},ou=people,dc=demo,dc=example"),
        attributes,
        enabled: true,
        member_anchors: Vec::new(),
        deleted_in_source: false,
    }
}

async fn push(
    clients: &mut Clients,
    job_id: &str,
    users: impl Iterator<Item = usize>,
) -> Result<v1::PushSnapshotResponse, Failure> {
    let objects: Vec<v1::SourceObject> = users.map(user).collect();
    let mut messages = vec![v1::PushSnapshotRequest {
        part: Some(Part::Header(v1::SnapshotHeader {
            job_id: job_id.into(),
            idempotency_key: String::new(),
        })),
    }];
    for chunk in objects.chunks(500) {
        messages.push(v1::PushSnapshotRequest {
            part: Some(Part::Batch(v1::ObjectBatch {
                objects: chunk.to_vec(),
            })),
        });
    }
    messages.push(v1::PushSnapshotRequest {
        part: Some(Part::End(v1::SnapshotEnd {
            total_objects: objects.len() as u64,
        })),
    });
    Ok(clients
        .ingest
        .push_snapshot(tokio_stream::iter(messages))
        .await?
        .into_inner())
}

fn step(number: u32, text: &str) -> Result<(), Failure> {
    out!("\n== {number}. {text}")
}

/// The demo job's LDAP target, when asked for.
fn ldap_target(args: &DemoArgs) -> Option<v1::JobTarget> {
    let url = args.ldap_target.clone()?;
    Some(v1::JobTarget {
        name: "directory".into(),
        kind: Some(v1::job_target::Kind::Ldap(v1::LdapTarget {
            url,
            bind_dn: args.ldap_bind_dn.clone(),
            password_secret: args.ldap_secret.clone().unwrap_or_default(),
            users_base_dn: args.ldap_users.clone(),
            groups_base_dn: args.ldap_users.clone(),
            ..Default::default()
        })),
    })
}

/// With a target: waits until the exporter has written at least `writes` objects to it and
/// has nothing pending, and returns how many it wrote. `None` without targets.
async fn exported(
    clients: &mut Clients,
    job_id: &str,
    writes: u64,
) -> Result<Option<u64>, Failure> {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let targets = clients
            .exporter
            .list_targets(v1::ListTargetsRequest {
                job_id: job_id.into(),
            })
            .await?
            .into_inner()
            .targets;
        let Some(target) = targets.first() else {
            return Ok(None);
        };
        if !target.bootstrapping && target.pending_changes == 0 && target.exported >= writes {
            return Ok(Some(target.exported));
        }
        if tokio::time::Instant::now() > give_up {
            return Err(Failure::other(format!(
                "the LDAP target did not catch up within 2 minutes: {} pending, {} written, last error: {}",
                target.pending_changes,
                target.exported,
                if target.last_error.is_empty() {
                    "none"
                } else {
                    &target.last_error
                }
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Plays the story; every step prints what happened.
pub async fn demo(clients: &mut Clients, args: DemoArgs) -> Result<(), Failure> {
    if args.remove == 0 || args.remove > args.users {
        return Err(Failure::usage("--remove must be between 1 and --users"));
    }
    step(
        1,
        "Create a job protected by the default rule (more than 500 deletes + disables per cycle)",
    )?;
    let job = clients
        .ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(v1::JobSpec {
                name: format!("demo {}", chrono::Utc::now().format("%H:%M:%S")),
                source: Some(v1::JobSource {
                    kind: Some(v1::job_source::Kind::Push(v1::PushSource {})),
                }),
                notification_recipients: vec!["identity-team@demo.example.org".into()],
                targets: ldap_target(&args).into_iter().collect(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    out!("job {}", job.job_id)?;

    step(2, &format!("Sync {} users from the source", args.users))?;
    let first = push(clients, &job.job_id, 0..args.users).await?;
    out!(
        "cycle {}: {} objects, {}",
        first.cycle_id,
        first.objects_received,
        output::cycle_state(first.cycle_state)
    )?;
    let arrived = exported(clients, &job.job_id, args.users as u64).await?;
    if let Some(arrived) = arrived {
        out!(
            "the LDAP target received {arrived} users (under {})",
            args.ldap_users
        )?;
    }

    step(
        3,
        &format!(
            "A broken export: {} users vanish from the source",
            args.remove
        ),
    )?;
    let second = push(clients, &job.job_id, args.remove..args.users).await?;
    out!(
        "cycle {}: {}",
        second.cycle_id,
        output::cycle_state(second.cycle_state)
    )?;
    let status = clients
        .ingest
        .get_job(v1::GetJobRequest {
            job_id: job.job_id.clone(),
        })
        .await?
        .into_inner()
        .status
        .unwrap_or_default();
    out!("job status: {}", status.message)?;
    if let Some(kept) = exported(clients, &job.job_id, args.users as u64).await? {
        out!(
            "the LDAP target still has all {} users: nothing of the held cycle was exported ({kept} writes so far)",
            args.users
        )?;
    }

    step(
        4,
        "The quarantine: nothing was deleted; here is what is held",
    )?;
    let quarantine = clients
        .gate
        .get_quarantine(v1::GetQuarantineRequest {
            job_id: job.job_id.clone(),
            quarantine_id: String::new(),
            page: Some(v1::PageRequest {
                page_size: 5000,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    print_quarantine(&quarantine, 10)?;
    let staged = clients
        .stager
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            job_id: job.job_id.clone(),
            action: v1::LogActionFilter::StagedDelete as i32,
            page: Some(v1::PageRequest {
                page_size: 1000,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries;
    out!("provisioning log: {} StagedDelete entries", staged.len())?;

    step(5, "The email the identity team received")?;
    let key = format!("{}:quarantine_opened", quarantine.quarantine_id);
    let mut email = None;
    for _ in 0..60 {
        let notifications = clients
            .notifier
            .list_notifications(v1::ListNotificationsRequest {
                job_id: job.job_id.clone(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .notifications;
        if let Some(notice) = notifications.iter().find(|n| n.idempotency_key == key) {
            let file = args
                .mail_dir
                .join(format!("{}.eml", notice.notification_id));
            if let Ok(text) = std::fs::read_to_string(&file) {
                email = Some((file, text));
                break;
            }
            if notice.status == v1::DeliveryStatus::Sent as i32 {
                out!(
                    "(sent over SMTP: {} to {})",
                    notice.subject,
                    notice.recipients.join(", ")
                )?;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    match email {
        Some((file, text)) => {
            out!("{}", file.display())?;
            for header in text.lines().take_while(|line| !line.is_empty()) {
                if ["From:", "To:", "Subject:", "Date:"]
                    .iter()
                    .any(|name| header.starts_with(name))
                {
                    out!("  {header}")?;
                }
            }
            out!()?;
            for line in plain_part(&text).lines() {
                out!("  {line}")?;
            }
        }
        None => out!(
            "(no mail file in {}; with SMTP, look in your mail catcher)",
            args.mail_dir.display()
        )?,
    }

    step(
        6,
        "An approver allows the deletes, quoting the digest of what was reviewed",
    )?;
    let allowed = clients
        .gate
        .allow_deletes(v1::AllowDeletesRequest {
            quarantine_id: quarantine.quarantine_id.clone(),
            digest: quarantine.digest.clone(),
            reason: "demo: the leavers were confirmed by HR".into(),
            anchors: Vec::new(),
        })
        .await?
        .into_inner();
    out!("applied {} deletes", allowed.actions_applied)?;
    let written = (args.users + args.remove) as u64;
    if exported(clients, &job.job_id, written).await?.is_some() {
        out!(
            "the LDAP target removed the {} allowed leavers: {} users remain there",
            args.remove,
            args.users - args.remove
        )?;
    }

    step(7, "They are soft-deleted, restorable for the job's 30 days")?;
    let deleted = clients
        .retention
        .list_deleted_objects(v1::ListDeletedObjectsRequest {
            job_id: job.job_id.clone(),
            page: Some(v1::PageRequest {
                page_size: 1000,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await?
        .into_inner()
        .objects;
    out!("{} soft-deleted objects", deleted.len())?;
    let Some(first_deleted) = deleted.first().cloned() else {
        return Err(Failure::other("no soft-deleted object to restore"));
    };
    out!(
        "e.g. {} ({}), object id {}, restorable until {}",
        output::display_name(&first_deleted),
        first_deleted.anchor,
        first_deleted.object_id,
        output::time(first_deleted.restorable_until.as_ref())
    )?;

    step(8, "Restore one: the same object id comes back")?;
    let restored = clients
        .retention
        .restore_object(v1::RestoreObjectRequest {
            object: Some(v1::ObjectRef {
                by: Some(v1::object_ref::By::ObjectId(
                    first_deleted.object_id.clone(),
                )),
            }),
            reason: "demo: deleted by mistake".into(),
        })
        .await?
        .into_inner();
    out!(
        "restored {} with object id {} ({})",
        output::display_name(&restored),
        restored.object_id,
        if restored.object_id == first_deleted.object_id {
            "the same object id"
        } else {
            "a DIFFERENT object id"
        }
    )?;
    if exported(clients, &job.job_id, written + 1).await?.is_some() {
        out!("and it is back in the LDAP target")?;
    }
    out!("\ndemo complete: job {}", job.job_id)?;
    Ok(())
}

/// The text/plain part of a MIME message, quoted-printable decoded.
fn plain_part(message: &str) -> String {
    let mut lines = message.lines();
    let mut encoded = String::new();
    if lines
        .by_ref()
        .any(|line| line.starts_with("Content-Type: text/plain"))
    {
        // Skip the part's remaining headers.
        for line in lines.by_ref() {
            if line.is_empty() {
                break;
            }
        }
        for line in lines {
            if line.starts_with("--") {
                break;
            }
            encoded.push_str(line);
            encoded.push('\n');
        }
    }
    decode_quoted_printable(&encoded)
}

fn decode_quoted_printable(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'=' if bytes.get(index + 1) == Some(&b'\n') => index += 2,
            b'=' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        index += 3;
                    }
                    None => {
                        out.push(b'=');
                        index += 1;
                    }
                }
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
