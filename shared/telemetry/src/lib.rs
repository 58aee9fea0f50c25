//! Tracing for every syncguard service: one `init` that installs logging and OpenTelemetry
//! export, and the W3C trace-context plumbing that makes one sync cycle one trace across
//! all five services.

mod init;
mod metrics;
mod propagation;

pub use init::{TelemetryConfig, TelemetryGuard, init};
pub use metrics::{INSTRUMENTS, Instrument, InstrumentKind, Metrics, cycle_outcome, metrics};
pub use opentelemetry::KeyValue;
pub use propagation::{
    InjectTraceContext, InjectTraceContextLayer, ServerTrace, ServerTraceLayer, continue_trace,
    current_traceparent, extract_context, inject_current_context,
};
