//! Job configuration through IngestService.

use syncguard_e2e::Suite;
use syncguard_proto::v1::{self, job_source};
use tonic::Code;
use tonic_types::StatusExt as _;

/// A push job with the given name and recipients.
pub fn push_job(name: &str) -> v1::JobSpec {
    v1::JobSpec {
        name: name.into(),
        source: Some(v1::JobSource {
            kind: Some(job_source::Kind::Push(v1::PushSource {})),
        }),
        notification_recipients: vec!["identity-team@example.com".into()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_created_read_listed_updated_and_deleted() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let tokens = suite.tokens.clone();
    let mut operator = suite.ingest(Some(&tokens.operator));

    let created = operator
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("hr feed")),
        })
        .await?
        .into_inner();
    let spec = created.spec.clone().expect("spec");
    assert_eq!(spec.retention_days, 30);
    assert_eq!(
        spec.schedule_interval.as_ref().map(|d| d.seconds),
        Some(1800)
    );
    assert_eq!(
        spec.hold_limit.as_ref().map(|d| d.seconds),
        Some(7 * 24 * 3600)
    );
    assert_eq!(created.created_by, "operator:otto");
    let status = created.status.clone().expect("status");
    assert_eq!(status.health, v1::JobHealth::Healthy as i32);

    let fetched = suite
        .ingest(Some(&tokens.reader))
        .get_job(v1::GetJobRequest {
            job_id: created.job_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(fetched.spec, created.spec);

    let second = operator
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("contractors")),
        })
        .await?
        .into_inner();
    let first_page = operator
        .list_jobs(v1::ListJobsRequest {
            page: Some(v1::PageRequest {
                page_size: 1,
                page_token: String::new(),
            }),
        })
        .await?
        .into_inner();
    assert_eq!(first_page.jobs.len(), 1);
    assert_eq!(first_page.jobs[0].job_id, created.job_id);
    let second_page = operator
        .list_jobs(v1::ListJobsRequest {
            page: Some(v1::PageRequest {
                page_size: 1,
                page_token: first_page.next_page_token,
            }),
        })
        .await?
        .into_inner();
    assert_eq!(second_page.jobs[0].job_id, second.job_id);
    assert!(second_page.next_page_token.is_empty());

    // An operator renames the job; a setting that guards deletions needs an admin and a reason.
    let renamed = operator
        .update_job(v1::UpdateJobRequest {
            job_id: created.job_id.clone(),
            spec: Some(push_job("hr feed (eu)")),
            reason: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(
        renamed.spec.as_ref().map(|s| s.name.as_str()),
        Some("hr feed (eu)")
    );
    let mut shorter = push_job("hr feed (eu)");
    shorter.retention_days = 14;
    let refused = operator
        .update_job(v1::UpdateJobRequest {
            job_id: created.job_id.clone(),
            spec: Some(shorter.clone()),
            reason: "make room".into(),
        })
        .await
        .expect_err("an operator cannot shorten retention");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("retention_days"),
        "{}",
        refused.message()
    );
    let unexplained = suite
        .ingest(Some(&tokens.admin))
        .update_job(v1::UpdateJobRequest {
            job_id: created.job_id.clone(),
            spec: Some(shorter.clone()),
            reason: String::new(),
        })
        .await
        .expect_err("a guarded change needs a reason");
    assert_eq!(unexplained.code(), Code::InvalidArgument);
    let updated = suite
        .ingest(Some(&tokens.admin))
        .update_job(v1::UpdateJobRequest {
            job_id: created.job_id.clone(),
            spec: Some(shorter),
            reason: "legal asked for two weeks".into(),
        })
        .await?
        .into_inner();
    assert_eq!(updated.spec.as_ref().map(|s| s.retention_days), Some(14));
    let logged = suite
        .stager(Some(&tokens.reader))
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            job_id: created.job_id.clone(),
            action: v1::LogActionFilter::Admin as i32,
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries;
    let change = logged
        .iter()
        .find(|entry| entry.display_action == "UpdateJob")
        .expect("the guarded change is logged");
    assert_eq!(change.actor, "admin:ada");
    assert!(
        change.detail.contains("retention_days 30 -> 14"),
        "{}",
        change.detail
    );
    assert!(
        change.detail.starts_with("legal asked for two weeks"),
        "{}",
        change.detail
    );

    let operator_delete = operator
        .delete_job(v1::DeleteJobRequest {
            job_id: created.job_id.clone(),
        })
        .await
        .expect_err("deleting a job needs admin");
    assert_eq!(operator_delete.code(), Code::PermissionDenied);
    suite
        .ingest(Some(&tokens.admin))
        .delete_job(v1::DeleteJobRequest {
            job_id: created.job_id.clone(),
        })
        .await?;
    let gone = operator
        .get_job(v1::GetJobRequest {
            job_id: created.job_id,
        })
        .await
        .expect_err("a deleted job is gone");
    assert_eq!(gone.code(), Code::NotFound);

    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_job_settings_name_the_field() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut operator = suite.ingest(Some(&suite.tokens.operator));

    let mut spec = push_job("bad retention");
    spec.retention_days = 400;
    let error = operator
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await
        .expect_err("400 days is refused");
    assert_eq!(error.code(), Code::InvalidArgument);
    let violations = error
        .get_details_bad_request()
        .expect("a field violation")
        .field_violations;
    assert_eq!(violations[0].field, "spec.retention_days");

    let mut spec = push_job("header injection");
    spec.notification_recipients = vec!["ops@example.com\r\nBcc: everyone@example.com".into()];
    let error = operator
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await
        .expect_err("a recipient with a line break is refused");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("spec.notification_recipients[0]"),
        "{}",
        error.message()
    );

    let error = operator
        .get_job(v1::GetJobRequest {
            job_id: "42".into(),
        })
        .await
        .expect_err("not a UUID");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().starts_with("job_id:"),
        "{}",
        error.message()
    );

    let listed = operator
        .list_jobs(v1::ListJobsRequest::default())
        .await?
        .into_inner();
    assert!(listed.jobs.is_empty(), "refused jobs leave nothing behind");
    suite.stop().await
}
