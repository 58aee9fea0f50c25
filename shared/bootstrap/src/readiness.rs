//! Readiness: health reads NOT_SERVING until the database answers and the schema is
//! migrated, turns NOT_SERVING again within a few seconds when the database is lost and
//! SERVING when it returns; meanwhile calls are answered `UNAVAILABLE` at once instead of
//! each waiting for a pool connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{Either, Ready, ready};
use http::{Request, Response};
use sqlx::Connection as _;
use syncguard_store::{PgConnectOptions, PgPool};
use tokio::sync::watch;
use tonic::Status;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower_layer::Layer;
use tower_service::Service;

use crate::policy::is_open_path;

/// How often the database is probed once the service is up.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// A probe that takes longer than this counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Failed probes in a row before the service reports NOT_SERVING.
const FAILURES_BEFORE_NOT_SERVING: u32 = 2;

/// Whether the service can do its work now (the database answers).
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// True while the database answers.
    pub fn is_serving(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, serving: bool) {
        self.0.store(serving, Ordering::Relaxed);
    }
}

async fn report(health: &HealthReporter, names: &[&str], status: ServingStatus) {
    for name in names {
        health.set_service_status(*name, status).await;
    }
}

/// Migrates, turns SERVING, then watches the database with a connection of its own (so a
/// busy pool does not look like an outage) and flips health both ways.
pub(crate) async fn watch_database(
    pool: PgPool,
    options: PgConnectOptions,
    health: HealthReporter,
    names: Vec<&'static str>,
    readiness: Readiness,
    migrated: watch::Sender<bool>,
) {
    syncguard_store::wait_until_ready(&pool, &options).await;
    readiness.set(true);
    report(&health, &names, ServingStatus::Serving).await;
    migrated.send_replace(true);
    tracing::info!(service = names[1], "database ready, serving");

    let mut probe: Option<sqlx::PgConnection> = None;
    let mut failures = 0u32;
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let answered = tokio::time::timeout(PROBE_TIMEOUT, probe_once(&mut probe, &options)).await;
        match answered {
            Ok(Ok(())) => {
                failures = 0;
                if !readiness.is_serving() {
                    readiness.set(true);
                    report(&health, &names, ServingStatus::Serving).await;
                    tracing::info!(service = names[1], "database is back, serving");
                }
            }
            _ => {
                probe = None;
                failures += 1;
                if failures >= FAILURES_BEFORE_NOT_SERVING && readiness.is_serving() {
                    readiness.set(false);
                    report(&health, &names, ServingStatus::NotServing).await;
                    tracing::warn!(
                        service = names[1],
                        "database lost: NOT_SERVING until it answers again"
                    );
                }
            }
        }
    }
}

async fn probe_once(
    probe: &mut Option<sqlx::PgConnection>,
    options: &PgConnectOptions,
) -> Result<(), sqlx::Error> {
    let conn = match probe {
        Some(conn) => conn,
        None => probe.insert(sqlx::PgConnection::connect_with(options).await?),
    };
    sqlx::raw_sql("SELECT 1").execute(conn).await.map(|_| ())
}

/// Answers `UNAVAILABLE` to every call but health and reflection while the service is not
/// ready.
#[derive(Debug, Clone)]
pub struct ReadinessLayer {
    readiness: Readiness,
}

impl ReadinessLayer {
    /// A layer refusing calls while `readiness` is false.
    pub fn new(readiness: Readiness) -> Self {
        Self { readiness }
    }
}

impl<S> Layer<S> for ReadinessLayer {
    type Service = ReadinessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReadinessService {
            inner,
            readiness: self.readiness.clone(),
        }
    }
}

/// The service made by [`ReadinessLayer`].
#[derive(Debug, Clone)]
pub struct ReadinessService<S> {
    inner: S,
    readiness: Readiness,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ReadinessService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if self.readiness.is_serving() || is_open_path(request.uri().path()) {
            return Either::Left(self.inner.call(request));
        }
        let status = Status::unavailable("the service's database is unavailable; try again");
        Either::Right(ready(Ok(status.into_http())))
    }
}
