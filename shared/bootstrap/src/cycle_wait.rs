//! Answering "where does this cycle stand?" after waking its owners: the caller waits until
//! the cycle settles, and stops early when the service that owns its next step is down
//! (the cycle then finishes by itself once that service returns).

use std::time::{Duration, Instant};

use syncguard_domain::{CycleState, StepOwner};
use syncguard_store::{CycleRecord, PgPool, StoreError, fetch_cycle_and_latest};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

use crate::cycle_events::CycleEvents;
use crate::peers::PeerChannel;

/// How long a cycle may make no progress before its next step's owner is asked whether it
/// is up.
const STALL_BEFORE_PROBE: Duration = Duration::from_millis(750);
/// Longest pause between looks when no announcement comes (a lost notification, a listener
/// that is reconnecting).
const MAX_POLL: Duration = Duration::from_millis(250);
/// First pause between looks when the cycle's moves are announced: a safety net only. Looking
/// again 1, 2, 4 ms after each move (as a poller must) read the cycle 15 times per
/// one-object delta, on connections the steps themselves were waiting for.
const FIRST_POLL_ANNOUNCED: Duration = Duration::from_millis(25);

/// What a waiter watches: the cycle events of its own service, and the peers whose health
/// decides whether waiting is worth it.
#[derive(Clone, Default)]
pub struct StepOwners {
    /// Announcements that a job's cycle moved (without them, the waiter polls).
    pub events: Option<CycleEvents>,
    /// The stager (stages queued cycles).
    pub stager: Option<PeerChannel>,
    /// The gate (decides staged cycles).
    pub gate: Option<PeerChannel>,
    /// Retention (applies decided cycles).
    pub retention: Option<PeerChannel>,
}

impl StepOwners {
    async fn is_up(&self, owner: StepOwner) -> bool {
        let channel = match owner {
            StepOwner::Stager => &self.stager,
            StepOwner::Gate => &self.gate,
            StepOwner::Retention => &self.retention,
        };
        // This service's own steps: it is up, since it is answering.
        let Some(channel) = channel else { return true };
        let mut client = HealthClient::new(channel.clone());
        let check = client.check(HealthCheckRequest {
            service: String::new(),
        });
        // Down means refused or NOT_SERVING; a slow answer (a busy host) is not an outage.
        match tokio::time::timeout(Duration::from_secs(2), check).await {
            Ok(Ok(response)) => response.get_ref().status == ServingStatus::Serving as i32,
            Ok(Err(status)) => !crate::peer_unreachable(&status),
            Err(_) => true,
        }
    }
}

/// What a cycle waits for: nothing (it is at rest: finished, held for people, or queued
/// behind a held cycle), or the step of one service.
enum Waiting {
    Settled,
    On(StepOwner),
}

/// `latest` is the state of the job's latest staged cycle, read with a queued `cycle`.
fn waiting_on(cycle: &CycleRecord, latest: Option<CycleState>) -> Waiting {
    let state = match (cycle.state, latest) {
        // A queued cycle waits for the job's open cycle, if there is one.
        (CycleState::Queued, Some(open)) if open.is_open() => open,
        (state, _) => state,
    };
    match state.next_step_owner() {
        Some(owner) => Waiting::On(owner),
        None => Waiting::Settled,
    }
}

/// Waits up to `wait` for `cycle_id` to settle and returns it as it then stands; `None` if
/// no such cycle exists.
pub async fn wait_settled(
    pool: &PgPool,
    cycle_id: Uuid,
    wait: Duration,
    owners: &StepOwners,
) -> Result<Option<CycleRecord>, StoreError> {
    let deadline = Instant::now() + wait;
    // Subscribed before the first look, so nothing announced after it is missed.
    let mut announced = owners.events.as_ref().map(CycleEvents::subscribe);
    let first_pause = if announced.is_some() {
        FIRST_POLL_ANNOUNCED
    } else {
        Duration::from_millis(1)
    };
    let mut pause = first_pause;
    let mut last_state = None;
    let mut last_progress = Instant::now();
    let mut last_probe = Instant::now();
    loop {
        let Some((cycle, latest)) = fetch_cycle_and_latest(pool, cycle_id).await? else {
            return Ok(None);
        };
        let owner = match waiting_on(&cycle, latest) {
            Waiting::Settled => return Ok(Some(cycle)),
            Waiting::On(owner) => owner,
        };
        if Instant::now() >= deadline {
            return Ok(Some(cycle));
        }
        if last_state != Some(cycle.state) {
            last_state = Some(cycle.state);
            last_progress = Instant::now();
            pause = first_pause;
        }
        if last_progress.elapsed() >= STALL_BEFORE_PROBE
            && last_probe.elapsed() >= STALL_BEFORE_PROBE
        {
            last_probe = Instant::now();
            if !owners.is_up(owner).await {
                tracing::info!(cycle = %cycle_id, state = %cycle.state, ?owner, "the next step's service is down; answering with the cycle as it stands");
                return Ok(Some(cycle));
            }
        }
        let until = pause.min(deadline.saturating_duration_since(Instant::now()));
        match announced.as_mut() {
            // Look again when this job's cycles move, or after the pause at the latest.
            Some(receiver) => {
                let job_id = cycle.job_id;
                let moved = async {
                    loop {
                        match receiver.recv().await {
                            Ok(job) if job == job_id => return,
                            Ok(_) => {}
                            // Missed some: one of them may have been ours.
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                std::future::pending::<()>().await
                            }
                        }
                    }
                };
                let _ = tokio::time::timeout(until, moved).await;
                pause = (pause * 2).min(MAX_POLL);
            }
            None => {
                tokio::time::sleep(until).await;
                pause = (pause * 3 / 2)
                    .max(pause + Duration::from_millis(1))
                    .min(Duration::from_millis(50));
            }
        }
    }
}
