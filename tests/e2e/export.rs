//! The exporter against real targets: an OpenLDAP slapd and the `scim2-server` SCIM 2.0
//! provider, each read back the way its owner would (ldapsearch, SCIM GET). What a cycle
//! applies reaches both exactly; what the guard holds reaches neither until it is allowed;
//! a target or an exporter that goes away mid-export loses and doubles nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::directory::{directory, push_snapshot};
use syncguard_e2e::processes::{ProcessOptions, Processes};
use syncguard_e2e::scim::{ScimServer, Switch};
use syncguard_e2e::slapd::{ADMIN_DN, ADMIN_PASSWORD, LdapEntry, SUFFIX, Slapd};
use syncguard_e2e::{Authed, Suite, wait_for};
use syncguard_proto::v1::exporter_service_client::ExporterServiceClient;
use syncguard_proto::v1::{self, CycleState};

use crate::jobs::push_job;

const LDAP_SECRET: &str = "ldap-target-password";
const SCIM_SECRET: &str = "scim-target-token";
/// Long enough for 1,020 objects on a loaded 2-core machine.
const EXPORT_DEADLINE: Duration = Duration::from_secs(120);

fn people() -> String {
    format!("ou=people,{SUFFIX}")
}

fn groups() -> String {
    format!("ou=groups,{SUFFIX}")
}

fn ldap_target(url: String) -> v1::JobTarget {
    v1::JobTarget {
        name: "directory".into(),
        kind: Some(v1::job_target::Kind::Ldap(v1::LdapTarget {
            url,
            bind_dn: ADMIN_DN.into(),
            password_secret: LDAP_SECRET.into(),
            users_base_dn: people(),
            groups_base_dn: groups(),
            user_rdn_attribute: "uid".into(),
            group_rdn_attribute: "cn".into(),
            disabled_attribute: "employeeType".into(),
            disabled_value: "disabled".into(),
            ..Default::default()
        })),
    }
}

fn scim_target(base_url: String) -> v1::JobTarget {
    v1::JobTarget {
        name: "app".into(),
        kind: Some(v1::job_target::Kind::Scim(v1::ScimTarget {
            base_url,
            token_secret: SCIM_SECRET.into(),
            ..Default::default()
        })),
    }
}

/// A push job that writes to both targets, guarded by `max_deletes` when given.
fn exported_job(ldap_url: String, scim_url: String, max_deletes: Option<u64>) -> v1::JobSpec {
    let mut spec = push_job("exported");
    spec.targets = vec![ldap_target(ldap_url), scim_target(scim_url)];
    if let Some(count) = max_deletes {
        spec.protection_rules = vec![v1::ProtectionRule {
            name: "few deletes".into(),
            counted_actions: vec![
                v1::ActionKind::Delete as i32,
                v1::ActionKind::Disable as i32,
            ],
            max_count: Some(count),
            ..Default::default()
        }];
    }
    spec
}

/// Waits until every target of the job shows what `wanted` asks of it, and returns them.
async fn targets_when(
    exporter: &ExporterServiceClient<Authed>,
    job_id: &str,
    what: &str,
    wanted: fn(&v1::TargetStatus) -> bool,
) -> anyhow::Result<Vec<v1::TargetStatus>> {
    wait_for(what, EXPORT_DEADLINE, || {
        let mut exporter = exporter.clone();
        let job_id = job_id.to_owned();
        async move {
            let targets = exporter
                .list_targets(v1::ListTargetsRequest { job_id })
                .await
                .ok()?
                .into_inner()
                .targets;
            (!targets.is_empty() && targets.iter().all(wanted)).then_some(targets)
        }
    })
    .await
}

/// Waits until every target of the job has written everything the feed holds for it.
async fn exported(
    exporter: &ExporterServiceClient<Authed>,
    job_id: &str,
) -> anyhow::Result<Vec<v1::TargetStatus>> {
    targets_when(exporter, job_id, "every target caught up", |t| {
        !t.bootstrapping && t.pending_changes == 0 && t.retrying == 0 && t.failed == 0
    })
    .await
}

/// Waits until the exporter has written its first objects to every target of the job.
async fn first_pages_written(
    exporter: &ExporterServiceClient<Authed>,
    job_id: &str,
) -> anyhow::Result<()> {
    targets_when(exporter, job_id, "the first pages written", |t| {
        t.exported > 0
    })
    .await?;
    Ok(())
}

