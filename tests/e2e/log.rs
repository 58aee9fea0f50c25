//! The provisioning log's compact form: a transition of many actions (a first load's plans
//! and creates, a quarantine's held deletes, their allowance and apply) is recorded as chunks,
//! and QueryProvisioningLogs reads it back entry by entry exactly as plain rows, in one order
//! with the plain rows, through every filter and across pages.

use std::collections::{BTreeMap, BTreeSet};

use syncguard_e2e::Suite;
use syncguard_e2e::directory::{directory, push_snapshot};
use syncguard_proto::v1::{
    self, ActionKind, ActionReason, ActionStatus, CycleState, LogActionFilter, ObjectType,
};

use crate::cycle::{create_job, live_objects};
use crate::jobs::push_job;
use crate::quarantine::{spec_with, threshold};

/// Every entry a query selects, page by page (pages of 37 end inside chunks of 256).
async fn all_entries(
    suite: &Suite,
    request: v1::QueryProvisioningLogsRequest,
) -> anyhow::Result<Vec<v1::ProvisioningLogEntry>> {
    let mut stager = suite.stager(Some(&suite.tokens.reader));
    let mut entries = Vec::new();
    let mut token = String::new();
    loop {
        let page = stager
            .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
                page: Some(v1::PageRequest {
                    page_size: 37,
                    page_token: token,
                }),
                ..request.clone()
            })
            .await?
            .into_inner();
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            return Ok(entries);
        }
        token = page.next_page_token;
    }
}

fn count_of(entries: &[v1::ProvisioningLogEntry], display_action: &str) -> usize {
    entries
        .iter()
        .filter(|entry| entry.display_action == display_action)
        .count()
}

