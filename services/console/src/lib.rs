//! The web console: the people who approve review a quarantine, allow or reject it,
//! restore from the recycle bin and read the provisioning log in a browser. It is one more
//! client of the services over gRPC, calling them with the signed-in person's own token;
//! it keeps nothing but sessions. Pages are rendered on the server (maud, checked at
//! compile time) with no script and nothing fetched from elsewhere.

pub mod config;
mod failure;
mod health;
mod layout;
mod pages;
mod services;
mod sessions;
mod tls;
mod web;
mod words;

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use syncguard_bootstrap::SharedTokens;

pub use config::{ConsoleConfig, ConsoleListen};
pub use tls::ServerTls;

use crate::services::Services;
use crate::sessions::Sessions;
use crate::web::{AppState, Console};

/// The console, bound to its port and ready to serve.
pub struct App {
    listener: tokio::net::TcpListener,
    router: Router,
    tokens: SharedTokens,
    tokens_file: Option<String>,
    serve_tls: Option<tls::ServerTls>,
}

/// Pages may use their own inline style and nothing else: no script runs, nothing loads
/// from elsewhere, no other site may frame them or receive where they came from.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn protect(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Pages show one person's view of live state: never kept by a shared cache.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if path == "/healthz" {
        // Probed every few seconds by compose: not worth a line at info.
        tracing::debug!(%method, path, status, elapsed_ms, "console request");
    } else {
        tracing::info!(%method, path, status, elapsed_ms, "console request");
    }
    response
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn not_found() -> Response {
    (
        axum::http::StatusCode::NOT_FOUND,
        web::html(layout::page(
            "Not found",
            None,
            maud::html! { p { "No such page. " a href="/jobs" { "Go to the jobs" } } },
        )),
    )
        .into_response()
}

fn router(state: AppState) -> Router {
    use pages::{deleted, jobs, log, pins, quarantine, signin};
    Router::new()
        .route("/healthz", get(healthz))
        .route("/", get(|| async { Redirect::to("/jobs") }))
        .route("/signin", get(signin::form).post(signin::submit))
        .route("/signout", post(signin::sign_out))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{job_id}", get(jobs::show))
        .route("/jobs/{job_id}/quarantine", get(quarantine::of_job))
        .route("/jobs/{job_id}/restart", post(quarantine::restart))
        .route("/quarantines/{quarantine_id}", get(quarantine::show))
        .route(
            "/quarantines/{quarantine_id}/review",
            post(quarantine::review),
        )
        .route(
            "/quarantines/{quarantine_id}/decide",
            post(quarantine::decide),
        )
        .route("/jobs/{job_id}/deleted", get(deleted::list))
        .route("/jobs/{job_id}/deleted/review", post(deleted::review))
        .route("/jobs/{job_id}/deleted/apply", post(deleted::apply))
        .route("/jobs/{job_id}/log", get(log::show))
        .route("/jobs/{job_id}/pins", get(pins::list))
        .route("/jobs/{job_id}/pins/review", post(pins::review))
        .route("/jobs/{job_id}/pins/release", post(pins::release))
        .fallback(not_found)
        .layer(middleware::from_fn(protect))
        .with_state(state)
}

impl App {
    /// Binds the port and prepares the channels (they connect on first use, so the
    /// console may start before the services).
    pub async fn build(config: ConsoleConfig) -> anyhow::Result<Self> {
        let secure_cookies = config.secure_cookies();
        let listener = match config.listen {
            ConsoleListen::Address(address) => tokio::net::TcpListener::bind(address)
                .await
                .map_err(|error| anyhow::anyhow!("cannot listen on {address}: {error}"))?,
            ConsoleListen::Bound(listener) => {
                listener.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(listener)?
            }
        };
        let tokens = SharedTokens::new(config.tokens.clone());
        let state = Arc::new(Console {
            services: Services::new(&config.peers, &config.tls)?,
            sessions: Sessions::new(config.session_lifetime, config.session_idle),
            tokens: tokens.clone(),
            secure_cookies,
        });
        Ok(Self {
            listener,
            router: router(state),
            tokens,
            tokens_file: config.tokens_file,
            serve_tls: config.serve_tls,
        })
    }

    /// Where the console listens.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        use axum::serve::ListenerExt as _;
        let address = self.local_addr()?;
        let reloader = self.tokens_file.clone().map(|path| {
            tokio::spawn(syncguard_bootstrap::reload_tokens_on_hangup(
                path,
                self.tokens.clone(),
            ))
        });
        tracing::info!(%address, tls = self.serve_tls.is_some(), "console listening");
        let outcome = match self.serve_tls {
            Some(server_tls) => tls::serve(self.listener, server_tls, self.router, shutdown).await,
            None => {
                // Small pages answer in one round trip only without Nagle's delay.
                let listener = self.listener.tap_io(|stream| {
                    let _ = stream.set_nodelay(true);
                });
                axum::serve(listener, self.router)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .map_err(anyhow::Error::from)
            }
        };
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        outcome.map_err(|error| anyhow::anyhow!("serving the console: {error}"))
    }
}

/// `syncguard-console --health-check`: asks the console on `SYNCGUARD_CONSOLE_LISTEN` (or
/// its default) for `/healthz`, over TLS verified with `SYNCGUARD_TLS_CA` when the console
/// serves TLS; exit 0 when it answers 200.
pub fn health_check() -> ExitCode {
    let get = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    let mut address = match config::listen_address(&get) {
        Ok(address) => address,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let probe = match health::Probe::from_lookup(address, &get) {
        Ok(probe) => probe,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    match probe.run() {
        Ok(status) if status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200") => {
            println!("SERVING");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!("the console at {address} answered: {status}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("the console at {address} cannot be reached: {error}");
            ExitCode::FAILURE
        }
    }
}
