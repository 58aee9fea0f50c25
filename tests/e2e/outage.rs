//! A database outage: Postgres stopped with `pg_ctl stop -m immediate` in the middle of a
//! stream of deltas and in the middle of an allow. Health turns NOT_SERVING, calls answer
//! UNAVAILABLE (at once, not after a pool timeout), and when Postgres returns everything
//! recovers by itself: every acknowledged change applied once, none lost.

use std::time::{Duration, Instant};

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::directory::{directory, push_snapshot, user};
use syncguard_e2e::pg_cluster::PgCluster;
use syncguard_e2e::{Suite, SuiteOptions, TestDatabase, loopback_channel, wait_for};
use syncguard_proto::v1::{self, CycleState};
use tokio::sync::mpsc;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::cycle::live_objects;
use crate::jobs::push_job;

const SERVICES: [ServiceName; 6] = ServiceName::ALL;

async fn all_report(suite: &Suite, wanted: ServingStatus) -> bool {
    for service in SERVICES {
        let mut health = HealthClient::new(loopback_channel(suite.address(service)));
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|response| response.into_inner().status)
            .unwrap_or(-1);
        if status != wanted as i32 {
            return false;
        }
    }
    true
}

/// Pushes one delta, retrying the same push (same key) while the service is unavailable.
async fn push_until_accepted(
    ingest: &mut v1::ingest_service_client::IngestServiceClient<syncguard_e2e::Authed>,
    request: v1::PushDeltaRequest,
    refusals: &mut Vec<Code>,
) -> anyhow::Result<v1::PushDeltaResponse> {
    let give_up = Instant::now() + Duration::from_secs(90);
    loop {
        match ingest.push_delta(request.clone()).await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status) if Instant::now() < give_up => {
                refusals.push(status.code());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => return Err(status.into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_mid_cycle_and_mid_allow_is_survived() -> anyhow::Result<()> {
    let cluster = PgCluster::start()?;
    let database = TestDatabase::create_on(&cluster.url()).await?;
    let mut suite = Suite::start_on(
        database,
        SuiteOptions {
            maintenance_interval: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await?;
    let mut spec = push_job("outage");
    spec.protection_rules = vec![v1::ProtectionRule {
        max_count: Some(3),
        ..Default::default()
    }];
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .job_id;
    push_snapshot(&mut ingest, &job_id, &directory(20, 0)).await?;

    // A writer pushes sixty one-user deltas; the database stops after the tenth answer,
    // and the writer's eleventh push waits until the services have noticed (a push sent in
    // between waits for a connection, up to the pool's acquire timeout, and may succeed).
    let (acked, mut acked_rx) = mpsc::unbounded_channel::<usize>();
    let (stopped, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = {
        let mut ingest = suite.ingest(Some(&suite.tokens.operator));
        let job_id = job_id.clone();
        tokio::spawn(async move {
            let mut refusals = Vec::new();
            let mut stopped_rx = stopped_rx;
            for n in 0..60 {
                if n == 10 {
                    (&mut stopped_rx).await?;
                }
                let pushed = push_until_accepted(
                    &mut ingest,
                    v1::PushDeltaRequest {
                        job_id: job_id.clone(),
                        idempotency_key: format!("delta-{n}"),
                        upserts: vec![user(100 + n)],
                        deleted_anchors: Vec::new(),
                    },
                    &mut refusals,
                )
                .await?;
                anyhow::ensure!(!pushed.cycle_id.is_empty());
                let _ = acked.send(n);
            }
            Ok(refusals)
        })
    };
    while acked_rx.recv().await.is_some_and(|n| n < 9) {}
    cluster.stop_immediate()?;

    // Every service says so within a few seconds, and calls are refused at once as
    // UNAVAILABLE, not after a pool timeout and not as INTERNAL or UNKNOWN.
    wait_for(
        "every service NOT_SERVING",
        Duration::from_secs(15),
        || async {
            all_report(&suite, ServingStatus::NotServing)
                .await
                .then_some(())
        },
    )
    .await?;
    let _ = stopped.send(());
    let asked = Instant::now();
    let refused = suite
        .ingest(Some(&suite.tokens.reader))
        .get_job(v1::GetJobRequest {
            job_id: job_id.clone(),
        })
        .await
        .expect_err("no database");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(asked.elapsed() < Duration::from_secs(1), "refused at once");

    // Postgres returns: everything recovers by itself.
    cluster.start_again()?;
    wait_for(
        "every service SERVING again",
        Duration::from_secs(30),
        || async {
            all_report(&suite, ServingStatus::Serving)
                .await
                .then_some(())
        },
    )
    .await?;
    let refusals = writer.await??;
    assert!(!refusals.is_empty(), "the writer met the outage");
    assert!(
        refusals.iter().all(|code| *code == Code::Unavailable),
        "every refusal during the outage was UNAVAILABLE: {refusals:?}"
    );
    let stager = suite.stager(Some(&suite.tokens.reader));
    wait_for("every delta applied", Duration::from_secs(60), || {
        let mut stager = stager.clone();
        let job_id = job_id.clone();
        async move {
            let cycles = stager
                .list_cycles(v1::ListCyclesRequest {
                    job_id,
                    page: Some(v1::PageRequest {
                        page_size: 100,
                        page_token: String::new(),
                    }),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .cycles;
            (cycles.len() == 61
                && cycles
                    .iter()
                    .all(|cycle| cycle.state == CycleState::Completed as i32))
            .then_some(())
        }
    })
    .await?;
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert_eq!(live.len(), 80, "the 20 loaded and the 60 acknowledged");
    let created = stager
        .clone()
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            job_id: job_id.clone(),
            action: v1::LogActionFilter::Create as i32,
            page: Some(v1::PageRequest {
                page_size: 100,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries;
    assert_eq!(created.len(), 80, "each created once");

    // The outage again, this time in the middle of an allow: the decision is recorded while
    // retention is away, then the database goes down before retention can apply it.
    suite.stop_service(ServiceName::Retention).await?;
    let leavers: Vec<_> = directory(20, 0).into_iter().skip(4).collect();
    let mut everything = leavers.clone();
    everything.extend((100..160).map(user));
    let held = push_snapshot(&mut ingest, &job_id, &everything).await?;
    assert_eq!(held.cycle_state, CycleState::Quarantined as i32);
    let mut gate = suite.gate(Some(&suite.tokens.approver));
    let quarantine = gate
        .get_quarantine(v1::GetQuarantineRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let decided = gate
        .allow_deletes(v1::AllowDeletesRequest {
            quarantine_id: quarantine.quarantine_id.clone(),
            digest: quarantine.digest.clone(),
            reason: "leavers confirmed".into(),
            anchors: vec![],
        })
        .await?
        .into_inner();
    assert!(decided.applied, "the decision is final");
    assert_eq!(
        decided.cycle_state,
        CycleState::Allowed as i32,
        "retention is away: the allow answers once recorded"
    );
    cluster.stop_immediate()?;
    suite.start_service_unready(ServiceName::Retention).await?;
    cluster.start_again()?;
    wait_for("the allowed cycle applied", Duration::from_secs(60), || {
        let mut stager = stager.clone();
        let cycle_id = held.cycle_id.clone();
        async move {
            let cycle = stager
                .get_cycle(v1::GetCycleRequest { cycle_id })
                .await
                .ok()?
                .into_inner();
            (cycle.state == CycleState::Completed as i32).then_some(())
        }
    })
    .await?;
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert_eq!(live.len(), 76);
    let deleted = stager
        .clone()
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            cycle_id: held.cycle_id.clone(),
            action: v1::LogActionFilter::Delete as i32,
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries;
    assert_eq!(deleted.len(), 4, "each allowed delete applied once");
    suite.stop().await?;
    drop(cluster);
    Ok(())
}
