//! A real OpenLDAP slapd as the source: reads with the paged-results control, memberships
//! resolved, changes in the directory staged on the next cycle, and reads that fail (bad
//! password, bad filter, a connection broken mid-read) that never become cycles.

use syncguard_e2e::Suite;
use syncguard_e2e::slapd::{ADMIN_DN, ADMIN_PASSWORD, SUFFIX, Slapd, breaking_relay};
use syncguard_proto::v1::{self, ActionKind, ActionReason, CycleState, job_source};
use tonic::Code;

use crate::cycle::live_objects;
use crate::jobs::push_job;

fn user_entry(n: usize) -> String {
    format!(
        "dn: uid=user{n},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: user{n}\ncn: User {n}\nsn: {n}\nmail: user{n}@example.org\nemployeeType: active\n\n"
    )
}

fn user_dn(n: usize) -> String {
    format!("uid=user{n},ou=people,{SUFFIX}")
}

async fn load(slapd: &Slapd, users: usize) -> anyhow::Result<()> {
    let mut ldif: String = (0..users).map(user_entry).collect();
    ldif.push_str(&format!(
        "dn: cn=staff,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: staff\n"
    ));
    for n in 0..10 {
        ldif.push_str(&format!("member: {}\n", user_dn(n)));
    }
    ldif.push_str(&format!("member: uid=ghost,ou=people,{SUFFIX}\n"));
    slapd.add(&ldif).await
}

fn ldap_spec(url: &str, password_secret: &str, filter: &str) -> v1::JobSpec {
    let mut spec = push_job("directory");
    spec.source = Some(v1::JobSource {
        kind: Some(job_source::Kind::Ldap(v1::LdapSource {
            url: url.into(),
            bind_dn: ADMIN_DN.into(),
            password_secret: password_secret.into(),
            base_dn: SUFFIX.into(),
            filter: filter.into(),
            page_size: 5,
            disabled_attribute: "employeeType".into(),
            disabled_value: "disabled".into(),
            ..Default::default()
        })),
    });
    spec
}

const FILTER: &str = "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))";

/// Stores the bind password as the suite's secret `ldap-bind` and returns its name.
fn password_secret(suite: &Suite) -> anyhow::Result<&'static str> {
    suite.add_secret("ldap-bind", ADMIN_PASSWORD)?;
    Ok("ldap-bind")
}

