//! `RetentionService/WatchChanges`, as a backend following a job would use it: every applied
//! change once from a cursor, live changes as they commit, heartbeats on an idle stream,
//! nothing of a held cycle until it is allowed, nothing of a rejected one, and OUT_OF_RANGE
//! naming the oldest cursor kept once retention dropped the one asked for.

use std::time::Duration;

use syncguard_e2e::directory::{directory, push_snapshot, user};
use syncguard_e2e::{Suite, SuiteOptions, TestDatabase, wait_for};
use syncguard_proto::v1::watch_changes_response::Event;
use syncguard_proto::v1::{self, ChangeKind, CycleState};
use tonic::Code;

use crate::jobs::push_job;

/// Every change after `after` committed before the call, read to the stream's end.
async fn changes_until_now(
    suite: &Suite,
    job_id: &str,
    after: &str,
) -> Result<Vec<v1::DirectoryChange>, tonic::Status> {
    let mut stream = suite
        .retention(Some(&suite.tokens.reader))
        .watch_changes(v1::WatchChangesRequest {
            job_id: job_id.into(),
            after: after.into(),
            until_now: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut changes = Vec::new();
    while let Some(message) = stream.message().await? {
        if let Some(Event::Change(change)) = message.event {
            changes.push(change);
        }
    }
    Ok(changes)
}

/// `change` is an update of `anchor` that changed only its title, to `title`.
fn assert_title_update(change: &v1::DirectoryChange, anchor: &str, title: &str) {
    assert_eq!(change.kind(), ChangeKind::Update);
    assert_eq!(change.changed_attributes, vec!["title".to_owned()]);
    let object = change.object.clone().unwrap_or_default();
    assert_eq!(object.anchor, anchor);
    assert_eq!(object.attributes["title"].values, vec![title.to_owned()]);
}

/// The title a change's object carries.
fn object_title(change: &v1::DirectoryChange) -> v1::AttributeValues {
    change
        .object
        .as_ref()
        .and_then(|object| object.attributes.get("title").cloned())
        .unwrap_or_default()
}

fn kinds(changes: &[v1::DirectoryChange]) -> Vec<(ChangeKind, String)> {
    changes
        .iter()
        .map(|change| {
            (
                change.kind(),
                change
                    .object
                    .as_ref()
                    .map(|object| object.anchor.clone())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn without(count: usize, gone: std::ops::Range<usize>) -> Vec<v1::SourceObject> {
    directory(count, 0)
        .into_iter()
        .filter(|o| !gone.clone().any(|n| o.anchor == format!("u-{n:05}")))
        .collect()
}

async fn decide(suite: &Suite, job_id: &str, allow: bool) -> anyhow::Result<()> {
    let mut gate = suite.gate(Some(&suite.tokens.approver));
    let quarantine = gate
        .get_quarantine(v1::GetQuarantineRequest {
            job_id: job_id.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    if allow {
        gate.allow_deletes(v1::AllowDeletesRequest {
            quarantine_id: quarantine.quarantine_id,
            digest: quarantine.digest,
            reason: "leavers confirmed".into(),
            anchors: Vec::new(),
        })
        .await?;
    } else {
        gate.reject_deletes(v1::RejectDeletesRequest {
            quarantine_id: quarantine.quarantine_id,
            digest: quarantine.digest,
            reason: "a broken export".into(),
            anchors: Vec::new(),
        })
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_gets_every_applied_change_once_and_held_ones_only_after_the_allow()
-> anyhow::Result<()> {
    let options = SuiteOptions {
        maintenance_interval: Duration::from_millis(300),
        ..Default::default()
    };
    let clock = options.retention_clock.clone();
    let suite = Suite::start_with(options).await?;
    let mut spec = push_job("watched");
    spec.protection_rules = vec![v1::ProtectionRule {
        name: "few deletes".into(),
        counted_actions: vec![v1::ActionKind::Delete as i32],
        max_count: Some(3),
        ..Default::default()
    }];
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .job_id;
    push_snapshot(&mut ingest, &job_id, &directory(10, 0)).await?;

    // From the start: ten creates in order, each with the object's state and its own cursor.
    let loaded = changes_until_now(&suite, &job_id, "").await?;
    assert_eq!(loaded.len(), 10);
    assert!(loaded.iter().all(|c| c.kind() == ChangeKind::Create));
    assert!(loaded.iter().all(|c| {
        c.object
            .as_ref()
            .is_some_and(|o| o.attributes.contains_key("mail"))
    }));
    let mut cursors: Vec<&str> = loaded.iter().map(|c| c.cursor.as_str()).collect();
    cursors.dedup();
    assert_eq!(cursors.len(), 10, "one cursor per change");
    let after_load = loaded[9].cursor.clone();

    // Live: a watcher following from there sees the update as it commits, then heartbeats.
    let mut live = suite
        .retention(Some(&suite.tokens.reader))
        .watch_changes(v1::WatchChangesRequest {
            job_id: job_id.clone(),
            after: after_load.clone(),
            heartbeat_seconds: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut promoted = user(3);
    promoted.attributes.insert(
        "title".into(),
        v1::AttributeValues {
            values: vec!["Manager".into()],
        },
    );
    ingest
        .push_delta(v1::PushDeltaRequest {
            job_id: job_id.clone(),
            idempotency_key: "promotion".into(),
            upserts: vec![promoted],
            deleted_anchors: Vec::new(),
        })
        .await?;
    let update = loop {
        let message = tokio::time::timeout(Duration::from_secs(30), live.message())
            .await??
            .ok_or_else(|| anyhow::anyhow!("the live stream ended"))?;
        if let Some(Event::Change(change)) = message.event {
            break change;
        }
    };
    assert_title_update(&update, "u-00003", "Manager");
    let heartbeat = tokio::time::timeout(Duration::from_secs(10), live.message())
        .await??
        .and_then(|message| message.event);
    match heartbeat {
        Some(Event::Heartbeat(beat)) => assert_eq!(beat.cursor, update.cursor),
        other => anyhow::bail!("expected a heartbeat on the idle stream, got {other:?}"),
    }
    drop(live);

    // Resumed from the load's cursor: exactly the update, with the same cursor.
    let resumed = changes_until_now(&suite, &job_id, &after_load).await?;
    assert_eq!(
        kinds(&resumed),
        vec![(ChangeKind::Update, "u-00003".to_owned())]
    );
    assert_eq!(resumed[0].cursor, update.cursor);

    // Five leavers and a promotion are held: nothing; allowed: five soft deletes and the
    // update, in anchor order.
    let directed = |mut objects: Vec<v1::SourceObject>| {
        for object in objects.iter_mut().filter(|o| o.anchor == "u-00007") {
            object.attributes.insert(
                "title".into(),
                v1::AttributeValues {
                    values: vec!["Director".into()],
                },
            );
        }
        objects
    };
    let held = push_snapshot(&mut ingest, &job_id, &directed(without(10, 0..5))).await?;
    assert_eq!(held.cycle_state, CycleState::Quarantined as i32);
    assert!(
        changes_until_now(&suite, &job_id, &update.cursor)
            .await?
            .is_empty()
    );
    decide(&suite, &job_id, true).await?;
    let mut deleted = changes_until_now(&suite, &job_id, &update.cursor).await?;
    assert_eq!(deleted.len(), 6);
    let promotion = deleted.pop().unwrap_or_default();
    assert_title_update(&promotion, "u-00007", "Director");
    assert!(
        deleted
            .iter()
            .all(|c| c.kind() == ChangeKind::SoftDelete && !c.cycle_id.is_empty())
    );
    // Each in anchor order, carrying the object it removed as it last stood: the id and name
    // it was created with (the load's changes) and its attributes (u-00003 promoted since).
    for (n, change) in deleted.iter().enumerate() {
        let object = change.object.clone().unwrap_or_default();
        let created = loaded[n].object.clone().unwrap_or_default();
        let mut last = created.attributes.clone();
        if n == 3 {
            last.insert("title".into(), object_title(&update));
        }
        assert_eq!(object.anchor, format!("u-{n:05}"));
        assert_eq!(object.object_id, created.object_id);
        assert_eq!(object.distinguished_name, created.distinguished_name);
        assert_eq!(object.attributes, last);
    }
    let after_allow = promotion.cursor.clone();

    // Three more leavers and a fourth, rejected: never in the feed.
    let rejected = push_snapshot(&mut ingest, &job_id, &without(10, 0..9)).await?;
    assert_eq!(rejected.cycle_state, CycleState::Quarantined as i32);
    decide(&suite, &job_id, false).await?;
    wait_for(
        "the rejected cycle to close",
        Duration::from_secs(30),
        || {
            let mut stager = suite.stager(Some(&suite.tokens.reader));
            let cycle_id = rejected.cycle_id.clone();
            async move {
                let cycle = stager
                    .get_cycle(v1::GetCycleRequest { cycle_id })
                    .await
                    .ok()?
                    .into_inner();
                (cycle.state != CycleState::Quarantined as i32).then_some(())
            }
        },
    )
    .await?;
    assert!(
        changes_until_now(&suite, &job_id, &after_allow)
            .await?
            .is_empty()
    );

    // Retention drops the feed's old changes: a cursor from before is OUT_OF_RANGE and the
    // answer names the oldest cursor still kept; an empty cursor starts from there.
    clock.advance(chrono::Duration::days(31));
    let refused = wait_for("the feed pruned", Duration::from_secs(30), || {
        let suite = &suite;
        let job_id = job_id.clone();
        let after_load = after_load.clone();
        async move { changes_until_now(suite, &job_id, &after_load).await.err() }
    })
    .await?;
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert!(
        refused.message().contains("oldest cursor still kept is"),
        "{}",
        refused.message()
    );
    changes_until_now(&suite, &job_id, "").await?;

    // A cursor that is not one is named as the field at fault.
    let bad = changes_until_now(&suite, &job_id, "yesterday")
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("after"), "{}", bad.message());
    suite.stop().await
}

/// Retention drops the feed's old changes oldest batch first, in steps of at most 50 batches,
/// and never past a batch younger than the cutoff: a reader resuming from a cursor in it must
/// still find it. Every change of a batch carries the one time its writer bound for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_is_pruned_from_its_oldest_batch_up_to_the_first_younger_one() -> anyhow::Result<()>
{
    let database = TestDatabase::create().await?;
    syncguard_store::migrate(&database.options()).await?;
    let pool = sqlx::PgPool::connect_with(database.options()).await?;
    let now = chrono::Utc::now();
    let keep = chrono::Duration::days(30);
    // 120 batches of three changes, 40 days old, but batch 70 one day old.
    sqlx::query(
        "INSERT INTO directory_changes (batch, position, job_id, object_id, anchor, object_type, change, at)
         SELECT b, p, $1, gen_random_uuid(), 'a-' || b || '-' || p, 'user', 'create',
                $2 - CASE WHEN b = 70 THEN interval '1 day' ELSE interval '40 days' END
         FROM generate_series(1, 120) b, generate_series(1, 3) p",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(now)
    .execute(&pool)
    .await?;
    let kept = || async {
        sqlx::query_as::<_, (Option<i64>, i64, i64)>(
            "SELECT min(batch), count(*), (SELECT pruned_through FROM feed_clock) FROM directory_changes",
        )
        .fetch_one(&pool)
        .await
    };

    let dropped = syncguard_retention::feed::prune(&pool, now, keep).await?;
    assert_eq!(dropped, 69 * 3, "batches 1 to 69, in two steps");
    assert_eq!(kept().await?, (Some(70), 51 * 3, 69), "from batch 70 on");

    // Once batch 70 is old as well, the rest goes.
    let later = now + keep;
    let dropped = syncguard_retention::feed::prune(&pool, later, keep).await?;
    assert_eq!(dropped, 51 * 3);
    assert_eq!(kept().await?, (None, 0, 120));
    pool.close().await;
    database.drop_database().await
}
