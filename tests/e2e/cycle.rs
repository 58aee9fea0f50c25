//! One sync cycle end to end: push, diff, stage, decide, apply, log; all through gRPC.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use syncguard_e2e::directory::{directory, push_snapshot, snapshot_messages, user};
use syncguard_e2e::{Authed, Suite, wait_for};
use syncguard_proto::v1::retention_service_client::RetentionServiceClient;
use syncguard_proto::v1::{
    self, ActionKind, ActionReason, ActionStatus, CycleState, LogActionFilter, ObjectType,
};
use tonic::Code;

use crate::jobs::push_job;

/// A push job scoped to the people and groups OUs.
fn scoped_job(name: &str) -> v1::JobSpec {
    let mut spec = push_job(name);
    spec.scope = Some(v1::ScopeRules {
        base_dns: vec![
            "ou=people,dc=example,dc=org".into(),
            "ou=groups,dc=example,dc=org".into(),
        ],
        ..Default::default()
    });
    spec
}

pub(crate) async fn create_job(suite: &Suite, spec: v1::JobSpec) -> anyhow::Result<String> {
    Ok(suite
        .ingest(Some(&suite.tokens.operator))
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .job_id)
}

/// Every live object of a job, by anchor.
pub async fn live_objects(
    retention: &mut RetentionServiceClient<Authed>,
    job_id: &str,
) -> anyhow::Result<BTreeMap<String, v1::DirectoryObject>> {
    let mut objects = BTreeMap::new();
    let mut token = String::new();
    loop {
        let page = retention
            .list_objects(v1::ListObjectsRequest {
                job_id: job_id.into(),
                page: Some(v1::PageRequest {
                    page_size: 1000,
                    page_token: token,
                }),
                ..Default::default()
            })
            .await?
            .into_inner();
        for object in page.objects {
            objects.insert(object.anchor.clone(), object);
        }
        if page.next_page_token.is_empty() {
            return Ok(objects);
        }
        token = page.next_page_token;
    }
}

async fn all_staged(suite: &Suite, cycle_id: &str) -> anyhow::Result<Vec<v1::StagedAction>> {
    let mut stager = suite.stager(Some(&suite.tokens.reader));
    let mut actions = Vec::new();
    let mut token = String::new();
    loop {
        let page = stager
            .list_staged_actions(v1::ListStagedActionsRequest {
                cycle_id: cycle_id.into(),
                actions: vec![],
                page: Some(v1::PageRequest {
                    page_size: 1000,
                    page_token: token,
                }),
            })
            .await?
            .into_inner();
        actions.extend(page.actions);
        if page.next_page_token.is_empty() {
            return Ok(actions);
        }
        token = page.next_page_token;
    }
}

fn anchors(range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(|n| format!("u-{n:05}")).collect()
}

/// A first load (the job has no objects yet) stages one create per wanted object, named as
/// later cycles name their actions (display name, else common name, else anchor); objects
/// out of scope or marked deleted in the source get none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_load_stages_one_named_create_per_wanted_object() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job_id = create_job(&suite, scoped_job("first load")).await?;
    let mut named = user(1);
    named.attributes.insert(
        "displayName".into(),
        v1::AttributeValues {
            values: vec!["Ada Lovelace".into()],
        },
    );
    let mut bare = user(3);
    bare.attributes.remove("cn");
    let mut gone = user(4);
    gone.deleted_in_source = true;
    let mut outside = user(5);
    outside.distinguished_name = "uid=user5,ou=contractors,dc=example,dc=org".into();
    let objects = [named, user(2), bare, gone, outside];
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let pushed = push_snapshot(&mut ingest, &job_id, &objects).await?;
    assert_eq!(
        pushed.cycle_state,
        CycleState::Completed as i32,
        "{pushed:?}"
    );

    let mut staged: Vec<(String, String, i32, i32, i32)> = all_staged(&suite, &pushed.cycle_id)
        .await?
        .into_iter()
        .map(|a| (a.anchor, a.display_name, a.action, a.reason, a.status))
        .collect();
    staged.sort();
    let create = |anchor: &str, name: &str| {
        (
            anchor.to_owned(),
            name.to_owned(),
            ActionKind::Create as i32,
            ActionReason::NewInSource as i32,
            ActionStatus::Applied as i32,
        )
    };
    assert_eq!(
        staged,
        vec![
            create("u-00001", "Ada Lovelace"),
            create("u-00002", "User 2"),
            create("u-00003", "u-00003"),
        ]
    );
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert_eq!(
        live.keys().map(String::as_str).collect::<Vec<_>>(),
        ["u-00001", "u-00002", "u-00003"]
    );
    suite.stop().await
}

