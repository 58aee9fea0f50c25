//! The figures worth a dashboard, as OpenTelemetry instruments exported over OTLP with the
//! traces. Instruments come from the global meter provider, which is a no-op until
//! [`crate::init`] installs an exporter, so recording is always safe.

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};

/// How an instrument aggregates, which decides its Prometheus name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstrumentKind {
    /// A monotonic sum (`_total` in Prometheus).
    Counter,
    /// A current value.
    Gauge,
    /// A distribution (`_bucket`, `_sum`, `_count` in Prometheus).
    Histogram,
}

/// One instrument's name, unit and kind: the dashboards are checked against this list.
#[derive(Debug, Clone, Copy)]
pub struct Instrument {
    /// The OpenTelemetry name.
    pub name: &'static str,
    /// The unit (`s`, `ms`) or empty.
    pub unit: &'static str,
    /// How it aggregates.
    pub kind: InstrumentKind,
}

impl Instrument {
    /// The name the OpenTelemetry Collector's Prometheus exporter gives it (dots become
    /// underscores, the unit a suffix, counters end in `_total`).
    pub fn prometheus_name(&self) -> String {
        let mut name = self.name.replace('.', "_");
        match self.unit {
            "s" => name.push_str("_seconds"),
            "ms" => name.push_str("_milliseconds"),
            _ => {}
        }
        if self.kind == InstrumentKind::Counter {
            name.push_str("_total");
        }
        name
    }
}

const CYCLES: Instrument = Instrument {
    name: "syncguard.cycles",
    unit: "",
    kind: InstrumentKind::Counter,
};
const STAGED_ACTIONS: Instrument = Instrument {
    name: "syncguard.staged_actions",
    unit: "",
    kind: InstrumentKind::Counter,
};
const OPEN_QUARANTINES: Instrument = Instrument {
    name: "syncguard.quarantines.open",
    unit: "",
    kind: InstrumentKind::Gauge,
};
const NOTIFICATIONS_PENDING: Instrument = Instrument {
    name: "syncguard.notifications.pending",
    unit: "",
    kind: InstrumentKind::Gauge,
};
const NOTIFICATIONS_OLDEST: Instrument = Instrument {
    name: "syncguard.notifications.oldest_pending_age",
    unit: "s",
    kind: InstrumentKind::Gauge,
};
const PURGE_BACKLOG: Instrument = Instrument {
    name: "syncguard.retention.purge_backlog",
    unit: "",
    kind: InstrumentKind::Gauge,
};
const EXPORTED: Instrument = Instrument {
    name: "syncguard.exporter.exported",
    unit: "",
    kind: InstrumentKind::Counter,
};
const EXPORT_LAG: Instrument = Instrument {
    name: "syncguard.exporter.lag",
    unit: "s",
    kind: InstrumentKind::Gauge,
};
const EXPORT_FAILED: Instrument = Instrument {
    name: "syncguard.exporter.failed",
    unit: "",
    kind: InstrumentKind::Gauge,
};
const RPC_DURATION: Instrument = Instrument {
    name: "rpc.server.duration",
    unit: "ms",
    kind: InstrumentKind::Histogram,
};

/// Every instrument syncguard records.
pub const INSTRUMENTS: &[Instrument] = &[
    CYCLES,
    STAGED_ACTIONS,
    OPEN_QUARANTINES,
    NOTIFICATIONS_PENDING,
    NOTIFICATIONS_OLDEST,
    PURGE_BACKLOG,
    EXPORTED,
    EXPORT_LAG,
    EXPORT_FAILED,
    RPC_DURATION,
];

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
    /// Changes written to targets.
    pub exported: Counter<u64>,
    /// Age in seconds of the oldest change a target has not received, by job and target.
    pub export_lag: Gauge<f64>,
    /// Objects a target refused after the last attempt, by job and target.
    pub export_failed: Gauge<u64>,
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
                .u64_counter(CYCLES.name)
                .with_description("Sync cycles by outcome")
                .build(),
            staged_actions: meter
                .u64_counter(STAGED_ACTIONS.name)
                .with_description("Staged actions by kind and object type")
                .build(),
            open_quarantines: meter
                .u64_gauge(OPEN_QUARANTINES.name)
                .with_description("Quarantines waiting for a decision")
                .build(),
            notification_queue: meter
                .u64_gauge(NOTIFICATIONS_PENDING.name)
                .with_description("Notifications waiting to be delivered")
                .build(),
            notification_oldest_age: meter
                .f64_gauge(NOTIFICATIONS_OLDEST.name)
                .with_unit(NOTIFICATIONS_OLDEST.unit)
                .with_description("Age of the oldest notification waiting")
                .build(),
            purge_backlog: meter
                .u64_gauge(PURGE_BACKLOG.name)
                .with_description("Soft-deleted objects past retention, not yet purged")
                .build(),
            exported: meter
                .u64_counter(EXPORTED.name)
                .with_description("Changes written to targets")
                .build(),
            export_lag: meter
                .f64_gauge(EXPORT_LAG.name)
                .with_unit(EXPORT_LAG.unit)
                .with_description("Age of the oldest change a target has not received")
                .build(),
            export_failed: meter
                .u64_gauge(EXPORT_FAILED.name)
                .with_description("Objects a target refused after the last attempt")
                .build(),
            rpc_duration: meter
                .f64_histogram(RPC_DURATION.name)
                .with_unit(RPC_DURATION.unit)
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
