//! The benchmark (`scripts/bench`): starts the five release binaries against a fresh
//! database and prints the performance table, every workload beside its Postgres anchor
//! measured in the same run: small-call latency beside a pgbench one-row commit, deltas on
//! jobs of 100 to N objects, a decision and an allow of 10,000 held deletes beside the same
//! rows in SQL, the initial load and a steady cycle of N objects beside `psql \copy`, a second
//! job after an ANALYZE, deltas under load, and each service's peak RSS. Nothing is asserted;
//! the table says which goals were met.
//!
//! `scripts/bench [N]` (default 1,000,000); `scripts/bench --ldap [N ...]` reads a directory
//! from a real slapd instead (see `ldap_mode`); `scripts/bench --export [N ...]` measures the
//! exporter writing to a real slapd and SCIM server (see `export_mode`).

mod anchors;
mod cycles;
mod data;
mod export_mode;
mod latency;
mod ldap_mode;
mod services;
mod snapshot_csv;
mod suite;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mode = std::env::args().nth(1);
    let ldap = mode.as_deref() == Some("--ldap");
    let export = mode.as_deref() == Some("--export");
    let sizes: Vec<usize> = std::env::args()
        .skip(if ldap || export { 2 } else { 1 })
        .map(|arg| arg.replace(['_', ','], "").parse())
        .collect::<Result<_, _>>()
        .map_err(|error| anyhow::anyhow!("sizes are object counts like 1000000: {error}"))?;
    if export {
        for total in if sizes.is_empty() { vec![5_000] } else { sizes } {
            export_mode::run(total).await?;
        }
        return Ok(());
    }
    if ldap {
        for total in if sizes.is_empty() {
            vec![100_000]
        } else {
            sizes
        } {
            ldap_mode::run(total).await?;
        }
        return Ok(());
    }
    for total in if sizes.is_empty() {
        vec![1_000_000]
    } else {
        sizes
    } {
        suite::run(total).await?;
    }
    Ok(())
}
