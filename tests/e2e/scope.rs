//! Scope rules, deprovisioning modes, deltas, idempotency and the default guard.

use syncguard_e2e::Suite;
use syncguard_e2e::directory::{directory, push_snapshot, user};
use syncguard_proto::v1::{
    self, ActionKind, ActionReason, CycleState, DeprovisionMode, JobHealth, LogActionFilter,
};

use crate::cycle::live_objects;
use crate::jobs::push_job;

async fn create(suite: &Suite, spec: v1::JobSpec) -> anyhow::Result<String> {
    Ok(suite
        .ingest(Some(&suite.tokens.operator))
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .job_id)
}

async fn staged(suite: &Suite, cycle_id: &str) -> anyhow::Result<Vec<(String, i32, i32)>> {
    let actions = suite
        .stager(Some(&suite.tokens.reader))
        .list_staged_actions(v1::ListStagedActionsRequest {
            cycle_id: cycle_id.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .actions;
    Ok(actions
        .into_iter()
        .map(|a| (a.anchor, a.action, a.reason))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_the_scoping_group_or_an_attribute_match_plans_a_delete() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut spec = push_job("app assignment");
    spec.scope = Some(v1::ScopeRules {
        attribute_matches: vec![v1::AttributeMatch {
            attribute: "Title".into(),
            values: vec!["engineer".into(), "manager".into()],
        }],
        member_of_group_anchor: "g-00000".into(),
        ..Default::default()
    });
    let job_id = create(&suite, spec).await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    // Group 0 assigns users 0-19; users 20-39 are in group 1 only and stay out of scope.
    let mut objects = directory(40, 2);
    for object in objects.iter_mut().filter(|o| o.anchor.starts_with("g-")) {
        object.attributes.insert(
            "title".into(),
            v1::AttributeValues {
                values: vec!["Engineer".into()],
            },
        );
    }
    push_snapshot(&mut ingest, &job_id, &objects).await?;
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert_eq!(live.len(), 22, "20 assigned users and 2 groups");

    // u-00003 is removed from the group, u-00004 changes title to one outside the filter.
    for object in &mut objects {
        if object.anchor == "g-00000" {
            object.member_anchors.retain(|member| member != "u-00003");
        }
        if object.anchor == "u-00004" {
            object.attributes.insert(
                "title".into(),
                v1::AttributeValues {
                    values: vec!["Contractor".into()],
                },
            );
        }
    }
    let pushed = push_snapshot(&mut ingest, &job_id, &objects).await?;
    let mut actions = staged(&suite, &pushed.cycle_id).await?;
    actions.sort();
    assert_eq!(
        actions,
        [
            (
                "g-00000".to_owned(),
                ActionKind::Update as i32,
                ActionReason::AttributesChanged as i32
            ),
            (
                "u-00003".to_owned(),
                ActionKind::Delete as i32,
                ActionReason::OutOfScope as i32
            ),
            (
                "u-00004".to_owned(),
                ActionKind::Delete as i32,
                ActionReason::OutOfScope as i32
            ),
        ]
    );
    let group_update = suite
        .stager(Some(&suite.tokens.reader))
        .list_staged_actions(v1::ListStagedActionsRequest {
            cycle_id: pushed.cycle_id.clone(),
            actions: vec![ActionKind::Update as i32],
            page: None,
        })
        .await?
        .into_inner();
    assert_eq!(group_update.actions[0].changed_attributes, ["members"]);
    suite.stop().await
}

/// Pushes a delta of `upserts`, waits for it to complete, and returns its staged actions
/// (anchor, action, reason) in order.
async fn delta_actions(
    suite: &Suite,
    job_id: &str,
    key: &str,
    upserts: Vec<v1::SourceObject>,
) -> anyhow::Result<Vec<(String, i32, i32)>> {
    let answer = suite
        .ingest(Some(&suite.tokens.operator))
        .push_delta(v1::PushDeltaRequest {
            job_id: job_id.into(),
            idempotency_key: key.into(),
            upserts,
            deleted_anchors: Vec::new(),
        })
        .await?
        .into_inner();
    anyhow::ensure!(
        answer.cycle_state == CycleState::Completed as i32,
        "delta not applied: {answer:?}"
    );
    let mut actions = staged(suite, &answer.cycle_id).await?;
    actions.sort();
    Ok(actions)
}

/// A delta on a job scoped to a group: without the group, the target's memberships decide
/// (a member's change applies, a non-member is not created); carrying the group, the
/// members it lists do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_on_a_group_scoped_job_takes_membership_from_the_target_or_the_delta()
-> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut spec = push_job("group-scoped deltas");
    spec.scope = Some(v1::ScopeRules {
        member_of_group_anchor: "g-00000".into(),
        ..Default::default()
    });
    let job_id = create(&suite, spec).await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    // Group 0 holds users 0-19; users 20-39 are in group 1 only.
    let objects = directory(40, 2);
    push_snapshot(&mut ingest, &job_id, &objects).await?;

    let mut member = user(5);
    member.distinguished_name = "uid=user5,ou=moved,dc=example,dc=org".into();
    assert_eq!(
        delta_actions(
            &suite,
            &job_id,
            "member and outsider",
            vec![member, user(25)]
        )
        .await?,
        [(
            "u-00005".to_owned(),
            ActionKind::Update as i32,
            ActionReason::AttributesChanged as i32
        )],
        "the member's change applies; the non-member stays out"
    );

    let mut scoping = objects
        .iter()
        .find(|object| object.anchor == "g-00000")
        .cloned()
        .expect("the scoping group");
    scoping.member_anchors.push("u-00025".into());
    assert_eq!(
        delta_actions(
            &suite,
            &job_id,
            "group gains a member",
            vec![scoping, user(25)]
        )
        .await?,
        [
            (
                "g-00000".to_owned(),
                ActionKind::Update as i32,
                ActionReason::AttributesChanged as i32
            ),
            (
                "u-00025".to_owned(),
                ActionKind::Create as i32,
                ActionReason::NewInSource as i32
            ),
        ],
        "the delta's group lists the new member"
    );
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert_eq!(live.len(), 23, "21 assigned users and 2 groups");
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_mode_deprovisions_by_disabling_and_enables_on_return() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut spec = push_job("disable mode");
    spec.deprovision_mode = DeprovisionMode::Disable as i32;
    let job_id = create(&suite, spec).await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    push_snapshot(&mut ingest, &job_id, &directory(10, 0)).await?;
    let without_two: Vec<_> = directory(10, 0)
        .into_iter()
        .filter(|o| o.anchor != "u-00002")
        .collect();
    let pushed = push_snapshot(&mut ingest, &job_id, &without_two).await?;
    assert_eq!(
        staged(&suite, &pushed.cycle_id).await?,
        [(
            "u-00002".to_owned(),
            ActionKind::Disable as i32,
            ActionReason::RemovedFromSource as i32
        )]
    );
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert!(!live["u-00002"].enabled, "kept but disabled");
    let again = push_snapshot(&mut ingest, &job_id, &without_two).await?;
    assert!(
        staged(&suite, &again.cycle_id).await?.is_empty(),
        "an already disabled object is left alone"
    );
    let back = push_snapshot(&mut ingest, &job_id, &directory(10, 0)).await?;
    assert_eq!(
        staged(&suite, &back.cycle_id).await?,
        [(
            "u-00002".to_owned(),
            ActionKind::Enable as i32,
            ActionReason::EnabledInSource as i32
        )]
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_apply_onto_the_latest_snapshot_and_retries_are_idempotent() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job_id = create(&suite, push_job("deltas")).await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    push_snapshot(&mut ingest, &job_id, &directory(5, 0)).await?;
    let mut changed = user(1);
    changed.attributes.insert(
        "title".into(),
        v1::AttributeValues {
            values: vec!["Lead".into()],
        },
    );
    let delta = v1::PushDeltaRequest {
        job_id: job_id.clone(),
        idempotency_key: "hr-batch-17".into(),
        upserts: vec![changed, user(7)],
        deleted_anchors: vec!["u-00004".into()],
    };
    let first = ingest.push_delta(delta.clone()).await?.into_inner();
    assert_eq!(first.cycle_state, CycleState::Completed as i32);
    let mut actions = staged(&suite, &first.cycle_id).await?;
    actions.sort();
    assert_eq!(
        actions,
        [
            (
                "u-00001".to_owned(),
                ActionKind::Update as i32,
                ActionReason::AttributesChanged as i32
            ),
            (
                "u-00004".to_owned(),
                ActionKind::Delete as i32,
                ActionReason::RemovedFromSource as i32
            ),
            (
                "u-00007".to_owned(),
                ActionKind::Create as i32,
                ActionReason::NewInSource as i32
            ),
        ]
    );
    // The same batch sent again (a retry) answers the first result and changes nothing.
    let retried = ingest.push_delta(delta).await?.into_inner();
    assert_eq!(
        (retried.snapshot_id, retried.cycle_id.clone()),
        (first.snapshot_id, first.cycle_id.clone())
    );

    // Applying a finished cycle again changes nothing either.
    let logs_before = suite
        .stager(Some(&suite.tokens.reader))
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            page: Some(v1::PageRequest {
                page_size: 1000,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries
        .len();
    suite
        .retention(Some(&suite.tokens.service))
        .apply_cycle(v1::ApplyCycleRequest {
            cycle_id: first.cycle_id.clone(),
            ..Default::default()
        })
        .await?;
    let reapplied = suite
        .stager(Some(&suite.tokens.reader))
        .get_cycle(v1::GetCycleRequest {
            cycle_id: first.cycle_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(reapplied.state, CycleState::Completed as i32);
    let logs_after = suite
        .stager(Some(&suite.tokens.reader))
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            page: Some(v1::PageRequest {
                page_size: 1000,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries
        .len();
    assert_eq!(logs_before, logs_after);
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert_eq!(live.len(), 5);
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_500_deletes_quarantine_the_cycle_and_nothing_is_applied() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job_id = create(&suite, push_job("default guard")).await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let mut retention = suite.retention(Some(&suite.tokens.reader));
    push_snapshot(&mut ingest, &job_id, &directory(1000, 0)).await?;

    // 400 users left the source and 101 are disabled: 501 destructive actions, plus one new user.
    let mut next: Vec<_> = directory(1000, 0).into_iter().skip(400).collect();
    for object in next.iter_mut().take(101) {
        object.enabled = false;
    }
    next.push(user(5000));
    let held = push_snapshot(&mut ingest, &job_id, &next).await?;
    assert_eq!(held.cycle_state, CycleState::Quarantined as i32);
    let live = live_objects(&mut retention, &job_id).await?;
    assert_eq!(
        live.len(),
        1000,
        "no action of the cycle is applied, not even the create"
    );
    assert!(live.values().all(|object| object.enabled));

    let job = ingest
        .get_job(v1::GetJobRequest {
            job_id: job_id.clone(),
        })
        .await?
        .into_inner();
    let status = job.status.expect("status");
    assert_eq!(status.health, JobHealth::Quarantined as i32);
    assert!(
        status.message.starts_with("Delete threshold exceeded"),
        "{}",
        status.message
    );
    assert!(status.message.contains("counted 501"), "{}", status.message);

    let staged_deletes = suite
        .stager(Some(&suite.tokens.reader))
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            action: LogActionFilter::StagedAction as i32,
            page: Some(v1::PageRequest {
                page_size: 1000,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries;
    assert_eq!(staged_deletes.len(), 501);
    assert_eq!(
        staged_deletes
            .iter()
            .filter(|e| e.display_action == "StagedDelete")
            .count(),
        400
    );
    assert_eq!(
        staged_deletes
            .iter()
            .filter(|e| e.display_action == "StagedDisable")
            .count(),
        101
    );

    // While quarantined, a new push is accepted and queued, not staged.
    let kept = push_snapshot(&mut ingest, &job_id, &next).await?;
    assert!(!kept.cycle_id.is_empty(), "{kept:?}");
    assert_eq!(kept.cycle_state, CycleState::Queued as i32, "{kept:?}");
    assert_eq!(kept.objects_received, next.len() as u64);
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anchor_that_reappears_is_restored_with_its_object_id_and_groups() -> anyhow::Result<()>
{
    let suite = Suite::start().await?;
    let job_id = create(&suite, push_job("recycle bin")).await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let mut retention = suite.retention(Some(&suite.tokens.reader));
    push_snapshot(&mut ingest, &job_id, &directory(20, 1)).await?;
    let before = live_objects(&mut retention, &job_id).await?;

    // u-00004 is deleted in the source; its group still lists it (the source keeps the link).
    let without: Vec<_> = directory(20, 1)
        .into_iter()
        .filter(|o| o.anchor != "u-00004")
        .collect();
    push_snapshot(&mut ingest, &job_id, &without).await?;
    let during = live_objects(&mut retention, &job_id).await?;
    assert!(!during.contains_key("u-00004"));
    assert!(
        !during["g-00000"]
            .member_anchors
            .contains(&"u-00004".to_owned()),
        "a deleted member leaves its group"
    );

    // Restored in the source's recycle bin with the same anchor: restored, not created.
    let back = push_snapshot(&mut ingest, &job_id, &directory(20, 1)).await?;
    assert_eq!(
        staged(&suite, &back.cycle_id).await?,
        [(
            "u-00004".to_owned(),
            ActionKind::Restore as i32,
            ActionReason::Reappeared as i32
        )]
    );
    let after = live_objects(&mut retention, &job_id).await?;
    assert_eq!(after["u-00004"].object_id, before["u-00004"].object_id);
    assert_eq!(
        after["g-00000"].member_anchors,
        before["g-00000"].member_anchors
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_read_of_a_populated_directory_is_treated_as_a_failure() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job_id = create(&suite, push_job("empty guard")).await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    push_snapshot(&mut ingest, &job_id, &directory(10, 0)).await?;
    let empty = push_snapshot(&mut ingest, &job_id, &[]).await?;
    assert_eq!(empty.cycle_state, CycleState::Failed as i32);
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert_eq!(live.len(), 10, "nothing was deleted");
    let status = ingest
        .get_job(v1::GetJobRequest {
            job_id: job_id.clone(),
        })
        .await?
        .into_inner()
        .status
        .expect("status");
    assert!(status.message.contains("no objects"), "{}", status.message);

    // A job that allows empty sources stages the deletes (here within its protection).
    let mut spec = push_job("empty allowed");
    spec.allow_empty_source = true;
    let allowed = create(&suite, spec).await?;
    push_snapshot(&mut ingest, &allowed, &directory(10, 0)).await?;
    let emptied = push_snapshot(&mut ingest, &allowed, &[]).await?;
    assert_eq!(emptied.cycle_state, CycleState::Completed as i32);
    assert!(
        live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &allowed)
            .await?
            .is_empty()
    );
    suite.stop().await
}
