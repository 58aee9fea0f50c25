//! Fault injection: the real binaries, one of them killed with SIGKILL at a random moment of
//! a cycle, an allow, a purge or an email send, then started again. Afterwards the records
//! are counted against what was asked: nothing lost, nothing applied twice. Mail is at least
//! once by nature (a kill between the server's 250 and the outbox commit resends it, with
//! the same Message-ID); its repeats are counted and printed, its losses must be zero.
//!
//! The moments are random; the seed is printed (set SYNCGUARD_FAULT_SEED to replay a run).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use syncguard_bootstrap::ServiceName;
use syncguard_e2e::directory::{directory, snapshot_messages, user};
use syncguard_e2e::processes::Processes;
use syncguard_e2e::smtp::{SmtpServer, free_port};
use syncguard_e2e::{Authed, wait_for};
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::retention_service_client::RetentionServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use syncguard_proto::v1::{self, CycleState};

use crate::jobs::push_job;

/// A small xorshift generator: the kill moments need not be cryptographic, only repeatable.
struct Moments(u64);

impl Moments {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }

    fn pause(&mut self, up_to_ms: u64) -> Duration {
        Duration::from_millis(self.below(up_to_ms))
    }
}

/// What one run asked for and what the records show.
struct Outcome {
    scenario: &'static str,
    killed: String,
    asked: usize,
    lost: usize,
    twice: usize,
}

fn client<T>(processes: &Processes, service: ServiceName, token: &str, make: fn(Authed) -> T) -> T {
    make(processes.authed(service, token))
}

fn ingest(processes: &Processes) -> IngestServiceClient<Authed> {
    client(
        processes,
        ServiceName::Ingest,
        &processes.tokens.operator,
        IngestServiceClient::new,
    )
}

fn stager(processes: &Processes) -> StagerServiceClient<Authed> {
    client(
        processes,
        ServiceName::Stager,
        &processes.tokens.reader,
        StagerServiceClient::new,
    )
}

fn gate(processes: &Processes) -> GateServiceClient<Authed> {
    client(
        processes,
        ServiceName::Gate,
        &processes.tokens.approver,
        GateServiceClient::new,
    )
}

fn retention(processes: &Processes) -> RetentionServiceClient<Authed> {
    client(
        processes,
        ServiceName::Retention,
        &processes.tokens.reader,
        RetentionServiceClient::new,
    )
}

