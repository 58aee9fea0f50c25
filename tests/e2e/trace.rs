//! One trace across services: an in-process OTLP receiver speaking the real OTLP gRPC
//! protocol collects what the services export.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use syncguard_e2e::directory::{directory, push_snapshot};
use syncguard_e2e::{Suite, wait_for};
use syncguard_proto::v1;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use crate::jobs::push_job;

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    metrics: Arc<Mutex<std::collections::BTreeSet<String>>>,
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let mut names = self.metrics.lock().expect("collector lock");
        for resource in request.into_inner().resource_metrics {
            for scope in resource.scope_metrics {
                names.extend(scope.metrics.into_iter().map(|metric| metric.name));
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().expect("collector lock");
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|value| match &value.value {
            Some(Value::StringValue(text)) => Some(text.as_str()),
            _ => None,
        })
}

/// One test function (the telemetry pipeline is global to the process): a call's trace
/// crosses services, and a whole cycle, from push to the approved apply, is one trace over
/// all five services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_follow_calls_and_one_cycle_is_one_trace_across_all_five_services()
-> anyhow::Result<()> {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .add_service(MetricsServiceServer::new(collector.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let telemetry = syncguard_telemetry::init(&syncguard_telemetry::TelemetryConfig {
        service_name: "syncguard-e2e".into(),
        otlp_endpoint: Some(endpoint),
        log_filter: Some("info".into()),
        json_logs: false,
    })?;

    // Background work every second, so the gauges (open quarantines, queue, purge backlog)
    // are measured during the test.
    let suite = Suite::start_with(syncguard_e2e::SuiteOptions {
        maintenance_interval: Duration::from_secs(1),
        ..Default::default()
    })
    .await?;
    let mut spec = push_job("traced");
    spec.protection_rules = vec![v1::ProtectionRule {
        max_count: Some(3),
        ..Default::default()
    }];
    // CreateJob in ingest calls InitProtection in the gate with the service token.
    suite
        .ingest(Some(&suite.tokens.operator))
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?;

    let telemetry = Arc::new(telemetry);
    // Under `cargo test` other tests share this process and its exporter, so pair spans by
    // parentage rather than by name alone: every gate span must hang under an ingest span.
    let pairs = wait_for(
        "the gate's span and its ingest parent to be exported",
        Duration::from_secs(20),
        || {
            let telemetry = Arc::clone(&telemetry);
            let spans = Arc::clone(&collector.spans);
            async move {
                tokio::task::spawn_blocking(move || telemetry.flush())
                    .await
                    .ok()?;
                let spans = spans.lock().expect("collector lock");
                let gate_spans: Vec<Span> = spans
                    .iter()
                    .filter(|span| span.name == "syncguard.v1.GateService/InitProtection")
                    .cloned()
                    .collect();
                if gate_spans.is_empty() {
                    return None;
                }
                gate_spans
                    .into_iter()
                    .map(|gate_span| {
                        let parent = spans
                            .iter()
                            .find(|span| span.span_id == gate_span.parent_span_id)
                            .cloned()?;
                        Some((parent, gate_span))
                    })
                    .collect::<Option<Vec<_>>>()
            }
        },
    )
    .await?;

    for (ingest_span, gate_span) in pairs {
        assert_eq!(ingest_span.name, "syncguard.v1.IngestService/CreateJob");
        assert_eq!(attribute(&ingest_span, "syncguard.service"), Some("ingest"));
        assert_eq!(attribute(&gate_span, "syncguard.service"), Some("gate"));
        assert_eq!(
            gate_span.trace_id, ingest_span.trace_id,
            "the gate's span continues the trace ingest started"
        );
        assert!(!gate_span.trace_id.is_empty());
    }

    // A whole cycle: pushed, quarantined (notifier told), then allowed and applied (retention
    // soft-deletes). The approved apply continues the cycle's trace.
    let mut spec = push_job("one trace per cycle");
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
    let leavers: Vec<_> = directory(20, 0).into_iter().skip(4).collect();
    let held = push_snapshot(&mut ingest, &job_id, &leavers).await?;
    let quarantine = suite
        .gate(Some(&suite.tokens.reader))
        .get_quarantine(v1::GetQuarantineRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    suite
        .gate(Some(&suite.tokens.approver))
        .allow_deletes(v1::AllowDeletesRequest {
            quarantine_id: quarantine.quarantine_id.clone(),
            digest: quarantine.digest.clone(),
            reason: "traced".into(),
            anchors: vec![],
        })
        .await?;

    let cycle_id = held.cycle_id.clone();
    let in_trace = wait_for(
        "the cycle's trace over all five services",
        Duration::from_secs(30),
        || {
            let telemetry = Arc::clone(&telemetry);
            let spans = Arc::clone(&collector.spans);
            let cycle_id = cycle_id.clone();
            async move {
                tokio::task::spawn_blocking(move || telemetry.flush())
                    .await
                    .ok()?;
                let spans = spans.lock().expect("collector lock");
                let stage = spans.iter().find(|span| {
                    span.name == "cycle.stage"
                        && attribute(span, "cycle.id") == Some(cycle_id.as_str())
                })?;
                let trace: Vec<Span> = spans
                    .iter()
                    .filter(|span| span.trace_id == stage.trace_id)
                    .cloned()
                    .collect();
                let services: std::collections::BTreeSet<&str> = trace
                    .iter()
                    .filter_map(|span| attribute(span, "syncguard.service"))
                    .collect();
                let all = ["gate", "ingest", "notifier", "retention", "stager"];
                (services.len() == all.len()
                    && trace.iter().any(|span| span.name == "objects.soft_delete"))
                .then_some(trace)
            }
        },
    )
    .await?;
    let names: std::collections::BTreeSet<&str> =
        in_trace.iter().map(|span| span.name.as_str()).collect();
    for expected in [
        "syncguard.v1.IngestService/PushSnapshot",
        "syncguard.v1.StagerService/StageCycle",
        "syncguard.v1.GateService/DecideCycle",
        "syncguard.v1.NotifierService/Notify",
        "syncguard.v1.RetentionService/ApplyCycle",
        "cycle.stage",
        "cycle.decide",
        "cycle.apply_approved",
        "cycle.apply",
        "objects.soft_delete",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from the cycle's trace: {names:?}"
        );
    }
    let decide = in_trace
        .iter()
        .find(|span| span.name == "cycle.decide")
        .expect("decide span");
    assert_eq!(attribute(decide, "decision"), Some("quarantine"));
    let approved = in_trace
        .iter()
        .find(|span| span.name == "cycle.apply_approved")
        .expect("approved apply span");
    assert_eq!(attribute(approved, "actor"), Some("approver:alice"));
    let allow_call = wait_for("the AllowDeletes span", Duration::from_secs(10), || {
        let spans = Arc::clone(&collector.spans);
        async move {
            let spans = spans.lock().expect("collector lock");
            spans
                .iter()
                .find(|span| span.name == "syncguard.v1.GateService/AllowDeletes")
                .cloned()
        }
    })
    .await?;
    assert_eq!(
        attribute(&allow_call, "enduser.id"),
        Some("approver:alice"),
        "admin calls record the principal"
    );

    // The dashboard's figures arrive over OTLP too.
    let expected = [
        "rpc.server.duration",
        "syncguard.cycles",
        "syncguard.staged_actions",
        "syncguard.quarantines.open",
        "syncguard.notifications.pending",
        "syncguard.notifications.oldest_pending_age",
        "syncguard.retention.purge_backlog",
    ];
    wait_for("the metrics", Duration::from_secs(30), || {
        let telemetry = Arc::clone(&telemetry);
        let metrics = Arc::clone(&collector.metrics);
        async move {
            tokio::task::spawn_blocking(move || telemetry.flush())
                .await
                .ok()?;
            let names = metrics.lock().expect("collector lock");
            expected
                .iter()
                .all(|name| names.contains(*name))
                .then_some(())
        }
    })
    .await?;
    suite.stop().await
}
