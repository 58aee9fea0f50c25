//! The five services in-process, on loopback, each with its own pre-bound listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use syncguard_bootstrap::{Listen, PeerUrls, ServiceConfig, ServiceName, TokenTable};
use syncguard_domain::Role;
use syncguard_notifier::settings::{Delivery, MailSettings};
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::notifier_service_client::NotifierServiceClient;
use syncguard_proto::v1::retention_service_client::RetentionServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use syncguard_retention::clock::{Clock, ShiftedClock};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::TestDatabase;

/// One fresh token per role, so a test can call as anyone.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// Role reader.
    pub reader: String,
    /// Role operator.
    pub operator: String,
    /// Role approver.
    pub approver: String,
    /// A second approver, for jobs that need two.
    pub approver2: String,
    /// Role admin.
    pub admin: String,
    /// Alice again, with an admin token: still one person.
    pub alice_admin: String,
    /// Role service, presented by every service to its peers.
    pub service: String,
}

impl Tokens {
    /// Fresh tokens, for services started as separate processes.
    pub fn generate_for_processes() -> Self {
        Self::generate()
    }

    fn generate() -> Self {
        let token = |role: &str| format!("{role}-{}", uuid::Uuid::new_v4().simple());
        Self {
            reader: token("reader"),
            operator: token("operator"),
            approver: token("approver"),
            approver2: token("approver2"),
            admin: token("admin"),
            alice_admin: token("alice-admin"),
            service: token("service"),
        }
    }

    /// The token table every service of the suite accepts.
    pub fn table(&self) -> TokenTable {
        let mut table = TokenTable::default();
        table.insert("rita", Role::Reader, &self.reader);
        table.insert("otto", Role::Operator, &self.operator);
        table.insert("alice", Role::Approver, &self.approver);
        table.insert("bob", Role::Approver, &self.approver2);
        table.insert("ada", Role::Admin, &self.admin);
        table.insert("alice", Role::Admin, &self.alice_admin);
        table.insert("syncguard", Role::Service, &self.service);
        table
    }

    /// Writes the table as a tokens file the binaries accept (private to this user: a
    /// file every user may read is refused).
    pub fn write_file(&self, path: &std::path::Path) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(path, self.file_text())?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(())
    }

    /// The same table in the file format the binaries read.
    pub fn file_text(&self) -> String {
        format!(
            "reader rita {}\noperator otto {}\napprover alice {}\napprover bob {}\nadmin ada {}\nadmin alice {}\nservice syncguard {}\n",
            self.reader,
            self.operator,
            self.approver,
            self.approver2,
            self.admin,
            self.alice_admin,
            self.service
        )
    }
}

/// Adds a bearer token to every call of a client.
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl BearerToken {
    /// A token value (`Bearer ...`), or none for calls without a token.
    pub fn new(value: Option<MetadataValue<Ascii>>) -> Self {
        Self(value)
    }
}

impl Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel whose calls carry a bearer token.
pub type Authed = InterceptedService<Channel, BearerToken>;

/// How to start a suite.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Services not started at first (their port refuses connections until
    /// [`Suite::start_service`]): a real outage, for tests of what survives one.
    pub deferred: Vec<ServiceName>,
    /// Background work interval of every service.
    pub maintenance_interval: Duration,
    /// The clock retention tells time by; tests move it past retention periods.
    pub retention_clock: Arc<ShiftedClock>,
    /// How the notifier delivers mail (default: files in a temporary directory).
    pub mail: Option<MailSettings>,
    /// How often the gate reminds people of an open quarantine.
    pub reminder_interval: Duration,
    /// `SYNCGUARD_LDAP_ALLOWED_HOSTS` of ingest (default: any host).
    pub ldap_allowed_hosts: Option<String>,
    /// How long a push stream may stay silent (ingest).
    pub push_idle: Duration,
    /// Push streams ingest serves at once.
    pub max_pushes: usize,
    /// Days the change feed keeps its changes (retention).
    pub feed_retention_days: u32,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        Self {
            deferred: Vec::new(),
            maintenance_interval: Duration::from_secs(15),
            retention_clock: Arc::new(ShiftedClock::default()),
            mail: None,
            reminder_interval: Duration::from_secs(24 * 3600),
            ldap_allowed_hosts: None,
            push_idle: Duration::from_secs(30),
            max_pushes: 2,
            feed_retention_days: 30,
        }
    }
}

/// All six services running against one fresh database.
pub struct Suite {
    /// The tokens the services accept.
    pub tokens: Tokens,
    database: Option<TestDatabase>,
    addresses: Vec<(ServiceName, SocketAddr)>,
    peers: PeerUrls,
    options: SuiteOptions,
    stop: watch::Sender<bool>,
    single_stops: Vec<(ServiceName, watch::Sender<bool>)>,
    tasks: Vec<(ServiceName, JoinHandle<anyhow::Result<()>>)>,
    console: Option<JoinHandle<anyhow::Result<()>>>,
    scratch: std::path::PathBuf,
}

