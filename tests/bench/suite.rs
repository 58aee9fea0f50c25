//! The performance table: every workload of the performance issue, each beside its Postgres
//! anchor measured in the same run on the same server, with the ratio and the goal. Prints
//! each figure as it comes and the whole table at the end (the README's performance
//! section is one such table).

use std::sync::Arc;
use std::time::{Duration, Instant};

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::{TestDatabase, Tokens};
use syncguard_ingest::source_object::canonicalize;
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use syncguard_proto::v1::{self, CycleState};

use crate::anchors::{
    allow_in_sql, copy_for_allow_in_sql, pgbench_commit, print_copies, settle, time_psql_copy,
    wait_for_idle,
};
use crate::cycles::{CycleFigures, print_cycle, push_and_measure};
use crate::data::{Round, one_object_delta, snapshot};
use crate::latency::{Latencies, WARM_UP, concurrent, concurrent_metered, ms, sequential};
use crate::services::{
    Authed, CpuMeter, MESSAGE_LIMIT, Services, authed, cpu_seconds, peak_rss_mib, start_services,
};

/// Objects a quarantine of the big job holds.
const HELD: usize = 10_000;
/// Allows measured on the big job, each of its own `HELD` deletes (fewer when it is small).
const ALLOW_ROUNDS: usize = 3;
/// Calls per latency sample: enough that its p99 is not one or two calls' luck.
const CALLS: usize = 1_000;
/// Deltas per delta-latency sample.
const DELTAS: usize = 200;

/// One row of the table.
struct Row {
    workload: String,
    ours: String,
    anchor: String,
    ratio: String,
    goal: String,
    met: Option<bool>,
}

#[derive(Default)]
struct Table(Vec<Row>);

impl Table {
    fn add(
        &mut self,
        workload: impl Into<String>,
        ours: String,
        anchor: String,
        ratio: Option<f64>,
        goal: &str,
        met: Option<bool>,
    ) {
        let row = Row {
            workload: workload.into(),
            ours,
            anchor,
            ratio: ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}x")),
            goal: goal.to_owned(),
            met,
        };
        println!(
            "  {} | {} | {} | {} | goal {} {}",
            row.workload,
            row.ours,
            row.anchor,
            row.ratio,
            row.goal,
            verdict(row.met)
        );
        self.0.push(row);
    }

    fn print(&self) {
        println!("\n| workload | syncguard | anchor, same run | ratio | goal | met |");
        println!("|---|---|---|---|---|---|");
        for row in &self.0 {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                row.workload,
                row.ours,
                row.anchor,
                row.ratio,
                row.goal,
                verdict(row.met)
            );
        }
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "-",
    }
}

struct Clients {
    ingest: IngestServiceClient<Authed>,
    stager: StagerServiceClient<Authed>,
    gate: GateServiceClient<Authed>,
}

fn clients(services: &Services, tokens: &Tokens) -> Clients {
    let address = |service| services.addresses[&service];
    Clients {
        ingest: IngestServiceClient::new(authed(address(ServiceName::Ingest), &tokens.admin))
            .max_encoding_message_size(MESSAGE_LIMIT)
            .max_decoding_message_size(MESSAGE_LIMIT),
        stager: StagerServiceClient::new(authed(address(ServiceName::Stager), &tokens.reader))
            .max_decoding_message_size(MESSAGE_LIMIT),
        gate: GateServiceClient::new(authed(address(ServiceName::Gate), &tokens.approver))
            .max_decoding_message_size(MESSAGE_LIMIT),
    }
}

