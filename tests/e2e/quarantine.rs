//! Deletion protection and the quarantine workflow, through gRPC, with a threshold of 3 as
//! the product documents suggest for testing.

use std::time::Duration;

use syncguard_e2e::directory::{directory, push_snapshot};
use syncguard_e2e::{Suite, wait_for};
use syncguard_proto::v1::{
    self, ActionKind, CycleState, JobHealth, LogActionFilter, QuarantineState, protection_window,
};
use tonic::Code;

use crate::cycle::live_objects;
use crate::jobs::push_job;

pub(crate) fn threshold(count: u64) -> v1::ProtectionRule {
    v1::ProtectionRule {
        name: "test threshold".into(),
        counted_actions: vec![ActionKind::Delete as i32, ActionKind::Disable as i32],
        max_count: Some(count),
        ..Default::default()
    }
}

/// A job with a threshold of 3 whose scope is the people and groups OUs (and, when given,
/// membership of a group), loaded with `users` users and `groups` groups.
async fn guarded_job(
    suite: &Suite,
    spec: v1::JobSpec,
    users: usize,
    groups: usize,
) -> anyhow::Result<String> {
    let job_id = suite
        .ingest(Some(&suite.tokens.operator))
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .job_id;
    let first = push_snapshot(
        &mut suite.ingest(Some(&suite.tokens.operator)),
        &job_id,
        &directory(users, groups),
    )
    .await?;
    assert_eq!(first.cycle_state, CycleState::Completed as i32);
    Ok(job_id)
}

pub(crate) fn spec_with(rules: Vec<v1::ProtectionRule>) -> v1::JobSpec {
    let mut spec = push_job("guarded");
    spec.protection_rules = rules;
    spec
}

async fn push(
    suite: &Suite,
    job_id: &str,
    objects: &[v1::SourceObject],
) -> anyhow::Result<v1::PushSnapshotResponse> {
    Ok(push_snapshot(
        &mut suite.ingest(Some(&suite.tokens.operator)),
        job_id,
        objects,
    )
    .await?)
}

fn without(objects: Vec<v1::SourceObject>, anchors: &[&str]) -> Vec<v1::SourceObject> {
    objects
        .into_iter()
        .filter(|o| !anchors.contains(&o.anchor.as_str()))
        .collect()
}

/// The open quarantine of a job, as a reader sees it.
pub(crate) async fn quarantine_of(suite: &Suite, job_id: &str) -> anyhow::Result<v1::Quarantine> {
    Ok(suite
        .gate(Some(&suite.tokens.reader))
        .get_quarantine(v1::GetQuarantineRequest {
            job_id: job_id.into(),
            ..Default::default()
        })
        .await?
        .into_inner())
}

