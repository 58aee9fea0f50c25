//! Installing the global subscriber and tracer provider once per process.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// What a process needs to decide about its telemetry, read from the environment by services.
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    /// `service.name` of the exported resource (`syncguard-ingest`, ...).
    pub service_name: String,
    /// OTLP gRPC endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`); no export when unset.
    pub otlp_endpoint: Option<String>,
    /// Log filter (`RUST_LOG` syntax); `info` when unset.
    pub log_filter: Option<String>,
    /// Emit logs as JSON lines instead of human-readable text.
    pub json_logs: bool,
}

impl TelemetryConfig {
    /// Reads `OTEL_EXPORTER_OTLP_ENDPOINT`, `RUST_LOG` and `SYNCGUARD_LOG_FORMAT=json`.
    pub fn from_env(service_name: &str) -> Self {
        Self {
            service_name: service_name.to_owned(),
            otlp_endpoint: std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .ok()
                .filter(|value| !value.trim().is_empty()),
            log_filter: std::env::var("RUST_LOG").ok(),
            json_logs: std::env::var("SYNCGUARD_LOG_FORMAT").is_ok_and(|value| value == "json"),
        }
    }
}

/// Keeps the tracer and meter providers alive; dropping it flushes and shuts down the
/// exporters so the last spans and figures of a stopping service are not lost.
#[must_use = "dropping the guard stops trace and metric export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Exports every finished span and the current metrics now. Blocks the calling thread,
    /// so call it from a blocking context (`spawn_blocking`) when inside a runtime.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.force_flush()
        {
            eprintln!("syncguard: flushing traces failed: {error}");
        }
        if let Some(meters) = &self.meters
            && let Err(error) = meters.force_flush()
        {
            eprintln!("syncguard: flushing metrics failed: {error}");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown_with_timeout(Duration::from_secs(5))
        {
            eprintln!("syncguard: shutting down trace export failed: {error}");
        }
        if let Some(meters) = self.meters.take()
            && let Err(error) = meters.shutdown()
        {
            eprintln!("syncguard: shutting down metric export failed: {error}");
        }
    }
}

/// Installs logging and, when an endpoint is configured, OTLP trace export. Call once per
/// process, inside a Tokio runtime (the exporter runs on it). A second call keeps the first
/// subscriber and returns a guard that exports nothing.
pub fn init(config: &TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let filter = EnvFilter::try_new(config.log_filter.as_deref().unwrap_or("info"))
        .context("RUST_LOG is not a valid log filter")?;

    let provider = match &config.otlp_endpoint {
        Some(endpoint) => Some(otlp_provider(&config.service_name, endpoint)?),
        None => None,
    };
    let meters = match &config.otlp_endpoint {
        Some(endpoint) => Some(otlp_meters(&config.service_name, endpoint)?),
        None => None,
    };
    let otel_layer = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer(config.service_name.clone()))
    });
    let (json_layer, text_layer) = if config.json_logs {
        (Some(tracing_subscriber::fmt::layer().json()), None)
    } else {
        let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
        (
            None,
            Some(tracing_subscriber::fmt::layer().with_ansi(colour)),
        )
    };

    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(otel_layer)
        .with(json_layer)
        .with(text_layer)
        .try_init()
        .is_ok();
    if !installed {
        return Ok(TelemetryGuard {
            provider: None,
            meters: None,
        });
    }
    if let Some(provider) = &provider {
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    if let Some(meters) = &meters {
        opentelemetry::global::set_meter_provider(meters.clone());
    }
    Ok(TelemetryGuard { provider, meters })
}

/// How often metrics are exported.
const METRIC_INTERVAL: Duration = Duration::from_secs(15);

fn otlp_meters(service_name: &str, endpoint: &str) -> anyhow::Result<SdkMeterProvider> {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(5))
        .build()
        .with_context(|| {
            format!("OTEL_EXPORTER_OTLP_ENDPOINT {endpoint:?} is not usable for metrics")
        })?;
    let reader = PeriodicReader::builder(exporter, opentelemetry_sdk::runtime::Tokio)
        .with_interval(METRIC_INTERVAL)
        .build();
    Ok(SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build())
}

fn otlp_provider(service_name: &str, endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(5))
        .build()
        .with_context(|| format!("OTEL_EXPORTER_OTLP_ENDPOINT {endpoint:?} is not usable"))?;
    // The async-runtime processor exports on Tokio: the thread-based one has no reactor for
    // tonic (see ../shared/ECOSYSTEM.md and opentelemetry-rust issue 2673).
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build())
}