impl Suite {
    /// Starts the suite on a new empty database and waits until every service is SERVING.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(SuiteOptions::default()).await
    }

    /// Starts the suite with `options` on a new empty database.
    pub async fn start_with(options: SuiteOptions) -> anyhow::Result<Self> {
        Self::start_on(TestDatabase::create().await?, options).await
    }

    /// Starts the suite on `database`; all services started at once migrate it together.
    pub async fn start_on(database: TestDatabase, options: SuiteOptions) -> anyhow::Result<Self> {
        let tokens = Tokens::generate();
        let mut listeners = Vec::new();
        for service in ServiceName::ALL {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listeners.push((service, listener.local_addr()?, listener));
        }
        let url = |service: ServiceName| {
            let address = listeners
                .iter()
                .find(|(name, _, _)| *name == service)
                .map(|(_, address, _)| *address)
                .expect("every service has a listener");
            crate::transport::service_url(address)
        };
        let peers = PeerUrls {
            ingest: url(ServiceName::Ingest),
            stager: url(ServiceName::Stager),
            gate: url(ServiceName::Gate),
            notifier: url(ServiceName::Notifier),
            retention: url(ServiceName::Retention),
            exporter: url(ServiceName::Exporter),
        };
        let (stop, _) = watch::channel(false);
        let scratch =
            std::env::temp_dir().join(format!("syncguard-suite-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(scratch.join("import"))?;
        std::fs::create_dir_all(scratch.join("secrets"))?;
        let mut suite = Self {
            tokens,
            database: Some(database),
            addresses: listeners
                .iter()
                .map(|(service, address, _)| (*service, *address))
                .collect(),
            peers,
            options,
            stop,
            single_stops: Vec::new(),
            tasks: Vec::new(),
            console: None,
            scratch,
        };
        let mut started = Vec::new();
        for (service, address, listener) in listeners {
            if suite.options.deferred.contains(&service) {
                // Dropping the listener makes the port refuse connections: the service is down.
                drop(listener);
                continue;
            }
            suite.spawn(service, listener).await?;
            started.push((service, address));
        }
        for (service, address) in started {
            wait_until_serving(service, address).await?;
        }
        Ok(suite)
    }

    async fn spawn(
        &mut self,
        service: ServiceName,
        listener: std::net::TcpListener,
    ) -> anyhow::Result<()> {
        let mut config = ServiceConfig::new(
            service,
            Listen::Bound(listener),
            self.database().options(),
            self.peers.clone(),
            self.tokens.table(),
            self.tokens.service.clone(),
        );
        // Tests run side by side against one server: keep each suite's share small.
        config.pool.max_connections = 4;
        config.maintenance_interval = self.options.maintenance_interval;
        config.reminder_interval = self.options.reminder_interval;
        if let Some(tls) = crate::transport::test_tls() {
            config.tls = tls.settings();
        }
        let mut stopped = self.stop.subscribe();
        let (stop_one, mut stopped_one) = watch::channel(false);
        let shutdown = async move {
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => {}
                _ = stopped_one.wait_for(|stop| *stop) => {}
            }
        };
        let task = match service {
            ServiceName::Ingest => {
                let policy = syncguard_ingest::policy::IngestPolicy::new(
                    syncguard_bootstrap::SecretStore::new(Some(self.secrets_dir()), Vec::new()),
                    Some(self.import_dir()),
                    syncguard_bootstrap::AllowedHosts::parse(
                        "SYNCGUARD_LDAP_ALLOWED_HOSTS",
                        self.options.ldap_allowed_hosts.as_deref(),
                    )
                    .map_err(anyhow::Error::msg)?,
                    self.options.push_idle,
                    self.options.max_pushes,
                )?;
                let app = syncguard_ingest::App::build_with_policy(config, policy).await?;
                tokio::spawn(app.run_until_stopped(shutdown))
            }
            ServiceName::Stager => {
                let app = syncguard_stager::App::build(config).await?;
                tokio::spawn(app.run_until_stopped(shutdown))
            }
            ServiceName::Gate => {
                let app = syncguard_gate::App::build(config).await?;
                tokio::spawn(app.run_until_stopped(shutdown))
            }
            ServiceName::Notifier => {
                let mail = self.options.mail.clone().unwrap_or_else(|| MailSettings {
                    delivery: Delivery::Directory(
                        std::env::temp_dir()
                            .join(format!("syncguard-mail-{}", uuid::Uuid::new_v4())),
                    ),
                    ..MailSettings::default()
                });
                let app = syncguard_notifier::App::build_with_mail(config, mail).await?;
                tokio::spawn(app.run_until_stopped(shutdown))
            }
            ServiceName::Retention => {
                let clock: Arc<dyn Clock> = self.options.retention_clock.clone();
                let app = syncguard_retention::App::build_with_clock(config, clock)
                    .await?
                    .with_feed_retention_days(self.options.feed_retention_days);
                tokio::spawn(app.run_until_stopped(shutdown))
            }
            ServiceName::Exporter => {
                let secrets =
                    syncguard_bootstrap::SecretStore::new(Some(self.secrets_dir()), Vec::new());
                let app = syncguard_exporter::App::build_with_secrets(config, secrets).await?;
                tokio::spawn(app.run_until_stopped(shutdown))
            }
        };
        self.tasks.push((service, task));
        self.single_stops.push((service, stop_one));
        Ok(())
    }

    /// Stops every running instance of `service` (a restart begins with this), and waits
    /// until they have stopped.
    pub async fn stop_service(&mut self, service: ServiceName) -> anyhow::Result<()> {
        for (name, stop) in &self.single_stops {
            if *name == service {
                stop.send_replace(true);
            }
        }
        self.single_stops.retain(|(name, _)| *name != service);
        let (stopping, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.tasks)
            .into_iter()
            .partition(|(name, _)| *name == service);
        self.tasks = running;
        for (_, task) in stopping {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .map_err(|_| {
                    anyhow::anyhow!("{} did not stop within 10 s", service.as_str())
                })???;
        }
        Ok(())
    }

    /// Starts one more instance of `service` on a new port (several instances share the
    /// database, as a scaled-out deployment does) and returns its address once SERVING.
    pub async fn start_another(&mut self, service: ServiceName) -> anyhow::Result<SocketAddr> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        self.spawn(service, listener).await?;
        wait_until_serving(service, address).await?;
        Ok(address)
    }

    /// Starts a deferred service on its reserved address and waits until it is SERVING.
    pub async fn start_service(&mut self, service: ServiceName) -> anyhow::Result<()> {
        self.start_service_unready(service).await?;
        wait_until_serving(service, self.address(service)).await
    }

    /// Starts a deferred or stopped service on its reserved address without waiting for it
    /// to turn SERVING (its database may be away).
    pub async fn start_service_unready(&mut self, service: ServiceName) -> anyhow::Result<()> {
        let address = self.address(service);
        let listener = std::net::TcpListener::bind(address)?;
        self.spawn(service, listener).await
    }

    /// Ingest's import directory (SYNCGUARD_IMPORT_DIR): file sources name paths inside it.
    pub fn import_dir(&self) -> std::path::PathBuf {
        self.scratch.join("import")
    }

    /// Ingest's secrets directory (SYNCGUARD_SECRETS_DIR): jobs name secrets in it.
    pub fn secrets_dir(&self) -> std::path::PathBuf {
        self.scratch.join("secrets")
    }

    /// Stores a secret for jobs to name.
    pub fn add_secret(&self, name: &str, value: &str) -> anyhow::Result<()> {
        std::fs::write(self.secrets_dir().join(name), format!("{value}\n"))?;
        Ok(())
    }

    /// Where a service listens.
    pub fn address(&self, service: ServiceName) -> SocketAddr {
        self.addresses
            .iter()
            .find(|(name, _)| *name == service)
            .map(|(_, address)| *address)
            .expect("every service has an address")
    }

    /// A plain channel to a service (no token).
    pub fn channel(&self, service: ServiceName) -> Channel {
        loopback_channel(self.address(service))
    }

    fn authed(&self, service: ServiceName, token: Option<&str>) -> Authed {
        let value = token.map(|token| format!("Bearer {token}").parse().expect("tokens are ASCII"));
        InterceptedService::new(self.channel(service), BearerToken(value))
    }

    /// An ingest client calling with `token` (`None`: no token at all).
    pub fn ingest(&self, token: Option<&str>) -> IngestServiceClient<Authed> {
        IngestServiceClient::new(self.authed(ServiceName::Ingest, token))
    }

    /// A stager client calling with `token`.
    pub fn stager(&self, token: Option<&str>) -> StagerServiceClient<Authed> {
        StagerServiceClient::new(self.authed(ServiceName::Stager, token))
    }

    /// A gate client calling with `token`.
    pub fn gate(&self, token: Option<&str>) -> GateServiceClient<Authed> {
        GateServiceClient::new(self.authed(ServiceName::Gate, token))
    }

    /// A notifier client calling with `token`.
    pub fn notifier(&self, token: Option<&str>) -> NotifierServiceClient<Authed> {
        NotifierServiceClient::new(self.authed(ServiceName::Notifier, token))
    }

    /// An exporter client calling with `token`.
    pub fn exporter(
        &self,
        token: Option<&str>,
    ) -> syncguard_proto::v1::exporter_service_client::ExporterServiceClient<Authed> {
        syncguard_proto::v1::exporter_service_client::ExporterServiceClient::new(
            self.authed(ServiceName::Exporter, token),
        )
    }

    /// A retention client calling with `token`.
    pub fn retention(&self, token: Option<&str>) -> RetentionServiceClient<Authed> {
        RetentionServiceClient::new(self.authed(ServiceName::Retention, token))
    }

    /// The suite's database, for assertions about the schema.
    pub fn database(&self) -> &TestDatabase {
        self.database
            .as_ref()
            .expect("the database lives as long as the suite")
    }

    /// Starts the web console on `listener`, calling this suite's services (over TLS in a
    /// TLS run) and accepting the suite's tokens; it stops with the suite. Returns its
    /// address as a browser opens it.
    pub async fn start_console(
        &mut self,
        listener: std::net::TcpListener,
    ) -> anyhow::Result<String> {
        self.start_console_with(listener, |_| {}).await
    }

    /// [`Suite::start_console`] with settings changed by `configure` first (returns its
    /// address with `http://`, whatever it serves).
    pub async fn start_console_with(
        &mut self,
        listener: std::net::TcpListener,
        configure: impl FnOnce(&mut syncguard_console::ConsoleConfig),
    ) -> anyhow::Result<String> {
        let address = listener.local_addr()?;
        let mut config = syncguard_console::ConsoleConfig::new(
            syncguard_console::ConsoleListen::Bound(listener),
            self.peers.clone(),
            self.tokens.table(),
        );
        if let Some(tls) = crate::transport::test_tls() {
            config.tls = tls.settings();
        }
        configure(&mut config);
        let app = syncguard_console::App::build(config).await?;
        let mut stopped = self.stop.subscribe();
        self.console = Some(tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })));
        Ok(format!("http://{address}"))
    }

    /// Stops every service, checks each stopped cleanly, and drops the database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.send_replace(true);
        if let Some(console) = self.console.take() {
            tokio::time::timeout(Duration::from_secs(10), console)
                .await
                .map_err(|_| anyhow::anyhow!("the console did not stop within 10 s"))?
                .map_err(|error| anyhow::anyhow!("the console panicked: {error}"))?
                .map_err(|error| anyhow::anyhow!("the console failed: {error:#}"))?;
        }
        for (service, task) in std::mem::take(&mut self.tasks) {
            let outcome = tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .map_err(|_| anyhow::anyhow!("{} did not stop within 10 s", service.as_str()))?;
            outcome
                .map_err(|error| anyhow::anyhow!("{} panicked: {error}", service.as_str()))?
                .map_err(|error| anyhow::anyhow!("{} failed: {error:#}", service.as_str()))?;
        }
        if let Some(database) = self.database.take() {
            database.drop_database().await?;
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
        Ok(())
    }
}

