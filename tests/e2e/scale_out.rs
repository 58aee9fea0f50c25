//! Scaling out: two instances of the stager, the gate, the notifier and retention on one
//! database. Every step is claimed by one instance, so each cycle is staged, decided and
//! applied once, and each supersede, reminder, email and purge happens once.

use std::time::Duration;

use sqlx::Connection as _;
use syncguard_bootstrap::ServiceName;
use syncguard_e2e::directory::{directory, push_snapshot};
use syncguard_e2e::{Suite, SuiteOptions, wait_for};
use syncguard_proto::v1::{self, CycleState};

use crate::jobs::push_job;

async fn count(suite: &Suite, sql: &'static str) -> anyhow::Result<i64> {
    let mut conn = suite.database().connect().await?;
    let (count,): (i64,) = sqlx::query_as(sql).fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok(count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_of_each_service_do_every_step_once() -> anyhow::Result<()> {
    let options = SuiteOptions {
        maintenance_interval: Duration::from_millis(300),
        reminder_interval: Duration::from_secs(1),
        // The purge below moves the clock 31 days; the feed, counted at the end, must outlive it.
        feed_retention_days: 365,
        ..Default::default()
    };
    let clock = options.retention_clock.clone();
    let mut suite = Suite::start_with(options).await?;
    for service in [
        ServiceName::Stager,
        ServiceName::Gate,
        ServiceName::Notifier,
        ServiceName::Retention,
    ] {
        suite.start_another(service).await?;
    }

    // Four jobs, each quarantined by ten leavers over a limit of 3.
    let mut jobs = Vec::new();
    for n in 0..4 {
        let mut spec = push_job(&format!("scaled {n}"));
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
        let first = push_snapshot(&mut ingest, &job_id, &directory(30, 0)).await?;
        assert_eq!(first.cycle_state, CycleState::Completed as i32);
        let leavers: Vec<_> = directory(30, 0).into_iter().skip(10).collect();
        let held = push_snapshot(&mut ingest, &job_id, &leavers).await?;
        assert_eq!(held.cycle_state, CycleState::Quarantined as i32);
        jobs.push(job_id);
    }
    // Reminders go out while the quarantines stay open (one per interval, whatever the
    // number of gates).
    wait_for("reminders", Duration::from_secs(30), || async {
        let reminders = count(
            &suite,
            "SELECT count(*) FROM notification_outbox WHERE kind = 'quarantine_reminder'",
        )
        .await
        .ok()?;
        (reminders >= 8).then_some(())
    })
    .await?;

    // Two allowed, one rejected, one past its hold limit.
    let mut gate = suite.gate(Some(&suite.tokens.approver));
    for (n, job_id) in jobs.iter().enumerate().take(3) {
        let quarantine = gate
            .get_quarantine(v1::GetQuarantineRequest {
                job_id: job_id.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let decided = if n < 2 {
            gate.allow_deletes(v1::AllowDeletesRequest {
                quarantine_id: quarantine.quarantine_id,
                digest: quarantine.digest,
                reason: "leavers confirmed".into(),
                anchors: vec![],
            })
            .await?
        } else {
            gate.reject_deletes(v1::RejectDeletesRequest {
                quarantine_id: quarantine.quarantine_id,
                digest: quarantine.digest,
                reason: "broken export".into(),
                anchors: vec![],
            })
            .await?
        }
        .into_inner();
        assert_eq!(decided.cycle_state, CycleState::Completed as i32);
    }
    let mut conn = suite.database().connect().await?;
    sqlx::query(
        "UPDATE quarantines SET hold_until = now() - interval '1 second' WHERE job_id = $1::uuid",
    )
    .bind(&jobs[3])
    .execute(&mut conn)
    .await?;
    // The fresh cycle reads the same source (ten still gone), so it is held again.
    wait_for(
        "the expired hold to be superseded by a fresh cycle",
        Duration::from_secs(30),
        || async {
            let fresh = count(
                &suite,
                "SELECT count(*) FROM cycle_states WHERE state = 'quarantined' AND seq = 3",
            )
            .await
            .ok()?;
            (fresh == 1).then_some(())
        },
    )
    .await?;

    // Retention passes for the twenty soft-deleted objects of the two allowed jobs.
    clock.advance(chrono::Duration::days(31));
    wait_for("the purge", Duration::from_secs(30), || async {
        let left = count(
            &suite,
            "SELECT count(*) FROM directory_objects WHERE deleted_at IS NOT NULL",
        )
        .await
        .ok()?;
        (left == 0).then_some(())
    })
    .await?;
    wait_for("every mail sent", Duration::from_secs(30), || async {
        let pending = count(
            &suite,
            "SELECT count(*) FROM notification_outbox WHERE status <> 'sent'",
        )
        .await
        .ok()?;
        (pending == 0).then_some(())
    })
    .await?;

    // Each step once.
    let staged_twice = count(
        &suite,
        "SELECT count(*) FROM (SELECT cycle_id, anchor FROM staged_actions GROUP BY 1, 2 HAVING count(*) > 1) d",
    )
    .await?;
    assert_eq!(staged_twice, 0, "no action staged twice");
    let applied_twice = count(
        &suite,
        "SELECT count(*) FROM (SELECT cycle_id, object_id, change FROM directory_changes \
         WHERE cycle_id IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
    )
    .await?;
    assert_eq!(applied_twice, 0, "no change applied twice");
    let (applied_changes, applied_logged) = (
        count(
            &suite,
            "SELECT count(*) FROM directory_changes WHERE cycle_id IS NOT NULL",
        )
        .await?,
        count(
            &suite,
            "SELECT count(*) FROM provisioning_log_entries WHERE status = 'applied' AND cycle_id IS NOT NULL",
        )
        .await?,
    );
    assert_eq!(applied_changes, applied_logged);
    // Four loads of 30 creates and two allows of 10 deletes; the rejected cycle had no other
    // action and the superseded one applied nothing.
    assert_eq!(applied_changes, 4 * 30 + 2 * 10);
    let superseded = count(
        &suite,
        "SELECT count(*) FROM provisioning_log WHERE display_action = 'Supersede'",
    )
    .await?;
    assert_eq!(superseded, 1, "the expired hold superseded once");
    let (purges, purged_objects) = (
        count(
            &suite,
            "SELECT count(*) FROM provisioning_log WHERE display_action = 'Purge'",
        )
        .await?,
        count(&suite, "SELECT count(*) FROM purged_objects").await?,
    );
    assert_eq!(
        (purges, purged_objects),
        (20, 20),
        "each object purged once"
    );
    let sent_twice = count(
        &suite,
        "SELECT count(*) FROM (SELECT notification_id FROM notification_attempts WHERE accepted \
         GROUP BY 1 HAVING count(*) > 1) d",
    )
    .await?;
    assert_eq!(sent_twice, 0, "each mail sent once");
    let opened = count(
        &suite,
        "SELECT count(*) FROM notification_outbox WHERE kind = 'quarantine_opened'",
    )
    .await?;
    let quarantines = count(&suite, "SELECT count(*) FROM quarantines").await?;
    assert_eq!(opened, quarantines, "one opening notice per quarantine");
    let superseded_notices = count(
        &suite,
        "SELECT count(*) FROM notification_outbox WHERE kind = 'quarantine_superseded'",
    )
    .await?;
    assert_eq!(superseded_notices, 1);
    conn.close().await?;
    suite.stop().await
}