fn uid(n: usize) -> String {
    format!("u-{n:05}")
}

/// The users of the LDAP target by anchor.
async fn ldap_users(slapd: &Slapd) -> anyhow::Result<BTreeMap<String, LdapEntry>> {
    Ok(slapd
        .search(&people(), "(objectClass=inetOrgPerson)")
        .await?
        .into_iter()
        .filter_map(|entry| Some((entry.first("uid")?.to_owned(), entry)))
        .collect())
}

/// The groups of the LDAP target by anchor, with member anchors.
async fn ldap_groups(slapd: &Slapd) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let prefix = "uid=";
    let suffix = format!(",{}", people());
    Ok(slapd
        .search(&groups(), "(objectClass=groupOfNames)")
        .await?
        .into_iter()
        .filter_map(|entry| {
            let anchor = entry
                .values("cn")
                .into_iter()
                .find(|cn| cn.starts_with("g-"))?;
            let members = entry
                .values("member")
                .into_iter()
                .filter_map(|dn| Some(dn.strip_prefix(prefix)?.strip_suffix(&suffix)?.to_owned()))
                .collect();
            Some((anchor, members))
        })
        .collect())
}

/// Group members in the SCIM target, by anchor.
async fn scim_groups(scim: &ScimServer) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let users = scim.all("Users").await?;
    let anchor_of: BTreeMap<String, String> = users
        .values()
        .map(|user| (user.id.clone(), user.external_id.clone()))
        .collect();
    Ok(scim
        .all("Groups")
        .await?
        .into_values()
        .map(|group| {
            let mut members: Vec<String> = group
                .member_ids()
                .iter()
                .map(|id| {
                    anchor_of
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| format!("dangling {id}"))
                })
                .collect();
            members.sort();
            (group.external_id, members)
        })
        .collect())
}

/// Group `g` of [`directory`]: users `20g .. 20g+20` (of those still there).
fn members_of(g: usize, users: usize, gone: &[usize]) -> Vec<String> {
    (g * 20..(g * 20 + 20).min(users))
        .filter(|n| !gone.contains(n))
        .map(uid)
        .collect()
}

