//! `syncguard-bench --export [N]`: how fast applied changes reach real targets. N users are
//! pushed to a job whose only target is a real slapd, then to one whose only target is the
//! `scim2-server` SCIM provider; each is timed from the push's answer (the cycle applied)
//! until the target has every user. Beside them, in the same run: `ldapadd` of the same N
//! entries into the same slapd, and the same N users POSTed one by one to the same SCIM
//! server by a plain HTTP client.

use std::time::{Duration, Instant};

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::directory::push_snapshot;
use syncguard_e2e::scim::ScimServer;
use syncguard_e2e::slapd::{ADMIN_DN, ADMIN_PASSWORD, SUFFIX, Slapd};
use syncguard_e2e::{TestDatabase, Tokens};
use syncguard_proto::v1::exporter_service_client::ExporterServiceClient;
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::{self, AttributeValues, ObjectType};

use crate::services::{Authed, MESSAGE_LIMIT, authed, peak_rss_mib, secrets_dir, start_services};

fn user(n: usize) -> v1::SourceObject {
    let value = |text: String| AttributeValues { values: vec![text] };
    v1::SourceObject {
        anchor: format!("e-{n:07}"),
        object_type: ObjectType::User as i32,
        distinguished_name: format!("uid=e-{n:07},ou=people,{SUFFIX}"),
        attributes: [
            ("cn", format!("Person {n}")),
            ("sn", n.to_string()),
            ("mail", format!("person{n}@example.org")),
            ("title", "Engineer".to_owned()),
        ]
        .into_iter()
        .map(|(name, text)| (name.to_owned(), value(text)))
        .collect(),
        enabled: true,
        member_anchors: Vec::new(),
        deleted_in_source: false,
    }
}

/// The same entry as the exporter writes it, under `ou=anchor`.
fn ldif(n: usize) -> String {
    format!(
        "dn: uid=e-{n:07},ou=anchor,{SUFFIX}\nobjectClass: top\nobjectClass: person\n\
         objectClass: organizationalPerson\nobjectClass: inetOrgPerson\nuid: e-{n:07}\n\
         cn: Person {n}\nsn: {n}\nmail: person{n}@example.org\ntitle: Engineer\n\n"
    )
}