async fn staged(suite: &Suite, cycle_id: &str) -> anyhow::Result<Vec<(String, i32, i32)>> {
    let mut actions: Vec<(String, i32, i32)> = suite
        .stager(Some(&suite.tokens.reader))
        .list_staged_actions(v1::ListStagedActionsRequest {
            cycle_id: cycle_id.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .actions
        .into_iter()
        .map(|a| (a.display_name, a.action, a.reason))
        .collect();
    actions.sort();
    Ok(actions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_syncs_from_slapd_and_its_changes_are_staged() -> anyhow::Result<()> {
    let slapd = Slapd::start().await?;
    load(&slapd, 20).await?;
    let suite = Suite::start().await?;
    let password = password_secret(&suite)?;
    let mut spec = ldap_spec(&slapd.url(), password, FILTER);
    spec.protection_rules = vec![v1::ProtectionRule {
        max_count: Some(3),
        ..Default::default()
    }];
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job = ingest
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .job_id;

    let first = ingest
        .trigger_cycle(v1::TriggerCycleRequest {
            job_id: job.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(first.cycle_state, CycleState::Completed as i32);
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job).await?;
    assert_eq!(
        live.len(),
        21,
        "20 users and a group, read 5 entries per page"
    );
    let staff = live
        .values()
        .find(|o| o.object_type == v1::ObjectType::Group as i32)
        .expect("the group");
    assert_eq!(
        staff.member_anchors.len(),
        10,
        "member DNs resolved to entryUUIDs; the ghost member is left out"
    );
    let user0 = live
        .values()
        .find(|o| o.distinguished_name == user_dn(0))
        .expect("user0");
    assert!(staff.member_anchors.contains(&user0.anchor));
    assert!(
        uuid::Uuid::parse_str(&user0.anchor).is_ok(),
        "the anchor is the entryUUID"
    );

    // In the directory: two users deleted, one disabled, one removed from the group.
    slapd.delete(&[user_dn(18), user_dn(19)]).await?;
    slapd
        .modify(&format!(
            "dn: {}\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n\n\
             dn: cn=staff,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\nmember: {}\n",
            user_dn(17),
            user_dn(0)
        ))
        .await?;
    let second = ingest
        .trigger_cycle(v1::TriggerCycleRequest {
            job_id: job.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(
        second.cycle_state,
        CycleState::Completed as i32,
        "3 deletes + disables do not exceed 3"
    );
    assert_eq!(
        staged(&suite, &second.cycle_id).await?,
        [
            (
                "User 17".to_owned(),
                ActionKind::Disable as i32,
                ActionReason::DisabledInSource as i32
            ),
            (
                "User 18".to_owned(),
                ActionKind::Delete as i32,
                ActionReason::RemovedFromSource as i32
            ),
            (
                "User 19".to_owned(),
                ActionKind::Delete as i32,
                ActionReason::RemovedFromSource as i32
            ),
            (
                "staff".to_owned(),
                ActionKind::Update as i32,
                ActionReason::AttributesChanged as i32
            ),
        ]
    );

    // Five more leave: the guard trips.
    slapd
        .delete(&(10..15).map(user_dn).collect::<Vec<_>>())
        .await?;
    let third = ingest
        .trigger_cycle(v1::TriggerCycleRequest {
            job_id: job.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(third.cycle_state, CycleState::Quarantined as i32);
    suite.stop().await?;
    slapd.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_reads_say_why_and_never_become_cycles() -> anyhow::Result<()> {
    let slapd = Slapd::start().await?;
    load(&slapd, 30).await?;
    let suite = Suite::start().await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let password = password_secret(&suite)?;

    // A first good read, so a bad one could look like mass deletion.
    let job = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(ldap_spec(&slapd.url(), password, FILTER)),
        })
        .await?
        .into_inner()
        .job_id;
    ingest
        .trigger_cycle(v1::TriggerCycleRequest {
            job_id: job.clone(),
        })
        .await?;
    let before = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job)
        .await?
        .len();
    assert_eq!(before, 31);

    let update = |spec: v1::JobSpec| v1::UpdateJobRequest {
        job_id: job.clone(),
        spec: Some(spec),
        reason: String::new(),
    };

    // The connection breaks in the middle of the paged read.
    let relay = breaking_relay(slapd.port, 2500).await?;
    ingest
        .update_job(update(ldap_spec(
            &format!("ldap://127.0.0.1:{relay}"),
            password,
            FILTER,
        )))
        .await?;
    let broken = ingest
        .trigger_cycle(v1::TriggerCycleRequest {
            job_id: job.clone(),
        })
        .await
        .expect_err("a broken read");
    assert_eq!(broken.code(), Code::FailedPrecondition, "{broken:?}");

    // A wrong password.
    suite.add_secret("wrong-password", "not-the-password")?;
    ingest
        .update_job(update(ldap_spec(&slapd.url(), "wrong-password", FILTER)))
        .await?;
    let refused = ingest
        .trigger_cycle(v1::TriggerCycleRequest {
            job_id: job.clone(),
        })
        .await
        .expect_err("bad password");
    assert!(
        refused.message().contains("invalid credentials"),
        "{}",
        refused.message()
    );

    // A filter that does not parse.
    ingest
        .update_job(update(ldap_spec(&slapd.url(), password, "(uid=user1")))
        .await?;
    let bad_filter = ingest
        .trigger_cycle(v1::TriggerCycleRequest {
            job_id: job.clone(),
        })
        .await
        .expect_err("bad filter");
    assert!(
        bad_filter.message().contains("filter"),
        "{}",
        bad_filter.message()
    );

    // The job shows the failure and people were told.
    let status = ingest
        .get_job(v1::GetJobRequest {
            job_id: job.clone(),
        })
        .await?
        .into_inner()
        .status
        .expect("status");
    assert_eq!(status.health, v1::JobHealth::Failed as i32);
    assert!(
        status
            .message
            .starts_with("Source read failed: LDAP search"),
        "{}",
        status.message
    );
    let notices = suite
        .notifier(Some(&suite.tokens.reader))
        .list_notifications(v1::ListNotificationsRequest {
            job_id: job.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .notifications;
    assert_eq!(
        notices
            .iter()
            .filter(|n| n.idempotency_key.ends_with(":source_failed"))
            .count(),
        3
    );

    // None of them became a cycle or deleted anything.
    let cycles = suite
        .stager(Some(&suite.tokens.reader))
        .list_cycles(v1::ListCyclesRequest {
            job_id: job.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .cycles;
    assert_eq!(cycles.len(), 1);
    assert_eq!(
        live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job)
            .await?
            .len(),
        before
    );
    suite.stop().await?;
    slapd.stop().await
}