/// The 1,000 users and 20 groups of the initial load, and then a cycle of 10 updates,
/// 5 disables and 3 deletes, as both targets show them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_load_and_a_cycle_reach_slapd_and_the_scim_server_exactly() -> anyhow::Result<()>
{
    let (slapd, scim) = (Slapd::start().await?, ScimServer::start().await?);
    let suite = Suite::start().await?;
    suite.add_secret(LDAP_SECRET, ADMIN_PASSWORD)?;
    suite.add_secret(SCIM_SECRET, &scim.token)?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(exported_job(slapd.url(), scim.base_url(), None)),
        })
        .await?
        .into_inner()
        .job_id;
    let exporter = suite.exporter(Some(&suite.tokens.reader));

    let initial = directory(1000, 20);
    let loaded = push_snapshot(&mut ingest, &job_id, &initial).await?;
    assert_eq!(loaded.cycle_state, CycleState::Completed as i32);
    let status = exported(&exporter, &job_id).await?;
    assert_eq!(status.len(), 2);
    assert!(
        status
            .iter()
            .all(|t| t.exported >= 1020 && t.last_error.is_empty()),
        "{status:?}"
    );

    let users = ldap_users(&slapd).await?;
    assert_eq!(users.len(), 1000, "every user in slapd");
    assert_eq!(users[&uid(7)].first("mail"), Some("user7@example.org"));
    assert_eq!(users[&uid(7)].first("cn"), Some("User 7"));
    let groups = ldap_groups(&slapd).await?;
    assert_eq!(groups.len(), 20);
    for g in 0..20 {
        assert_eq!(
            groups[&format!("g-{g:05}")],
            members_of(g, 1000, &[]),
            "group {g}"
        );
    }
    let scim_users = scim.all("Users").await?;
    assert_eq!(
        scim_users.len(),
        1000,
        "every user in the SCIM app, each once"
    );
    assert!(scim_users.values().all(|user| user.active()));
    assert_eq!(scim_users[&uid(7)].text("title"), Some("Engineer"));
    let app_groups = scim_groups(&scim).await?;
    assert_eq!(app_groups.len(), 20);
    for g in 0..20 {
        assert_eq!(
            app_groups[&format!("g-{g:05}")],
            members_of(g, 1000, &[]),
            "group {g}"
        );
    }

    // 10 promotions, 5 accounts disabled, 3 leavers.
    let mut next = directory(1000, 20);
    for user in next.iter_mut().take(10) {
        user.attributes.insert(
            "title".into(),
            v1::AttributeValues {
                values: vec!["Manager".into()],
            },
        );
    }
    for user in next.iter_mut().skip(10).take(5) {
        user.enabled = false;
    }
    let leavers = [15, 16, 17];
    next.retain(|object| !leavers.iter().any(|n| object.anchor == uid(*n)));
    for group in next.iter_mut().filter(|o| o.anchor.starts_with("g-")) {
        group
            .member_anchors
            .retain(|member| !leavers.iter().any(|n| *member == uid(*n)));
    }
    let cycle = push_snapshot(&mut ingest, &job_id, &next).await?;
    assert_eq!(cycle.cycle_state, CycleState::Completed as i32);
    exported(&exporter, &job_id).await?;

    let users = ldap_users(&slapd).await?;
    assert_eq!(users.len(), 997, "the three leavers are gone from slapd");
    for (anchor, entry) in &users {
        let n: usize = anchor[2..].parse()?;
        let title = if n < 10 { "Manager" } else { "Engineer" };
        assert_eq!(entry.first("title"), Some(title), "{anchor}");
        let disabled = (10..15).contains(&n);
        assert_eq!(
            entry.first("employeeType"),
            disabled.then_some("disabled"),
            "{anchor}"
        );
    }
    assert_eq!(
        ldap_groups(&slapd).await?[&"g-00000".to_owned()],
        members_of(0, 1000, &leavers),
        "the leavers left their group"
    );
    let scim_users = scim.all("Users").await?;
    assert_eq!(
        scim_users.len(),
        997,
        "the leavers were DELETEd from the app"
    );
    for (anchor, user) in &scim_users {
        let n: usize = anchor[2..].parse()?;
        let title = if n < 10 { "Manager" } else { "Engineer" };
        assert_eq!(user.text("title"), Some(title), "{anchor}");
        assert_eq!(user.active(), !(10..15).contains(&n), "{anchor}");
    }
    assert_eq!(
        scim_groups(&scim).await?[&"g-00000".to_owned()],
        members_of(0, 1000, &leavers)
    );

    // Each object and target has its log row.
    let logged = suite
        .stager(Some(&suite.tokens.reader))
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            action: v1::LogActionFilter::Export as i32,
            page: Some(v1::PageRequest {
                page_size: 10,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(
        !logged.entries.is_empty(),
        "exports are in the provisioning log"
    );
    suite.stop().await?;
    slapd.stop().await?;
    scim.stop().await
}

/// A quarantined cycle reaches neither target until it is allowed; a rejected one never
/// does; a restore re-creates the object in both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_deletes_stay_out_of_both_targets_until_allowed_and_restores_come_back()
-> anyhow::Result<()> {
    let (slapd, scim) = (Slapd::start().await?, ScimServer::start().await?);
    let suite = Suite::start().await?;
    suite.add_secret(LDAP_SECRET, ADMIN_PASSWORD)?;
    suite.add_secret(SCIM_SECRET, &scim.token)?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(exported_job(slapd.url(), scim.base_url(), Some(3))),
        })
        .await?
        .into_inner()
        .job_id;
    let exporter = suite.exporter(Some(&suite.tokens.reader));
    push_snapshot(&mut ingest, &job_id, &directory(40, 0)).await?;
    exported(&exporter, &job_id).await?;

    let present = |users: usize, gone: &[usize]| -> Vec<String> {
        (0..users).filter(|n| !gone.contains(n)).map(uid).collect()
    };
    let in_targets = || async {
        let ldap: Vec<String> = ldap_users(&slapd).await?.into_keys().collect();
        let app: Vec<String> = scim.all("Users").await?.into_keys().collect();
        anyhow::Ok((ldap, app))
    };

    // Five leavers: held. Neither target hears of them.
    let five = [0, 1, 2, 3, 4];
    let held = push_snapshot(
        &mut ingest,
        &job_id,
        &directory(40, 0)
            .into_iter()
            .filter(|o| !five.iter().any(|n| o.anchor == uid(*n)))
            .collect::<Vec<_>>(),
    )
    .await?;
    assert_eq!(held.cycle_state, CycleState::Quarantined as i32);
    // The held cycle entered no feed: with the export caught up, both still show all 40.
    exported(&exporter, &job_id).await?;
    assert_eq!(in_targets().await?, (present(40, &[]), present(40, &[])));

    let mut gate = suite.gate(Some(&suite.tokens.approver));
    let quarantine = gate
        .get_quarantine(v1::GetQuarantineRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let allowed = gate
        .allow_deletes(v1::AllowDeletesRequest {
            quarantine_id: quarantine.quarantine_id.clone(),
            digest: quarantine.digest.clone(),
            reason: "HR confirmed the leavers".into(),
            anchors: Vec::new(),
        })
        .await?
        .into_inner();
    assert_eq!(allowed.cycle_state, CycleState::Completed as i32);
    exported(&exporter, &job_id).await?;
    assert_eq!(
        in_targets().await?,
        (present(40, &five), present(40, &five))
    );

    // Five more leavers, rejected: they stay in both targets, also after the next cycle
    // (a title change) has been exported past the decision.
    let ten: Vec<usize> = (0..10).collect();
    let rejected = push_snapshot(
        &mut ingest,
        &job_id,
        &directory(40, 0)
            .into_iter()
            .filter(|o| !ten.iter().any(|n| o.anchor == uid(*n)))
            .collect::<Vec<_>>(),
    )
    .await?;
    assert_eq!(rejected.cycle_state, CycleState::Quarantined as i32);
    let quarantine = gate
        .get_quarantine(v1::GetQuarantineRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    gate.reject_deletes(v1::RejectDeletesRequest {
        quarantine_id: quarantine.quarantine_id.clone(),
        digest: quarantine.digest.clone(),
        reason: "a broken HR export".into(),
        anchors: Vec::new(),
    })
    .await?;
    let mut later = directory(40, 0);
    later.retain(|o| !five.iter().any(|n| o.anchor == uid(*n)));
    if let Some(user) = later.iter_mut().find(|o| o.anchor == uid(30)) {
        user.attributes.insert(
            "title".into(),
            v1::AttributeValues {
                values: vec!["Director".into()],
            },
        );
    }
    let healthy = push_snapshot(&mut ingest, &job_id, &later).await?;
    assert_eq!(healthy.cycle_state, CycleState::Completed as i32);
    exported(&exporter, &job_id).await?;
    assert_eq!(
        in_targets().await?,
        (present(40, &five), present(40, &five))
    );
    assert_eq!(
        ldap_users(&slapd).await?[&uid(30)].first("title"),
        Some("Director"),
        "the healthy cycle after the rejection was exported"
    );

    // A restore brings a leaver back to both.
    suite
        .retention(Some(&suite.tokens.approver))
        .restore_object(v1::RestoreObjectRequest {
            object: Some(v1::ObjectRef {
                by: Some(v1::object_ref::By::Anchor(v1::AnchorRef {
                    job_id: job_id.clone(),
                    anchor: uid(2),
                })),
            }),
            reason: "left by mistake".into(),
        })
        .await?;
    exported(&exporter, &job_id).await?;
    let back = [0, 1, 3, 4];
    assert_eq!(
        in_targets().await?,
        (present(40, &back), present(40, &back))
    );
    assert_eq!(
        ldap_users(&slapd).await?[&uid(2)].first("mail"),
        Some("user2@example.org"),
        "re-created with its attributes"
    );
    assert!(scim.all("Users").await?[&uid(2)].active());
    suite.stop().await?;
    slapd.stop().await?;
    scim.stop().await
}

/// Both targets go down in the middle of the initial export while another cycle is applied;
/// they come back, and every change arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_that_go_down_mid_export_catch_up_with_every_change_once() -> anyhow::Result<()> {
    let (mut slapd, scim) = (Slapd::start().await?, ScimServer::start().await?);
    let switch = Switch::start(scim.port).await?;
    let suite = Suite::start().await?;
    suite.add_secret(LDAP_SECRET, ADMIN_PASSWORD)?;
    suite.add_secret(SCIM_SECRET, &scim.token)?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(exported_job(
                slapd.url(),
                format!("http://127.0.0.1:{}", switch.port),
                None,
            )),
        })
        .await?
        .into_inner()
        .job_id;
    let exporter = suite.exporter(Some(&suite.tokens.reader));
    push_snapshot(&mut ingest, &job_id, &directory(1000, 20)).await?;

    // Down as soon as each has taken its first page.
    first_pages_written(&exporter, &job_id).await?;
    slapd.pause().await?;
    switch.off();

    // While they are down a cycle promotes everyone; the exporter says what it is waiting on.
    let mut promoted = directory(1000, 20);
    for user in promoted.iter_mut().filter(|o| o.anchor.starts_with("u-")) {
        user.attributes.insert(
            "title".into(),
            v1::AttributeValues {
                values: vec!["Lead".into()],
            },
        );
    }
    let cycle = push_snapshot(&mut ingest, &job_id, &promoted).await?;
    assert_eq!(cycle.cycle_state, CycleState::Completed as i32);
    let waiting = targets_when(&exporter, &job_id, "both targets reported down", |t| {
        !t.last_error.is_empty() && t.pending_changes > 0
    })
    .await?;
    assert!(
        waiting.iter().all(|t| t.failed == 0),
        "a target outage parks no object: {waiting:?}"
    );

    slapd.resume().await?;
    switch.on();
    let status = exported(&exporter, &job_id).await?;
    assert!(status.iter().all(|t| t.last_error.is_empty()), "{status:?}");
    let users = ldap_users(&slapd).await?;
    assert_eq!(users.len(), 1000);
    assert!(users.values().all(|u| u.first("title") == Some("Lead")));
    assert_eq!(ldap_groups(&slapd).await?.len(), 20);
    let app = scim.all("Users").await?;
    assert_eq!(app.len(), 1000, "each user once in the app");
    assert!(app.values().all(|u| u.text("title") == Some("Lead")));
    let app_groups = scim_groups(&scim).await?;
    for g in 0..20 {
        assert_eq!(
            app_groups[&format!("g-{g:05}")],
            members_of(g, 1000, &[]),
            "group {g}"
        );
    }
    suite.stop().await?;
    slapd.stop().await?;
    scim.stop().await
}

