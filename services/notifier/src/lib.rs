//! Notifications: the email outbox in Postgres, sent over SMTP with retries, never twice.
//!
//! A library with a thin `main.rs`: tests build the [`App`] in-process.

mod api;
mod compose;
mod error;
mod outbox;
mod sender;
pub mod settings;

use std::future::Future;

pub use api::NotifierApi;
pub use error::NotifierError;
use syncguard_bootstrap::{ServiceConfig, ServiceHost};
use syncguard_proto::v1::notifier_service_server::{NotifierServiceServer, SERVICE_NAME};
use tonic::service::Routes;

use sender::Wakeup;
use settings::MailSettings;

/// The notifier service, bound and ready to run.
pub struct App {
    host: ServiceHost,
    mail: MailSettings,
}

impl App {
    /// Binds the listener, with mail settings from the environment (`SYNCGUARD_SMTP_URL` or
    /// `SYNCGUARD_MAIL_DIR`, ...); the database is awaited in the background.
    pub async fn build(config: ServiceConfig) -> anyhow::Result<Self> {
        let mail = MailSettings::from_env()?;
        Self::build_with_mail(config, mail).await
    }

    /// Like [`App::build`] with explicit mail settings.
    pub async fn build_with_mail(
        config: ServiceConfig,
        mail: MailSettings,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            host: ServiceHost::bind(config).await?,
            mail,
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
        let wakeup = Wakeup::default();
        let api = NotifierApi::new(self.host.pool().clone(), wakeup.clone());

        // The sender delivers the outbox once the database is ready.
        let pool = self.host.pool().clone();
        let mut ready = self.host.ready();
        let mail = self.mail;
        tokio::spawn(async move {
            if ready.wait_for(|ready| *ready).await.is_ok() {
                sender::run(pool, mail, wakeup).await;
            }
        });
        let server = NotifierServiceServer::new(api)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        self.host
            .serve(SERVICE_NAME, Routes::new(server), shutdown)
            .await
    }
}
