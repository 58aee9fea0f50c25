//! A real SCIM 2.0 service provider for the export tests: the `scim2-server` package from
//! PyPI (scripts/test installs it), started as its own process on a free loopback port with
//! a bearer token, and read back with plain SCIM GETs as an application owner would.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::smtp::free_port;
use crate::wait_for;

/// A running scim2-server (killed when dropped).
pub struct ScimServer {
    /// Its port.
    pub port: u16,
    /// The bearer token it accepts.
    pub token: String,
    child: Child,
    http: reqwest::Client,
}

/// A SCIM resource as the provider shows it, with the fields the tests compare.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimResource {
    /// The provider's id.
    pub id: String,
    /// syncguard's anchor.
    pub external_id: String,
    /// The whole resource.
    pub body: Value,
}

impl ScimResource {
    /// `active` (users; absent counts as active).
    pub fn active(&self) -> bool {
        self.body
            .get("active")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// A top-level string attribute.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.body.get(name).and_then(Value::as_str)
    }

    /// A group's member ids.
    pub fn member_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .body
            .get("members")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|member| member.get("value").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        ids.sort();
        ids
    }
}

impl ScimServer {
    /// Starts scim2-server and waits until it answers.
    pub async fn start() -> anyhow::Result<Self> {
        let port = free_port();
        let token = format!("scim-{}", uuid::Uuid::new_v4().simple());
        let child = Command::new("scim2-server")
            .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
            .args(["--bearer-token", &token])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| {
                anyhow::anyhow!(
                    "cannot start scim2-server ({error}): python3 -m pip install scim2-server (scripts/test does)"
                )
            })?;
        let server = Self {
            port,
            token,
            child,
            http: reqwest::Client::new(),
        };
        wait_for("scim2-server to answer", Duration::from_secs(30), || {
            let probe = server.get("ServiceProviderConfig");
            async move { probe.await.ok().map(|_| ()) }
        })
        .await?;
        Ok(server)
    }

    /// The base URL a job's SCIM target names.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}/{path}", self.base_url()))
            .bearer_auth(&self.token)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        Ok(response.json().await?)
    }

    /// Every resource of `endpoint` (`Users`, `Groups`), by externalId.
    pub async fn all(&self, endpoint: &str) -> anyhow::Result<BTreeMap<String, ScimResource>> {
        let mut found = BTreeMap::new();
        let mut start = 1;
        loop {
            let page = self
                .get(&format!("{endpoint}?startIndex={start}&count=500"))
                .await?;
            let resources = page
                .get("Resources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = page
                .get("totalResults")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            for body in &resources {
                let resource = ScimResource {
                    id: body["id"].as_str().unwrap_or_default().to_owned(),
                    external_id: body["externalId"].as_str().unwrap_or_default().to_owned(),
                    body: body.clone(),
                };
                anyhow::ensure!(
                    found
                        .insert(resource.external_id.clone(), resource)
                        .is_none(),
                    "{endpoint}: two resources with one externalId"
                );
            }
            start += resources.len();
            if resources.is_empty() || start as u64 > total {
                return Ok(found);
            }
        }
    }

    /// Stops the server.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// A TCP relay in front of a server that can be switched off and on: while off it refuses
/// every new connection and cuts the open ones, as a target host that goes down would. (A
/// test double for the outage only: scim2-server keeps its resources in memory, so stopping
/// the real process would lose them; the server behind the relay is the real one.)
pub struct Switch {
    /// The port clients use.
    pub port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

impl Switch {
    /// A relay to `target_port`, on.
    pub async fn start(target_port: u16) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (up, watching) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*watching.borrow() {
                    continue;
                }
                let mut watching = watching.clone();
                tokio::spawn(async move {
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watching.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Ok(Self { port, up })
    }

    /// Off: connections refused and cut.
    pub fn off(&self) {
        self.up.send_replace(false);
    }

    /// On again.
    pub fn on(&self) {
        self.up.send_replace(true);
    }
}
