//! Claims on work items for the length of one transaction, so several instances of a service
//! share the work and each item is done by one of them.
//!
//! Rows a service owns are claimed with `FOR UPDATE SKIP LOCKED`. A step whose input is a
//! record of another service (a push to stage, a decision to apply) cannot lock that row
//! (locking needs write rights the service does not have); it takes a transaction-scoped
//! advisory lock on the item instead, which behaves the same way: another instance skips
//! the item, and a crash releases it with the connection.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::StoreError;

/// What a claim is on; each kind has its own key space.
#[derive(Debug, Clone, Copy)]
pub enum Claim {
    /// Staging the queued cycles of a job (stager).
    StageJob(Uuid),
    /// Deciding a staged cycle (gate).
    DecideCycle(Uuid),
    /// Applying the decided cycles of a job (retention).
    ApplyJob(Uuid),
    /// Exporting a job's changes to its targets (exporter).
    ExportJob(Uuid),
}

impl Claim {
    fn key(self) -> (i32, i32) {
        let (space, id) = match self {
            Claim::StageJob(id) => (0x5347_0001, id),
            Claim::DecideCycle(id) => (0x5347_0002, id),
            Claim::ApplyJob(id) => (0x5347_0003, id),
            Claim::ExportJob(id) => (0x5347_0004, id),
        };
        // Version 7 ids keep their randomness in the low bytes.
        let bytes = id.as_bytes();
        let folded = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]])
            ^ u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        (space, folded as i32)
    }
}

/// Takes `claim` for the rest of the caller's transaction; false when another transaction
/// holds it (the caller skips the item: its holder does it).
pub async fn try_claim(conn: &mut PgConnection, claim: Claim) -> Result<bool, StoreError> {
    let (space, key) = claim.key();
    let (taken,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1, $2)")
        .bind(space)
        .bind(key)
        .fetch_one(conn)
        .await?;
    Ok(taken)
}

/// Waits for `claim` for the rest of the caller's transaction (for steps that must not be
/// skipped, such as an approver's decision racing the gate's own work on the same cycle).
pub async fn claim(conn: &mut PgConnection, claim: Claim) -> Result<(), StoreError> {
    let (space, key) = claim.key();
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(space)
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}
