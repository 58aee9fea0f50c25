//! Pool creation and start-up: services start before the database answers and turn ready
//! once it does and the schema is migrated.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool};

use crate::{MIGRATOR, StoreError};

/// Pool sizing and the database role the service acts as.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Upper bound of open connections for this service.
    pub max_connections: u32,
    /// How long a query waits for a free connection before failing as unavailable.
    pub acquire_timeout: Duration,
    /// `SET ROLE` on every connection: the service's own role (`syncguard_gate`, ...), which may
    /// write only the tables the service owns. `None` acts as the login user (tools, tests).
    pub role: Option<String>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            role: None,
        }
    }
}

/// The role a service acts as in the database.
pub fn service_role(service: &str) -> String {
    format!("syncguard_{service}")
}

/// How long a connection may have sat idle before the pool checks it is alive before handing
/// it out. sqlx pings every connection both when it is released and (by default) when it is
/// acquired: the second ping is a round trip on every pool acquire (0.1-0.3 ms, a fifth of a
/// small call's budget), and for a connection released moments ago it tells nothing the
/// release's ping did not. One that sat longer may have died idle (the database restarted):
/// that one is still pinged, and replaced if the ping fails.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// A pool that connects on first use, so a service can listen (and report NOT_SERVING)
/// while the database is still starting. Every connection takes on the configured role.
///
/// JIT compilation is off for the services' sessions: a one-object delta's diff is planned on
/// the statistics of the whole snapshot table, passes `jit_above_cost`, and spent 66-76 ms
/// compiling expressions to run for 1 ms (seen with auto_explain on a 100,000-object job);
/// the large set-wise statements are bound by writes, not by expression evaluation.
pub fn connect_lazy(options: PgConnectOptions, settings: &PoolSettings) -> PgPool {
    let mut options = options.options([("jit", "off")]);
    // Named after the role, so pg_stat_activity and the statement log tell the services apart.
    if let Some(role) = &settings.role {
        options = options.application_name(role);
    }
    let role = settings.role.clone();
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |conn, _meta| {
            let role = role.clone();
            Box::pin(async move {
                if let Some(role) = role {
                    // A role name is an identifier; ours are fixed ASCII names.
                    let statement = format!("SET ROLE \"{}\"", role.replace('"', ""));
                    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect_lazy_with(options)
}

/// Applies pending migrations on a connection of its own, as the login user (who owns the
/// schema; the service roles only use it). Safe when several services start at once against
/// an empty database: the migrator holds a Postgres advisory lock while it works.
pub async fn migrate(options: &PgConnectOptions) -> Result<(), StoreError> {
    let mut conn = PgConnection::connect_with(options).await?;
    let outcome = MIGRATOR
        .run_direct(None, &mut conn, false)
        .await
        .map_err(|error| match error {
            sqlx::migrate::MigrateError::Execute(inner) => StoreError::from(inner),
            other => StoreError::Unavailable(other.to_string()),
        });
    let _ = conn.close().await;
    outcome
}

/// Waits until the database answers and the schema is migrated, retrying with capped
/// backoff. Returns only when ready; callers bound it with their own shutdown signal.
pub async fn wait_until_ready(pool: &PgPool, options: &PgConnectOptions) {
    let mut delay = Duration::from_millis(100);
    loop {
        let attempt = async {
            migrate(options).await?;
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map_err(StoreError::from)?;
            Ok::<(), StoreError>(())
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

/// Whether the database answers a trivial query within `within`.
pub async fn answers(pool: &PgPool, within: Duration) -> bool {
    matches!(
        tokio::time::timeout(within, sqlx::query("SELECT 1").execute(pool)).await,
        Ok(Ok(_))
    )
}
