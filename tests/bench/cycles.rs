//! One snapshot push timed end to end, with the phases the cycle records.

use std::time::{Duration, Instant};

use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use syncguard_proto::v1::{self, CycleState};

use crate::data::{Round, messages};
use crate::services::Authed;

/// What one cycle took.
pub struct CycleFigures {
    /// The push call, from the first message to the answer.
    pub push_total: Duration,
    /// Each phase the cycle recorded.
    pub phases: Vec<(String, Duration)>,
    /// Objects pushed.
    pub objects: usize,
}

impl CycleFigures {
    /// The duration of `phase`, if the cycle recorded it.
    pub fn phase(&self, phase: &str) -> Option<Duration> {
        self.phases
            .iter()
            .find(|(name, _)| name == phase)
            .map(|(_, d)| *d)
    }
}

/// Pushes `round` of an N-object directory and waits for its cycle to settle in `expect`.
pub async fn push_and_measure(
    ingest: &mut IngestServiceClient<Authed>,
    stager: &mut StagerServiceClient<Authed>,
    job_id: &str,
    total: usize,
    round: Round,
    expect: CycleState,
) -> anyhow::Result<CycleFigures> {
    let prepared = messages(job_id, total, round);
    let started = Instant::now();
    let response = ingest
        .push_snapshot(tokio_stream::iter(prepared))
        .await?
        .into_inner();
    let push_total = started.elapsed();
    anyhow::ensure!(
        response.cycle_state == expect as i32,
        "the cycle did not settle as {expect:?}: {response:?}"
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

/// Prints the phases, the calls between services and the whole push.
pub fn print_cycle(label: &str, figures: &CycleFigures) {
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