/// The exporter process is killed with SIGKILL in the middle of the initial export and
/// started again: it resumes from its recorded cursor, and each object is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exporter_killed_mid_export_resumes_and_nothing_is_lost_or_doubled() -> anyhow::Result<()>
{
    let (slapd, scim) = (Slapd::start().await?, ScimServer::start().await?);
    let secrets = std::env::temp_dir().join(format!("syncguard-secrets-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&secrets)?;
    std::fs::write(secrets.join(LDAP_SECRET), ADMIN_PASSWORD)?;
    std::fs::write(secrets.join(SCIM_SECRET), &scim.token)?;
    let mut processes = Processes::start_with(ProcessOptions {
        extra_env: vec![
            (
                "SYNCGUARD_SECRETS_DIR".into(),
                secrets.display().to_string(),
            ),
            (
                "SYNCGUARD_MAIL_DIR".into(),
                secrets.join("mail").display().to_string(),
            ),
        ],
        ..ProcessOptions::default()
    })
    .await?;
    let operator = processes.tokens.operator.clone();
    let mut ingest = v1::ingest_service_client::IngestServiceClient::new(
        processes.authed(ServiceName::Ingest, &operator),
    );
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(exported_job(slapd.url(), scim.base_url(), None)),
        })
        .await?
        .into_inner()
        .job_id;
    push_snapshot(&mut ingest, &job_id, &directory(1000, 20)).await?;
    let reader = processes.tokens.reader.clone();
    let exporter = ExporterServiceClient::new(processes.authed(ServiceName::Exporter, &reader));
    first_pages_written(&exporter, &job_id).await?;
    processes.kill(ServiceName::Exporter).await?;
    processes.restart(ServiceName::Exporter).await?;
    let exporter = ExporterServiceClient::new(processes.authed(ServiceName::Exporter, &reader));
    exported(&exporter, &job_id).await?;

    assert_eq!(ldap_users(&slapd).await?.len(), 1000);
    let groups = ldap_groups(&slapd).await?;
    assert_eq!(groups.len(), 20);
    assert_eq!(groups[&"g-00003".to_owned()], members_of(3, 1000, &[]));
    assert_eq!(
        scim.all("Users").await?.len(),
        1000,
        "no user created twice"
    );
    let app_groups = scim_groups(&scim).await?;
    assert_eq!(app_groups.len(), 20, "no group created twice");
    assert_eq!(app_groups[&"g-00003".to_owned()], members_of(3, 1000, &[]));
    processes.stop().await?;
    std::fs::remove_dir_all(&secrets)?;
    slapd.stop().await?;
    scim.stop().await
}
