//! The shared server: listener, pool, health and readiness, reflection, the tower stack,
//! background work, and the drain.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use syncguard_store::PgPool;
use syncguard_telemetry::ServerTraceLayer;
use tokio::sync::watch;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::{HealthReporter, HealthService};

use crate::auth::{AuthLayer, SharedTokens};
use crate::background::Background;
use crate::config::{Listen, ServiceConfig, ServiceName};
use crate::cycle_events::{CYCLE_EVENTS_CHANNEL, CycleEvents, FEED_EVENTS_CHANNEL, JobEvents};
use crate::own_service::OwnServiceLayer;
use crate::peers::{PeerChannel, peer_channel};
use crate::readiness::{Readiness, ReadinessLayer, watch_database};
use crate::tokens::TokenTable;

/// HTTP/2 flow-control windows for large streams, on servers and peer channels alike.
pub const HTTP2_STREAM_WINDOW: u32 = 8 * 1024 * 1024;
/// See [`HTTP2_STREAM_WINDOW`].
pub const HTTP2_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// TCP keepalive on accepted connections: a peer that vanished is noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// HTTP/2 pings on idle connections; one unanswered for this long closes the connection.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Connections are recycled after this long (clients reconnect on their own); calls in
/// flight get the request timeout to finish. Bounds what one idle or hoarding client holds.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(30 * 60);

/// One service's process-level parts. Services build their gRPC API on the pool and peers it
/// offers, start their background work on [`ServiceHost::background`], then hand their
/// routes to [`ServiceHost::serve`].
pub struct ServiceHost {
    config: ServiceConfig,
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    pool: PgPool,
    migrated: watch::Sender<bool>,
    readiness: Readiness,
    background: Background,
    cycle_events: std::sync::OnceLock<CycleEvents>,
    feed_events: std::sync::OnceLock<JobEvents>,
}

