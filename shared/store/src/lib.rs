//! The Postgres store every service shares: connection pool, the schema's migrations,
//! a commit-or-rollback helper, and the one place where SQLSTATE codes become errors.

mod error;
mod phases;
mod pool;
mod transaction;

pub use error::StoreError;
pub use phases::record_phase;
pub use pool::{PoolSettings, connect_lazy, migrate, wait_until_ready};
pub use transaction::in_transaction;

/// The schema's migrations, embedded at build time from `shared/store/migrations`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub use sqlx::PgPool;
pub use sqlx::postgres::PgConnectOptions;