async fn count(conn: &mut sqlx::PgConnection, sql: &str) -> anyhow::Result<i64> {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(conn)
        .await?;
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_delete_logged_compactly_reads_back_entry_by_entry() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job_id = create_job(&suite, spec_with(vec![threshold(50)])).await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let first = push_snapshot(&mut ingest, &job_id, &directory(300, 0)).await?;
    assert_eq!(first.cycle_state, CycleState::Completed as i32);
    let created: BTreeMap<String, String> =
        live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id)
            .await?
            .into_iter()
            .map(|(anchor, object)| (anchor, object.object_id))
            .collect();
    // 100 users leave: twice the threshold, held; then allowed, all at once.
    let second: Vec<v1::SourceObject> = directory(300, 0).into_iter().skip(100).collect();
    let held = push_snapshot(&mut ingest, &job_id, &second).await?;
    assert_eq!(held.cycle_state, CycleState::Quarantined as i32);
    let quarantine = crate::quarantine::quarantine_of(&suite, &job_id).await?;
    let allowed = suite
        .gate(Some(&suite.tokens.approver))
        .allow_deletes(crate::quarantine::allow(&quarantine, &[]))
        .await?
        .into_inner();
    assert_eq!(allowed.actions_applied, 100);

    // Recorded compactly: no plain row for the first load's plans, chunks instead.
    let mut conn = suite.database().connect().await?;
    let plain_plans = count(
        &mut conn,
        &format!(
            "SELECT count(*) FROM provisioning_log WHERE cycle_id = '{}' AND display_action = 'PlanCreate'",
            first.cycle_id
        ),
    )
    .await?;
    let chunks = count(
        &mut conn,
        &format!(
            "SELECT count(*) FROM provisioning_log_sets WHERE cycle_id = '{}'",
            first.cycle_id
        ),
    )
    .await?;
    assert_eq!(
        (plain_plans, chunks),
        (0, 4),
        "300 plans and 300 creates, two chunks each"
    );
    for statement in [
        "UPDATE provisioning_log_sets SET actor = 'someone else'",
        "DELETE FROM provisioning_log_sets",
    ] {
        let refused = sqlx::query(statement)
            .execute(&mut conn)
            .await
            .expect_err("chunks are never updated or deleted");
        assert!(
            refused.to_string().contains("never updated or deleted"),
            "{refused}"
        );
    }

    // The whole job's log, page by page: one order, nothing twice, every entry there.
    let log = all_entries(
        &suite,
        v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            ..Default::default()
        },
    )
    .await?;
    assert!(log.windows(2).all(|pair| pair[0].log_id > pair[1].log_id));
    for (display_action, expected) in [
        ("PlanCreate", 300),
        ("Create", 300),
        ("PlanDelete", 100),
        ("StagedDelete", 100),
        ("AllowDelete", 100),
        ("Delete", 100),
        ("AllowDeletes", 1),
    ] {
        assert_eq!(count_of(&log, display_action), expected, "{display_action}");
    }

    // Admin actions are plain rows only (the job's protection set at creation, the allow):
    // the chunks add nothing to them.
    let admin = all_entries(
        &suite,
        v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            action: LogActionFilter::Admin as i32,
            ..Default::default()
        },
    )
    .await?;
    let admin: Vec<&str> = admin.iter().map(|e| e.display_action.as_str()).collect();
    assert_eq!(admin, ["AllowDeletes", "SetProtection"]);

    // One object's history, newest first, across both cycles and every transition.
    let trail = all_entries(
        &suite,
        v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            anchor: "u-00042".into(),
            ..Default::default()
        },
    )
    .await?;
    let trail: Vec<&str> = trail.iter().map(|e| e.display_action.as_str()).collect();
    assert_eq!(
        trail,
        [
            "Delete",
            "AllowDelete",
            "StagedDelete",
            "PlanDelete",
            "Create",
            "PlanCreate"
        ]
    );

    // Creates carry what plain rows carried: the created object, the reason, the actor.
    let creates = all_entries(
        &suite,
        v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            action: LogActionFilter::Create as i32,
            ..Default::default()
        },
    )
    .await?;
    let logged: BTreeMap<String, String> = creates
        .iter()
        .map(|e| (e.anchor.clone(), e.object_id.clone()))
        .collect();
    assert_eq!(logged, created, "each create names the object it created");
    assert!(
        creates
            .iter()
            .all(|e| e.status == ActionStatus::Applied as i32
                && e.reason == ActionReason::NewInSource as i32
                && e.object_type == ObjectType::User as i32
                && e.action == ActionKind::Create as i32
                && e.cycle_id == first.cycle_id
                && e.actor.starts_with("service:"))
    );

    // Held entries say why; the approver's entries say who and why; a cycle's applied
    // entries are its own.
    let held_entries = all_entries(
        &suite,
        v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            status: ActionStatus::Held as i32,
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(held_entries.len(), 100);
    assert!(
        held_entries
            .iter()
            .all(|e| e.detail.starts_with("Delete threshold exceeded")
                && e.display_action == "StagedDelete")
    );
    let by_approver = all_entries(
        &suite,
        v1::QueryProvisioningLogsRequest {
            actor: "alice".into(),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(count_of(&by_approver, "AllowDelete"), 100);
    assert!(by_approver.iter().all(|e| e.actor == "approver:alice"));
    assert!(
        by_approver
            .iter()
            .filter(|e| e.display_action == "AllowDelete")
            .all(|e| e.detail == "HR confirmed the leavers")
    );
    let applied = all_entries(
        &suite,
        v1::QueryProvisioningLogsRequest {
            cycle_id: held.cycle_id.clone(),
            status: ActionStatus::Applied as i32,
            ..Default::default()
        },
    )
    .await?;
    let deleted: BTreeSet<&str> = applied.iter().map(|e| e.anchor.as_str()).collect();
    let expected: BTreeSet<String> = (0..100).map(|n| format!("u-{n:05}")).collect();
    assert_eq!(
        deleted,
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    assert!(
        applied
            .iter()
            .all(|e| e.display_action == "Delete" && created.get(&e.anchor) == Some(&e.object_id))
    );
    // A time range before the job existed selects nothing of either form.
    let before_everything = all_entries(
        &suite,
        v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            until: Some(prost_types::Timestamp {
                seconds: 1_000_000_000,
                nanos: 0,
            }),
            ..Default::default()
        },
    )
    .await?;
    assert!(before_everything.is_empty());
    drop(conn);
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_reads_the_same_in_either_form() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job_id = create_job(&suite, push_job("both forms")).await?;
    let mut objects = directory(200, 0);
    objects[7].enabled = false;
    let pushed = push_snapshot(
        &mut suite.ingest(Some(&suite.tokens.operator)),
        &job_id,
        &objects,
    )
    .await?;
    assert_eq!(pushed.cycle_state, CycleState::Completed as i32);

    // The same 200 staged actions logged by the log's writer as one more transition in each
    // form, under two statuses: in four calls of 50 (plain rows) and in one call of 200 (a
    // chunk). The test calls the writer directly: no workflow logs such transitions.
    let mut conn = suite.database().connect().await?;
    let log = |actor: &'static str, status: &'static str, from: i64, to: i64| {
        format!(
            "SELECT syncguard_log_actions(job_id, cycle_id, NULL, '{status}', 'Replay', '{actor}', 'replayed', \
                 array_agg(action_id), array_agg(anchor), array_agg(action), NULL) \
             FROM (SELECT * FROM staged_actions WHERE cycle_id = '{cycle}' ORDER BY anchor COLLATE \"C\" \
                   OFFSET {from} LIMIT {limit}) a GROUP BY job_id, cycle_id",
            cycle = pushed.cycle_id,
            limit = to - from,
        )
    };
    for from in [0, 50, 100, 150] {
        sqlx::query(sqlx::AssertSqlSafe(log(
            "test:plain",
            "rejected",
            from,
            from + 50,
        )))
        .execute(&mut conn)
        .await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(log(
        "test:compact",
        "superseded",
        0,
        200,
    )))
    .execute(&mut conn)
    .await?;
    // A transition is logged once per action, whichever form holds it: again in either form,
    // under either status, nothing more is written.
    for (actor, status, from, to) in [
        ("test:again", "superseded", 0, 200),
        ("test:again", "superseded", 100, 150),
        ("test:again", "rejected", 0, 200),
        ("test:again", "rejected", 150, 200),
    ] {
        let (logged,): (i32,) = sqlx::query_as(sqlx::AssertSqlSafe(log(actor, status, from, to)))
            .fetch_one(&mut conn)
            .await?;
        assert_eq!(logged, 0, "{status} {from}..{to} logged again");
    }
    let plain_rows = count(
        &mut conn,
        "SELECT count(*) FROM provisioning_log WHERE actor LIKE 'test:%'",
    )
    .await?;
    let chunked = count(
        &mut conn,
        "SELECT count(*) FROM provisioning_log_sets WHERE actor LIKE 'test:%'",
    )
    .await?;
    assert_eq!((plain_rows, chunked), (200, 1));

    let read = |actor: &'static str| {
        all_entries(
            &suite,
            v1::QueryProvisioningLogsRequest {
                job_id: job_id.clone(),
                actor: actor.into(),
                ..Default::default()
            },
        )
    };
    let plain = read("test:plain").await?;
    let compact = read("test:compact").await?;
    assert_eq!(plain.len(), 200);
    // Equal but for their own log ids, times, actors and statuses.
    let comparable = |entries: Vec<v1::ProvisioningLogEntry>| -> Vec<v1::ProvisioningLogEntry> {
        entries
            .into_iter()
            .map(|entry| v1::ProvisioningLogEntry {
                log_id: 0,
                at: None,
                actor: String::new(),
                status: 0,
                ..entry
            })
            .collect()
    };
    assert_eq!(comparable(compact.clone()), comparable(plain));
    let disabled = compact
        .iter()
        .find(|e| e.anchor == "u-00007")
        .expect("u-00007 logged");
    assert_eq!(disabled.display_action, "ReplayCreate");
    assert_eq!(disabled.status, ActionStatus::Superseded as i32);
    assert_eq!(disabled.detail, "replayed");
    drop(conn);
    suite.stop().await
}