/// A delete acts on the object the target holds: when the source marks an anchor deleted
/// and now calls it a group, the user the target holds under that anchor is soft-deleted
/// (the action names the target's type), not logged as applied while it stays live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_removes_the_target_object_whatever_type_the_source_now_gives_it()
-> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job_id = create_job(&suite, push_job("retyped")).await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    push_snapshot(&mut ingest, &job_id, &(1..=4).map(user).collect::<Vec<_>>()).await?;
    let mut retyped = user(4);
    retyped.object_type = ObjectType::Group as i32;
    retyped.deleted_in_source = true;
    let objects = [user(1), user(2), user(3), retyped];
    let pushed = push_snapshot(&mut ingest, &job_id, &objects).await?;
    assert_eq!(
        pushed.cycle_state,
        CycleState::Completed as i32,
        "{pushed:?}"
    );
    let staged: Vec<(String, i32, i32, i32)> = all_staged(&suite, &pushed.cycle_id)
        .await?
        .into_iter()
        .map(|a| (a.anchor, a.action, a.object_type, a.status))
        .collect();
    assert_eq!(
        staged,
        vec![(
            "u-00004".to_owned(),
            ActionKind::Delete as i32,
            ObjectType::User as i32,
            ActionStatus::Applied as i32,
        )]
    );
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert_eq!(
        live.keys().map(String::as_str).collect::<Vec<_>>(),
        ["u-00001", "u-00002", "u-00003"]
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_snapshot_stages_applies_and_logs_exactly_its_changes() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job_id = create_job(&suite, scoped_job("hr feed")).await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let mut retention = suite.retention(Some(&suite.tokens.reader));

    // First cycle: 1,000 users and 50 groups, all created.
    let first = directory(1000, 50);
    let pushed = push_snapshot(&mut ingest, &job_id, &first).await?;
    assert_eq!(pushed.objects_received, 1050);
    assert_eq!(
        pushed.cycle_state,
        CycleState::Completed as i32,
        "{pushed:?}"
    );
    let live = live_objects(&mut retention, &job_id).await?;
    assert_eq!(live.len(), 1050);
    assert_eq!(
        live["g-00003"].member_anchors,
        anchors(60..80).into_iter().collect::<Vec<_>>()
    );
    let first_ids: BTreeMap<String, String> = live
        .iter()
        .map(|(anchor, object)| (anchor.clone(), object.object_id.clone()))
        .collect();

    // Second snapshot: users 0-9 removed, 10-19 disabled, 20-29 retitled, 30-32 moved out of
    // the scoped OU, and users 1000-1009 new.
    let mut second: Vec<v1::SourceObject> = directory(1000, 50)
        .into_iter()
        .filter(|object| !anchors(0..10).contains(&object.anchor))
        .collect();
    for object in &mut second {
        let n: usize = object.anchor[2..].parse().unwrap_or(usize::MAX);
        if object.object_type != ObjectType::User as i32 {
            continue;
        }
        if (10..20).contains(&n) {
            object.enabled = false;
        }
        if (20..30).contains(&n) {
            object.attributes.insert(
                "title".into(),
                v1::AttributeValues {
                    values: vec!["Staff Engineer".into()],
                },
            );
        }
        if (30..33).contains(&n) {
            object.distinguished_name = format!("uid=user{n},ou=former,dc=example,dc=org");
        }
    }
    second.extend((1000..1010).map(user));
    let pushed = push_snapshot(&mut ingest, &job_id, &second).await?;
    assert_eq!(
        pushed.cycle_state,
        CycleState::Completed as i32,
        "{pushed:?}"
    );

    // Exactly those actions were staged, with their reasons.
    let staged = all_staged(&suite, &pushed.cycle_id).await?;
    let mut by_kind: BTreeMap<(i32, i32), BTreeSet<String>> = BTreeMap::new();
    for action in &staged {
        assert_eq!(action.status, ActionStatus::Applied as i32, "{action:?}");
        by_kind
            .entry((action.action, action.reason))
            .or_default()
            .insert(action.anchor.clone());
    }
    let expected: BTreeMap<(i32, i32), BTreeSet<String>> = [
        (
            (ActionKind::Delete, ActionReason::RemovedFromSource),
            anchors(0..10),
        ),
        (
            (ActionKind::Disable, ActionReason::DisabledInSource),
            anchors(10..20),
        ),
        (
            (ActionKind::Update, ActionReason::AttributesChanged),
            anchors(20..30),
        ),
        (
            (ActionKind::Delete, ActionReason::OutOfScope),
            anchors(30..33),
        ),
        (
            (ActionKind::Create, ActionReason::NewInSource),
            anchors(1000..1010),
        ),
    ]
    .into_iter()
    .map(|((kind, reason), set)| ((kind as i32, reason as i32), set))
    .collect();
    assert_eq!(by_kind, expected);
    let update = staged
        .iter()
        .find(|a| a.anchor == "u-00020")
        .expect("update staged");
    assert_eq!(update.changed_attributes, ["title"]);

    // The target shows them: same object ids for survivors, new ids for new users.
    let live = live_objects(&mut retention, &job_id).await?;
    assert_eq!(live.len(), 1050 - 13 + 10);
    assert!(
        anchors(0..10)
            .iter()
            .chain(anchors(30..33).iter())
            .all(|anchor| !live.contains_key(anchor))
    );
    assert!(anchors(10..20).iter().all(|anchor| !live[anchor].enabled));
    assert_eq!(
        live["u-00025"].attributes["title"].values,
        ["Staff Engineer"]
    );
    assert_eq!(live["u-00025"].object_id, first_ids["u-00025"]);
    assert!(
        anchors(1000..1010)
            .iter()
            .all(|anchor| live.contains_key(anchor) && !first_ids.contains_key(anchor))
    );
    let removed = retention
        .get_object(v1::GetObjectRequest {
            object: Some(v1::ObjectRef {
                by: Some(v1::object_ref::By::ObjectId(first_ids["u-00003"].clone())),
            }),
            attributes: vec![],
        })
        .await?
        .into_inner();
    assert!(
        removed.deleted_at.is_some() && removed.restorable_until.is_some(),
        "soft-deleted: {removed:?}"
    );

    // The cycle reports its counts and phases.
    let cycle = suite
        .stager(Some(&suite.tokens.reader))
        .get_cycle(v1::GetCycleRequest {
            cycle_id: pushed.cycle_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(cycle.state, CycleState::Completed as i32);
    assert_eq!(cycle.source_objects, second.len() as u64);
    let deletes: u64 = cycle
        .counts
        .iter()
        .filter(|count| count.action == ActionKind::Delete as i32)
        .map(|count| count.count)
        .sum();
    assert_eq!(deletes, 13);
    let phases: Vec<&str> = cycle
        .phases
        .iter()
        .map(|phase| phase.phase.as_str())
        .collect();
    assert_eq!(phases, ["ingest", "stage", "decide", "apply"]);

    // The log answers "every delete of this cycle", newest first, with reason and actor.
    let logs = suite
        .stager(Some(&suite.tokens.reader))
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            cycle_id: pushed.cycle_id.clone(),
            action: LogActionFilter::Delete as i32,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(logs.entries.len(), 13);
    assert!(
        logs.entries
            .windows(2)
            .all(|pair| pair[0].log_id > pair[1].log_id)
    );
    assert!(
        logs.entries
            .iter()
            .all(|entry| entry.status == ActionStatus::Applied as i32
                && entry.actor.starts_with("service:gate"))
    );
    let by_anchor = suite
        .stager(Some(&suite.tokens.reader))
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            anchor: "u-00031".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let trail: Vec<&str> = by_anchor
        .entries
        .iter()
        .map(|e| e.display_action.as_str())
        .collect();
    assert_eq!(trail, ["Delete", "PlanDelete", "Create", "PlanCreate"]);
    assert_eq!(by_anchor.entries[0].reason, ActionReason::OutOfScope as i32);

    let cycles = suite
        .stager(Some(&suite.tokens.reader))
        .list_cycles(v1::ListCyclesRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .cycles;
    assert_eq!(cycles.len(), 2);
    assert_eq!(cycles[0].cycle_id, pushed.cycle_id, "newest first");
    suite.stop().await
}

async fn cycle_count(suite: &Suite, job_id: &str) -> anyhow::Result<usize> {
    Ok(suite
        .stager(Some(&suite.tokens.reader))
        .list_cycles(v1::ListCyclesRequest {
            job_id: job_id.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .cycles
        .len())
}

/// Waits until the suite's database has no open transaction left (a cancelled push has
/// rolled back), observed in pg_stat_activity. If one stays open, the failure names each
/// open session: its service (the pools set their role as application name), state, age
/// and statement.
async fn no_open_transactions(suite: &Suite) -> anyhow::Result<()> {
    const OPEN: &str = "FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND xact_start IS NOT NULL";
    let pool = sqlx::PgPool::connect_with(suite.database().options()).await?;
    let waited = wait_for(
        "the cancelled push to roll back",
        Duration::from_secs(20),
        || {
            let pool = pool.clone();
            async move {
                let (open,): (i64,) =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) {OPEN}")))
                        .fetch_one(&pool)
                        .await
                        .ok()?;
                (open == 0).then_some(())
            }
        },
    )
    .await;
    if let Err(error) = waited {
        let sessions: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT concat_ws(' | ', application_name, state, wait_event_type || ':' || wait_event,
                              'open ' || round(extract(epoch FROM now() - xact_start)::numeric, 1) || ' s',
                              left(query, 200)) {OPEN}"
        )))
        .fetch_all(&pool)
        .await?;
        anyhow::bail!("{error}; open sessions:\n{}", sessions.join("\n"));
    }
    pool.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_cancelled_and_invalid_snapshots_leave_nothing_behind() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job_id = create_job(&suite, scoped_job("fragile feed")).await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let mut retention = suite.retention(Some(&suite.tokens.reader));
    push_snapshot(&mut ingest, &job_id, &directory(100, 5)).await?;
    let before = live_objects(&mut retention, &job_id).await?;
    assert_eq!(before.len(), 105);

    // A stream that ends without its end marker: half a directory must not look like 50 deletes.
    let half = directory(50, 0);
    let mut messages = snapshot_messages(&job_id, &half, 10);
    messages.pop();
    let broken = ingest
        .push_snapshot(tokio_stream::iter(messages))
        .await
        .expect_err("a stream without its end marker is refused");
    assert_eq!(broken.code(), Code::Aborted);
    assert!(
        broken.message().contains("without its end marker"),
        "{}",
        broken.message()
    );

    // An end marker that does not match what was sent.
    let mut messages = snapshot_messages(&job_id, &half, 10);
    if let Some(v1::PushSnapshotRequest {
        part: Some(v1::push_snapshot_request::Part::End(end)),
    }) = messages.last_mut()
    {
        end.total_objects = 100;
    }
    let short = ingest
        .push_snapshot(tokio_stream::iter(messages))
        .await
        .expect_err("a count mismatch is refused");
    assert_eq!(short.code(), Code::InvalidArgument);
    assert!(
        short
            .message()
            .contains("announced 100 objects but sent 50"),
        "{}",
        short.message()
    );

    // An invalid object, and a duplicate anchor.
    let mut invalid = directory(100, 5);
    invalid[42].object_type = 0;
    let error = push_snapshot(&mut ingest, &job_id, &invalid)
        .await
        .expect_err("an object without a type is refused");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error
            .message()
            .starts_with("objects[42].object_type (anchor u-00042)"),
        "{}",
        error.message()
    );
    let mut duplicated = directory(100, 5);
    duplicated.push(user(7));
    let error = push_snapshot(&mut ingest, &job_id, &duplicated)
        .await
        .expect_err("a duplicate anchor is refused");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error
            .message()
            .contains("\"u-00007\" appears more than once"),
        "{}",
        error.message()
    );

    // A stream the client cancels half-way.
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let mut cancelling = suite.ingest(Some(&suite.tokens.operator));
    let call = tokio::spawn(async move {
        cancelling
            .push_snapshot(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
    });
    for message in snapshot_messages(&job_id, &half, 10).into_iter().take(3) {
        sender.send(message).await?;
    }
    call.abort();
    let _ = call.await;
    drop(sender);
    no_open_transactions(&suite).await?;

    assert_eq!(
        cycle_count(&suite, &job_id).await?,
        1,
        "no failed push became a cycle"
    );
    let after = live_objects(&mut retention, &job_id).await?;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    let mut conn = suite.database().connect().await?;
    let (snapshots,): (i64,) = sqlx::query_as("SELECT count(*) FROM snapshots")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(snapshots, 1, "failed pushes leave no snapshot rows");
    drop(conn);
    suite.stop().await
}

