//! The deployment files agree with the code: the Grafana dashboard loads, queries only
//! metrics syncguard records (under the names the collector gives them) from a data source
//! that is provisioned, and every file the compose file mounts from the repository exists.
//! (The compose file itself is validated against the compose specification and the
//! Prometheus configuration with promtool in `scripts/check-deploy`.)

use std::collections::BTreeSet;
use std::path::PathBuf;

use syncguard_telemetry::{INSTRUMENTS, InstrumentKind};

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// The series names Prometheus holds for syncguard's instruments.
fn known_series() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for instrument in INSTRUMENTS {
        let name = instrument.prometheus_name();
        if instrument.kind == InstrumentKind::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        } else {
            names.insert(name);
        }
    }
    names
}

/// Identifiers in a PromQL expression that look like series names (ours all start with
/// `syncguard_` or `rpc_`).
fn series_in(expression: &str) -> Vec<String> {
    expression
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("syncguard_") || word.starts_with("rpc_server"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_dashboard_loads_and_queries_only_what_syncguard_records() {
    let text = std::fs::read_to_string(deploy("grafana/dashboards/syncguard.json"))
        .expect("the dashboard is in deploy/grafana/dashboards");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "syncguard");
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let provisioned =
        std::fs::read_to_string(deploy("grafana/provisioning/datasources/syncguard.yaml"))
            .expect("the data sources are provisioned");
    let known = known_series();
    let panels = dashboard["panels"]
        .as_array()
        .expect("the dashboard has panels");
    let mut queried = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("every panel has an id")),
            "{title}: duplicate id"
        );
        let uid = panel["datasource"]["uid"]
            .as_str()
            .expect("every panel names its data source");
        assert!(
            provisioned.contains(&format!("uid: {uid}")),
            "{title}: data source {uid} is not provisioned"
        );
        let grid = &panel["gridPos"];
        assert!(
            grid["w"].as_u64().is_some_and(|w| w > 0 && w <= 24),
            "{title}: width"
        );
        let targets = panel["targets"]
            .as_array()
            .expect("every panel has queries");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expression = target["expr"].as_str().expect("every query is PromQL");
            let series = series_in(expression);
            assert!(
                !series.is_empty(),
                "{title}: {expression} queries no syncguard series"
            );
            for name in series {
                assert!(
                    known.contains(&name),
                    "{title}: {name} is not a series syncguard records; known: {known:?}"
                );
                queried.insert(name);
            }
        }
    }
    for wanted in [
        "syncguard_cycles_total",
        "syncguard_quarantines_open",
        "syncguard_notifications_pending",
        "syncguard_notifications_oldest_pending_age_seconds",
        "syncguard_retention_purge_backlog",
        "syncguard_exporter_lag_seconds",
        "syncguard_exporter_exported_total",
        "syncguard_exporter_failed",
        "rpc_server_duration_milliseconds_bucket",
    ] {
        assert!(queried.contains(wanted), "the dashboard shows no {wanted}");
    }
}

#[test]
fn every_file_the_compose_file_mounts_from_the_repository_exists() {
    let compose = std::fs::read_to_string(deploy("docker-compose.yml")).expect("compose file");
    // Files the operator provides (secrets, certificates, data) are not in the repository.
    let provided = ["./tokens", "./tls/", "./secrets", "./import"];
    let mut checked = 0;
    for line in compose.lines() {
        let line = line
            .trim()
            .trim_start_matches("- ")
            .trim_start_matches("file: ");
        let Some(source) = line
            .split(':')
            .next()
            .filter(|source| source.starts_with("./"))
        else {
            continue;
        };
        if provided.iter().any(|prefix| source.starts_with(prefix)) {
            continue;
        }
        assert!(
            deploy(source).exists(),
            "deploy/{source} is mounted but missing"
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} mounts found");
    assert!(
        compose.contains("pull_policy: build") && compose.matches("build:").count() == 1,
        "the image is built once"
    );
}
