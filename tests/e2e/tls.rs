//! TLS: the real binaries serve it, call each other over it, require client certificates
//! when given a client CA, and refuse whoever does not speak it. Runs whatever the run's
//! transport (the whole suite also runs on TLS once in CI, `SYNCGUARD_E2E_TLS=1`).

use std::process::Stdio;
use std::time::Duration;

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::directory::{directory, push_snapshot};
use syncguard_e2e::processes::{ProcessOptions, Processes, binary};
use syncguard_e2e::transport::TestTls;
use syncguard_e2e::{TestDatabase, Tokens, channel_to};
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::{self, CycleState};
use tokio::process::Command;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::jobs::push_job;

async fn health(channel: tonic::transport::Channel) -> Result<i32, tonic::Status> {
    let mut client = HealthClient::new(channel);
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        client.check(HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await
    .map_err(|_| tonic::Status::deadline_exceeded("no answer within 10 s"))??;
    Ok(answer.into_inner().status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_serves_peers_and_tools_and_refuses_everyone_else() -> anyhow::Result<()> {
    let tls = TestTls::generate(true)?;
    let mail_dir = std::env::temp_dir().join(format!("syncguard-mail-{}", uuid::Uuid::new_v4()));
    let processes = Processes::start_with(ProcessOptions {
        tls: Some(tls.clone()),
        extra_env: vec![("SYNCGUARD_MAIL_DIR".into(), mail_dir.display().to_string())],
        ..ProcessOptions::default()
    })
    .await?;

    // A cycle crosses every service: ingest, stager, gate and retention call each other
    // over mutual TLS.
    let mut ingest =
        IngestServiceClient::new(processes.authed(ServiceName::Ingest, &processes.tokens.operator));
    let job = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("over tls")),
        })
        .await?
        .into_inner();
    let pushed = push_snapshot(&mut ingest, &job.job_id, &directory(20, 2)).await?;
    assert_eq!(
        pushed.cycle_state,
        CycleState::Completed as i32,
        "{pushed:?}"
    );

    let stranger = TestTls::generate(true)?;
    for service in ServiceName::ALL {
        let address = processes.address(service);
        let name = service.as_str();
        // Health travels over the same TLS, without a token.
        assert_eq!(
            health(processes.channel(service)).await?,
            1,
            "{name} SERVING over TLS"
        );

        // The binary's own probe speaks TLS too (what container health checks run).
        let mut probe = Command::new(binary(service));
        probe
            .arg("--health-check")
            .env("SYNCGUARD_LISTEN", address.to_string())
            .envs(tls.service_env())
            .stderr(Stdio::piped());
        let probed = probe.output().await?;
        assert!(
            probed.status.success(),
            "{name} --health-check over TLS: {}",
            String::from_utf8_lossy(&probed.stderr)
        );

        assert!(
            health(channel_to(address, None)).await.is_err(),
            "{name} answered a plaintext client"
        );
        assert!(
            health(channel_to(address, Some(&tls.without_client_certificate())))
                .await
                .is_err(),
            "{name} answered a client without a certificate"
        );
        assert!(
            health(channel_to(address, Some(&stranger))).await.is_err(),
            "{name} trusted another CA's server or client certificate"
        );
    }
    processes.stop().await?;
    let _ = std::fs::remove_dir_all(&mail_dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_tls_settings_stop_the_start_and_name_the_variable() -> anyhow::Result<()> {
    let database = TestDatabase::create().await?;
    let tokens = Tokens::generate_for_processes();
    let tls = TestTls::generate(false)?;
    let token_file =
        std::env::temp_dir().join(format!("syncguard-tokens-{}", uuid::Uuid::new_v4()));
    tokens.write_file(&token_file)?;
    let not_pem = std::env::temp_dir().join(format!("syncguard-notpem-{}", uuid::Uuid::new_v4()));
    std::fs::write(&not_pem, "very-secret-key-material\n")?;
    let paths = tls.paths();
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![(
                "SYNCGUARD_TLS_CERT",
                paths.server_cert.display().to_string(),
            )],
            "SYNCGUARD_TLS_KEY",
        ),
        (
            vec![
                (
                    "SYNCGUARD_TLS_CERT",
                    paths.server_cert.display().to_string(),
                ),
                ("SYNCGUARD_TLS_KEY", not_pem.display().to_string()),
            ],
            "SYNCGUARD_TLS_KEY",
        ),
        (
            vec![("SYNCGUARD_TLS_CA", "/nonexistent/ca.pem".to_owned())],
            "SYNCGUARD_TLS_CA",
        ),
        (
            vec![("SYNCGUARD_TLS_CLIENT_CA", paths.ca.display().to_string())],
            "SYNCGUARD_TLS_CLIENT_CA",
        ),
        (
            vec![
                ("SYNCGUARD_TLS_CA", paths.ca.display().to_string()),
                ("SYNCGUARD_GATE_URL", "http://127.0.0.1:9".to_owned()),
            ],
            "SYNCGUARD_GATE_URL",
        ),
        (
            vec![("SYNCGUARD_GATE_URL", "https://127.0.0.1:9".to_owned())],
            "SYNCGUARD_GATE_URL",
        ),
    ];
    for (env, variable) in cases {
        let output = Command::new(binary(ServiceName::Stager))
            .env("DATABASE_URL", database.url())
            .env("SYNCGUARD_LISTEN", "127.0.0.1:0")
            .env("SYNCGUARD_TOKENS_FILE", &token_file)
            .env("SYNCGUARD_SERVICE_TOKEN", &tokens.service)
            .env_remove("SYNCGUARD_GATE_URL")
            .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
            .stdin(Stdio::null())
            .output()
            .await?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!output.status.success(), "{env:?} started: {said}");
        assert!(said.contains(variable), "{env:?}: {said}");
        assert!(
            !said.contains("very-secret-key-material"),
            "the error quoted the key file: {said}"
        );
    }
    std::fs::remove_file(&token_file)?;
    std::fs::remove_file(&not_pem)?;
    database.drop_database().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_beyond_loopback_is_warned_about() -> anyhow::Result<()> {
    use tokio::io::AsyncBufReadExt as _;
    let database = TestDatabase::create().await?;
    let tokens = Tokens::generate_for_processes();
    let token_file =
        std::env::temp_dir().join(format!("syncguard-tokens-{}", uuid::Uuid::new_v4()));
    tokens.write_file(&token_file)?;
    let mut child = Command::new(binary(ServiceName::Notifier))
        .env("DATABASE_URL", database.url())
        .env("SYNCGUARD_LISTEN", "0.0.0.0:0")
        .env("SYNCGUARD_TOKENS_FILE", &token_file)
        .env("SYNCGUARD_SERVICE_TOKEN", &tokens.service)
        .env(
            "SYNCGUARD_MAIL_DIR",
            std::env::temp_dir().join("syncguard-tls-mail"),
        )
        .env("RUST_LOG", "info")
        .env("SYNCGUARD_LOG_FORMAT", "json")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let warning = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            let record: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if record["level"] == "WARN"
                && record["fields"]["message"]
                    .as_str()
                    .is_some_and(|message| message.contains("PLAINTEXT"))
            {
                return anyhow::Ok(line);
            }
        }
        anyhow::bail!("the notifier exited without warning")
    })
    .await
    .map_err(|_| anyhow::anyhow!("no plaintext warning within 30 s"))??;
    assert!(warning.contains("SYNCGUARD_TLS_CERT"), "{warning}");
    child.start_kill()?;
    child.wait().await?;
    std::fs::remove_file(&token_file)?;
    database.drop_database().await
}
