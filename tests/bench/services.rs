//! The release binaries as processes against one database, and what they used.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::{BearerToken, TestDatabase, Tokens, loopback_channel, wait_until_serving};
use tokio::process::{Child, Command};
use tonic::service::interceptor::InterceptedService;

/// Largest message the benchmark's pushes use.
pub const MESSAGE_LIMIT: usize = 64 * 1024 * 1024;

/// A channel whose calls carry a token.
pub type Authed = InterceptedService<tonic::transport::Channel, BearerToken>;

/// The release binary of `service`, next to this benchmark.
pub fn release_binary(service: ServiceName) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no binary directory"))?;
    let path = dir.join(format!("syncguard-{}", service.as_str()));
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run scripts/bench, which builds it",
        path.display()
    );
    Ok(path)
}

/// CPU seconds (user + system) a process has used, from /proc/<pid>/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU seconds used so far by every `postgres` process this user can see (the server the
/// benchmark runs on is the only one on the machine kinds it is meant for).
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return f64::NAN;
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .filter_map(cpu_seconds)
        .sum()
}

/// The processes whose CPU time a workload is split across: each service, the Postgres
/// server and the benchmark itself. Cheap to clone, so a caller can read it at the instant
/// its timed calls start (after their warm-up).
#[derive(Clone)]
pub struct CpuMeter(Vec<(&'static str, Option<u32>)>);

/// CPU seconds used so far by each process of a [`CpuMeter`], in its order.
pub type CpuReading = Vec<(&'static str, f64)>;

impl CpuMeter {
    /// The running services' processes, the Postgres server's and this one.
    pub fn of(services: &Services) -> Self {
        Self(
            services
                .children
                .iter()
                .map(|(service, child)| (service.as_str(), child.id()))
                .collect(),
        )
    }

    /// CPU seconds used so far by each process: the difference of two readings says which
    /// process a workload's time went to.
    pub fn read(&self) -> CpuReading {
        let mut reading: CpuReading = self
            .0
            .iter()
            .map(|(name, pid)| (*name, pid.and_then(cpu_seconds).unwrap_or(f64::NAN)))
            .collect();
        reading.push(("postgres", postgres_cpu_seconds()));
        reading.push((
            "benchmark",
            cpu_seconds(std::process::id()).unwrap_or(f64::NAN),
        ));
        reading
    }
}

/// The most memory a process has held, from /proc/<pid>/status.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The running services.
pub struct Services {
    /// Each service's process.
    pub children: Vec<(ServiceName, Child)>,
    /// Where each listens.
    pub addresses: HashMap<ServiceName, SocketAddr>,
}

impl Services {
    /// SIGTERM to each service, waiting up to 10 s for it to exit.
    pub async fn stop(self) {
        for (_, mut child) in self.children {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
}

/// Where the benchmark keeps the secrets its jobs name (created by [`start_services`]).
pub fn secrets_dir(dir: &Path) -> PathBuf {
    dir.join("secrets")
}

/// Starts the release binaries against `database` and waits until each is SERVING.
pub async fn start_services(
    database: &TestDatabase,
    tokens: &Tokens,
    token_file: &Path,
    dir: &Path,
) -> anyhow::Result<Services> {
    std::fs::create_dir_all(secrets_dir(dir))?;
    let mut addresses = HashMap::new();
    for service in ServiceName::ALL {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        addresses.insert(service, listener.local_addr()?);
    }
    let mut children = Vec::new();
    for service in ServiceName::ALL {
        let mut command = Command::new(release_binary(service)?);
        command
            .env("DATABASE_URL", database.url())
            .env("SYNCGUARD_LISTEN", addresses[&service].to_string())
            .env("SYNCGUARD_TOKENS_FILE", token_file)
            .env("SYNCGUARD_SERVICE_TOKEN", &tokens.service)
            .env("SYNCGUARD_MAX_MESSAGE_BYTES", MESSAGE_LIMIT.to_string())
            .env("SYNCGUARD_MAIL_DIR", dir.join("mail"))
            .env("SYNCGUARD_SECRETS_DIR", secrets_dir(dir))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true);
        for (peer, address) in &addresses {
            command.env(peer.url_variable(), format!("http://{address}"));
        }
        children.push((service, command.spawn()?));
    }
    for service in ServiceName::ALL {
        wait_until_serving(service, addresses[&service]).await?;
    }
    Ok(Services {
        children,
        addresses,
    })
}

/// A channel to `address` whose calls carry `token`.
pub fn authed(address: SocketAddr, token: &str) -> Authed {
    let value = format!("Bearer {token}").parse().ok();
    InterceptedService::new(loopback_channel(address), BearerToken::new(value))
}
