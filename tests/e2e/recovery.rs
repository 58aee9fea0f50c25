//! What survives an outage: a cycle interrupted half-way is finished later, and nothing of it
//! is applied twice.

use std::time::Duration;

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::directory::{directory, push_snapshot};
use syncguard_e2e::{Suite, SuiteOptions, wait_for};
use syncguard_proto::v1::{self, ActionStatus, CycleState};

use crate::cycle::live_objects;
use crate::jobs::push_job;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_cut_off_by_a_retention_outage_is_finished_once_it_returns() -> anyhow::Result<()> {
    // Retention is down from the start: a real outage, its port refuses connections.
    let mut suite = Suite::start_with(SuiteOptions {
        deferred: vec![ServiceName::Retention],
        maintenance_interval: Duration::from_secs(1),
        ..Default::default()
    })
    .await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("outage")),
        })
        .await?
        .into_inner()
        .job_id;
    // Retention owns every write to the target directory: while it is down a push is
    // accepted and recorded, and answers at once with the step it waits for.
    let first = push_snapshot(&mut ingest, &job_id, &directory(20, 0)).await?;
    assert_eq!(first.cycle_state, CycleState::Applying as i32, "{first:?}");

    // The second cycle updates three users and deletes five; it queues behind the first.
    let mut next: Vec<_> = directory(20, 0).into_iter().skip(5).collect();
    for object in next.iter_mut().take(3) {
        object.attributes.insert(
            "title".into(),
            v1::AttributeValues {
                values: vec!["Lead".into()],
            },
        );
    }
    let accepted = push_snapshot(&mut ingest, &job_id, &next).await?;
    assert_eq!(
        accepted.cycle_state,
        CycleState::Queued as i32,
        "{accepted:?}"
    );
    let mut stager = suite.stager(Some(&suite.tokens.reader));
    let interrupted = stager
        .get_cycle(v1::GetCycleRequest {
            cycle_id: accepted.cycle_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(interrupted.state, CycleState::Queued as i32);

    // Retention comes back: the first cycle is applied, then the second is staged, decided
    // and applied, each on its own.
    suite.start_service(ServiceName::Retention).await?;
    wait_for(
        "the interrupted cycle to complete",
        Duration::from_secs(30),
        || {
            let mut stager = stager.clone();
            let cycle_id = interrupted.cycle_id.clone();
            async move {
                let cycle = stager
                    .get_cycle(v1::GetCycleRequest { cycle_id })
                    .await
                    .ok()?
                    .into_inner();
                (cycle.state == CycleState::Completed as i32).then_some(())
            }
        },
    )
    .await?;

    let applied = stager
        .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
            cycle_id: interrupted.cycle_id.clone(),
            status: ActionStatus::Applied as i32,
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries;
    let mut action_ids: Vec<&str> = applied
        .iter()
        .map(|entry| entry.action_id.as_str())
        .collect();
    action_ids.sort_unstable();
    action_ids.dedup();
    assert_eq!(
        applied.len(),
        8,
        "three updates and five deletes, each applied once"
    );
    assert_eq!(action_ids.len(), 8);
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert_eq!(live.len(), 15);
    assert_eq!(live["u-00005"].attributes["title"].values, ["Lead"]);
    suite.stop().await
}
