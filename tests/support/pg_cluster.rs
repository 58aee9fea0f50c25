//! A throwaway Postgres cluster a test may stop and start: for outages that cannot be caused
//! on the shared server. Needs `initdb` and `pg_ctl` (Debian: postgresql); as root the
//! cluster runs as the `postgres` user, as Postgres requires.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

/// A cluster in a temporary directory, stopped and removed on drop.
pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    pg_ctl: PathBuf,
    run_as_postgres: bool,
}

fn find(binary: &str) -> anyhow::Result<PathBuf> {
    if let Ok(path) = which(binary) {
        return Ok(path);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin").join(binary))
        .filter(|path| path.is_file())
        .collect();
    candidates.sort();
    candidates.pop().with_context(|| {
        format!("{binary} not found: install PostgreSQL's server binaries (Debian: apt-get install postgresql)")
    })
}

fn which(binary: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
        .context("not on PATH")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PgCluster {
    /// Creates and starts a cluster on a free loopback port (trust authentication).
    pub fn start() -> anyhow::Result<Self> {
        let initdb = find("initdb")?;
        let pg_ctl = find("pg_ctl")?;
        let run_as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!("syncguard-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        if run_as_postgres {
            let status = Command::new("chown")
                .args(["postgres"])
                .arg(&dir)
                .status()?;
            anyhow::ensure!(
                status.success(),
                "cannot hand {} to the postgres user",
                dir.display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let cluster = Self {
            dir,
            port,
            pg_ctl,
            run_as_postgres,
        };
        let data = cluster.data_dir();
        cluster.run(&initdb, &["-A", "trust", "-U", "postgres", "-D", &data])?;
        cluster.start_again()?;
        Ok(cluster)
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, binary: &Path, args: &[&str]) -> anyhow::Result<()> {
        let mut command = if self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(binary);
            command
        } else {
            Command::new(binary)
        };
        let output = command.args(args).output()?;
        anyhow::ensure!(
            output.status.success(),
            "{} {args:?} failed: {}{}",
            binary.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// Starts the (stopped) cluster and waits until it accepts connections.
    pub fn start_again(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        let data = self.data_dir();
        self.run(
            &self.pg_ctl.clone(),
            &["-D", &data, "-w", "-l", &log, "-o", &options, "start"],
        )
    }

    /// Stops the cluster the hard way, as a crash or a pulled cable would.
    pub fn stop_immediate(&self) -> anyhow::Result<()> {
        let data = self.data_dir();
        self.run(
            &self.pg_ctl.clone(),
            &["-D", &data, "-m", "immediate", "stop"],
        )
    }

    /// The server's URL (its `postgres` database).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.stop_immediate();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
