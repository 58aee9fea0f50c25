//! `syncguard-bench --ldap`: the same cycle read from a real slapd. N users are loaded with
//! `slapadd`; the run prints our full cycle beside `ldapsearch -E pr=1000/noprompt` dumping
//! the same entries plus `psql \copy` loading the same snapshot, measured in the same run.

use std::time::{Duration, Instant};

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::slapd::{ADMIN_DN, ADMIN_PASSWORD, SUFFIX};
use syncguard_e2e::{TestDatabase, Tokens};
use syncguard_ingest::source_object::canonicalize;
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use syncguard_proto::v1::{self, AttributeValues, ObjectType};
use tokio::process::Command;

use crate::anchors::{print_copies, time_psql_copy};
use crate::services::{authed, cpu_seconds, peak_rss_mib, secrets_dir, start_services};

fn entry(n: usize) -> String {
    format!(
        "dn: uid=person{n},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: person{n}\ncn: Person {n}\nsn: {n}\n\
         mail: person{n}@example.org\ntitle: Engineer\ndepartmentNumber: {}\nemployeeNumber: {n}\n\n",
        n % 40
    )
}

/// The snapshot the read produces, for the \copy comparison: the same attributes.
fn source_object(n: usize) -> v1::SourceObject {
    let value = |text: String| AttributeValues { values: vec![text] };
    let attributes = [
        ("objectclass", "inetOrgPerson".to_owned()),
        ("uid", format!("person{n}")),
        ("cn", format!("Person {n}")),
        ("sn", n.to_string()),
        ("mail", format!("person{n}@example.org")),
        ("title", "Engineer".to_owned()),
        ("departmentnumber", (n % 40).to_string()),
        ("employeenumber", n.to_string()),
    ]
    .into_iter()
    .map(|(name, text)| (name.to_owned(), value(text)))
    .collect();
    v1::SourceObject {
        anchor: uuid::Uuid::new_v4().to_string(),
        object_type: ObjectType::User as i32,
        distinguished_name: format!("uid=person{n},ou=people,{SUFFIX}"),
        attributes,
        enabled: true,
        member_anchors: Vec::new(),
        deleted_in_source: false,
    }
}

