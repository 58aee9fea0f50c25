//! The cycle benchmark: starts the five release binaries against a fresh database, pushes a
//! directory of N objects, then a second snapshot with 1% creates, 1% updates and 400
//! deletes plus disables, and prints per phase the wall time and objects per second, each
//! service's peak RSS, and beside it the time `psql \copy` takes to load the same snapshot
//! into an indexed table. Run it with `scripts/bench [N ...]`.
//!
//! `scripts/bench --ldap [N ...]` reads the same kind of directory from a real slapd instead
//! (see `ldap_mode`).
//!
//! Phases, as the cycle records them: ingest (receive, validate, hash, COPY, commit), stage
//! (the diff), decide (the protection rules), apply (target writes and soft deletes).

mod ldap_mode;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::{BearerToken, TestDatabase, Tokens, loopback_channel, wait_until_serving};
use syncguard_ingest::source_object::canonicalize;
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use syncguard_proto::v1::{self, ObjectType, push_snapshot_request::Part};
use tokio::process::{Child, Command};
use tonic::service::interceptor::InterceptedService;

const BATCH: usize = 2000;
const MESSAGE_LIMIT: usize = 64 * 1024 * 1024;

/// Which version of object `n` a snapshot carries.
#[derive(Clone, Copy)]
enum Round {
    Initial,
    Changed,
}

fn object(n: usize, round: Round, total: usize) -> Option<v1::SourceObject> {
    let one_percent = (total / 100).max(1);
    let is_group = n % 100 == 99;
    let mut title = "Engineer".to_owned();
    let mut enabled = true;
    if let Round::Changed = round {
        // 200 deletes: objects 0..200 are gone; 200 disables: 200..400.
        if n < 200 {
            return None;
        }
        if (200..400).contains(&n) && !is_group {
            enabled = false;
        }
        if (400..400 + one_percent).contains(&n) {
            title = "Staff Engineer".to_owned();
        }
    }
    let mut attributes = HashMap::new();
    let mut put = |name: &str, value: String| {
        attributes.insert(
            name.to_owned(),
            v1::AttributeValues {
                values: vec![value],
            },
        );
    };
    put("cn", format!("Person {n}"));
    put("title", title);
    put("department", format!("Department {}", n % 40));
    if is_group {
        let members = (n.saturating_sub(20)..n)
            .map(|m| format!("a-{m:08}"))
            .collect();
        return Some(v1::SourceObject {
            anchor: format!("a-{n:08}"),
            object_type: ObjectType::Group as i32,
            distinguished_name: format!("cn=group{n},ou=groups,dc=example,dc=org"),
            attributes,
            enabled: true,
            member_anchors: members,
            deleted_in_source: false,
        });
    }
    put("mail", format!("person{n}@example.org"));
    put("employeeNumber", format!("{n}"));
    Some(v1::SourceObject {
        anchor: format!("a-{n:08}"),
        object_type: ObjectType::User as i32,
        distinguished_name: format!("uid=person{n},ou=people,dc=example,dc=org"),
        attributes,
        enabled,
        member_anchors: Vec::new(),
        deleted_in_source: false,
    })
}

/// The objects of a round: all N initially; then N - 200 + 1% new ones.
fn snapshot(total: usize, round: Round) -> impl Iterator<Item = v1::SourceObject> {
    let extra = match round {
        Round::Initial => 0,
        Round::Changed => (total / 100).max(1),
    };
    (0..total + extra).filter_map(move |n| object(n, round, total))
}

fn count(total: usize, round: Round) -> usize {
    snapshot(total, round).count()
}

/// Every message of a push, built before the clock starts: the benchmark times syncguard,
/// not the generation of test data.
fn messages(job_id: String, total: usize, round: Round) -> Vec<v1::PushSnapshotRequest> {
    let expected = count(total, round) as u64;
    let header = std::iter::once(v1::PushSnapshotRequest {
        part: Some(Part::Header(v1::SnapshotHeader {
            job_id,
            idempotency_key: String::new(),
        })),
    });
    let mut objects = snapshot(total, round).peekable();
    let batches = std::iter::from_fn(move || {
        objects.peek()?;
        let batch: Vec<_> = objects.by_ref().take(BATCH).collect();
        Some(v1::PushSnapshotRequest {
            part: Some(Part::Batch(v1::ObjectBatch { objects: batch })),
        })
    });
    let end = std::iter::once(v1::PushSnapshotRequest {
        part: Some(Part::End(v1::SnapshotEnd {
            total_objects: expected,
        })),
    });
    header.chain(batches).chain(end).collect()
}