pub(crate) fn allow(quarantine: &v1::Quarantine, anchors: &[&str]) -> v1::AllowDeletesRequest {
    v1::AllowDeletesRequest {
        quarantine_id: quarantine.quarantine_id.clone(),
        digest: quarantine.digest.clone(),
        reason: "HR confirmed the leavers".into(),
        anchors: anchors.iter().map(|a| (*a).to_owned()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_deprovisioning_scenario_of_the_seeds_trips_the_guard() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let base = || directory(20, 2);

    // Users deleted in the source.
    let job = guarded_job(&suite, spec_with(vec![threshold(3)]), 20, 2).await?;
    let pushed = push(
        &suite,
        &job,
        &without(base(), &["u-00001", "u-00002", "u-00003", "u-00004"]),
    )
    .await?;
    assert_eq!(
        pushed.cycle_state,
        CycleState::Quarantined as i32,
        "deleted users"
    );

    // Sign-in blocked.
    let job = guarded_job(&suite, spec_with(vec![threshold(3)]), 20, 2).await?;
    let mut blocked = base();
    for object in blocked.iter_mut().take(4) {
        object.enabled = false;
    }
    assert_eq!(
        push(&suite, &job, &blocked).await?.cycle_state,
        CycleState::Quarantined as i32,
        "disabled users"
    );

    // Moved out of scope (the scoping OU).
    let mut spec = spec_with(vec![threshold(3)]);
    spec.scope = Some(v1::ScopeRules {
        base_dns: vec![
            "ou=people,dc=example,dc=org".into(),
            "ou=groups,dc=example,dc=org".into(),
        ],
        ..Default::default()
    });
    let job = guarded_job(&suite, spec, 20, 2).await?;
    let mut moved = base();
    for object in moved.iter_mut().take(4) {
        object.distinguished_name = object.distinguished_name.replace("ou=people", "ou=leavers");
    }
    assert_eq!(
        push(&suite, &job, &moved).await?.cycle_state,
        CycleState::Quarantined as i32,
        "out of scope"
    );

    // Removed from the group that gives access (unassigned).
    let mut spec = spec_with(vec![threshold(3)]);
    spec.scope = Some(v1::ScopeRules {
        member_of_group_anchor: "g-00000".into(),
        ..Default::default()
    });
    let job = guarded_job(&suite, spec, 20, 2).await?;
    let mut unassigned = base();
    for object in unassigned.iter_mut().filter(|o| o.anchor == "g-00000") {
        object
            .member_anchors
            .retain(|m| !["u-00005", "u-00006", "u-00007", "u-00008"].contains(&m.as_str()));
    }
    assert_eq!(
        push(&suite, &job, &unassigned).await?.cycle_state,
        CycleState::Quarantined as i32,
        "unassigned"
    );

    // Group deletions count too: two groups and two users.
    let job = guarded_job(&suite, spec_with(vec![threshold(3)]), 20, 2).await?;
    let pushed = push(
        &suite,
        &job,
        &without(base(), &["g-00000", "g-00001", "u-00001", "u-00002"]),
    )
    .await?;
    assert_eq!(
        pushed.cycle_state,
        CycleState::Quarantined as i32,
        "groups count"
    );
    let quarantine = quarantine_of(&suite, &job).await?;
    let group_deletes: u64 = quarantine
        .counts
        .iter()
        .filter(|c| {
            c.action == ActionKind::Delete as i32 && c.object_type == v1::ObjectType::Group as i32
        })
        .map(|c| c.count)
        .sum();
    assert_eq!(group_deletes, 2);
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_threshold_passes_and_one_more_trips() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job = guarded_job(&suite, spec_with(vec![threshold(3)]), 20, 0).await?;
    let three = push(
        &suite,
        &job,
        &without(directory(20, 0), &["u-00001", "u-00002", "u-00003"]),
    )
    .await?;
    assert_eq!(three.cycle_state, CycleState::Completed as i32);
    let four = push(
        &suite,
        &job,
        &without(
            directory(20, 0),
            &[
                "u-00001", "u-00002", "u-00003", "u-00004", "u-00005", "u-00006", "u-00007",
            ],
        ),
    )
    .await?;
    assert_eq!(four.cycle_state, CycleState::Quarantined as i32);
    let quarantine = quarantine_of(&suite, &job).await?;
    assert_eq!(quarantine.breaches[0].counted, 4);
    assert_eq!(quarantine.breaches[0].limit, 3);
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_shows_every_kind_its_cycle_plans_beside_what_the_rule_counted()
-> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job = guarded_job(&suite, spec_with(vec![threshold(3)]), 20, 0).await?;
    // Four leave and two arrive: the rule counts the deletes only.
    let pushed = push(
        &suite,
        &job,
        &without(
            directory(22, 0),
            &["u-00001", "u-00002", "u-00003", "u-00004"],
        ),
    )
    .await?;
    assert_eq!(pushed.cycle_state, CycleState::Quarantined as i32);
    let quarantine = quarantine_of(&suite, &job).await?;
    assert_eq!(quarantine.breaches[0].counted, 4);
    let count_of = |action: ActionKind| -> u64 {
        quarantine
            .counts
            .iter()
            .filter(|c| c.action == action as i32)
            .map(|c| c.count)
            .sum()
    };
    assert_eq!(
        (count_of(ActionKind::Delete), count_of(ActionKind::Create)),
        (4, 2),
        "the held deletes and the creates held with them: {:?}",
        quarantine.counts
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_applies_exactly_the_held_cycle_and_the_next_cycle_is_healthy() -> anyhow::Result<()>
{
    let suite = Suite::start().await?;
    let job = guarded_job(&suite, spec_with(vec![threshold(3)]), 20, 0).await?;
    let held_snapshot = without(
        directory(20, 0),
        &["u-00001", "u-00002", "u-00003", "u-00004"],
    );
    assert_eq!(
        push(&suite, &job, &held_snapshot).await?.cycle_state,
        CycleState::Quarantined as i32
    );

    let quarantine = quarantine_of(&suite, &job).await?;
    assert_eq!(quarantine.state, QuarantineState::Open as i32);
    assert_eq!(quarantine.held.len(), 4);
    assert!(
        quarantine
            .held
            .iter()
            .all(|h| h.soft_delete && h.restorable_until.is_some())
    );
    assert!(!quarantine.digest.is_empty());
    let restorable = quarantine.held[0]
        .restorable_until
        .as_ref()
        .map(|t| t.seconds)
        .unwrap_or_default();
    let in_30_days = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?
        + Duration::from_secs(30 * 86_400))
    .as_secs() as i64;
    assert!(
        (restorable - in_30_days).abs() < 120,
        "restorable for the job's 30 days"
    );

    // A newer snapshot arrives while held: it is kept, and allowing applies the held set only.
    let newer = without(
        directory(20, 0),
        &["u-00001", "u-00002", "u-00003", "u-00004", "u-00010"],
    );
    let kept = push(&suite, &job, &newer).await?;
    assert_eq!(kept.cycle_state, CycleState::Queued as i32, "{kept:?}");

    let decided = suite
        .gate(Some(&suite.tokens.approver))
        .allow_deletes(allow(&quarantine, &[]))
        .await?
        .into_inner();
    assert!(decided.applied);
    assert_eq!(decided.actions_applied, 4);
    assert_eq!(
        decided.cycle_state,
        CycleState::Completed as i32,
        "the allow answers once applied"
    );
    // Read again, each held delete is applied and restorable until its object's own
    // deadline (looked up from the soft-deleted object, no longer estimated).
    let applied = quarantine_of_id(&suite, &quarantine.quarantine_id).await?;
    assert_eq!(applied.held.len(), 4);
    for held in &applied.held {
        let action = held.action.as_ref().expect("action");
        assert_eq!(action.status, v1::ActionStatus::Applied as i32, "{held:?}");
        let until = held
            .restorable_until
            .as_ref()
            .map(|t| t.seconds)
            .expect("an applied delete says until when it is restorable");
        assert!((until - in_30_days).abs() < 120, "{held:?}");
    }
    // The held four are gone; the kept snapshot then runs as the next cycle on its own (it
    // holds one more delete, within the threshold), and the job is healthy.
    let stager = suite.stager(Some(&suite.tokens.reader));
    wait_for(
        "the kept push to run after the decision",
        Duration::from_secs(30),
        || {
            let mut stager = stager.clone();
            let cycle_id = kept.cycle_id.clone();
            async move {
                let cycle = stager
                    .get_cycle(v1::GetCycleRequest { cycle_id })
                    .await
                    .ok()?
                    .into_inner();
                (cycle.state == CycleState::Completed as i32).then_some(())
            }
        },
    )
    .await?;
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job).await?;
    assert_eq!(live.len(), 15);
    let status = suite
        .ingest(Some(&suite.tokens.reader))
        .get_job(v1::GetJobRequest {
            job_id: job.clone(),
        })
        .await?
        .into_inner()
        .status
        .expect("status");
    assert_eq!(
        status.health,
        JobHealth::Healthy as i32,
        "{}",
        status.message
    );

    // The logs answer who allowed the deletes of the cycle, when and why.
    let admin = suite
        .stager(Some(&suite.tokens.reader))
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            cycle_id: quarantine.cycle_id.clone(),
            action: LogActionFilter::Admin as i32,
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries;
    assert_eq!(admin.len(), 1);
    assert_eq!(admin[0].display_action, "AllowDeletes");
    assert_eq!(admin[0].actor, "approver:alice");
    assert_eq!(admin[0].detail, "HR confirmed the leavers");
    assert!(admin[0].at.is_some());
    let staged = suite
        .stager(Some(&suite.tokens.reader))
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            job_id: job.clone(),
            action: LogActionFilter::StagedDelete as i32,
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries;
    assert_eq!(staged.len(), 4, "every StagedDelete of the job");

    // One quarantine notice is in the notifier's outbox.
    let notices = suite
        .notifier(Some(&suite.tokens.reader))
        .list_notifications(v1::ListNotificationsRequest {
            job_id: job.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .notifications;
    let opened: Vec<_> = notices
        .iter()
        .filter(|n| n.idempotency_key.ends_with(":quarantine_opened"))
        .collect();
    assert_eq!(opened.len(), 1);
    assert!(
        opened[0].subject.contains("Delete threshold exceeded"),
        "{}",
        opened[0].subject
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_allow_applies_only_the_chosen_anchors_and_pins_the_rest() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job = guarded_job(&suite, spec_with(vec![threshold(3)]), 20, 0).await?;
    let removed = ["u-00001", "u-00002", "u-00003", "u-00004"];
    push(&suite, &job, &without(directory(20, 0), &removed)).await?;
    let quarantine = quarantine_of(&suite, &job).await?;
    let decided = suite
        .gate(Some(&suite.tokens.approver))
        .allow_deletes(allow(&quarantine, &["u-00001", "u-00002"]))
        .await?
        .into_inner();
    assert_eq!((decided.actions_applied, decided.actions_rejected), (2, 2));
    assert_eq!(
        decided.quarantine.map(|q| q.state),
        Some(QuarantineState::PartiallyAllowed as i32)
    );
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job).await?;
    assert!(!live.contains_key("u-00001") && !live.contains_key("u-00002"));
    assert!(live.contains_key("u-00003") && live.contains_key("u-00004"));
    let pins = suite
        .gate(Some(&suite.tokens.reader))
        .list_pins(v1::ListPinsRequest {
            job_id: job.clone(),
            page: None,
        })
        .await?
        .into_inner()
        .pins;
    let pinned: Vec<&str> = pins.iter().map(|p| p.anchor.as_str()).collect();
    assert_eq!(pinned, ["u-00003", "u-00004"]);
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_pins_objects_until_they_reappear_or_are_released() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job = guarded_job(&suite, spec_with(vec![threshold(3)]), 20, 0).await?;
    let removed = ["u-00001", "u-00002", "u-00003", "u-00004"];
    // The held cycle also renames a user: that non-destructive change is applied on reject.
    let mut held = without(directory(20, 0), &removed);
    held[0].attributes.insert(
        "title".into(),
        v1::AttributeValues {
            values: vec!["Lead".into()],
        },
    );
    push(&suite, &job, &held).await?;
    let quarantine = quarantine_of(&suite, &job).await?;
    let decided = suite
        .gate(Some(&suite.tokens.approver))
        .reject_deletes(v1::RejectDeletesRequest {
            quarantine_id: quarantine.quarantine_id.clone(),
            digest: quarantine.digest.clone(),
            reason: "a broken export".into(),
            anchors: vec![],
        })
        .await?
        .into_inner();
    assert_eq!(
        decided.quarantine.map(|q| q.state),
        Some(QuarantineState::Rejected as i32)
    );
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job).await?;
    assert_eq!(live.len(), 20, "nothing was deleted");
    assert_eq!(
        live[&held[0].anchor].attributes["title"].values,
        ["Lead"],
        "the update was applied"
    );

    // The next cycle with the same source leaves the pinned four alone: no quarantine again.
    let next = push(&suite, &job, &held).await?;
    assert_eq!(next.cycle_state, CycleState::Completed as i32);
    assert_eq!(
        live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job)
            .await?
            .len(),
        20
    );

    // u-00001 reappears in the source: its pin clears by itself.
    let mut back = without(directory(20, 0), &["u-00002", "u-00003", "u-00004"]);
    back[0].attributes.insert(
        "title".into(),
        v1::AttributeValues {
            values: vec!["Lead".into()],
        },
    );
    push(&suite, &job, &back).await?;
    let mut gate = suite.gate(Some(&suite.tokens.approver));
    let pins: Vec<String> = gate
        .list_pins(v1::ListPinsRequest {
            job_id: job.clone(),
            page: None,
        })
        .await?
        .into_inner()
        .pins
        .into_iter()
        .map(|p| p.anchor)
        .collect();
    assert_eq!(pins, ["u-00002", "u-00003", "u-00004"]);

    // Releasing a pin lets the next cycle delete that object.
    let released = gate
        .release_pins(v1::ReleasePinsRequest {
            job_id: job.clone(),
            anchors: vec!["u-00002".into()],
            reason: "confirmed leaver".into(),
        })
        .await?
        .into_inner();
    assert_eq!(released.released, 1);
    let after = push(&suite, &job, &back).await?;
    assert_eq!(after.cycle_state, CycleState::Completed as i32);
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job).await?;
    assert!(!live.contains_key("u-00002") && live.contains_key("u-00003"));
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_digests_closed_or_expired_quarantines_and_wrong_roles_change_nothing()
-> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job = guarded_job(&suite, spec_with(vec![threshold(3)]), 20, 0).await?;
    push(
        &suite,
        &job,
        &without(
            directory(20, 0),
            &["u-00001", "u-00002", "u-00003", "u-00004"],
        ),
    )
    .await?;
    let quarantine = quarantine_of(&suite, &job).await?;

    for (token, code) in [
        (&suite.tokens.reader, Code::PermissionDenied),
        (&suite.tokens.operator, Code::PermissionDenied),
    ] {
        let refused = suite
            .gate(Some(token))
            .allow_deletes(allow(&quarantine, &[]))
            .await
            .expect_err("wrong role");
        assert_eq!(refused.code(), code);
    }
    let mut stale = allow(&quarantine, &[]);
    stale.digest = "0".repeat(64);
    let refused = suite
        .gate(Some(&suite.tokens.approver))
        .allow_deletes(stale)
        .await
        .expect_err("stale digest");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("digest"),
        "{}",
        refused.message()
    );
    let mut no_reason = allow(&quarantine, &[]);
    no_reason.reason = String::new();
    let refused = suite
        .gate(Some(&suite.tokens.approver))
        .allow_deletes(no_reason)
        .await
        .expect_err("a reason is required");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        quarantine_of(&suite, &job).await?.state,
        QuarantineState::Open as i32,
        "nothing changed"
    );

    // Two allows race: one applies, the other is told the quarantine is closed.
    let first = suite.gate(Some(&suite.tokens.approver));
    let second = suite.gate(Some(&suite.tokens.admin));
    let (a, b) = tokio::join!(
        {
            let mut gate = first.clone();
            let request = allow(&quarantine, &[]);
            async move { gate.allow_deletes(request).await }
        },
        {
            let mut gate = second.clone();
            let request = allow(&quarantine, &[]);
            async move { gate.allow_deletes(request).await }
        }
    );
    let outcomes = [a.is_ok(), b.is_ok()];
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "exactly one allow wins"
    );
    let loser = a.err().or(b.err()).expect("one failed");
    assert_eq!(loser.code(), Code::FailedPrecondition);
    let applied = suite
        .stager(Some(&suite.tokens.reader))
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            cycle_id: quarantine.cycle_id.clone(),
            action: LogActionFilter::Delete as i32,
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries;
    assert_eq!(applied.len(), 4, "applied once");

    // An expired hold. Time passing is the one fault a test cannot wait for: the test moves
    // the quarantine's hold limit into the past directly in the database.
    let job = guarded_job(&suite, spec_with(vec![threshold(3)]), 20, 0).await?;
    push(
        &suite,
        &job,
        &without(
            directory(20, 0),
            &["u-00001", "u-00002", "u-00003", "u-00004"],
        ),
    )
    .await?;
    let expiring = quarantine_of(&suite, &job).await?;
    let mut conn = suite.database().connect().await?;
    sqlx::query("UPDATE quarantines SET hold_until = now() - interval '1 second' WHERE quarantine_id = $1::uuid")
        .bind(&expiring.quarantine_id)
        .execute(&mut conn)
        .await?;
    drop(conn);
    let refused = suite
        .gate(Some(&suite.tokens.approver))
        .allow_deletes(allow(&expiring, &[]))
        .await
        .expect_err("hold passed");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("hold limit"),
        "{}",
        refused.message()
    );
    assert_eq!(
        live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job)
            .await?
            .len(),
        20
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_may_require_two_distinct_approvers() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut spec = spec_with(vec![threshold(3)]);
    spec.required_approvals = 2;
    let job = guarded_job(&suite, spec, 20, 0).await?;
    push(
        &suite,
        &job,
        &without(
            directory(20, 0),
            &["u-00001", "u-00002", "u-00003", "u-00004"],
        ),
    )
    .await?;
    let quarantine = quarantine_of(&suite, &job).await?;
    let first = suite
        .gate(Some(&suite.tokens.approver))
        .allow_deletes(allow(&quarantine, &[]))
        .await?
        .into_inner();
    assert!(!first.applied, "one approval is not enough");
    let again = suite
        .gate(Some(&suite.tokens.approver))
        .allow_deletes(allow(&quarantine, &[]))
        .await
        .expect_err("same person twice");
    assert_eq!(again.code(), Code::FailedPrecondition);
    let second = suite
        .gate(Some(&suite.tokens.approver2))
        .allow_deletes(allow(&quarantine, &[]))
        .await?
        .into_inner();
    assert!(second.applied);
    let approvals = second.quarantine.map(|q| q.approvals).unwrap_or_default();
    let who: Vec<&str> = approvals.iter().map(|a| a.principal.as_str()).collect();
    assert_eq!(
        who,
        ["approver:alice", "approver:bob"],
        "in the order given"
    );
    assert!(
        approvals
            .iter()
            .all(|a| a.reason == "HR confirmed the leavers" && a.at.is_some()),
        "{approvals:?}"
    );
    let viewed = quarantine_of_id(&suite, &quarantine.quarantine_id).await?;
    assert_eq!(
        viewed.approvals, approvals,
        "the view shows the same approvals"
    );
    suite.stop().await
}

