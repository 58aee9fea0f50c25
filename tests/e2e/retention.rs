//! Soft-delete retention: restore within the retention period, purge after it (or early),
//! and what a purged anchor means when it comes back.

use std::time::Duration;

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::directory::{directory, push_snapshot};
use syncguard_e2e::{Suite, SuiteOptions, wait_for};
use syncguard_proto::v1::{self, object_ref::By};
use tonic::Code;

use crate::cycle::live_objects;
use crate::jobs::push_job;

fn by_id(object_id: &str) -> Option<v1::ObjectRef> {
    Some(v1::ObjectRef {
        by: Some(By::ObjectId(object_id.to_owned())),
    })
}

async fn deleted(suite: &Suite, job_id: &str) -> anyhow::Result<Vec<v1::DirectoryObject>> {
    Ok(suite
        .retention(Some(&suite.tokens.reader))
        .list_deleted_objects(v1::ListDeletedObjectsRequest {
            job_id: job_id.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .objects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_user_is_restorable_for_30_days_then_purged_for_good() -> anyhow::Result<()> {
    let options = SuiteOptions {
        maintenance_interval: Duration::from_secs(1),
        ..Default::default()
    };
    let clock = options.retention_clock.clone();
    let suite = Suite::start_with(options).await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("retention")),
        })
        .await?
        .into_inner()
        .job_id;
    push_snapshot(&mut ingest, &job_id, &directory(20, 1)).await?;
    let before = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    let ada = before["u-00004"].clone();

    // Deleted in the source: soft-deleted, listed with its purge date 30 days on.
    let without: Vec<_> = directory(20, 1)
        .into_iter()
        .filter(|o| o.anchor != "u-00004")
        .collect();
    push_snapshot(&mut ingest, &job_id, &without).await?;
    let listed = deleted(&suite, &job_id).await?;
    assert_eq!(listed.len(), 1);
    let (deleted_at, until) = (
        listed[0].deleted_at.expect("deleted_at").seconds,
        listed[0]
            .restorable_until
            .expect("restorable_until")
            .seconds,
    );
    assert_eq!(until - deleted_at, 30 * 86_400);

    // Restore: same object id, attributes and group memberships.
    let mut approver = suite.retention(Some(&suite.tokens.approver));
    let restored = approver
        .restore_object(v1::RestoreObjectRequest {
            object: by_id(&ada.object_id),
            reason: "deleted by mistake".into(),
        })
        .await?
        .into_inner();
    assert_eq!(restored.object_id, ada.object_id);
    assert_eq!(restored.attributes, ada.attributes);
    assert!(restored.deleted_at.is_none());
    let groups = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert!(
        groups["g-00000"]
            .member_anchors
            .contains(&"u-00004".to_owned()),
        "the membership came back"
    );

    // Deleted again; 31 days later the purge removes it.
    push_snapshot(&mut ingest, &job_id, &without).await?;
    assert_eq!(deleted(&suite, &job_id).await?.len(), 1);
    clock.advance(chrono::Duration::days(31));
    wait_for("the purge after retention", Duration::from_secs(30), || {
        let suite = &suite;
        let job_id = job_id.clone();
        async move {
            deleted(suite, &job_id)
                .await
                .ok()
                .filter(|list| list.is_empty())
        }
    })
    .await?;
    let gone = approver
        .restore_object(v1::RestoreObjectRequest {
            object: by_id(&ada.object_id),
            reason: "too late".into(),
        })
        .await
        .expect_err("a purged object cannot be restored");
    assert_eq!(gone.code(), Code::NotFound);
    assert!(
        gone.message().contains("was purged at"),
        "{}",
        gone.message()
    );

    // The anchor comes back after the purge: a new object with a new object id.
    push_snapshot(&mut ingest, &job_id, &directory(20, 1)).await?;
    let after = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert_ne!(after["u-00004"].object_id, ada.object_id);
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_purge_is_for_approvers_only() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("early purge")),
        })
        .await?
        .into_inner()
        .job_id;
    push_snapshot(&mut ingest, &job_id, &directory(5, 0)).await?;
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    let target = live["u-00001"].object_id.clone();
    let request = || v1::PurgeObjectRequest {
        object: by_id(&target),
        reason: "GDPR erasure request".into(),
    };

    let not_deleted = suite
        .retention(Some(&suite.tokens.approver))
        .purge_object(request())
        .await
        .expect_err("live");
    assert_eq!(not_deleted.code(), Code::FailedPrecondition);

    let without: Vec<_> = directory(5, 0)
        .into_iter()
        .filter(|o| o.anchor != "u-00001")
        .collect();
    push_snapshot(&mut ingest, &job_id, &without).await?;
    for token in [&suite.tokens.reader, &suite.tokens.operator] {
        let refused = suite
            .retention(Some(token))
            .purge_object(request())
            .await
            .expect_err("not an approver");
        assert_eq!(refused.code(), Code::PermissionDenied);
    }
    let purged = suite
        .retention(Some(&suite.tokens.approver))
        .purge_object(request())
        .await?
        .into_inner();
    assert_eq!(purged.object_id, target);
    assert!(deleted(&suite, &job_id).await?.is_empty());
    let logs = suite
        .stager(Some(&suite.tokens.reader))
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            action: v1::LogActionFilter::Purge as i32,
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries;
    assert_eq!(logs.len(), 1);
    assert_eq!(
        (logs[0].actor.as_str(), logs[0].detail.as_str()),
        ("approver:alice", "GDPR erasure request")
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_retention_instances_purge_each_object_exactly_once() -> anyhow::Result<()> {
    let options = SuiteOptions {
        maintenance_interval: Duration::from_secs(1),
        ..Default::default()
    };
    let clock = options.retention_clock.clone();
    let mut suite = Suite::start_with(options).await?;
    suite.start_another(ServiceName::Retention).await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("two purgers")),
        })
        .await?
        .into_inner()
        .job_id;
    push_snapshot(&mut ingest, &job_id, &directory(1200, 0)).await?;
    // 1,100 leave (allowed past the default limit of 500 by a higher one), all soft-deleted.
    suite
        .gate(Some(&suite.tokens.admin))
        .set_protection(v1::SetProtectionRequest {
            job_id: job_id.clone(),
            enabled: true,
            rules: vec![v1::ProtectionRule {
                max_count: Some(5000),
                ..Default::default()
            }],
            reason: "planned clean-up".into(),
        })
        .await?;
    push_snapshot(&mut ingest, &job_id, &directory(100, 0)).await?;
    clock.advance(chrono::Duration::days(31));
    let mut conn = suite.database().connect().await?;
    wait_for(
        "both instances to purge everything",
        Duration::from_secs(60),
        || {
            let conn = suite.database().options();
            async move {
                let mut conn = sqlx::ConnectOptions::connect(&conn).await.ok()?;
                let (left,): (i64,) = sqlx::query_as(
                    "SELECT count(*) FROM directory_objects WHERE deleted_at IS NOT NULL",
                )
                .fetch_one(&mut conn)
                .await
                .ok()?;
                (left == 0).then_some(())
            }
        },
    )
    .await?;
    let (tombstones, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT object_id) FROM purged_objects")
            .fetch_one(&mut conn)
            .await?;
    assert_eq!((tombstones, distinct), (1100, 1100));
    let (purge_logs, purged_objects): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT object_id) FROM provisioning_log WHERE display_action = 'Purge'",
    )
    .fetch_one(&mut conn)
    .await?;
    assert_eq!(
        (purge_logs, purged_objects),
        (1100, 1100),
        "each object purged and logged once"
    );
    drop(conn);
    suite.stop().await
}