fn release_binary(service: ServiceName) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no binary directory"))?;
    let path = dir.join(format!("syncguard-{}", service.as_str()));
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run scripts/bench, which builds it",
        path.display()
    );
    Ok(path)
}

/// CPU seconds (user + system) a process has used, from /proc/<pid>/stat.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

struct Services {
    children: Vec<(ServiceName, Child)>,
    addresses: HashMap<ServiceName, SocketAddr>,
}

impl Services {
    /// SIGTERM to each service, waiting up to 10 s for it to exit.
    async fn stop(self) {
        for (_, mut child) in self.children {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
}

async fn start_services(
    database: &TestDatabase,
    tokens: &Tokens,
    token_file: &Path,
    dir: &Path,
) -> anyhow::Result<Services> {
    let mut addresses = HashMap::new();
    for service in ServiceName::ALL {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        addresses.insert(service, listener.local_addr()?);
    }
    let mut children = Vec::new();
    for service in ServiceName::ALL {
        let mut command = Command::new(release_binary(service)?);
        command
            .env("DATABASE_URL", database.url())
            .env("SYNCGUARD_LISTEN", addresses[&service].to_string())
            .env("SYNCGUARD_TOKENS_FILE", token_file)
            .env("SYNCGUARD_SERVICE_TOKEN", &tokens.service)
            .env("SYNCGUARD_MAX_MESSAGE_BYTES", MESSAGE_LIMIT.to_string())
            .env("SYNCGUARD_MAIL_DIR", dir.join("mail"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true);
        for (peer, address) in &addresses {
            command.env(peer.url_variable(), format!("http://{address}"));
        }
        children.push((service, command.spawn()?));
    }
    for service in ServiceName::ALL {
        wait_until_serving(service, addresses[&service]).await?;
    }
    Ok(Services {
        children,
        addresses,
    })
}

fn authed(
    address: SocketAddr,
    token: &str,
) -> InterceptedService<tonic::transport::Channel, BearerToken> {
    let value = format!("Bearer {token}").parse().ok();
    InterceptedService::new(loopback_channel(address), BearerToken::new(value))
}

struct CycleFigures {
    push_total: Duration,
    phases: Vec<(String, Duration)>,
    objects: usize,
}

async fn push_and_measure(
    ingest: &mut IngestServiceClient<InterceptedService<tonic::transport::Channel, BearerToken>>,
    stager: &mut StagerServiceClient<InterceptedService<tonic::transport::Channel, BearerToken>>,
    job_id: &str,
    total: usize,
    round: Round,
) -> anyhow::Result<CycleFigures> {
    let prepared = messages(job_id.to_owned(), total, round);
    let started = Instant::now();
    let response = ingest
        .push_snapshot(tokio_stream::iter(prepared))
        .await?
        .into_inner();
    let push_total = started.elapsed();
    anyhow::ensure!(
        response.cycle_state == v1::CycleState::Completed as i32,
        "the cycle did not complete: {response:?}"
    );
    let cycle = stager
        .get_cycle(v1::GetCycleRequest {
            cycle_id: response.cycle_id,
        })
        .await?
        .into_inner();
    let phases = cycle
        .phases
        .iter()
        .map(|phase| {
            let duration = phase.duration.unwrap_or_default();
            (
                phase.phase.clone(),
                Duration::from_secs(duration.seconds as u64)
                    + Duration::from_nanos(duration.nanos as u64),
            )
        })
        .collect();
    Ok(CycleFigures {
        push_total,
        phases,
        objects: response.objects_received as usize,
    })
}

fn print_cycle(label: &str, figures: &CycleFigures) {
    let rate = |duration: Duration| figures.objects as f64 / duration.as_secs_f64().max(1e-9);
    let phase_total: Duration = figures.phases.iter().map(|(_, d)| *d).sum();
    let between = figures.push_total.saturating_sub(phase_total);
    println!("  {label}: {} objects", figures.objects);
    for (phase, duration) in &figures.phases {
        println!(
            "    {:<28} {:>9.2} s {:>12.0} objects/s",
            phase,
            duration.as_secs_f64(),
            rate(*duration)
        );
    }
    println!(
        "    {:<28} {:>9.2} s",
        "calls between services",
        between.as_secs_f64()
    );
    println!(
        "    {:<28} {:>9.2} s {:>12.0} objects/s",
        "whole cycle (push call)",
        figures.push_total.as_secs_f64(),
        rate(figures.push_total)
    );
}

/// Loads the changed snapshot with `psql \copy` into an indexed table, timing only the copy.
async fn psql_copy(database: &TestDatabase, total: usize, dir: &Path) -> anyhow::Result<Duration> {
    let rows = snapshot(total, Round::Changed)
        .enumerate()
        .map(|(index, object)| canonicalize(index as u64, object));
    time_psql_copy(database, dir, rows).await
}

/// Writes the snapshot rows as the CSV ingest's COPY sends, then times `psql \copy` loading
/// them into a table shaped and indexed like `source_objects`.
async fn time_psql_copy(
    database: &TestDatabase,
    dir: &Path,
    rows: impl Iterator<
        Item = Result<
            syncguard_ingest::source_object::CanonicalObject,
            syncguard_domain::FieldError,
        >,
    >,
) -> anyhow::Result<Duration> {
    let csv = dir.join("snapshot.csv");
    let mut out = Vec::new();
    let snapshot_id = uuid::Uuid::nil().to_string();
    for canonical in rows {
        canonical?.write_csv_row(&snapshot_id, "present", &mut out);
    }
    std::fs::write(&csv, &out)?;
    let url = database.url();
    let setup = Command::new("psql")
        .args([&url, "-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(
            "CREATE TABLE bench_copy (snapshot_id uuid, anchor text, change text, object_type text, \
             distinguished_name text, attributes jsonb, enabled boolean, member_anchors text[], \
             deleted_in_source boolean, content_hash bytea, PRIMARY KEY (snapshot_id, anchor))",
        )
        .status()
        .await?;
    anyhow::ensure!(
        setup.success(),
        "psql could not create the comparison table"
    );
    let started = Instant::now();
    let copy = Command::new("psql")
        .args([&url, "-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!(
            "\\copy bench_copy FROM '{}' WITH (FORMAT csv)",
            csv.display()
        ))
        .status()
        .await?;
    let took = started.elapsed();
    anyhow::ensure!(copy.success(), "psql \\copy failed");
    std::fs::remove_file(&csv)?;
    Ok(took)
}

async fn run(total: usize) -> anyhow::Result<()> {
    println!("\n== {total} objects ==");
    let database = TestDatabase::create().await?;
    let tokens = Tokens::generate_for_processes();
    let dir = std::env::temp_dir().join(format!("syncguard-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let token_file = dir.join("tokens");
    tokens.write_file(&token_file)?;
    let services = start_services(&database, &tokens, &token_file, &dir).await?;

    let mut ingest = IngestServiceClient::new(authed(
        services.addresses[&ServiceName::Ingest],
        &tokens.operator,
    ))
    .max_encoding_message_size(MESSAGE_LIMIT)
    .max_decoding_message_size(MESSAGE_LIMIT);
    let mut stager = StagerServiceClient::new(authed(
        services.addresses[&ServiceName::Stager],
        &tokens.reader,
    ));
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(v1::JobSpec {
                name: format!("bench {total}"),
                source: Some(v1::JobSource {
                    kind: Some(v1::job_source::Kind::Push(v1::PushSource {})),
                }),
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .job_id;

    let initial =
        push_and_measure(&mut ingest, &mut stager, &job_id, total, Round::Initial).await?;
    print_cycle("initial load (every object created)", &initial);
    let changed =
        push_and_measure(&mut ingest, &mut stager, &job_id, total, Round::Changed).await?;
    print_cycle(
        "steady cycle (1% creates, 1% updates, 200 deletes + 200 disables)",
        &changed,
    );

    println!("  per service: peak RSS, CPU time over both cycles:");
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

    let copy = psql_copy(&database, total, &dir).await?;
    println!(
        "  psql \\copy of the same snapshot into an indexed table: {:.2} s ({:.0} objects/s)",
        copy.as_secs_f64(),
        changed.objects as f64 / copy.as_secs_f64()
    );
    println!(
        "  steady cycle / \\copy: {:.2}x (target: within 2x)",
        changed.push_total.as_secs_f64() / copy.as_secs_f64()
    );
    std::fs::remove_dir_all(&dir)?;
    database.drop_database().await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ldap = std::env::args().nth(1).as_deref() == Some("--ldap");
    let sizes: Vec<usize> = std::env::args()
        .skip(if ldap { 2 } else { 1 })
        .map(|arg| arg.replace('_', "").parse())
        .collect::<Result<_, _>>()
        .map_err(|error| anyhow::anyhow!("sizes are object counts like 100000: {error}"))?;
    let sizes = if sizes.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        sizes
    };
    for total in sizes {
        if ldap {
            ldap_mode::run(total).await?;
        } else {
            run(total).await?;
        }
    }
    Ok(())
}