/// A lazily connecting channel to a loopback address, over TLS in a TLS run.
pub fn loopback_channel(address: SocketAddr) -> Channel {
    channel_to(address, crate::transport::test_tls())
}

/// A lazily connecting channel to a loopback address, over TLS with `tls`' CA (and client
/// certificate, when it is mutual) or in plaintext.
pub fn channel_to(address: SocketAddr, tls: Option<&crate::transport::TestTls>) -> Channel {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
        .expect("a loopback URL is valid")
        .initial_stream_window_size(syncguard_bootstrap::HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(syncguard_bootstrap::HTTP2_CONNECTION_WINDOW)
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls.client_config())
            .expect("the test CA loads");
    }
    endpoint.connect_lazy()
}

/// Polls `check` until it yields a value, or fails after `deadline` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= give_up {
            anyhow::bail!("gave up after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the service's health check answers SERVING.
pub async fn wait_until_serving(service: ServiceName, address: SocketAddr) -> anyhow::Result<()> {
    wait_until_serving_on(service, loopback_channel(address)).await
}

/// Waits until the service behind `channel` answers SERVING.
pub async fn wait_until_serving_on(service: ServiceName, channel: Channel) -> anyhow::Result<()> {
    let mut health = HealthClient::new(channel);
    wait_for(
        &format!("{} to report SERVING", service.as_str()),
        Duration::from_secs(30),
        || {
            let mut health = health.clone();
            async move {
                let response = health
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .ok()?;
                (response.into_inner().status == ServingStatus::Serving as i32).then_some(())
            }
        },
    )
    .await?;
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(())
}