/// Four cycles of two deletes each: no cycle alone comes near the per-cycle threshold, but
/// the rolling rule counts what was applied in the last 24 hours plus the cycle. A cycle
/// trips when the count is above the limit, so a limit of 6 lets 2, 4 and 6 through and
/// catches the fourth cycle at 8 (a limit of 5 would catch the third, at 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_24h_rule_catches_the_fourth_of_four_small_cycles() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let rolling = v1::ProtectionRule {
        name: "daily".into(),
        counted_actions: vec![ActionKind::Delete as i32],
        max_count: Some(6),
        window: Some(v1::ProtectionWindow {
            kind: Some(protection_window::Kind::Rolling(prost_types::Duration {
                seconds: 86_400,
                nanos: 0,
            })),
        }),
        ..Default::default()
    };
    let job = guarded_job(&suite, spec_with(vec![threshold(500), rolling]), 20, 0).await?;
    let mut gone: Vec<String> = Vec::new();
    let mut states = Vec::new();
    for cycle in 0..4 {
        gone.push(format!("u-{:05}", cycle * 2));
        gone.push(format!("u-{:05}", cycle * 2 + 1));
        let refs: Vec<&str> = gone.iter().map(String::as_str).collect();
        states.push(
            push(&suite, &job, &without(directory(20, 0), &refs))
                .await?
                .cycle_state,
        );
    }
    let completed = CycleState::Completed as i32;
    assert_eq!(
        states,
        [
            completed,
            completed,
            completed,
            CycleState::Quarantined as i32
        ]
    );
    let quarantine = quarantine_of(&suite, &job).await?;
    assert_eq!(
        quarantine.breaches[0].counted, 8,
        "6 applied in the window + 2 in this cycle"
    );
    assert_eq!(
        quarantine.breaches[0]
            .rule
            .as_ref()
            .map(|r| r.name.as_str()),
        Some("daily")
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentage_rules_apply_only_from_their_minimum_population() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let percent = v1::ProtectionRule {
        name: "ten percent".into(),
        max_percent: Some(10.0),
        min_population: 50,
        ..Default::default()
    };
    // 20 objects: below the minimum population, 5 deletes (25%) pass.
    let small = guarded_job(&suite, spec_with(vec![percent.clone()]), 20, 0).await?;
    let pushed = push(
        &suite,
        &small,
        &without(
            directory(20, 0),
            &["u-00001", "u-00002", "u-00003", "u-00004", "u-00005"],
        ),
    )
    .await?;
    assert_eq!(pushed.cycle_state, CycleState::Completed as i32);
    // 100 objects: 11 deletes are more than 10%.
    let large = guarded_job(&suite, spec_with(vec![percent]), 100, 0).await?;
    let leavers: Vec<String> = (0..11).map(|n| format!("u-{n:05}")).collect();
    let refs: Vec<&str> = leavers.iter().map(String::as_str).collect();
    let pushed = push(&suite, &large, &without(directory(100, 0), &refs)).await?;
    assert_eq!(pushed.cycle_state, CycleState::Quarantined as i32);
    let quarantine = quarantine_of(&suite, &large).await?;
    assert_eq!(
        (quarantine.breaches[0].counted, quarantine.breaches[0].limit),
        (11, 10)
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_supersedes_the_held_cycle_and_preview_changes_nothing() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job = guarded_job(&suite, spec_with(vec![threshold(3)]), 20, 0).await?;
    let broken = without(
        directory(20, 0),
        &["u-00001", "u-00002", "u-00003", "u-00004"],
    );
    push(&suite, &job, &broken).await?;

    // The preview of the latest data says it would trip, and changes nothing.
    let preview = suite
        .stager(Some(&suite.tokens.reader))
        .preview_cycle(v1::PreviewCycleRequest {
            job_id: job.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(preview.would_quarantine);
    assert_eq!(preview.breaches[0].counted, 4);
    let cycles_before = suite
        .stager(Some(&suite.tokens.reader))
        .list_cycles(v1::ListCyclesRequest {
            job_id: job.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .cycles
        .len();
    assert_eq!(
        cycles_before, 2,
        "the first load and the held cycle; the preview made none"
    );

    // The source is fixed (that push queues behind the held cycle), then the job restarted:
    // the held cycle is superseded and a fresh cycle runs on the latest data.
    let fixed = push(&suite, &job, &directory(20, 0)).await?;
    assert_eq!(fixed.cycle_state, CycleState::Queued as i32);
    let restarted = suite
        .gate(Some(&suite.tokens.approver))
        .restart_job(v1::RestartJobRequest {
            job_id: job.clone(),
            reason: "export fixed".into(),
        })
        .await?
        .into_inner();
    assert!(!restarted.superseded_quarantine_id.is_empty());
    let fresh = suite
        .stager(Some(&suite.tokens.reader))
        .get_cycle(v1::GetCycleRequest {
            cycle_id: restarted.cycle_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(fresh.state, CycleState::Completed as i32);
    let old = quarantine_of_id(&suite, &restarted.superseded_quarantine_id).await?;
    assert_eq!(old.state, QuarantineState::Superseded as i32);
    assert_eq!(
        live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job)
            .await?
            .len(),
        20
    );
    let cycles_after = suite
        .stager(Some(&suite.tokens.reader))
        .list_cycles(v1::ListCyclesRequest {
            job_id: job.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .cycles
        .len();
    assert_eq!(
        cycles_after,
        cycles_before + 2,
        "the fixed push and the restart's fresh cycle"
    );
    suite.stop().await
}

pub(crate) async fn quarantine_of_id(
    suite: &Suite,
    quarantine_id: &str,
) -> anyhow::Result<v1::Quarantine> {
    Ok(suite
        .gate(Some(&suite.tokens.reader))
        .get_quarantine(v1::GetQuarantineRequest {
            quarantine_id: quarantine_id.into(),
            ..Default::default()
        })
        .await?
        .into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_past_its_limit_is_superseded_by_a_fresh_cycle_and_people_are_told()
-> anyhow::Result<()> {
    let suite = syncguard_e2e::Suite::start_with(syncguard_e2e::SuiteOptions {
        maintenance_interval: Duration::from_secs(1),
        ..Default::default()
    })
    .await?;
    let job = guarded_job(&suite, spec_with(vec![threshold(3)]), 20, 0).await?;
    push(
        &suite,
        &job,
        &without(
            directory(20, 0),
            &["u-00001", "u-00002", "u-00003", "u-00004"],
        ),
    )
    .await?;
    let held = quarantine_of(&suite, &job).await?;
    // Time passing is the one fault a test cannot wait for: the hold limit is moved into the
    // past directly in the database.
    let mut conn = suite.database().connect().await?;
    sqlx::query("UPDATE quarantines SET hold_until = now() - interval '1 second' WHERE quarantine_id = $1::uuid")
        .bind(&held.quarantine_id)
        .execute(&mut conn)
        .await?;
    drop(conn);
    let superseded = syncguard_e2e::wait_for(
        "the expired quarantine to be superseded",
        Duration::from_secs(30),
        || {
            let mut gate = suite.gate(Some(&suite.tokens.reader));
            let id = held.quarantine_id.clone();
            async move {
                let quarantine = gate
                    .get_quarantine(v1::GetQuarantineRequest {
                        quarantine_id: id,
                        ..Default::default()
                    })
                    .await
                    .ok()?
                    .into_inner();
                (quarantine.state == QuarantineState::Superseded as i32).then_some(quarantine)
            }
        },
    )
    .await?;
    assert!(superseded.closed_at.is_some());
    // None of the held cycle was applied; a fresh cycle ran on the same data and, still over
    // the threshold, is held again.
    assert_eq!(
        live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job)
            .await?
            .len(),
        20
    );
    let fresh = syncguard_e2e::wait_for("a fresh quarantine", Duration::from_secs(30), || {
        let mut gate = suite.gate(Some(&suite.tokens.reader));
        let job = job.clone();
        async move {
            gate.get_quarantine(v1::GetQuarantineRequest {
                job_id: job,
                ..Default::default()
            })
            .await
            .ok()
            .map(tonic::Response::into_inner)
        }
    })
    .await?;
    assert_ne!(fresh.cycle_id, held.cycle_id);
    let notices = suite
        .notifier(Some(&suite.tokens.reader))
        .list_notifications(v1::ListNotificationsRequest {
            job_id: job.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .notifications;
    assert!(
        notices
            .iter()
            .any(|n| n.idempotency_key == format!("{}:quarantine_superseded", held.quarantine_id))
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_pages_through_every_held_action_once_in_anchor_order() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job = guarded_job(&suite, spec_with(vec![threshold(3)]), 20, 2).await?;
    let removed: Vec<String> = (3..=12).map(|n| format!("u-{n:05}")).collect();
    let removed_refs: Vec<&str> = removed.iter().map(String::as_str).collect();
    let pushed = push(&suite, &job, &without(directory(20, 2), &removed_refs)).await?;
    assert_eq!(pushed.cycle_state, CycleState::Quarantined as i32);

    let mut gate = suite.gate(Some(&suite.tokens.reader));
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut token = String::new();
    loop {
        let page = gate
            .get_quarantine(v1::GetQuarantineRequest {
                job_id: job.clone(),
                page: Some(v1::PageRequest {
                    page_size: 3,
                    page_token: token,
                }),
                ..Default::default()
            })
            .await?
            .into_inner();
        pages += 1;
        assert!(page.held.len() <= 3, "a page holds at most its size");
        seen.extend(
            page.held
                .iter()
                .filter_map(|held| held.action.as_ref())
                .map(|action| action.anchor.clone()),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, removed, "every held delete once, in anchor order");
    assert_eq!(pages, 4, "10 held actions in pages of 3");

    // The list shows the same quarantine as a summary: its counts, no held page.
    let listed = gate
        .list_quarantines(v1::ListQuarantinesRequest {
            job_id: job.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .quarantines;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].held.is_empty(), "a summary carries no held page");
    let deletes: u64 = listed[0]
        .counts
        .iter()
        .filter(|count| count.action == ActionKind::Delete as i32)
        .map(|count| count.count)
        .sum();
    assert_eq!(deletes, 10);
    suite.stop().await
}
