//! The real service binaries as separate processes: started on their own ports against one
//! database, killed with SIGKILL and started again on the same port, as an operator's
//! supervisor would.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use syncguard_bootstrap::ServiceName;
use tokio::process::{Child, Command};

use crate::{TestDatabase, Tokens, wait_until_serving};

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

/// The five services as processes on fixed loopback ports.
pub struct Processes {
    /// The tokens every service accepts.
    pub tokens: Tokens,
    database: TestDatabase,
    token_file: PathBuf,
    ports: HashMap<ServiceName, u16>,
    children: HashMap<ServiceName, Child>,
    extra_env: Vec<(String, String)>,
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
        let database = TestDatabase::create().await?;
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
            extra_env,
        };
        for service in ServiceName::ALL {
            processes.spawn(service)?;
        }
        for service in ServiceName::ALL {
            wait_until_serving(service, processes.address(service)).await?;
        }
        Ok(processes)
    }

    fn spawn(&mut self, service: ServiceName) -> anyhow::Result<()> {
        let mut command = Command::new(binary(service));
        command
            .env("DATABASE_URL", self.database.url())
            .env("SYNCGUARD_LISTEN", self.address(service).to_string())
            .env("SYNCGUARD_TOKENS_FILE", &self.token_file)
            .env("SYNCGUARD_SERVICE_TOKEN", &self.tokens.service)
            .env("SYNCGUARD_MAINTENANCE_INTERVAL_SECS", "1")
            .env("RUST_LOG", "warn")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(Stdio::null())
            .kill_on_drop(true);
        for peer in ServiceName::ALL {
            command.env(
                peer.url_variable(),
                format!("http://{}", self.address(peer)),
            );
        }
        for (name, value) in &self.extra_env {
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
                wait_until_serving(service, self.address(service)),
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