impl ServiceHost {
    /// Binds the listener and creates a lazily connecting pool; nothing waits for the database.
    pub async fn bind(mut config: ServiceConfig) -> anyhow::Result<Self> {
        let listen = std::mem::replace(
            &mut config.listen,
            Listen::Address(config.service.default_listen()),
        );
        let listener = match listen {
            Listen::Address(address) => tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address}"))?,
            Listen::Bound(listener) => {
                listener
                    .set_nonblocking(true)
                    .context("cannot make the listener non-blocking")?;
                tokio::net::TcpListener::from_std(listener)
                    .context("cannot adopt the pre-bound listener")?
            }
        };
        let local_addr = listener.local_addr().context("listener has no address")?;
        let pool = syncguard_store::connect_lazy(config.database.clone(), &config.pool);
        let (migrated, ready) = watch::channel(false);
        Ok(Self {
            config,
            listener,
            local_addr,
            pool,
            migrated,
            readiness: Readiness::default(),
            background: Background::new(ready),
            cycle_events: std::sync::OnceLock::new(),
            feed_events: std::sync::OnceLock::new(),
        })
    }

    /// The port the service listens on (useful when bound to port 0).
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The address the service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The shared database pool (connections act as the service's own database role).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The configuration the service started with.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// An authenticated, traced channel to a peer service.
    pub fn peer(&self, service: ServiceName) -> anyhow::Result<PeerChannel> {
        peer_channel(
            self.config.peers.of(service),
            &self.config.service_token,
            self.config.tls.client_config(),
        )
    }

    /// Announcements that a job's cycle moved, from one listening connection of this
    /// service (started on first use).
    pub fn cycle_events(&self) -> CycleEvents {
        self.cycle_events
            .get_or_init(|| JobEvents::start(self.pool.clone(), CYCLE_EVENTS_CHANNEL))
            .clone()
    }

    /// Announcements that changes of a job entered the change feed (started on first use).
    pub fn feed_events(&self) -> JobEvents {
        self.feed_events
            .get_or_init(|| JobEvents::start(self.pool.clone(), FEED_EVENTS_CHANNEL))
            .clone()
    }

    /// Where background work is started: it begins once the database is ready and is drained
    /// when the service stops.
    pub fn background(&self) -> &Background {
        &self.background
    }

    /// Serves `routes` plus health and reflection until `shutdown` resolves, then drains
    /// in-flight calls and background work for at most the configured grace period.
    ///
    /// `grpc_service_name` is the fully qualified service (`syncguard.v1.IngestService`); its
    /// health status reads NOT_SERVING while the database is unavailable.
    pub async fn serve(
        self,
        grpc_service_name: &'static str,
        routes: Routes,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let service = self.config.service;
        let health = HealthReporter::new();
        let names = vec!["", grpc_service_name];
        for name in &names {
            health
                .set_service_status(*name, ServingStatus::NotServing)
                .await;
        }
        let watcher = tokio::spawn(watch_database(
            self.pool.clone(),
            self.config.database.clone(),
            health.clone(),
            names.clone(),
            self.readiness.clone(),
            self.migrated.clone(),
        ));

        // Reflection lists what this port serves; the error-details types are described too,
        // so grpcurl shows a field violation instead of "not recognized".
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(syncguard_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
                .with_service_name(grpc_service_name)
                .with_service_name("grpc.health.v1.Health")
                .with_service_name("grpc.reflection.v1.ServerReflection")
                .with_service_name("grpc.reflection.v1alpha.ServerReflection")
        };
        let reflection_v1 = reflection().build_v1().context("reflection v1")?;
        // grpcurl 1.8 speaks only v1alpha.
        let reflection_v1alpha = reflection().build_v1alpha().context("reflection v1alpha")?;
        let routes = routes
            .add_service(tonic_health::pb::health_server::HealthServer::new(
                HealthService::from_health_reporter(health.clone()),
            ))
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        let tokens = SharedTokens::new(self.config.tokens.clone());
        let reloader = self
            .config
            .tokens_file
            .clone()
            .map(|path| tokio::spawn(reload_tokens_on_hangup(path, tokens.clone())));
        let stack = tower::ServiceBuilder::new()
            // Outermost: every call, refused or not, is one span in the caller's trace.
            .layer(ServerTraceLayer::new(service.as_str()))
            // Another service's method on this port: say where it is served.
            .layer(OwnServiceLayer::new(grpc_service_name))
            // While the database is away, calls are refused at once as UNAVAILABLE.
            .layer(ReadinessLayer::new(self.readiness.clone()))
            // Then authentication and the role check, before any handler runs.
            .layer(AuthLayer::new(tokens.clone()))
            .into_inner();
        let mut server = Server::builder();
        if let Some(tls) = self.config.tls.server_config() {
            server = server
                .tls_config(tls)
                .context("the TLS certificate or key does not load")?;
        }
        let router = server
            // Bounds every call; an expired deadline answers CANCELLED.
            .timeout(self.config.request_timeout)
            // Bounds the calls one connection can have in flight; more wait their turn.
            .concurrency_limit_per_connection(self.config.concurrency_limit)
            // Snapshot pushes stream hundreds of megabytes: HTTP/2's 64 KiB default windows
            // would stall them on flow control.
            .initial_stream_window_size(HTTP2_STREAM_WINDOW)
            .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
            // Idle connections are pinged and closed when the peer stops answering.
            .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
            .max_connection_age(MAX_CONNECTION_AGE)
            .max_connection_age_grace(self.config.request_timeout)
            .layer(stack)
            .add_routes(routes);

        // Small answers go out at once: without TCP_NODELAY a response written in two
        // segments waits for the client's delayed ACK (about 40 ms).
        let incoming = TcpIncoming::from(self.listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(TCP_KEEPALIVE));
        tracing::info!(
            service = service.as_str(),
            address = %self.local_addr,
            tls = self.config.tls.serves_tls(),
            client_certificates = self.config.tls.requires_client_certificates(),
            "listening"
        );
        self.config
            .tls
            .warn_if_plaintext_beyond_loopback(self.local_addr);
        let grace = self.config.shutdown_grace;
        let (drain_started_tx, drain_started_rx) = tokio::sync::oneshot::channel::<()>();
        let health_on_shutdown = health.clone();
        let signal = async move {
            shutdown.await;
            for name in ["", grpc_service_name] {
                health_on_shutdown
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
            let _ = drain_started_tx.send(());
        };
        let server = router.serve_with_incoming_shutdown(incoming, signal);
        let background = self.background.clone();
        let grace_expired = async move {
            if drain_started_rx.await.is_ok() {
                // Background work drains alongside the calls, within the same grace.
                background.drain(grace).await;
                tokio::time::sleep(grace.saturating_sub(Duration::from_millis(100))).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let outcome = tokio::select! {
            result = server => result.context("server failed"),
            () = grace_expired => {
                tracing::warn!(grace_secs = grace.as_secs(), "drain grace period over, closing remaining calls");
                Ok(())
            }
        };
        self.background.drain(grace).await;
        watcher.abort();
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        self.pool.close().await;
        outcome
    }
}

/// Reads the tokens file again on each SIGHUP: a revoked token stops working without a
/// restart. A file that no longer reads keeps the previous table (and says why).
pub async fn reload_tokens_on_hangup(path: String, tokens: SharedTokens) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; the tokens file is read at start only");
            return;
        };
        while hangups.recv().await.is_some() {
            match TokenTable::from_file(&path) {
                Ok(table) => {
                    tokens.replace(table);
                    tracing::info!(file = %path, "tokens read again");
                }
                Err(error) => {
                    tracing::error!(%error, "tokens file not read again; the previous tokens stay in force")
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, tokens);
    }
}
