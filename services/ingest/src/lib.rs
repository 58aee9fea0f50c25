//! Directory ingestion: owns jobs, their sources and schedules; takes pushes and pulls sources.
//!
//! A library with a thin `main.rs`: tests build the [`App`] in-process.

mod api;
pub mod copy_binary;
mod cycle_start;
mod error;
pub mod export_file;
mod job_spec;
mod jobs;
mod ldap_source;
pub mod policy;
#[cfg(test)]
mod properties;
mod snapshot_load;
pub mod source_object;
mod source_settings;
mod targets;

use std::future::Future;
use std::sync::Arc;

use policy::IngestPolicy;

pub use api::IngestApi;
use cycle_start::CycleStarter;
pub use error::IngestError;
use syncguard_bootstrap::{ServiceConfig, ServiceHost, ServiceName};
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::ingest_service_server::{IngestServiceServer, SERVICE_NAME};
use syncguard_proto::v1::notifier_service_client::NotifierServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use tonic::service::Routes;

/// The longest the scheduler waits between looks for due jobs.
const SCHEDULER_TICK: std::time::Duration = std::time::Duration::from_secs(5);

/// The ingest service, bound and ready to run.
pub struct App {
    host: ServiceHost,
    policy: Arc<IngestPolicy>,
}

impl App {
    /// Binds the listener; the database is awaited in the background.
    /// The policy (secrets, import directory, LDAP hosts, push limits) comes from the
    /// environment.
    pub async fn build(config: ServiceConfig) -> anyhow::Result<Self> {
        let policy = IngestPolicy::from_env(config.pool.max_connections)?;
        Self::build_with_policy(config, policy).await
    }

    /// Like [`App::build`] with an explicit policy.
    pub async fn build_with_policy(
        config: ServiceConfig,
        policy: IngestPolicy,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            host: ServiceHost::bind(config).await?,
            policy: Arc::new(policy),
        })
    }

    /// The port the service listens on.
    pub fn port(&self) -> u16 {
        self.host.port()
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let limit = self.host.config().max_message_bytes;
        let pool = self.host.pool().clone();
        let gate = GateServiceClient::new(self.host.peer(ServiceName::Gate)?)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let stager = StagerServiceClient::new(self.host.peer(ServiceName::Stager)?)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let notifier = NotifierServiceClient::new(self.host.peer(ServiceName::Notifier)?);
        let config = self.host.config();
        let starter = CycleStarter::new(
            pool.clone(),
            stager,
            notifier,
            config.cycle_wait,
            Arc::clone(&self.policy),
        );
        let api = IngestApi::new(pool, gate, starter.clone(), Arc::clone(&self.policy));

        // File and LDAP sources are read on their schedule; source rows no cycle needs any
        // more are released.
        let background = self.host.background();
        let scheduled = starter.clone();
        background.every(
            "source schedules",
            config.maintenance_interval.min(SCHEDULER_TICK),
            None,
            move || {
                let starter = scheduled.clone();
                async move { starter.run_due_sources().await }
            },
        );
        let cleaner = starter.clone();
        background.every(
            "source row release",
            config.maintenance_interval,
            None,
            move || {
                let starter = cleaner.clone();
                async move { starter.release_old_rows().await }
            },
        );
        let server = IngestServiceServer::new(api)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        self.host
            .serve(SERVICE_NAME, Routes::new(server), shutdown)
            .await
    }
}