async fn create_job(
    ingest: &mut IngestServiceClient<Authed>,
    name: &str,
) -> anyhow::Result<String> {
    Ok(ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(v1::JobSpec {
                name: name.to_owned(),
                source: Some(v1::JobSource {
                    kind: Some(v1::job_source::Kind::Push(v1::PushSource {})),
                }),
                notification_recipients: vec!["bench@example.org".into()],
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .job_id)
}

/// A job loaded with `objects` (the initial round), without timing.
async fn loaded_job(clients: &mut Clients, name: &str, objects: usize) -> anyhow::Result<String> {
    let job_id = create_job(&mut clients.ingest, name).await?;
    push_and_measure(
        &mut clients.ingest,
        &mut clients.stager,
        &job_id,
        objects,
        Round::Initial,
        CycleState::Completed,
    )
    .await?;
    Ok(job_id)
}

/// p50 of one-object deltas on `job_id` (an update of object `n % size` each time).
async fn delta_latency(
    ingest: &IngestServiceClient<Authed>,
    job_id: &str,
    size: usize,
) -> anyhow::Result<Latencies> {
    sequential(DELTAS, |index| {
        let mut ingest = ingest.clone();
        let request = one_object_delta(job_id, (index * 7919) % size.max(1), index);
        async move {
            let answer = ingest.push_delta(request).await?.into_inner();
            anyhow::ensure!(
                answer.cycle_state == CycleState::Completed as i32,
                "delta not applied: {answer:?}"
            );
            Ok(())
        }
    })
    .await
}

/// Where the CPU time of `calls` calls went, per call and process, between two readings.
fn print_cpu_per_call(
    what: &str,
    calls: usize,
    before: &[(&'static str, f64)],
    after: &[(&'static str, f64)],
) {
    let per_call: Vec<(&str, f64)> = before
        .iter()
        .zip(after)
        .map(|((name, then), (_, now))| (*name, (now - then) * 1000.0 / calls.max(1) as f64))
        .collect();
    let total: f64 = per_call.iter().map(|(_, ms)| ms).sum();
    let parts: Vec<String> = per_call
        .iter()
        .filter(|(_, ms)| *ms > 0.0)
        .map(|(name, ms)| format!("{name} {ms:.2}"))
        .collect();
    println!(
        "  CPU per {what}: {total:.2} ms ({}; clock ticks of 10 ms over {calls} calls)",
        parts.join(", ")
    );
}

/// Times `call` from `concurrency` callers ([`CALLS`] calls in all), prints the CPU each
/// process spent per call once the callers were warmed up (so a closed loop's latency can be
/// read against the CPU it needs on two cores), and adds the call's row, named by the call and
/// how it was called, beside the commit `anchor` of the same concurrency.
async fn small_call_row<F, Fut>(
    table: &mut Table,
    services: &Services,
    (call_name, how): (&str, &str),
    (concurrency, judged): (usize, bool),
    anchor: Duration,
    call: F,
) -> anyhow::Result<()>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let meter = CpuMeter::of(services);
    let at_start = meter.clone();
    let (latencies, before) =
        concurrent_metered(concurrency, CALLS / concurrency.max(1), call, move || {
            at_start.read()
        })
        .await?;
    print_cpu_per_call(
        &format!("{call_name}, {how}"),
        CALLS,
        &before,
        &meter.read(),
    );
    let met = ms(latencies.p50()) <= 1.5 && ms(latencies.p99()) <= 5.0;
    table.add(
        format!("{call_name} (page of 50), {how}"),
        latencies.summary(),
        format!("commit {:.2} ms", ms(anchor)),
        Some(ms(latencies.p50()) / ms(anchor)),
        if judged {
            "p50 <= 1.5 ms, p99 <= 5 ms"
        } else {
            "- (what a call costs after a commit)"
        },
        judged.then_some(met),
    );
    Ok(())
}

/// Page tokens no small call asked for before: held anchors of the big job's open
/// quarantine and log ids of its log, each the end of a page the next page starts after.
struct PageTokens {
    anchors: Arc<Vec<String>>,
    log_ids: Arc<Vec<String>>,
}

impl PageTokens {
    /// Up to `wanted` of each (as many as there are: a small job's quarantine holds fewer).
    async fn read(clients: &Clients, job: &str, wanted: usize) -> anyhow::Result<Self> {
        let anchors = page_through(wanted, |token| {
            let mut gate = clients.gate.clone();
            let request = v1::GetQuarantineRequest {
                job_id: job.to_owned(),
                page: Some(page_of(1_000, token)),
                ..Default::default()
            };
            async move {
                let page = gate.get_quarantine(request).await?.into_inner();
                let anchors = page.held.iter().filter_map(|held| held.action.as_ref());
                Ok((
                    anchors.map(|action| action.anchor.clone()).collect(),
                    page.next_page_token,
                ))
            }
        })
        .await?;
        let log_ids = page_through(wanted, |token| {
            let mut stager = clients.stager.clone();
            let request = v1::QueryProvisioningLogsRequest {
                job_id: job.to_owned(),
                page: Some(page_of(1_000, token)),
                ..Default::default()
            };
            async move {
                let page = stager.query_provisioning_logs(request).await?.into_inner();
                let ids = page.entries.iter().map(|entry| entry.log_id.to_string());
                Ok((ids.collect(), page.next_page_token))
            }
        })
        .await?;
        anyhow::ensure!(
            !anchors.is_empty() && !log_ids.is_empty(),
            "the big job has no held actions or no log to page through"
        );
        Ok(Self {
            anchors: Arc::new(anchors),
            log_ids: Arc::new(log_ids),
        })
    }
}

/// Reads pages (`page` answers a page's items and the next token) until `wanted` items or
/// the last page.
async fn page_through<F, Fut>(wanted: usize, mut page: F) -> anyhow::Result<Vec<String>>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Vec<String>, String)>>,
{
    let (mut items, mut token) = (Vec::new(), String::new());
    while items.len() < wanted {
        let (more, next) = page(token).await?;
        items.extend(more);
        if next.is_empty() {
            break;
        }
        token = next;
    }
    Ok(items)
}

fn page_of(page_size: u32, page_token: String) -> v1::PageRequest {
    v1::PageRequest {
        page_size,
        page_token,
    }
}

/// Which page each small call asks for: always the first (`None`: the repeated page a
/// reviewer refreshes), or for call `index` of `caller` a token of its own.
#[derive(Clone)]
struct PageChoice(Option<(Arc<Vec<String>>, usize)>);

impl PageChoice {
    /// Tokens shared out so that no two of `per_caller` calls of any caller ask alike
    /// (while there are enough tokens).
    fn new_pages(tokens: &Arc<Vec<String>>, per_caller: usize) -> Self {
        Self(Some((Arc::clone(tokens), per_caller)))
    }

    fn token(&self, caller: usize, index: usize) -> String {
        match &self.0 {
            None => String::new(),
            Some((tokens, per_caller)) => {
                tokens[(caller * per_caller + index) % tokens.len()].clone()
            }
        }
    }
}

/// One allow beside its SQL.
struct AllowMeasured {
    allow: Duration,
    sql: Duration,
    /// Actions of the allowed cycle besides its deletes (applied in the same call).
    other_actions: u64,
}

impl AllowMeasured {
    fn ratio(&self) -> f64 {
        self.allow.as_secs_f64() / self.sql.as_secs_f64()
    }
}

/// The deletes a quarantine holds.
fn held_deletes(quarantine: &v1::Quarantine) -> u64 {
    quarantine
        .counts
        .iter()
        .filter(|count| count.action == v1::ActionKind::Delete as i32)
        .map(|count| count.count)
        .sum()
}

/// Allows every delete `quarantine` holds and times the call until the cycle completed,
/// then the SQL those deletes amount to (`anchors`, on a copy of the job's objects made
/// while they were live). Each side waits until the database is idle (once the allow
/// answers, the notifier composes its message and the exporter sends the deletes; before
/// it, autovacuum may still be at the big job's tables), then for a checkpoint (see
/// [`checkpoint`]).
async fn allow_beside_sql(
    clients: &mut Clients,
    database: &TestDatabase,
    job: &str,
    quarantine: &v1::Quarantine,
    anchors: &[String],
) -> anyhow::Result<AllowMeasured> {
    let job_id = uuid::Uuid::parse_str(job)?;
    copy_for_allow_in_sql(database, job_id).await?;
    // As the SQL side does: neither starts while autovacuum or the last step's followers
    // (the notifier, the exporter) still share the cores.
    settle(database).await?;
    let started = Instant::now();
    let decided = clients
        .gate
        .allow_deletes(v1::AllowDeletesRequest {
            quarantine_id: quarantine.quarantine_id.clone(),
            digest: quarantine.digest.clone(),
            reason: "benchmark".into(),
            anchors: Vec::new(),
        })
        .await?
        .into_inner();
    let allow = started.elapsed();
    anyhow::ensure!(
        decided.cycle_state == CycleState::Completed as i32,
        "the allow did not complete: {:?}",
        decided.cycle_state
    );
    let sql = allow_in_sql(database, job_id, anchors).await?;
    let all: u64 = quarantine.counts.iter().map(|count| count.count).sum();
    Ok(AllowMeasured {
        allow,
        sql,
        other_actions: all - held_deletes(quarantine),
    })
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// Runs every row with a big job of `total` objects.
pub async fn run(total: usize) -> anyhow::Result<()> {
    println!("\n== performance table: the big job has {total} objects ==");
    let database = TestDatabase::create().await?;
    let tokens = Tokens::generate_for_processes();
    let dir = std::env::temp_dir().join(format!("syncguard-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let token_file = dir.join("tokens");
    tokens.write_file(&token_file)?;
    let services = start_services(&database, &tokens, &token_file, &dir).await?;
    let mut clients = clients(&services, &tokens);
    let mut table = Table::default();

    // Anchors first, on the idle server.
    let commit_1 = pgbench_commit(&database, &dir, 1, 5).await?;
    let commit_8 = pgbench_commit(&database, &dir, 8, 5).await?;
    println!(
        "  pgbench 1-row INSERT commit: {:.3} ms (1 client), {:.3} ms (8 clients)",
        ms(commit_1),
        ms(commit_8)
    );
    let copy = print_copies(
        total,
        &time_psql_copy(
            &database,
            &dir,
            snapshot(total, Round::Changed)
                .enumerate()
                .map(|(index, object)| canonicalize(index as u64, object)),
        )
        .await?,
    );

    // The big job: initial load and a steady cycle.
    let big = create_job(&mut clients.ingest, "big").await?;
    settle(&database).await?;
    let initial: CycleFigures = push_and_measure(
        &mut clients.ingest,
        &mut clients.stager,
        &big,
        total,
        Round::Initial,
        CycleState::Completed,
    )
    .await?;
    print_cycle("initial load (every object created)", &initial);
    let ratio = initial.push_total.as_secs_f64() / copy.as_secs_f64();
    table.add(
        format!("initial load, {total} objects"),
        seconds(initial.push_total),
        format!("`\\copy` {}", seconds(copy)),
        Some(ratio),
        "<= 3x",
        Some(ratio <= 3.0),
    );
    settle(&database).await?;
    let steady = push_and_measure(
        &mut clients.ingest,
        &mut clients.stager,
        &big,
        total,
        Round::Changed,
        CycleState::Completed,
    )
    .await?;
    print_cycle(
        "steady cycle (1% creates, 1% updates, 200 deletes + 200 disables)",
        &steady,
    );
    let ratio = steady.push_total.as_secs_f64() / copy.as_secs_f64();
    table.add(
        format!("steady cycle, {total} objects"),
        seconds(steady.push_total),
        format!("`\\copy` {}", seconds(copy)),
        Some(ratio),
        "<= 1.5x",
        Some(ratio <= 1.5),
    );

    // Deltas on the big job.
    let big_deltas = delta_latency(&clients.ingest, &big, total).await?;
    let ratio = ms(big_deltas.p50()) / ms(commit_1);
    table.add(
        format!("PushDelta of 1 object, job of {total}"),
        big_deltas.summary(),
        format!("commit {:.2} ms", ms(commit_1)),
        Some(ratio),
        "p50 <= 25 ms",
        Some(ms(big_deltas.p50()) <= 25.0),
    );

    // A quarantine of 10,000 held deletes on the big job.
    let quarantined = push_and_measure(
        &mut clients.ingest,
        &mut clients.stager,
        &big,
        total,
        Round::Shrunk(1_000..1_000 + HELD),
        CycleState::Quarantined,
    )
    .await?;
    // Small calls, with the quarantine open.
    let quarantine = clients
        .gate
        .get_quarantine(v1::GetQuarantineRequest {
            job_id: big.clone(),
            page: Some(v1::PageRequest {
                page_size: 50,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    // The deletes the quarantine holds: HELD, or fewer when the job has fewer objects.
    let held = held_deletes(&quarantine);
    let decide = quarantined.phase("decide").unwrap_or_default();
    table.add(
        format!("decision on {held} held deletes, {total}-object job (decide phase)"),
        seconds(decide),
        "-".into(),
        None,
        "<= 0.1 s",
        Some(decide <= Duration::from_millis(100)),
    );

    wait_for_idle(&database).await?;
    // The floor under every small call: the same client, channel, token and server layers,
    // refused on its argument before the database is asked. What a call takes above this
    // is its own work.
    let gate = clients.gate.clone();
    let floor = sequential(CALLS, |_| {
        let mut gate = gate.clone();
        async move {
            let refused = gate
                .get_quarantine(v1::GetQuarantineRequest {
                    quarantine_id: "not-a-uuid".into(),
                    ..Default::default()
                })
                .await;
            anyhow::ensure!(
                refused.as_ref().err().map(tonic::Status::code)
                    == Some(tonic::Code::InvalidArgument),
                "a malformed quarantine id was not refused: {refused:?}"
            );
            Ok(())
        }
    })
    .await?;
    table.add(
        "gRPC floor: GetQuarantine refused on its argument (no database), sequential",
        floor.summary(),
        format!("commit {:.2} ms", ms(commit_1)),
        Some(ms(floor.p50()) / ms(commit_1)),
        "-",
        None,
    );

    // The services answer a page asked again from their read cache while nothing has
    // committed in the database (see syncguard_store::SnapshotCache). The same calls, each
    // asking for a page no call asked before (after another held anchor, before another log
    // entry), show what a call costs when something has committed since.
    let tokens = PageTokens::read(&clients, &big, 8 * (WARM_UP + CALLS / 8)).await?;
    for (name, concurrency, new_pages) in [
        ("sequential", 1usize, false),
        ("8 concurrent clients", 8, false),
        ("sequential, a new page each call", 1, true),
        ("8 concurrent clients, a new page each call", 8, true),
    ] {
        let anchor = if concurrency == 1 { commit_1 } else { commit_8 };
        let per_caller = WARM_UP + CALLS / concurrency;
        let choice = |tokens: &Arc<Vec<String>>| {
            if new_pages {
                PageChoice::new_pages(tokens, per_caller)
            } else {
                PageChoice(None)
            }
        };
        let (gate, job, pages) = (clients.gate.clone(), big.clone(), choice(&tokens.anchors));
        let get_quarantine = move |caller: usize, index: usize| {
            let mut gate = gate.clone();
            let request = v1::GetQuarantineRequest {
                job_id: job.clone(),
                page: Some(page_of(50, pages.token(caller, index))),
                ..Default::default()
            };
            async move {
                gate.get_quarantine(request).await?;
                Ok(())
            }
        };
        small_call_row(
            &mut table,
            &services,
            ("GetQuarantine", name),
            (concurrency, !new_pages),
            anchor,
            get_quarantine,
        )
        .await?;
        let (stager, job, pages) = (clients.stager.clone(), big.clone(), choice(&tokens.log_ids));
        let query_logs = move |caller: usize, index: usize| {
            let mut stager = stager.clone();
            let request = v1::QueryProvisioningLogsRequest {
                job_id: job.clone(),
                page: Some(page_of(50, pages.token(caller, index))),
                ..Default::default()
            };
            async move {
                stager.query_provisioning_logs(request).await?;
                Ok(())
            }
        };
        small_call_row(
            &mut table,
            &services,
            ("QueryProvisioningLogs", name),
            (concurrency, !new_pages),
            anchor,
            query_logs,
        )
        .await?;
    }

    // Allowing the 10,000, until all are soft-deleted, beside the same rows in plain SQL;
    // again on two more ranges of 10,000 when the job has them (each quarantined by a read
    // without its range as well), since one allow varies by a third from run to run here.
    // The first round's cycle also carries the updates of the deltas above.
    let rounds = if total >= 1_000 + ALLOW_ROUNDS * HELD {
        ALLOW_ROUNDS
    } else {
        1
    };
    let mut allows = Vec::new();
    let mut quarantine = quarantine;
    for round in 0..rounds {
        if round > 0 {
            push_and_measure(
                &mut clients.ingest,
                &mut clients.stager,
                &big,
                total,
                Round::Shrunk(1_000..1_000 + (round + 1) * HELD),
                CycleState::Quarantined,
            )
            .await?;
            quarantine = clients
                .gate
                .get_quarantine(v1::GetQuarantineRequest {
                    job_id: big.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner();
        }
        let removed = 1_000 + round * HELD..1_000 + (round + 1) * HELD;
        let anchors: Vec<String> = removed.map(|n| format!("a-{n:08}")).collect();
        let measured =
            allow_beside_sql(&mut clients, &database, &big, &quarantine, &anchors).await?;
        println!(
            "  AllowDeletes, round {}: {} held deletes and {} other actions, {} beside SQL {} ({:.2}x)",
            round + 1,
            held_deletes(&quarantine),
            measured.other_actions,
            seconds(measured.allow),
            seconds(measured.sql),
            measured.ratio()
        );
        allows.push(measured);
    }
    // The round of the median ratio, each round's call beside its own SQL.
    allows.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
    let middle = &allows[allows.len() / 2];
    table.add(
        format!("AllowDeletes of {held} held deletes, until soft-deleted (median of {rounds})"),
        seconds(middle.allow),
        format!("same rows in one SQL transaction {}", seconds(middle.sql)),
        Some(middle.ratio()),
        "<= 3x",
        Some(middle.ratio() <= 3.0),
    );

    // Deltas on small and middle-sized jobs.
    for size in [100usize, 100_000] {
        let job = loaded_job(&mut clients, &format!("delta {size}"), size).await?;
        let meter = CpuMeter::of(&services);
        let before = meter.read();
        let latencies = delta_latency(&clients.ingest, &job, size).await?;
        print_cpu_per_call("delta", DELTAS, &before, &meter.read());
        let goal = if size <= 100 { 10.0 } else { 25.0 };
        table.add(
            format!("PushDelta of 1 object, job of {size}"),
            latencies.summary(),
            format!("commit {:.2} ms", ms(commit_1)),
            Some(ms(latencies.p50()) / ms(commit_1)),
            &format!("p50 <= {goal} ms"),
            Some(ms(latencies.p50()) <= goal),
        );
    }

    // Plans that cannot flip: a second job's first cycle after an ANALYZE that saw only the
    // first job's rows. Each starts on an idle database after a checkpoint, so that neither
    // pays alone for what the steps before it left to write, and the row compares plans. Each
    // job's phases are printed: a flip shows in the phase it happens in (the second job's
    // apply took 1.25-1.65 s against 0.74-0.89 s while the change feed's group lookups took
    // the members' index; see migration 20261129000003).
    let first_job = create_job(&mut clients.ingest, "plan first").await?;
    settle(&database).await?;
    let first = push_and_measure(
        &mut clients.ingest,
        &mut clients.stager,
        &first_job,
        50_000,
        Round::Initial,
        CycleState::Completed,
    )
    .await?;
    print_cycle("first job's first cycle", &first);
    {
        let mut conn = database.connect().await?;
        sqlx::query("ANALYZE").execute(&mut conn).await?;
    }
    let second_job = create_job(&mut clients.ingest, "plan second").await?;
    settle(&database).await?;
    let second = push_and_measure(
        &mut clients.ingest,
        &mut clients.stager,
        &second_job,
        50_000,
        Round::Initial,
        CycleState::Completed,
    )
    .await?;
    print_cycle("second job's first cycle, after ANALYZE", &second);
    let ratio = second.push_total.as_secs_f64() / first.push_total.as_secs_f64();
    table.add(
        "second job's first 50,000-object cycle after ANALYZE",
        seconds(second.push_total),
        format!("first job's {}", seconds(first.push_total)),
        Some(ratio),
        "<= 1.5x",
        Some(ratio <= 1.5),
    );

    // Under load: 20 writers of one-object deltas on 5 jobs while 3 readers query the logs.
    let mut jobs = Vec::new();
    for index in 0..5 {
        jobs.push(loaded_job(&mut clients, &format!("load {index}"), 1_000).await?);
    }
    let ingest = clients.ingest.clone();
    let writer_jobs = jobs.clone();
    let writers = tokio::spawn(concurrent(20, 100, move |writer, index| {
        let mut ingest = ingest.clone();
        let request = one_object_delta(
            &writer_jobs[writer % 5],
            (writer * 50 + index) % 1_000,
            writer * 1_000 + index,
        );
        async move {
            ingest.push_delta(request).await?;
            Ok(())
        }
    }));
    let stager = clients.stager.clone();
    let reader_jobs = jobs.clone();
    let readers = concurrent(3, 200, move |reader, _| {
        let mut stager = stager.clone();
        let job = reader_jobs[reader % 5].clone();
        async move {
            stager
                .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
                    job_id: job,
                    page: Some(v1::PageRequest {
                        page_size: 50,
                        page_token: String::new(),
                    }),
                    ..Default::default()
                })
                .await?;
            Ok(())
        }
    })
    .await?;
    let writes = writers.await??;
    table.add(
        "under load: PushDelta (20 writers, 5 jobs)",
        writes.summary(),
        "-".into(),
        None,
        "-",
        None,
    );
    table.add(
        "under load: QueryProvisioningLogs (3 readers)",
        readers.summary(),
        "-".into(),
        None,
        "-",
        None,
    );

    println!("  per service: peak RSS, CPU time over the run:");
    let mut peak = 0.0f64;
    for (service, child) in &services.children {
        let rss = child.id().and_then(peak_rss_mib).unwrap_or(f64::NAN);
        let cpu = child.id().and_then(cpu_seconds).unwrap_or(f64::NAN);
        peak = peak.max(rss);
        println!(
            "    {:<10} {:>8.1} MiB {:>8.2} s CPU",
            service.as_str(),
            rss,
            cpu
        );
    }
    table.add(
        format!("peak RSS of the largest service ({total}-object job)"),
        format!("{peak:.0} MiB"),
        "-".into(),
        None,
        "< 300 MiB",
        Some(peak < 300.0),
    );
    services.stop().await;

    table.print();
    std::fs::remove_dir_all(&dir)?;
    // For EXPLAIN ANALYZE of the statements on the run's own data after it ends.
    if std::env::var_os("SYNCGUARD_BENCH_KEEP_DATABASE").is_some() {
        println!("kept the database for inspection: {}", database.keep());
        return Ok(());
    }
    database.drop_database().await
}