async fn count(processes: &Processes, sql: String) -> anyhow::Result<i64> {
    let mut conn = processes.database().connect().await?;
    let (count,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(count)
}

/// Pushes `objects` with `key` until an answer comes (retrying across the outage).
async fn push_until_answered(
    processes: &Processes,
    job_id: &str,
    key: &str,
    objects: &[v1::SourceObject],
) -> anyhow::Result<v1::PushSnapshotResponse> {
    let give_up = Instant::now() + Duration::from_secs(90);
    loop {
        let mut messages = snapshot_messages(job_id, objects, 500);
        if let Some(v1::PushSnapshotRequest {
            part: Some(v1::push_snapshot_request::Part::Header(header)),
        }) = messages.first_mut()
        {
            header.idempotency_key = key.to_owned();
        }
        match ingest(processes)
            .push_snapshot(tokio_stream::iter(messages))
            .await
        {
            Ok(answer) => return Ok(answer.into_inner()),
            Err(status) if Instant::now() < give_up => {
                tracing::info!(%status, "push refused during the fault; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => return Err(status.into()),
        }
    }
}

async fn wait_completed(processes: &Processes, cycle_id: &str) -> anyhow::Result<()> {
    let stager = stager(processes);
    wait_for("the cycle to complete", Duration::from_secs(90), || {
        let mut stager = stager.clone();
        let cycle_id = cycle_id.to_owned();
        async move {
            let cycle = stager
                .get_cycle(v1::GetCycleRequest { cycle_id })
                .await
                .ok()?
                .into_inner();
            (cycle.state == CycleState::Completed as i32).then_some(())
        }
    })
    .await
}

async fn new_job(processes: &Processes, spec: v1::JobSpec, load: usize) -> anyhow::Result<String> {
    let job_id = ingest(processes)
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .job_id;
    let first = push_until_answered(processes, &job_id, "load", &directory(load, 0)).await?;
    wait_completed(processes, &first.cycle_id).await?;
    Ok(job_id)
}

/// Where the job's newest push stood just before the kill.
async fn phase_of(processes: &Processes, job_id: &str) -> String {
    let Ok(mut conn) = processes.database().connect().await else {
        return "unknown".into();
    };
    let newest: Option<(i64, String)> = sqlx::query_as(
        "SELECT seq, state FROM cycle_states WHERE job_id = $1::uuid ORDER BY seq DESC LIMIT 1",
    )
    .bind(job_id)
    .fetch_optional(&mut conn)
    .await
    .ok()
    .flatten();
    let _ = conn.close().await;
    match newest {
        // The load is sequence 1: a newer one means the push was accepted.
        Some((seq, state)) if seq > 1 => state,
        _ => "streaming".into(),
    }
}

/// Applied actions of a cycle, counted twice over: the log rows (one per action and status by
/// a unique index) and the change feed (one row per change actually made).
async fn applied_of(
    processes: &Processes,
    cycle_id: &str,
) -> anyhow::Result<(usize, usize, usize)> {
    let logged = count(
        processes,
        format!("SELECT count(DISTINCT action_id) FROM provisioning_log_entries WHERE cycle_id = '{cycle_id}' AND status = 'applied'"),
    )
    .await?;
    let changes = count(
        processes,
        format!("SELECT count(*) FROM directory_changes WHERE cycle_id = '{cycle_id}'"),
    )
    .await?;
    let distinct_changes = count(
        processes,
        format!(
            "SELECT count(DISTINCT object_id) FROM directory_changes WHERE cycle_id = '{cycle_id}'"
        ),
    )
    .await?;
    Ok((logged as usize, changes as usize, distinct_changes as usize))
}

async fn cycle_run(
    processes: &mut Processes,
    moments: &mut Moments,
    victim: ServiceName,
    run: usize,
) -> anyhow::Result<Outcome> {
    let job_id = new_job(processes, push_job(&format!("fault cycle {run}")), 1500).await?;
    // 200 leave, 200 change, 200 join: 600 actions, within the default limit of 500 deletes.
    let mut next: Vec<v1::SourceObject> = directory(1500, 0).into_iter().skip(200).collect();
    for object in next.iter_mut().take(200) {
        object.attributes.insert(
            "title".into(),
            v1::AttributeValues {
                values: vec![format!("Run {run}")],
            },
        );
    }
    next.extend((1500..1700).map(user));
    let key = format!("fault-{run}");
    let pusher = {
        let (job_id, key, next) = (job_id.clone(), key.clone(), next.clone());
        let mut client = ingest(processes);
        tokio::spawn(async move {
            let mut messages = snapshot_messages(&job_id, &next, 500);
            if let Some(v1::PushSnapshotRequest {
                part: Some(v1::push_snapshot_request::Part::Header(header)),
            }) = messages.first_mut()
            {
                header.idempotency_key = key;
            }
            client.push_snapshot(tokio_stream::iter(messages)).await
        })
    };
    // A cycle of this size runs in a few hundred milliseconds here: kill within it.
    let pause = moments.pause(250);
    tokio::time::sleep(pause).await;
    let phase = phase_of(processes, &job_id).await;
    processes.kill(victim).await?;
    processes.restart(victim).await?;
    let _ = pusher.await;
    // The client retries with the same key: the push's cycle, staged now if need be.
    let pushed = push_until_answered(processes, &job_id, &key, &next).await?;
    wait_completed(processes, &pushed.cycle_id).await?;
    let live: BTreeMap<String, v1::DirectoryObject> =
        crate::cycle::live_objects(&mut retention(processes), &job_id).await?;
    let expected: BTreeSet<String> = next.iter().map(|object| object.anchor.clone()).collect();
    anyhow::ensure!(
        live.keys().cloned().collect::<BTreeSet<_>>() == expected,
        "the target matches the source after the kill"
    );
    anyhow::ensure!(
        live.values()
            .filter(
                |object| object.attributes.get("title").map(|t| t.values[0].as_str())
                    == Some(format!("Run {run}").as_str())
            )
            .count()
            == 200
    );
    let (logged, changes, distinct) = applied_of(processes, &pushed.cycle_id).await?;
    Ok(Outcome {
        scenario: "cycle",
        killed: format!("{} at {} ms ({phase})", victim.as_str(), pause.as_millis()),
        asked: 600,
        lost: 600usize.saturating_sub(logged.min(distinct)),
        twice: changes - distinct,
    })
}

async fn allow_run(
    processes: &mut Processes,
    moments: &mut Moments,
    victim: ServiceName,
    run: usize,
) -> anyhow::Result<Outcome> {
    let mut spec = push_job(&format!("fault allow {run}"));
    spec.protection_rules = vec![v1::ProtectionRule {
        max_count: Some(3),
        ..Default::default()
    }];
    let job_id = new_job(processes, spec, 100).await?;
    let leavers: Vec<_> = directory(100, 0).into_iter().skip(30).collect();
    let held = push_until_answered(processes, &job_id, "leavers", &leavers).await?;
    anyhow::ensure!(held.cycle_state == CycleState::Quarantined as i32);
    let quarantine = gate(processes)
        .get_quarantine(v1::GetQuarantineRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let allow = v1::AllowDeletesRequest {
        quarantine_id: quarantine.quarantine_id.clone(),
        digest: quarantine.digest.clone(),
        reason: "fault injection".into(),
        anchors: vec![],
    };
    let allowing = {
        let mut gate = gate(processes);
        let allow = allow.clone();
        tokio::spawn(async move { gate.allow_deletes(allow).await })
    };
    let pause = moments.pause(400);
    tokio::time::sleep(pause).await;
    processes.kill(victim).await?;
    processes.restart(victim).await?;
    let first = allowing.await?;
    if first.is_err() {
        // The approver retries; a decision that was recorded answers FAILED_PRECONDITION.
        let retried = gate(processes).allow_deletes(allow).await;
        if let Err(status) = &retried {
            anyhow::ensure!(
                status.code() == tonic::Code::FailedPrecondition,
                "the retry either decides or finds it decided: {status:?}"
            );
        }
    }
    wait_completed(processes, &held.cycle_id).await?;
    let (logged, changes, distinct) = applied_of(processes, &held.cycle_id).await?;
    let soft_deleted = count(
        processes,
        format!("SELECT count(*) FROM directory_objects WHERE job_id = '{job_id}' AND deleted_at IS NOT NULL"),
    )
    .await? as usize;
    Ok(Outcome {
        scenario: "allow",
        killed: format!("{} after {} ms", victim.as_str(), pause.as_millis()),
        asked: 30,
        lost: 30usize.saturating_sub(logged.min(distinct).min(soft_deleted)),
        twice: changes - distinct,
    })
}

async fn purge_run(processes: &mut Processes, moments: &mut Moments) -> anyhow::Result<Outcome> {
    let mut spec = push_job("fault purge");
    spec.protection_rules = vec![v1::ProtectionRule {
        max_count: Some(5000),
        ..Default::default()
    }];
    let job_id = new_job(processes, spec, 1500).await?;
    let remaining = directory(300, 0);
    let cleared = push_until_answered(processes, &job_id, "clean-up", &remaining).await?;
    wait_completed(processes, &cleared.cycle_id).await?;
    // Retention ends for all 1,200 soft-deleted objects at once (set by hand: the binaries
    // tell time by the real clock).
    let mut conn = processes.database().connect().await?;
    sqlx::query(
        "UPDATE directory_objects SET purge_after = now() - interval '1 second' \
         WHERE job_id = $1::uuid AND deleted_at IS NOT NULL",
    )
    .bind(&job_id)
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    let pause = moments.pause(1500);
    tokio::time::sleep(pause).await;
    processes.kill(ServiceName::Retention).await?;
    processes.restart(ServiceName::Retention).await?;
    let deleted_left = format!(
        "SELECT count(*) FROM directory_objects WHERE job_id = '{job_id}' AND deleted_at IS NOT NULL"
    );
    wait_for("the purge to finish", Duration::from_secs(90), || {
        let sql = deleted_left.clone();
        async { (count(processes, sql).await.ok()? == 0).then_some(()) }
    })
    .await?;
    let tombstones = count(
        processes,
        format!("SELECT count(DISTINCT object_id) FROM purged_objects WHERE job_id = '{job_id}'"),
    )
    .await? as usize;
    let logged = count(
        processes,
        format!("SELECT count(*) FROM provisioning_log WHERE job_id = '{job_id}' AND display_action = 'Purge'"),
    )
    .await? as usize;
    let fed = count(
        processes,
        format!(
            "SELECT count(*) FROM directory_changes WHERE job_id = '{job_id}' AND change = 'purge'"
        ),
    )
    .await? as usize;
    Ok(Outcome {
        scenario: "purge",
        killed: format!("retention after {} ms", pause.as_millis()),
        asked: 1200,
        lost: 1200usize.saturating_sub(tombstones),
        twice: logged.max(fed).saturating_sub(tombstones),
    })
}

/// Quarantines open while the SMTP server is down (the notices wait in the outbox), then
/// the server comes up and the notifier is killed while it delivers.
async fn mail_run(
    processes: &mut Processes,
    moments: &mut Moments,
    smtp_port: u16,
) -> anyhow::Result<(Outcome, SmtpServer)> {
    let mut quarantines = 0;
    for n in 0..6 {
        let mut spec = push_job(&format!("fault mail {n}"));
        spec.protection_rules = vec![v1::ProtectionRule {
            max_count: Some(1),
            ..Default::default()
        }];
        let job_id = new_job(processes, spec, 5).await?;
        let leavers: Vec<_> = directory(5, 0).into_iter().skip(2).collect();
        let held = push_until_answered(processes, &job_id, "leavers", &leavers).await?;
        anyhow::ensure!(held.cycle_state == CycleState::Quarantined as i32);
        quarantines += 1;
    }
    let server = SmtpServer::accepting(smtp_port).await?;
    let pause = moments.pause(3000);
    tokio::time::sleep(pause).await;
    processes.kill(ServiceName::Notifier).await?;
    processes.restart(ServiceName::Notifier).await?;
    wait_for(
        "every notice delivered",
        Duration::from_secs(90),
        || async {
            let pending = count(
                processes,
                "SELECT count(*) FROM notification_outbox WHERE status <> 'sent'".into(),
            )
            .await
            .ok()?;
            (pending == 0).then_some(())
        },
    )
    .await?;
    let ids: Vec<String> = server
        .messages()
        .iter()
        .filter_map(|message| {
            message
                .lines()
                .find(|line| line.to_ascii_lowercase().starts_with("message-id:"))
                .map(str::to_owned)
        })
        .collect();
    let distinct: BTreeSet<&String> = ids.iter().collect();
    Ok((
        Outcome {
            scenario: "mail (at least once)",
            killed: format!("notifier after {} ms", pause.as_millis()),
            asked: quarantines,
            lost: quarantines.saturating_sub(distinct.len()),
            twice: ids.len() - distinct.len(),
        },
        server,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_nothing_and_applies_nothing_twice() -> anyhow::Result<()> {
    let seed = std::env::var("SYNCGUARD_FAULT_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    println!("fault injection seed: {seed} (SYNCGUARD_FAULT_SEED={seed} replays it)");
    let mut moments = Moments(seed);
    let smtp_port = free_port();
    let mut processes = Processes::start(vec![
        (
            "SYNCGUARD_SMTP_URL".into(),
            format!("smtp://127.0.0.1:{smtp_port}"),
        ),
        ("SYNCGUARD_MAIL_MAX_BACKOFF_SECS".into(), "1".into()),
    ])
    .await?;
    let mut outcomes = Vec::new();
    let victims = [
        ServiceName::Ingest,
        ServiceName::Stager,
        ServiceName::Gate,
        ServiceName::Retention,
    ];
    for (run, victim) in victims.into_iter().chain(victims).enumerate() {
        outcomes.push(cycle_run(&mut processes, &mut moments, victim, run).await?);
    }
    for (run, victim) in [ServiceName::Gate, ServiceName::Retention]
        .into_iter()
        .enumerate()
    {
        outcomes.push(allow_run(&mut processes, &mut moments, victim, run).await?);
    }
    outcomes.push(purge_run(&mut processes, &mut moments).await?);
    let (mail, server) = mail_run(&mut processes, &mut moments, smtp_port).await?;
    outcomes.push(mail);

    println!(
        "\n{:<22} {:<34} {:>6} {:>5} {:>6}",
        "scenario", "killed", "asked", "lost", "twice"
    );
    for outcome in &outcomes {
        println!(
            "{:<22} {:<34} {:>6} {:>5} {:>6}",
            outcome.scenario, outcome.killed, outcome.asked, outcome.lost, outcome.twice
        );
    }
    server.stop().await?;
    processes.stop().await?;
    for outcome in &outcomes {
        assert_eq!(outcome.lost, 0, "{} lost something", outcome.scenario);
        if !outcome.scenario.starts_with("mail") {
            assert_eq!(
                outcome.twice, 0,
                "{} applied something twice",
                outcome.scenario
            );
        }
    }
    Ok(())
}
