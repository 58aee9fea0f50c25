//! The real service binaries as separate processes: started on their own ports against one
//! database, killed with SIGKILL and started again on the same port, as an operator's
//! supervisor would.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use syncguard_bootstrap::ServiceName;
use tokio::process::{Child, Command};

use crate::transport::TestTls;
use crate::{TestDatabase, Tokens, channel_to, wait_until_serving_on};

/// The binary of `service`, next to the test binary (`cargo build --workspace --bins`).
pub fn binary(service: ServiceName) -> PathBuf {
    let name = format!("syncguard-{}", service.as_str());
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

/// How to start the processes.
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// Variables added to every service (e.g. mail settings).
    pub extra_env: Vec<(String, String)>,
    /// TLS for servers, peers and the test's clients (default: as this test run says).
    pub tls: Option<TestTls>,
    /// `RUST_LOG` of every service.
    pub log_filter: String,
    /// Where each service's output goes (`<service>.log`, appended across restarts);
    /// `None` discards standard output.
    pub log_dir: Option<PathBuf>,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        Self {
            extra_env: Vec::new(),
            tls: crate::transport::test_tls().cloned(),
            log_filter: "warn".to_owned(),
            log_dir: None,
        }
    }
}

/// The five services as processes on fixed loopback ports.
pub struct Processes {
    /// The tokens every service accepts.
    pub tokens: Tokens,
    database: TestDatabase,
    token_file: PathBuf,
    ports: HashMap<ServiceName, u16>,
    children: HashMap<ServiceName, Child>,
    options: ProcessOptions,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

impl Processes {
    /// Starts all five on a fresh database, with `extra_env` (e.g. mail settings) added to
    /// each, and waits until each is SERVING.
    pub async fn start(extra_env: Vec<(String, String)>) -> anyhow::Result<Self> {
        Self::start_with(ProcessOptions {
            extra_env,
            ..ProcessOptions::default()
        })
        .await
    }

    /// Starts all five on a fresh database with `options`.
    pub async fn start_with(options: ProcessOptions) -> anyhow::Result<Self> {
        Self::start_on(TestDatabase::create().await?, options).await
    }

    /// Starts all five on `database` with `options`.
    pub async fn start_on(database: TestDatabase, options: ProcessOptions) -> anyhow::Result<Self> {
        let tokens = Tokens::generate_for_processes();
        let token_file =
            std::env::temp_dir().join(format!("syncguard-tokens-{}", uuid::Uuid::new_v4()));
        tokens.write_file(&token_file)?;
        let ports = ServiceName::ALL
            .into_iter()
            .map(|service| (service, free_port()))
            .collect();
        let mut processes = Self {
            tokens,
            database,
            token_file,
            ports,
            children: HashMap::new(),
            options,
        };
        if let Some(log_dir) = &processes.options.log_dir {
            std::fs::create_dir_all(log_dir)?;
        }
        for service in ServiceName::ALL {
            processes.spawn(service)?;
        }
        for service in ServiceName::ALL {
            wait_until_serving_on(service, processes.channel(service)).await?;
        }
        Ok(processes)
    }

    /// A channel to `service` with the processes' TLS settings.
    pub fn channel(&self, service: ServiceName) -> tonic::transport::Channel {
        channel_to(self.address(service), self.options.tls.as_ref())
    }

    /// A channel to `service` whose calls carry `token`.
    pub fn authed(&self, service: ServiceName, token: &str) -> crate::Authed {
        let value = format!("Bearer {token}").parse().expect("tokens are ASCII");
        tonic::service::interceptor::InterceptedService::new(
            self.channel(service),
            crate::BearerToken::new(Some(value)),
        )
    }

    /// The URL peers and tools use for `service`.
    pub fn url(&self, service: ServiceName) -> String {
        let scheme = if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.address(service))
    }

    /// The tokens file the services read (rewrite it, then [`Processes::signal`] SIGHUP).
    pub fn token_file(&self) -> &std::path::Path {
        &self.token_file
    }

    /// Sends `signal` (e.g. `HUP`) to the running `service`.
    pub async fn signal(&self, service: ServiceName, signal: &str) -> anyhow::Result<()> {
        let pid = self
            .children
            .get(&service)
            .and_then(Child::id)
            .ok_or_else(|| anyhow::anyhow!("{} is not running", service.as_str()))?;
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .await?;
        anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
        Ok(())
    }

    /// Everything the services wrote so far (with a log directory).
    pub fn logs(&self) -> anyhow::Result<String> {
        let log_dir = self
            .options
            .log_dir
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("started without a log directory"))?;
        let mut text = String::new();
        for service in ServiceName::ALL {
            let path = log_dir.join(format!("{}.log", service.as_str()));
            if let Ok(log) = std::fs::read_to_string(&path) {
                text.push_str(&log);
            }
        }
        Ok(text)
    }

    fn spawn(&mut self, service: ServiceName) -> anyhow::Result<()> {
        let mut command = Command::new(binary(service));
        command
            .env("DATABASE_URL", self.database.url())
            .env("SYNCGUARD_LISTEN", self.address(service).to_string())
            .env("SYNCGUARD_TOKENS_FILE", &self.token_file)
            .env("SYNCGUARD_SERVICE_TOKEN", &self.tokens.service)
            .env("SYNCGUARD_MAINTENANCE_INTERVAL_SECS", "1")
            .env("RUST_LOG", &self.options.log_filter)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .kill_on_drop(true);
        match &self.options.log_dir {
            Some(log_dir) => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log_dir.join(format!("{}.log", service.as_str())))?;
                command.stdout(log.try_clone()?).stderr(log);
            }
            None => {
                command.stdout(Stdio::null());
            }
        }
        for peer in ServiceName::ALL {
            command.env(peer.url_variable(), self.url(peer));
        }
        if let Some(tls) = &self.options.tls {
            command.envs(tls.service_env());
        }
        for (name, value) in &self.options.extra_env {
            command.env(name, value);
        }
        self.children.insert(service, command.spawn()?);
        Ok(())
    }

    /// Where `service` listens.
    pub fn address(&self, service: ServiceName) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.ports[&service]))
    }

    /// The database the services share.
    pub fn database(&self) -> &TestDatabase {
        &self.database
    }

    /// Kills `service` with SIGKILL: no drain, no goodbye.
    pub async fn kill(&mut self, service: ServiceName) -> anyhow::Result<()> {
        if let Some(mut child) = self.children.remove(&service) {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Starts `service` again on its port and waits until it is SERVING.
    pub async fn restart(&mut self, service: ServiceName) -> anyhow::Result<()> {
        // The port is free again once the killed process is reaped; a listener of another
        // test could take it in between, so try a few times.
        for _ in 0..20 {
            self.spawn(service)?;
            match tokio::time::timeout(
                Duration::from_secs(30),
                wait_until_serving_on(service, self.channel(service)),
            )
            .await
            {
                Ok(Ok(())) => return Ok(()),
                _ => {
                    let exited = self
                        .children
                        .get_mut(&service)
                        .map(|child| child.try_wait().ok().flatten().is_some())
                        .unwrap_or(true);
                    anyhow::ensure!(exited, "{} did not come back", service.as_str());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        anyhow::bail!("{} could not listen on its port again", service.as_str())
    }

    /// Stops everything and drops the database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for service in ServiceName::ALL {
            self.kill(service).await?;
        }
        let _ = std::fs::remove_file(&self.token_file);
        self.database.drop_database().await
    }
}
