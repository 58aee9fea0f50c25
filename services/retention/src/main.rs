//! `syncguard-retention`: see the crate documentation of `syncguard_retention`.

use std::process::ExitCode;

use syncguard_bootstrap::{ServiceName, run_main, shutdown_signal};

fn main() -> ExitCode {
    run_main(ServiceName::Retention, |config| async move {
        let feed_days = match std::env::var("SYNCGUARD_FEED_RETENTION_DAYS") {
            Ok(value) if !value.trim().is_empty() => {
                value.trim().parse::<u32>().map_err(|error| {
                    anyhow::anyhow!("SYNCGUARD_FEED_RETENTION_DAYS={value:?} is not valid: {error}")
                })?
            }
            _ => syncguard_retention::DEFAULT_FEED_RETENTION_DAYS,
        };
        syncguard_retention::App::build(config)
            .await?
            .with_feed_retention_days(feed_days)
            .run_until_stopped(shutdown_signal())
            .await
    })
}
