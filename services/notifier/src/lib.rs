//! Notifications: the email outbox in Postgres, written from what is recorded and sent over
//! SMTP with retries until the server accepts it (at least once; every attempt carries the
//! same Message-ID, so a repeat after a crash is recognizable).
//!
//! A library with a thin `main.rs`: tests build the [`App`] in-process.

mod api;
mod compose;
mod error;
mod events;
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

        // The sender delivers the outbox, woken by each new entry and polling for retries.
        if let Some(transport) = sender::transport(&self.mail) {
            let pool = self.host.pool().clone();
            let mail = std::sync::Arc::new(self.mail);
            let transport = std::sync::Arc::new(transport);
            self.host.background().every(
                "mail sender",
                mail.poll_interval,
                Some(wakeup.notified()),
                move || {
                    let (pool, mail, transport) = (pool.clone(), mail.clone(), transport.clone());
                    async move { sender::send_due(&pool, &mail, &transport).await }
                },
            );
        }
        let server = NotifierServiceServer::new(api)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        self.host
            .serve(SERVICE_NAME, Routes::new(server), shutdown)
            .await
    }
}
