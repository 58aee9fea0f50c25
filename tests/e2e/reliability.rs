//! Reliability: concurrent writers, retries after a lost answer, several instances of each
//! service, and the cases that used to lose data (memberships of a restored user, a rejected
//! disable that came back, an AD export).

use std::collections::BTreeSet;
use std::time::Duration;

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::directory::{directory, group, push_snapshot, user};
use syncguard_e2e::{Suite, SuiteOptions, wait_for};
use syncguard_proto::v1::{self, CycleState};

use crate::cycle::live_objects;
use crate::jobs::push_job;

/// Writers per job and deltas per writer in the concurrent-delta test.
const WRITERS_PER_JOB: usize = 4;
const DELTAS_PER_WRITER: usize = 10;
const JOBS: usize = 5;

fn writer_user(writer: usize, n: usize) -> v1::SourceObject {
    let mut object = user(writer * 1000 + n);
    object.anchor = format!("w{writer}-{n:03}");
    object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deltas_are_each_applied_once_in_order_and_nothing_is_lost() -> anyhow::Result<()>
{
    let suite = Suite::start().await?;
    let mut jobs = Vec::new();
    for n in 0..JOBS {
        let job_id = suite
            .ingest(Some(&suite.tokens.operator))
            .create_job(v1::CreateJobRequest {
                spec: Some(push_job(&format!("concurrent {n}"))),
            })
            .await?
            .into_inner()
            .job_id;
        push_snapshot(
            &mut suite.ingest(Some(&suite.tokens.operator)),
            &job_id,
            &directory(10, 0),
        )
        .await?;
        jobs.push(job_id);
    }

    // Every writer of every job at once. Writer `w` adds its own users one delta at a time,
    // each with its own idempotency key, and in its sixth delta removes its first two: only
    // the order the job received them in leaves exactly its eight others.
    let mut writers = tokio::task::JoinSet::new();
    for job_id in &jobs {
        for writer in 0..WRITERS_PER_JOB {
            let mut ingest = suite.ingest(Some(&suite.tokens.operator));
            let job_id = job_id.clone();
            writers.spawn(async move {
                let mut states = Vec::new();
                for n in 0..DELTAS_PER_WRITER {
                    let deleted_anchors = if n == 5 {
                        vec![writer_user(writer, 0).anchor, writer_user(writer, 1).anchor]
                    } else {
                        Vec::new()
                    };
                    let pushed = ingest
                        .push_delta(v1::PushDeltaRequest {
                            job_id: job_id.clone(),
                            idempotency_key: format!("{job_id}-{writer}-{n}"),
                            upserts: vec![writer_user(writer, n)],
                            deleted_anchors,
                        })
                        .await?
                        .into_inner();
                    states.push(pushed.cycle_state);
                }
                Ok::<_, tonic::Status>(states)
            });
        }
    }
    let mut acknowledged = 0;
    while let Some(outcome) = writers.join_next().await {
        for state in outcome?? {
            assert_eq!(
                state,
                CycleState::Completed as i32,
                "each delta answers once applied"
            );
            acknowledged += 1;
        }
    }
    assert_eq!(acknowledged, JOBS * WRITERS_PER_JOB * DELTAS_PER_WRITER);

    let mut stager = suite.stager(Some(&suite.tokens.reader));
    for job_id in &jobs {
        let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), job_id).await?;
        let expected: BTreeSet<String> = (0..10)
            .map(|n| user(n).anchor)
            .chain((0..WRITERS_PER_JOB).flat_map(|writer| {
                (2..DELTAS_PER_WRITER).map(move |n| writer_user(writer, n).anchor)
            }))
            .collect();
        let present: BTreeSet<String> = live.keys().cloned().collect();
        assert_eq!(
            present, expected,
            "every acknowledged object, and only those"
        );
        // Nothing was deleted but what a delta asked for.
        let deletes = stager
            .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
                job_id: job_id.clone(),
                action: v1::LogActionFilter::Delete as i32,
                ..Default::default()
            })
            .await?
            .into_inner()
            .entries;
        assert_eq!(deletes.len(), WRITERS_PER_JOB * 2, "{deletes:?}");
        assert!(
            deletes
                .iter()
                .all(|entry| entry.anchor.ends_with("-000") || entry.anchor.ends_with("-001"))
        );
        // Each delta became one cycle, applied in the order ingest acknowledged it.
        let cycles = stager
            .list_cycles(v1::ListCyclesRequest {
                job_id: job_id.clone(),
                page: Some(v1::PageRequest {
                    page_size: 1000,
                    page_token: String::new(),
                }),
                ..Default::default()
            })
            .await?
            .into_inner()
            .cycles;
        assert_eq!(cycles.len(), 1 + WRITERS_PER_JOB * DELTAS_PER_WRITER);
        assert!(
            cycles
                .iter()
                .all(|cycle| cycle.state == CycleState::Completed as i32)
        );
        let mut by_sequence = cycles.clone();
        by_sequence.sort_by_key(|cycle| cycle.sequence);
        let applied_at = |cycle: &v1::Cycle| cycle.finished_at.map(|at| (at.seconds, at.nanos));
        assert!(
            by_sequence
                .windows(2)
                .all(|pair| applied_at(&pair[0]) <= applied_at(&pair[1])),
            "applied in the order received"
        );
    }
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_accepted_while_the_stager_is_down_is_staged_when_it_returns() -> anyhow::Result<()>
{
    let mut suite = Suite::start_with(SuiteOptions {
        deferred: vec![ServiceName::Stager],
        maintenance_interval: Duration::from_secs(1),
        ..Default::default()
    })
    .await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("stager outage")),
        })
        .await?
        .into_inner()
        .job_id;
    let delta = v1::PushDeltaRequest {
        job_id: job_id.clone(),
        idempotency_key: "hr-batch-1".into(),
        upserts: vec![user(1), user(2)],
        deleted_anchors: Vec::new(),
    };
    // Accepted and recorded: the answer names the cycle and says it waits.
    let accepted = ingest.push_delta(delta.clone()).await?.into_inner();
    assert!(!accepted.cycle_id.is_empty());
    assert_eq!(accepted.cycle_state, CycleState::Queued as i32);
    // The client did not see the answer and retries: the same push, not a second one.
    let retried = ingest.push_delta(delta.clone()).await?.into_inner();
    assert_eq!(
        (&retried.cycle_id, &retried.snapshot_id),
        (&accepted.cycle_id, &accepted.snapshot_id)
    );
    assert_eq!(retried.cycle_state, CycleState::Queued as i32);

    // The stager returns and stages it on its own; a retry then reports it done.
    suite.start_service(ServiceName::Stager).await?;
    let stager = suite.stager(Some(&suite.tokens.reader));
    wait_for("the queued push to run", Duration::from_secs(30), || {
        let mut stager = stager.clone();
        let cycle_id = accepted.cycle_id.clone();
        async move {
            let cycle = stager
                .get_cycle(v1::GetCycleRequest { cycle_id })
                .await
                .ok()?
                .into_inner();
            (cycle.state == CycleState::Completed as i32).then_some(())
        }
    })
    .await?;
    let again = ingest.push_delta(delta).await?.into_inner();
    assert_eq!(again.cycle_id, accepted.cycle_id);
    assert_eq!(again.cycle_state, CycleState::Completed as i32);
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert_eq!(live.len(), 2);
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_user_gets_back_the_groups_it_left_in_the_same_export() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("leavers")),
        })
        .await?
        .into_inner()
        .job_id;
    let members = |skip: &str| -> Vec<String> {
        (0..5)
            .map(|n| user(n).anchor)
            .filter(|anchor| anchor != skip)
            .collect()
    };
    let mut full = directory(5, 0);
    full.push(group(1, members("")));
    full.push(group(2, members("")));
    push_snapshot(&mut ingest, &job_id, &full).await?;

    // The usual case: u-00003 leaves the source, and the groups drop it in the same export
    // (referential integrity), so the group update and the delete are in one cycle.
    let mut after: Vec<_> = directory(5, 0)
        .into_iter()
        .filter(|object| object.anchor != "u-00003")
        .collect();
    after.push(group(1, members("u-00003")));
    after.push(group(2, members("u-00003")));
    let pushed = push_snapshot(&mut ingest, &job_id, &after).await?;
    assert_eq!(pushed.cycle_state, CycleState::Completed as i32);
    let mut retention = suite.retention(Some(&suite.tokens.approver));
    let live = live_objects(&mut retention, &job_id).await?;
    assert!(!live["g-00001"].member_anchors.contains(&"u-00003".into()));

    let restored = retention
        .restore_object(v1::RestoreObjectRequest {
            object: Some(v1::ObjectRef {
                by: Some(v1::object_ref::By::Anchor(v1::AnchorRef {
                    job_id: job_id.clone(),
                    anchor: "u-00003".into(),
                })),
            }),
            reason: "left by mistake".into(),
        })
        .await?
        .into_inner();
    assert!(restored.deleted_at.is_none());
    let live = live_objects(&mut retention, &job_id).await?;
    for group in ["g-00001", "g-00002"] {
        assert!(
            live[group].member_anchors.contains(&"u-00003".into()),
            "{group} has u-00003 again: {:?}",
            live[group].member_anchors
        );
    }
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_disable_stays_pinned_until_the_source_enables_the_account() -> anyhow::Result<()>
{
    let suite = Suite::start().await?;
    let mut spec = push_job("blocked accounts");
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

    // Four accounts blocked in the source: four disables, over the limit of 3.
    let mut blocked = directory(20, 0);
    for object in blocked.iter_mut().take(4) {
        object.enabled = false;
    }
    let held = push_snapshot(&mut ingest, &job_id, &blocked).await?;
    assert_eq!(held.cycle_state, CycleState::Quarantined as i32);
    let mut gate = suite.gate(Some(&suite.tokens.approver));
    let quarantine = gate
        .get_quarantine(v1::GetQuarantineRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    gate.reject_deletes(v1::RejectDeletesRequest {
        quarantine_id: quarantine.quarantine_id.clone(),
        digest: quarantine.digest.clone(),
        reason: "the HR export lost the status column".into(),
        anchors: vec![],
    })
    .await?;
    assert_eq!(pin_count(&suite, &job_id).await?, 4);

    // The same export again: the accounts are still blocked, so the pins hold, nothing is
    // disabled and nothing is quarantined again.
    let again = push_snapshot(&mut ingest, &job_id, &blocked).await?;
    assert_eq!(again.cycle_state, CycleState::Completed as i32, "{again:?}");
    assert_eq!(pin_count(&suite, &job_id).await?, 4);
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert!(live.values().all(|object| object.enabled));

    // The source enables them again: the rejected change is undone, the pins clear.
    let fixed = push_snapshot(&mut ingest, &job_id, &directory(20, 0)).await?;
    assert_eq!(fixed.cycle_state, CycleState::Completed as i32);
    assert_eq!(pin_count(&suite, &job_id).await?, 0);
    suite.stop().await
}

async fn pin_count(suite: &Suite, job_id: &str) -> anyhow::Result<usize> {
    Ok(suite
        .gate(Some(&suite.tokens.reader))
        .list_pins(v1::ListPinsRequest {
            job_id: job_id.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .pins
        .len())
}

const AD_LDIF: &str = "\
dn: CN=Ada Lovelace,OU=Staff,DC=corp,DC=example
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: user
cn: Ada Lovelace
sAMAccountName: ada
objectGUID:: 3rL2kNQhQkKrAAECAwQFBg==
userAccountControl: 512

dn: CN=Bob Blocked,OU=Staff,DC=corp,DC=example
objectClass: user
cn: Bob Blocked
sAMAccountName: bob
objectGUID:: EiNFZ4mrze8BI0VniavN7w==
userAccountControl: 514

dn: CN=Staff,OU=Groups,DC=corp,DC=example
objectClass: group
cn: Staff
objectGUID:: AAAAAAAAAAAAAAAAAAAAAQ==
member: CN=Ada Lovelace,OU=Staff,DC=corp,DC=example
member: CN=Bob Blocked,OU=Staff,DC=corp,DC=example
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_directory_ldif_export_imports_with_object_guid_anchors() -> anyhow::Result<()> {
    use v1::import_file_request::Part;
    let suite = Suite::start().await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("active directory export")),
        })
        .await?
        .into_inner()
        .job_id;
    // No anchor attribute given: detected per entry (objectGUID here, as AD exports it).
    let messages = vec![
        v1::ImportFileRequest {
            part: Some(Part::Header(v1::ImportFileHeader {
                job_id: job_id.clone(),
                format: v1::FileFormat::Ldif as i32,
                file_name: "ad-export.ldif".into(),
                anchor_attribute: String::new(),
            })),
        },
        v1::ImportFileRequest {
            part: Some(Part::Chunk(AD_LDIF.as_bytes().to_vec())),
        },
    ];
    let imported = ingest
        .import_file(tokio_stream::iter(messages))
        .await?
        .into_inner();
    assert_eq!(imported.cycle_state, CycleState::Completed as i32);
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    let ada = &live["90f6b2de-21d4-4242-ab00-010203040506"];
    assert!(ada.enabled);
    let bob = &live["67452312-ab89-efcd-0123-456789abcdef"];
    assert!(!bob.enabled, "userAccountControl 514 disables the account");
    let staff = &live["00000000-0000-0000-0000-000000000001"];
    assert_eq!(
        staff.member_anchors,
        [
            "67452312-ab89-efcd-0123-456789abcdef",
            "90f6b2de-21d4-4242-ab00-010203040506"
        ]
    );
    // Naming an anchor the file does not carry is refused, naming the field.
    let messages = vec![
        v1::ImportFileRequest {
            part: Some(Part::Header(v1::ImportFileHeader {
                job_id: job_id.clone(),
                format: v1::FileFormat::Ldif as i32,
                file_name: "ad-export.ldif".into(),
                anchor_attribute: "entryUUID".into(),
            })),
        },
        v1::ImportFileRequest {
            part: Some(Part::Chunk(AD_LDIF.as_bytes().to_vec())),
        },
    ];
    let refused = ingest
        .import_file(tokio_stream::iter(messages))
        .await
        .expect_err("no entryUUID in an AD export");
    assert!(
        refused.message().contains("entryUUID: entry"),
        "{}",
        refused.message()
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_queries_by_actor_match_the_principal_name() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job_id = suite
        .ingest(Some(&suite.tokens.operator))
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("who did it")),
        })
        .await?
        .into_inner()
        .job_id;
    suite
        .gate(Some(&suite.tokens.admin))
        .set_protection(v1::SetProtectionRequest {
            job_id: job_id.clone(),
            enabled: true,
            rules: vec![],
            reason: "back to the default".into(),
        })
        .await?;
    let mut stager = suite.stager(Some(&suite.tokens.reader));
    for actor in ["ada", "admin:ada"] {
        let entries = stager
            .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
                job_id: job_id.clone(),
                actor: actor.into(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .entries;
        assert_eq!(entries.len(), 1, "asked for {actor}: {entries:?}");
        assert_eq!(entries[0].actor, "admin:ada");
    }
    let nobody = stager
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            actor: "approver:ada".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries;
    assert!(nobody.is_empty());
    suite.stop().await
}
