//! The Postgres store every service shares: connection pool (each service acting as its own
//! database role), the schema's migrations, a commit-or-rollback helper, claims on work
//! items, a read cache kept exactly as long as nothing commits, the derived cycle record, a
//! cycle's transitions into the provisioning log, and the one place where SQLSTATE codes
//! become errors.

mod action_log;
mod batch_ids;
mod claims;
mod cycle_record;
mod error;
pub mod feed;
mod jobs;
mod plan_shapes;
mod pool;
mod snapshot_cache;
mod staged_counts;
mod transaction;

pub use action_log::{Transition, log_applied_creates, log_transition};
pub use batch_ids::BatchIds;
pub use claims::{Claim, claim, try_claim};
pub use cycle_record::{
    CYCLE_RECORD_COLUMNS, CycleRecord, CycleRow, fetch_cycle, fetch_cycle_and_latest, fetch_cycles,
    latest_cycle_state_of, parse_latest_state,
};
pub use error::StoreError;
pub use jobs::job_exists;
pub use pool::{PoolSettings, answers, connect_lazy, migrate, service_role, wait_until_ready};
pub use snapshot_cache::{CommitPoint, SnapshotCache};
pub use staged_counts::{
    StagedCount, bind_staged_counts, by_action_and_type, staged_counts, staged_counts_value,
};
pub use transaction::in_transaction;

/// Marks the statements of a small delta (stager's staging, retention's apply), which run
/// with generic plans and key probes only: Postgres caches plans by statement text, so a
/// plan made under those settings then serves only small deltas, never a large cycle.
pub const SMALL_DELTA_MARK: &str = "/* small delta */ ";

/// The schema's migrations, embedded at build time from `shared/store/migrations`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub use sqlx::PgPool;
pub use sqlx::postgres::PgConnectOptions;
