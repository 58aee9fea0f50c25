//! A real SMTP server for the notification tests: aiosmtpd (PyPI) as a separate process,
//! saving what it accepts into a Maildir, or refusing every recipient with a 5xx.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A running aiosmtpd on a loopback port.
pub struct SmtpServer {
    child: Child,
    /// Its port.
    pub port: u16,
    maildir: PathBuf,
    _scratch: PathBuf,
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

const REJECTING_HANDLER: &str = "class Reject:\n    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):\n        return '550 5.1.1 No such user here'\n";

impl SmtpServer {
    /// Starts a server on `port` that accepts all mail into a Maildir.
    pub async fn accepting(port: u16) -> anyhow::Result<Self> {
        Self::start(port, false).await
    }

    /// Starts a server on `port` that refuses every recipient with `550`.
    pub async fn rejecting(port: u16) -> anyhow::Result<Self> {
        Self::start(port, true).await
    }

    async fn start(port: u16, reject: bool) -> anyhow::Result<Self> {
        let scratch = std::env::temp_dir().join(format!("syncguard-smtp-{}", uuid::Uuid::new_v4()));
        let maildir = scratch.join("maildir");
        std::fs::create_dir_all(&scratch)?;
        let mut command = Command::new("python3");
        command
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .env("PYTHONPATH", &scratch)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if reject {
            std::fs::write(scratch.join("syncguard_reject.py"), REJECTING_HANDLER)?;
            command.args(["-c", "syncguard_reject.Reject"]);
        } else {
            command
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir);
        }
        let mut child = command.spawn().map_err(|error| {
            anyhow::anyhow!(
                "cannot start python3 -m aiosmtpd ({error}): install it with `pip install aiosmtpd`"
            )
        })?;
        // Listening, or gone: a process that exited (not installed, port taken) is reported
        // at once instead of after the whole wait.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Some(status) = child.try_wait()? {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    use tokio::io::AsyncReadExt as _;
                    let _ = pipe.read_to_string(&mut stderr).await;
                }
                anyhow::bail!(
                    "aiosmtpd exited with {status} before listening on {port} (is it installed? `pip install aiosmtpd`): {}",
                    stderr.trim()
                );
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "aiosmtpd did not listen on {port} within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(Self {
            child,
            port,
            maildir,
            _scratch: scratch,
        })
    }

    /// The raw messages accepted so far.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
            .collect()
    }

    /// Stops the server (the port then refuses connections).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}