async fn run_checked(command: &mut Command, what: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = command
        .output()
        .await
        .map_err(|error| anyhow::anyhow!("{what}: {error}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(started.elapsed())
}

/// Runs the LDAP benchmark for `total` users.
pub async fn run(total: usize) -> anyhow::Result<()> {
    println!("\n== LDAP source, {total} entries ==");
    let dir = std::env::temp_dir().join(format!("syncguard-bench-ldap-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("db"))?;
    let config = format!(
        "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
         include /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n\
         modulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {d}/slapd.pid\n\
         sizelimit unlimited\ndatabase mdb\nmaxsize 17179869184\nsuffix \"{SUFFIX}\"\n\
         rootdn \"{ADMIN_DN}\"\nrootpw {ADMIN_PASSWORD}\ndirectory {d}/db\n",
        d = dir.display()
    );
    let conf = dir.join("slapd.conf");
    std::fs::write(&conf, config)?;
    {
        use std::io::Write as _;
        let mut ldif = std::io::BufWriter::new(std::fs::File::create(dir.join("data.ldif"))?);
        write!(
            ldif,
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n"
        )?;
        for n in 0..total {
            ldif.write_all(entry(n).as_bytes())?;
        }
    }
    let slapadd = run_checked(
        Command::new("/usr/sbin/slapadd")
            .arg("-q")
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(dir.join("data.ldif")),
        "slapadd",
    )
    .await?;
    println!(
        "  slapadd of {total} entries: {:.2} s (setup, not compared)",
        slapadd.as_secs_f64()
    );
    let port = syncguard_e2e::smtp::free_port();
    let url = format!("ldap://127.0.0.1:{port}");
    run_checked(
        Command::new("/usr/sbin/slapd")
            .args(["-h", &format!("{url}/"), "-f"])
            .arg(&conf),
        "slapd",
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let dump = run_checked(
        Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-H",
                &url,
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
                "-b",
                SUFFIX,
            ])
            .args([
                "-E",
                "pr=1000/noprompt",
                "(objectClass=inetOrgPerson)",
                "*",
                "entryUUID",
            ])
            .stdout(std::process::Stdio::null()),
        "ldapsearch",
    )
    .await?;

    let database = TestDatabase::create().await?;
    let objects: Vec<v1::SourceObject> = (0..total).map(source_object).collect();
    let copy = print_copies(
        total,
        &time_psql_copy(
            &database,
            &dir,
            objects
                .into_iter()
                .enumerate()
                .map(|(i, o)| canonicalize(i as u64, o)),
        )
        .await?,
    );

    let tokens = Tokens::generate_for_processes();
    let token_file = dir.join("tokens");
    tokens.write_file(&token_file)?;
    let services = start_services(&database, &tokens, &token_file, &dir).await?;
    std::fs::write(secrets_dir(&dir).join("bench-ldap"), ADMIN_PASSWORD)?;
    let mut ingest = IngestServiceClient::new(authed(
        services.addresses[&ServiceName::Ingest],
        &tokens.operator,
    ));
    let mut stager = StagerServiceClient::new(authed(
        services.addresses[&ServiceName::Stager],
        &tokens.reader,
    ));
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(v1::JobSpec {
                name: format!("ldap bench {total}"),
                source: Some(v1::JobSource {
                    kind: Some(v1::job_source::Kind::Ldap(v1::LdapSource {
                        url: url.clone(),
                        bind_dn: ADMIN_DN.into(),
                        password_secret: "bench-ldap".into(),
                        base_dn: SUFFIX.into(),
                        filter: "(objectClass=inetOrgPerson)".into(),
                        page_size: 1000,
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .job_id;
    for label in [
        "initial load (every entry created)",
        "steady cycle (nothing changed)",
    ] {
        let started = Instant::now();
        let triggered = ingest
            .trigger_cycle(v1::TriggerCycleRequest {
                job_id: job_id.clone(),
            })
            .await?
            .into_inner();
        let took = started.elapsed();
        let cycle = stager
            .get_cycle(v1::GetCycleRequest {
                cycle_id: triggered.cycle_id,
            })
            .await?
            .into_inner();
        let phases: Vec<String> = cycle
            .phases
            .iter()
            .map(|p| {
                format!(
                    "{} {:.2} s",
                    p.phase,
                    p.duration
                        .map(|d| d.seconds as f64 + f64::from(d.nanos) / 1e9)
                        .unwrap_or(0.0)
                )
            })
            .collect();
        println!(
            "  {label}: {:.2} s ({:.0} entries/s): {}",
            took.as_secs_f64(),
            total as f64 / took.as_secs_f64(),
            phases.join(", ")
        );
        if label.starts_with("steady") {
            let sum = dump + copy;
            println!(
                "  ldapsearch -E pr=1000/noprompt dump: {:.2} s; psql \\copy of the same snapshot: {:.2} s; sum {:.2} s",
                dump.as_secs_f64(),
                copy.as_secs_f64(),
                sum.as_secs_f64()
            );
            println!(
                "  steady LDAP cycle / (dump + \\copy): {:.2}x (target: within 1.5x)",
                took.as_secs_f64() / sum.as_secs_f64()
            );
        }
    }
    for (service, child) in &services.children {
        let rss = child.id().and_then(peak_rss_mib).unwrap_or(f64::NAN);
        let cpu = child.id().and_then(cpu_seconds).unwrap_or(f64::NAN);
        println!(
            "    {:<10} {:>8.1} MiB {:>8.2} s CPU",
            service.as_str(),
            rss,
            cpu
        );
    }
    services.stop().await;
    if let Ok(pid) = std::fs::read_to_string(dir.join("slapd.pid")) {
        let _ = Command::new("kill").arg(pid.trim()).status().await;
    }
    database.drop_database().await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
