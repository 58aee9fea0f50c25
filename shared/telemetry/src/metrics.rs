//! The figures worth a dashboard, as OpenTelemetry instruments exported over OTLP with the
//! traces. Instruments come from the global meter provider, which is a no-op until
//! [`crate::init`] installs an exporter, so recording is always safe.

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};

/// Every syncguard instrument.
pub struct Metrics {
    /// Cycles by outcome: completed, quarantined, failed, superseded.
    pub cycles: Counter<u64>,
    /// Staged actions by kind and object type.
    pub staged_actions: Counter<u64>,
    /// Quarantines open now.
    pub open_quarantines: Gauge<u64>,
    /// Notifications waiting to be sent.
    pub notification_queue: Gauge<u64>,
    /// Age in seconds of the oldest notification waiting.
    pub notification_oldest_age: Gauge<f64>,
    /// Soft-deleted objects past their retention, not yet purged.
    pub purge_backlog: Gauge<u64>,
    /// Server-side call latency by method and status code.
    pub rpc_duration: Histogram<f64>,
}

fn meter() -> Meter {
    opentelemetry::global::meter("syncguard")
}

/// The instruments, created on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let meter = meter();
        Metrics {
            cycles: meter
                .u64_counter("syncguard.cycles")
                .with_description("Sync cycles by outcome")
                .build(),
            staged_actions: meter
                .u64_counter("syncguard.staged_actions")
                .with_description("Staged actions by kind and object type")
                .build(),
            open_quarantines: meter
                .u64_gauge("syncguard.quarantines.open")
                .with_description("Quarantines waiting for a decision")
                .build(),
            notification_queue: meter
                .u64_gauge("syncguard.notifications.pending")
                .with_description("Notifications waiting to be delivered")
                .build(),
            notification_oldest_age: meter
                .f64_gauge("syncguard.notifications.oldest_pending_age")
                .with_unit("s")
                .with_description("Age of the oldest notification waiting")
                .build(),
            purge_backlog: meter
                .u64_gauge("syncguard.retention.purge_backlog")
                .with_description("Soft-deleted objects past retention, not yet purged")
                .build(),
            rpc_duration: meter
                .f64_histogram("rpc.server.duration")
                .with_unit("ms")
                .with_description("Server-side gRPC call latency")
                .build(),
        }
    })
}

/// Counts a cycle that reached `outcome`.
pub fn cycle_outcome(outcome: &'static str) {
    metrics()
        .cycles
        .add(1, &[KeyValue::new("outcome", outcome)]);
}