/// Pushes `total` users to a new job with `target` and waits until the target has them all.
async fn export_time(
    ingest: &mut IngestServiceClient<Authed>,
    exporter: &mut ExporterServiceClient<Authed>,
    target: v1::JobTarget,
    total: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(v1::JobSpec {
                name: format!("export bench {}", target.name),
                source: Some(v1::JobSource {
                    kind: Some(v1::job_source::Kind::Push(v1::PushSource {})),
                }),
                targets: vec![target],
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .job_id;
    let users: Vec<v1::SourceObject> = (0..total).map(user).collect();
    let started = Instant::now();
    let pushed = push_snapshot(ingest, &job_id, &users).await?;
    anyhow::ensure!(
        pushed.cycle_state == v1::CycleState::Completed as i32,
        "the load did not complete: {pushed:?}"
    );
    let applied = started.elapsed();
    let exported_from = Instant::now();
    loop {
        let targets = exporter
            .list_targets(v1::ListTargetsRequest {
                job_id: job_id.clone(),
            })
            .await?
            .into_inner()
            .targets;
        if targets
            .iter()
            .all(|t| !t.bootstrapping && t.pending_changes == 0 && t.exported >= total as u64)
        {
            break;
        }
        if let Some(failing) = targets.iter().find(|t| t.failed > 0) {
            anyhow::bail!("the target refused objects: {failing:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((applied, exported_from.elapsed()))
}

fn rate(total: usize, took: Duration) -> f64 {
    total as f64 / took.as_secs_f64()
}

/// Runs the export benchmark for `total` users per target.
pub async fn run(total: usize) -> anyhow::Result<()> {
    println!("\n== export to real targets, {total} users each ==");
    let dir = std::env::temp_dir().join(format!("syncguard-bench-export-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let (slapd, scim) = (Slapd::start().await?, ScimServer::start().await?);

    // Anchors: ldapadd of the same entries; the same users POSTed one by one.
    slapd
        .add(&format!(
            "dn: ou=anchor,{SUFFIX}\nobjectClass: organizationalUnit\nou: anchor\n"
        ))
        .await?;
    let entries: String = (0..total).map(ldif).collect();
    let started = Instant::now();
    slapd.add(&entries).await?;
    let ldapadd = started.elapsed();
    let http = reqwest::Client::new();
    let started = Instant::now();
    for n in 0..total {
        let response = http
            .post(format!("{}/Users", scim.base_url()))
            .bearer_auth(&scim.token)
            .json(&serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("anchor-{n}"), "externalId": format!("anchor-{n}"),
                "active": true, "title": "Engineer",
                "emails": [{"value": format!("person{n}@example.org"), "primary": true}],
            }))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "POST: {}",
            response.status()
        );
    }
    let posts = started.elapsed();

    let database = TestDatabase::create().await?;
    let tokens = Tokens::generate_for_processes();
    let token_file = dir.join("tokens");
    tokens.write_file(&token_file)?;
    let services = start_services(&database, &tokens, &token_file, &dir).await?;
    std::fs::write(secrets_dir(&dir).join("bench-ldap"), ADMIN_PASSWORD)?;
    std::fs::write(secrets_dir(&dir).join("bench-scim"), &scim.token)?;
    let mut ingest = IngestServiceClient::new(authed(
        services.addresses[&ServiceName::Ingest],
        &tokens.operator,
    ))
    .max_encoding_message_size(MESSAGE_LIMIT);
    let mut exporter = ExporterServiceClient::new(authed(
        services.addresses[&ServiceName::Exporter],
        &tokens.reader,
    ));
    let ldap_target = v1::JobTarget {
        name: "slapd".into(),
        kind: Some(v1::job_target::Kind::Ldap(v1::LdapTarget {
            url: slapd.url(),
            bind_dn: ADMIN_DN.into(),
            password_secret: "bench-ldap".into(),
            users_base_dn: format!("ou=people,{SUFFIX}"),
            groups_base_dn: format!("ou=groups,{SUFFIX}"),
            ..Default::default()
        })),
    };
    let scim_target = v1::JobTarget {
        name: "scim".into(),
        kind: Some(v1::job_target::Kind::Scim(v1::ScimTarget {
            base_url: scim.base_url(),
            token_secret: "bench-scim".into(),
            ..Default::default()
        })),
    };
    let (ldap_applied, to_slapd) =
        export_time(&mut ingest, &mut exporter, ldap_target, total).await?;
    let (scim_applied, to_scim) =
        export_time(&mut ingest, &mut exporter, scim_target, total).await?;

    println!("| workload | syncguard | anchor, same run | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| export to slapd (after the cycle applied in {:.2} s) | {:.2} s, {:.0} objects/s | ldapadd of the same entries {:.2} s, {:.0}/s | {:.2}x |",
        ldap_applied.as_secs_f64(),
        to_slapd.as_secs_f64(),
        rate(total, to_slapd),
        ldapadd.as_secs_f64(),
        rate(total, ldapadd),
        to_slapd.as_secs_f64() / ldapadd.as_secs_f64()
    );
    println!(
        "| export to scim2-server (after the cycle applied in {:.2} s) | {:.2} s, {:.0} objects/s | the same users POSTed one by one {:.2} s, {:.0}/s; ldapadd {:.2} s | {:.2}x of the POSTs, {:.2}x of ldapadd |",
        scim_applied.as_secs_f64(),
        to_scim.as_secs_f64(),
        rate(total, to_scim),
        posts.as_secs_f64(),
        rate(total, posts),
        ldapadd.as_secs_f64(),
        to_scim.as_secs_f64() / posts.as_secs_f64(),
        to_scim.as_secs_f64() / ldapadd.as_secs_f64()
    );
    for (service, child) in &services.children {
        if *service == ServiceName::Exporter {
            let rss = child.id().and_then(peak_rss_mib).unwrap_or(f64::NAN);
            println!("  exporter peak RSS {rss:.1} MiB");
        }
    }
    services.stop().await;
    database.drop_database().await?;
    slapd.stop().await?;
    scim.stop().await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
