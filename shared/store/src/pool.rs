//! Pool creation and start-up: services start before the database answers and turn ready
//! once it does and the schema is migrated.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::{MIGRATOR, StoreError};

/// Pool sizing; small by default because five services share one server.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Upper bound of open connections for this service.
    pub max_connections: u32,
    /// How long a query waits for a free connection before failing as unavailable.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A pool that connects on first use, so a service can listen (and report NOT_SERVING)
/// while the database is still starting.
pub fn connect_lazy(options: PgConnectOptions, settings: &PoolSettings) -> PgPool {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(options)
}

/// Applies pending migrations. Safe when several services start at once against an empty
/// database: the migrator holds a Postgres advisory lock while it works.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(|error| match error {
        sqlx::migrate::MigrateError::Execute(inner) => StoreError::from(inner),
        other => StoreError::Unavailable(other.to_string()),
    })
}

/// Waits until the database answers and the schema is migrated, retrying with capped
/// backoff. Returns only when ready; callers bound it with their own shutdown signal.
pub async fn wait_until_ready(pool: &PgPool) {
    let mut delay = Duration::from_millis(100);
    loop {
        let attempt = async {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map_err(StoreError::from)?;
            migrate(pool).await
        };
        match attempt.await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "database not ready");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
