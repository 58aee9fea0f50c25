//! Deletion protection settings through GateService (the quarantine workflow is issue 4).

use syncguard_e2e::Suite;
use syncguard_proto::v1::{self, ActionKind};
use tonic::Code;

use crate::jobs::push_job;

fn threshold(count: u64) -> v1::ProtectionRule {
    v1::ProtectionRule {
        name: "test threshold".into(),
        counted_actions: vec![ActionKind::Delete as i32, ActionKind::Disable as i32],
        max_count: Some(count),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_job_is_protected_above_500_deletes_and_disables() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job = suite
        .ingest(Some(&suite.tokens.operator))
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("default protection")),
        })
        .await?
        .into_inner();
    let protection = suite
        .gate(Some(&suite.tokens.reader))
        .get_protection(v1::GetProtectionRequest {
            job_id: job.job_id.clone(),
        })
        .await?
        .into_inner();
    assert!(protection.enabled);
    assert_eq!(protection.rules.len(), 1);
    let rule = &protection.rules[0];
    assert_eq!(rule.max_count, Some(500));
    assert_eq!(
        rule.counted_actions,
        [ActionKind::Delete as i32, ActionKind::Disable as i32]
    );
    assert_eq!(rule.object_type, v1::ObjectType::Unspecified as i32);
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protection_given_at_creation_and_changed_later_is_logged() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let tokens = suite.tokens.clone();
    let mut spec = push_job("threshold three");
    spec.protection_rules = vec![threshold(3)];
    let job = suite
        .ingest(Some(&tokens.operator))
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner();
    let mut gate = suite.gate(Some(&tokens.admin));
    let protection = gate
        .get_protection(v1::GetProtectionRequest {
            job_id: job.job_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(protection.rules[0].max_count, Some(3));
    assert_eq!(protection.updated_by, "operator:otto");

    let missing_reason = gate
        .set_protection(v1::SetProtectionRequest {
            job_id: job.job_id.clone(),
            enabled: false,
            rules: vec![],
            reason: " ".into(),
        })
        .await
        .expect_err("a reason is required");
    assert_eq!(missing_reason.code(), Code::InvalidArgument);

    let off = gate
        .set_protection(v1::SetProtectionRequest {
            job_id: job.job_id.clone(),
            enabled: false,
            rules: vec![threshold(3)],
            reason: "migration weekend".into(),
        })
        .await?
        .into_inner();
    assert!(!off.enabled);
    assert_eq!(off.updated_by, "admin:ada");

    let bad = gate
        .set_protection(v1::SetProtectionRequest {
            job_id: job.job_id.clone(),
            enabled: true,
            rules: vec![v1::ProtectionRule {
                max_percent: Some(150.0),
                ..threshold(3)
            }],
            reason: "typo".into(),
        })
        .await
        .expect_err("150% is refused");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().starts_with("rules[0].max_percent"),
        "{}",
        bad.message()
    );

    let approver = suite
        .gate(Some(&tokens.approver))
        .set_protection(v1::SetProtectionRequest {
            job_id: job.job_id.clone(),
            enabled: true,
            rules: vec![],
            reason: "back on".into(),
        })
        .await
        .expect_err("protection settings need admin");
    assert_eq!(approver.code(), Code::PermissionDenied);

    let mut conn = suite.database().connect().await?;
    let log: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT display_action, actor, detail FROM provisioning_log WHERE job_id = $1::uuid ORDER BY log_id",
    )
    .bind(&job.job_id)
    .fetch_all(&mut conn)
    .await?;
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].0, "SetProtection");
    assert_eq!(log[1].0, "DisableProtection");
    assert_eq!(log[1].1, "admin:ada");
    assert!(log[1].2.starts_with("migration weekend"), "{}", log[1].2);
    drop(conn);

    let mut refused = push_job("unprotected");
    refused.protection_disabled = true;
    let error = suite
        .ingest(Some(&tokens.operator))
        .create_job(v1::CreateJobRequest {
            spec: Some(refused),
        })
        .await
        .expect_err("only admins create unprotected jobs");
    assert_eq!(error.code(), Code::PermissionDenied);

    let mut invalid = push_job("bad rules");
    invalid.protection_rules = vec![v1::ProtectionRule::default()];
    let error = suite
        .ingest(Some(&tokens.operator))
        .create_job(v1::CreateJobRequest {
            spec: Some(invalid),
        })
        .await
        .expect_err("a rule without a limit is refused");
    assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
    let jobs = suite
        .ingest(Some(&tokens.reader))
        .list_jobs(v1::ListJobsRequest::default())
        .await?
        .into_inner()
        .jobs;
    assert_eq!(jobs.len(), 1, "the refused job was undone");
    suite.stop().await
}
