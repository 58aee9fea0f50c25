//! Finishing cycles a crash interrupted: a cycle left staged is decided, one left applying
//! is applied again. Every step is idempotent by cycle and action id, so resuming a cycle
//! that is in fact still running only waits for it and changes nothing twice.

use std::time::Duration;

use sqlx::PgPool;
use syncguard_bootstrap::PeerChannel;
use syncguard_proto::v1;
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::retention_service_client::RetentionServiceClient;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::apply::apply;

/// Looks for interrupted cycles every `tick` and finishes them. A cycle untouched for four
/// ticks in an unfinished state is taken to be interrupted.
pub async fn run(
    pool: PgPool,
    gate: GateServiceClient<PeerChannel>,
    retention: RetentionServiceClient<PeerChannel>,
    tick: Duration,
) {
    let stale_after_secs = (tick.as_secs_f64() * 4.0).ceil();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let stale: Result<Vec<(Uuid, String, Option<String>)>, sqlx::Error> = sqlx::query_as(
            "SELECT cycle_id, state, trace_parent FROM cycles \
             WHERE state IN ('staged', 'evaluating', 'applying', 'allowed', 'rejected') \
               AND updated_at < now() - make_interval(secs => $1::double precision) \
             ORDER BY created_at LIMIT 10",
        )
        .bind(stale_after_secs)
        .fetch_all(&pool)
        .await;
        let stale = match stale {
            Ok(stale) => stale,
            Err(error) => {
                tracing::warn!(%error, "cannot look for interrupted cycles");
                continue;
            }
        };
        for (cycle_id, state, traceparent) in stale {
            tracing::warn!(cycle = %cycle_id, state, "resuming an interrupted cycle");
            // The resumed steps belong to the cycle's trace.
            let span = tracing::info_span!("cycle.resume", cycle.id = %cycle_id, state = %state);
            if let Some(traceparent) = &traceparent {
                syncguard_telemetry::continue_trace(&span, traceparent);
            }
            let resumed = async {
                match state.as_str() {
                    "staged" | "evaluating" => gate
                        .clone()
                        .decide_cycle(v1::DecideCycleRequest {
                            cycle_id: cycle_id.to_string(),
                        })
                        .await
                        .map(|_| ())
                        .map_err(|status| status.to_string()),
                    _ => apply(&pool, &retention, cycle_id, "service:stager (resumed)")
                        .await
                        .map_err(|error| error.to_string()),
                }
            };
            let outcome = resumed.instrument(span).await;
            if let Err(error) = outcome {
                tracing::warn!(cycle = %cycle_id, error, "resuming failed; will retry");
            }
        }
    }
}
