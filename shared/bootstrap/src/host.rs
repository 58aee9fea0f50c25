//! The shared server: listener, pool, health, reflection, the tower stack and the drain.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use syncguard_store::PgPool;
use syncguard_telemetry::ServerTraceLayer;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::{HealthReporter, HealthService};

use crate::auth::AuthLayer;
use crate::config::{Listen, ServiceConfig, ServiceName};
use crate::peers::{PeerChannel, peer_channel};

/// HTTP/2 flow-control windows for large streams, on servers and peer channels alike.
pub const HTTP2_STREAM_WINDOW: u32 = 8 * 1024 * 1024;
/// See [`HTTP2_STREAM_WINDOW`].
pub const HTTP2_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// One service's process-level parts. Services build their gRPC API on the pool and peers it
/// offers, then hand their routes to [`ServiceHost::serve`].
pub struct ServiceHost {
    config: ServiceConfig,
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    pool: PgPool,
    ready_tx: watch::Sender<bool>,
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
        let (ready_tx, _) = watch::channel(false);
        Ok(Self {
            config,
            listener,
            local_addr,
            pool,
            ready_tx,
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

    /// The shared database pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The configuration the service started with.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// An authenticated, traced channel to a peer service.
    pub fn peer(&self, service: ServiceName) -> anyhow::Result<PeerChannel> {
        peer_channel(self.config.peers.of(service), &self.config.service_token)
    }

    /// Turns true once the database answers and the schema is migrated; background workers
    /// wait on it before they start.
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready_tx.subscribe()
    }

    /// Serves `routes` plus health and reflection until `shutdown` resolves, then drains
    /// in-flight calls for at most the configured grace period.
    ///
    /// `grpc_service_name` is the fully qualified service (`syncguard.v1.IngestService`); its
    /// health status reads NOT_SERVING until the database is ready.
    pub async fn serve(
        self,
        grpc_service_name: &'static str,
        routes: Routes,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let service = self.config.service;
        let health = HealthReporter::new();
        for name in ["", grpc_service_name] {
            health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        let readiness = tokio::spawn(become_ready(
            self.pool.clone(),
            health.clone(),
            grpc_service_name,
            self.ready_tx.clone(),
        ));

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(syncguard_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("reflection v1")?;
        // grpcurl 1.8 speaks only v1alpha.
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(syncguard_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .context("reflection v1alpha")?;
        let routes = routes
            .add_service(tonic_health::pb::health_server::HealthServer::new(
                HealthService::from_health_reporter(health.clone()),
            ))
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        let stack = tower::ServiceBuilder::new()
            // Outermost: every call, refused or not, is one span in the caller's trace.
            .layer(ServerTraceLayer::new(service.as_str()))
            // Then authentication and the role check, before any handler runs.
            .layer(AuthLayer::new(self.config.tokens.clone()))
            .into_inner();
        let router = Server::builder()
            // Bounds every call; an expired deadline answers CANCELLED.
            .timeout(self.config.request_timeout)
            // Bounds the calls one connection can have in flight; more wait their turn.
            .concurrency_limit_per_connection(self.config.concurrency_limit)
            // Snapshot pushes stream hundreds of megabytes: HTTP/2's 64 KiB default windows
            // would stall them on flow control.
            .initial_stream_window_size(HTTP2_STREAM_WINDOW)
            .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
            .layer(stack)
            .add_routes(routes);

        tracing::info!(service = service.as_str(), address = %self.local_addr, "listening");
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
        let server =
            router.serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), signal);
        let grace_expired = async move {
            if drain_started_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
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
        readiness.abort();
        self.pool.close().await;
        outcome
    }
}

async fn become_ready(
    pool: PgPool,
    health: HealthReporter,
    grpc_service_name: &'static str,
    ready_tx: watch::Sender<bool>,
) {
    syncguard_store::wait_until_ready(&pool).await;
    for name in ["", grpc_service_name] {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    ready_tx.send_replace(true);
    tracing::info!(service = grpc_service_name, "database ready, serving");
}
