//! A real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`), for the console's browser tests. The W3C protocol is a handful of
//! JSON calls, spoken here with the reqwest client the tests already have.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The key under which WebDriver names an element.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser window in its own chromedriver.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    base: String,
    profile: PathBuf,
}

fn tool(variable: &str, default: &str) -> String {
    std::env::var(variable)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Where screenshots go: `SYNCGUARD_ARTIFACTS`, else `target/artifacts` of the workspace.
pub fn artifacts_dir() -> PathBuf {
    std::env::var_os("SYNCGUARD_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts"))
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session. A missing
    /// chromedriver or chromium is an error saying what to install, never a skipped test.
    pub async fn start() -> anyhow::Result<Self> {
        let driver_path = tool("SYNCGUARD_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = tool("SYNCGUARD_CHROMIUM", "/usr/bin/chromium");
        anyhow::ensure!(
            std::path::Path::new(&chromium).exists(),
            "{chromium} not found: install Debian's chromium (apt-get install chromium chromium-driver), or set SYNCGUARD_CHROMIUM"
        );
        let port = crate::smtp::free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| {
                anyhow::anyhow!(
                    "cannot start {driver_path} ({error}): install Debian's chromium-driver (apt-get install chromium chromium-driver), or set SYNCGUARD_CHROMEDRIVER"
                )
            })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        crate::wait_for("chromedriver to answer", Duration::from_secs(30), || {
            let request = http.get(format!("{base}/status")).send();
            async move {
                let status: Value = request.await.ok()?.json().await.ok()?;
                status["value"]["ready"].as_bool().filter(|ready| *ready)
            }
        })
        .await?;
        let profile =
            std::env::temp_dir().join(format!("syncguard-chromium-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&profile)?;
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--window-size=1280,1000",
                        format!("--user-data-dir={}", profile.display()),
                    ],
                },
            } }
        });
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await?
            .json()
            .await?;
        let session = answer["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("chromedriver opened no session: {answer}"))?
            .to_owned();
        Ok(Self {
            driver,
            http,
            session,
            base,
            profile,
        })
    }

    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let answer: Value = response.json().await?;
        anyhow::ensure!(
            status.is_success(),
            "WebDriver {path} failed ({status}): {}",
            answer["value"]["message"]
        );
        Ok(answer["value"].clone())
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .map(drop)
    }

    /// The address of the page shown.
    pub async fn url(&self) -> anyhow::Result<String> {
        let value = self.command(reqwest::Method::GET, "/url", None).await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// The page's text as a person reads it.
    pub async fn text(&self) -> anyhow::Result<String> {
        let body = self.find("body").await?;
        self.element_text(&body).await
    }

    async fn element_text(&self, element: &str) -> anyhow::Result<String> {
        let value = self
            .command(
                reqwest::Method::GET,
                &format!("/element/{element}/text"),
                None,
            )
            .await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// The first element matching the CSS `selector`; an error when there is none.
    pub async fn find(&self, selector: &str) -> anyhow::Result<String> {
        let value = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": selector })),
            )
            .await
            .map_err(|error| anyhow::anyhow!("no element {selector:?} on the page: {error}"))?;
        value[ELEMENT_KEY]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no element {selector:?}: {value}"))
    }

    /// How many elements match the CSS `selector`.
    pub async fn count(&self, selector: &str) -> anyhow::Result<usize> {
        let value = self
            .command(
                reqwest::Method::POST,
                "/elements",
                Some(json!({ "using": "css selector", "value": selector })),
            )
            .await?;
        Ok(value.as_array().map(Vec::len).unwrap_or(0))
    }

    /// The text of the first element matching `selector`.
    pub async fn text_of(&self, selector: &str) -> anyhow::Result<String> {
        let element = self.find(selector).await?;
        self.element_text(&element).await
    }

    /// The value of attribute `name` of the first element matching `selector`.
    pub async fn attribute(&self, selector: &str, name: &str) -> anyhow::Result<String> {
        let element = self.find(selector).await?;
        let value = self
            .command(
                reqwest::Method::GET,
                &format!("/element/{element}/attribute/{name}"),
                None,
            )
            .await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Clicks a link or button that leads to another page, and waits until that page has
    /// replaced this one and finished loading.
    pub async fn follow(&self, selector: &str) -> anyhow::Result<()> {
        let old = self.find("html").await?;
        self.click(selector).await?;
        crate::wait_for(
            &format!("the page {selector:?} leads to"),
            Duration::from_secs(30),
            || {
                let old = old.clone();
                async move {
                    // The old document's root is stale once the new page replaced it.
                    let gone = self
                        .command(reqwest::Method::GET, &format!("/element/{old}/name"), None)
                        .await
                        .is_err();
                    if !gone {
                        return None;
                    }
                    let state = self
                        .command(
                            reqwest::Method::POST,
                            "/execute/sync",
                            Some(json!({ "script": "return document.readyState", "args": [] })),
                        )
                        .await
                        .ok()?;
                    (state == "complete").then_some(())
                }
            },
        )
        .await
    }

    /// Clicks the first element matching `selector` (a checkbox; see [`Browser::follow`]
    /// for what leads to another page).
    pub async fn click(&self, selector: &str) -> anyhow::Result<()> {
        let element = self.find(selector).await?;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await
        .map(drop)
    }

    /// Types `text` into the first element matching `selector`.
    pub async fn type_into(&self, selector: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(selector).await?;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .map(drop)
    }

    /// Resizes the window (a phone is about 390 x 844).
    pub async fn resize(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await
        .map(drop)
    }

    /// The value of the browser's cookie `name` (HttpOnly ones too).
    pub async fn cookie(&self, name: &str) -> anyhow::Result<String> {
        let value = self
            .command(reqwest::Method::GET, &format!("/cookie/{name}"), None)
            .await?;
        Ok(value["value"].as_str().unwrap_or_default().to_owned())
    }

    /// Saves a PNG of the window as `name` in the artifacts directory; returns its path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let value = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await?;
        let png =
            base64::engine::general_purpose::STANDARD.decode(value.as_str().unwrap_or_default())?;
        anyhow::ensure!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        let directory = artifacts_dir();
        std::fs::create_dir_all(&directory)?;
        let path = directory.join(name);
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Closes the session and the driver.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        let _ = self.driver.kill().await;
        Ok(())
    }
}

impl Drop for Browser {
    /// A test that fails before [`Browser::stop`] still leaves no Chromium behind: the
    /// driver dies with its handle, but the browser it started does not, so every process
    /// of this window's own profile directory is killed here.
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(self.profile.as_os_str())
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