/// A cycle too large for key probes throughout (more than 5,000 actions, most of them
/// deletes of a job whose source shrank) still gives its few updates, its sign-in block,
/// its group change and its creates the source's state: those statements probe while the
/// deletes' statements join, in one transaction with nested loops off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_cycle_of_deletes_applies_its_few_other_changes_too() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut spec = push_job("shrinking source");
    spec.protection_rules = vec![v1::ProtectionRule {
        max_count: Some(100_000),
        ..Default::default()
    }];
    let job_id = create_job(&suite, spec).await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let loaded = push_snapshot(&mut ingest, &job_id, &directory(6_000, 10)).await?;
    assert_eq!(
        loaded.cycle_state,
        CycleState::Completed as i32,
        "{loaded:?}"
    );

    // 400 users stay (50 of them retitled, one blocked from signing in), 20 arrive, 5,600
    // leave; group 0 loses its first member.
    let mut kept: Vec<v1::SourceObject> = (0..400).map(user).collect();
    for object in &mut kept[..50] {
        object.attributes.insert(
            "title".into(),
            v1::AttributeValues {
                values: vec!["Lead".into()],
            },
        );
    }
    kept[60].enabled = false;
    kept.extend((6_000..6_020).map(user));
    let mut groups = directory(400, 10).split_off(400);
    groups[0].member_anchors.remove(0);
    kept.extend(groups);
    let shrunk = push_snapshot(&mut ingest, &job_id, &kept).await?;
    assert_eq!(
        shrunk.cycle_state,
        CycleState::Completed as i32,
        "{shrunk:?}"
    );

    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    let expected: BTreeSet<String> = (0..400)
        .chain(6_000..6_020)
        .map(|n| format!("u-{n:05}"))
        .chain((0..10).map(|g| format!("g-{g:05}")))
        .collect();
    assert_eq!(live.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let title = |anchor: &str| live[anchor].attributes["title"].values.clone();
    assert_eq!(title("u-00000"), ["Lead"]);
    assert_eq!(title("u-00049"), ["Lead"]);
    assert_eq!(title("u-00050"), ["Engineer"]);
    assert!(
        !live["u-00060"].enabled,
        "the blocked user is still enabled"
    );
    assert!(live["u-06019"].enabled);
    let members: BTreeSet<String> = live["g-00000"].member_anchors.iter().cloned().collect();
    assert_eq!(members, anchors(1..20));
    suite.stop().await
}
