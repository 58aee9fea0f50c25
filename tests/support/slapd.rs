//! A real OpenLDAP `slapd` for the LDAP source tests: a throwaway configuration and database
//! in a temporary folder, on a free loopback port, stopped by its pid. Entries are changed
//! with the ldap-utils commands, as an administrator would.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use crate::smtp::free_port;
use crate::wait_for;

/// The directory's suffix.
pub const SUFFIX: &str = "dc=example,dc=org";
/// The administrator's DN.
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
/// The administrator's password.
pub const ADMIN_PASSWORD: &str = "slapd-test-secret";

/// A running slapd (stopped by [`Slapd::stop`], or when dropped: a failed test leaves no
/// daemon behind).
pub struct Slapd {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    stopped: bool,
}

fn slapd_binary() -> anyhow::Result<PathBuf> {
    [
        "/usr/sbin/slapd",
        "/usr/local/sbin/slapd",
        "/usr/local/libexec/slapd",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|path| path.exists())
    .ok_or_else(|| {
        anyhow::anyhow!("slapd is not installed: apt-get install slapd ldap-utils (.ci/run does)")
    })
}

impl Slapd {
    /// Starts slapd with the base entries (the suffix, ou=people, ou=groups).
    pub async fn start() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("syncguard-slapd-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("db"))?;
        let config = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             pidfile {dir}/slapd.pid\n\
             database mdb\n\
             maxsize 1073741824\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw {ADMIN_PASSWORD}\n\
             directory {dir}/db\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("slapd.conf"), config)?;
        let mut slapd = Self {
            port: free_port(),
            dir,
            stopped: false,
        };
        slapd.launch().await?;
        slapd
            .add(&format!(
                "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
                 dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
                 dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n"
            ))
            .await?;
        Ok(slapd)
    }

    /// Starts the daemon on the port and waits until it listens.
    async fn launch(&mut self) -> anyhow::Result<()> {
        let port = self.port;
        let started = Command::new(slapd_binary()?)
            .args(["-h", &format!("ldap://127.0.0.1:{port}/"), "-f"])
            .arg(self.dir.join("slapd.conf"))
            .status()
            .await?;
        anyhow::ensure!(started.success(), "slapd did not start ({started})");
        wait_for("slapd to listen", Duration::from_secs(20), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await?;
        Ok(())
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    async fn tool(&self, tool: &str, input: &str) -> anyhow::Result<()> {
        let file = self.dir.join(format!("{}.ldif", uuid::Uuid::new_v4()));
        std::fs::write(&file, input)?;
        let output = Command::new(tool)
            .args([
                "-x",
                "-H",
                &self.url(),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
            ])
            .arg("-f")
            .arg(&file)
            .output()
            .await
            .map_err(|error| {
                anyhow::anyhow!("cannot run {tool} ({error}): apt-get install ldap-utils")
            })?;
        anyhow::ensure!(
            output.status.success(),
            "{tool} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// Adds the LDIF entries.
    pub async fn add(&self, ldif: &str) -> anyhow::Result<()> {
        self.tool("ldapadd", ldif).await
    }

    /// Applies an LDIF change file (changetype: modify, ...).
    pub async fn modify(&self, ldif: &str) -> anyhow::Result<()> {
        self.tool("ldapmodify", ldif).await
    }

    /// Deletes the entries with these DNs.
    pub async fn delete(&self, dns: &[String]) -> anyhow::Result<()> {
        let output = Command::new("ldapdelete")
            .args([
                "-x",
                "-H",
                &self.url(),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
            ])
            .args(dns)
            .output()
            .await
            .map_err(|error| {
                anyhow::anyhow!("cannot run ldapdelete ({error}): apt-get install ldap-utils")
            })?;
        anyhow::ensure!(
            output.status.success(),
            "ldapdelete failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// Stops slapd.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stopped = true;
        let pid = std::fs::read_to_string(self.dir.join("slapd.pid"))?;
        Command::new("kill").arg(pid.trim()).status().await?;
        Ok(())
    }

    /// Stops slapd and starts it again on the same port with the same data (an outage of
    /// the directory server itself).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.pause().await?;
        self.resume().await
    }

    /// Stops the daemon and waits until it is gone; [`Slapd::resume`] starts it again with
    /// the same data on the same port.
    pub async fn pause(&mut self) -> anyhow::Result<()> {
        let pid = std::fs::read_to_string(self.dir.join("slapd.pid"))?;
        Command::new("kill").arg(pid.trim()).status().await?;
        // slapd removes its pid file when it has stopped.
        let gone = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.dir.join("slapd.pid").exists() {
            anyhow::ensure!(tokio::time::Instant::now() < gone, "slapd did not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Starts the paused daemon again.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        self.launch().await
    }

    /// The entries under `base` (one level) matching `filter`, read with `ldapsearch` as the
    /// administrator.
    pub async fn search(&self, base: &str, filter: &str) -> anyhow::Result<Vec<LdapEntry>> {
        let output = Command::new("ldapsearch")
            .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", &self.url()])
            .args([
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
                "-s",
                "one",
                "-b",
                base,
            ])
            .arg(filter)
            .output()
            .await
            .map_err(|error| {
                anyhow::anyhow!("cannot run ldapsearch ({error}): apt-get install ldap-utils")
            })?;
        anyhow::ensure!(
            output.status.success(),
            "ldapsearch failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(LdapEntry::parse_all(&String::from_utf8_lossy(
            &output.stdout,
        )))
    }
}

/// An entry as `ldapsearch -LLL` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct LdapEntry {
    /// Its DN.
    pub dn: String,
    /// Attribute name (lowercase) to values (base64 ones as printed).
    pub attributes: std::collections::BTreeMap<String, Vec<String>>,
}

impl LdapEntry {
    fn parse_all(ldif: &str) -> Vec<Self> {
        ldif.split("\n\n")
            .filter_map(|block| {
                let mut lines = block.lines().filter(|line| !line.is_empty());
                let dn = lines.next()?.strip_prefix("dn: ")?.to_owned();
                let mut attributes = std::collections::BTreeMap::<String, Vec<String>>::new();
                for line in lines {
                    if let Some((name, value)) = line.split_once(": ") {
                        let name = name.trim_end_matches(':').to_ascii_lowercase();
                        attributes.entry(name).or_default().push(value.to_owned());
                    }
                }
                Some(Self { dn, attributes })
            })
            .collect()
    }

    /// The first value of `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.attributes
            .get(&name.to_ascii_lowercase())
            .and_then(|values| values.first())
            .map(String::as_str)
    }

    /// All values of `name`, sorted.
    pub fn values(&self, name: &str) -> Vec<String> {
        let mut values = self
            .attributes
            .get(&name.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default();
        values.sort();
        values
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("slapd.pid")) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// A TCP relay in front of a server that cuts every connection after `limit` bytes came back
/// from the server: a connection that breaks in the middle of a read. (A test double for a
/// fault that cannot be caused on cue otherwise; the server behind it is real.)
pub async fn breaking_relay(target_port: u16, limit: usize) -> anyhow::Result<u16> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let mut passed = 0usize;
                let mut buffer = vec![0u8; 4096];
                while let Ok(read) = server_read.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    let allowed = read.min(limit - passed);
                    if client_write.write_all(&buffer[..allowed]).await.is_err() {
                        break;
                    }
                    passed += allowed;
                    if passed >= limit {
                        break;
                    }
                }
                upstream.abort();
            });
        }
    });
    Ok(port)
}
