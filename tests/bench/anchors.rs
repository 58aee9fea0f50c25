//! The anchors each figure is printed beside, measured in the same run on the same server:
//! `psql \copy` of a snapshot, a pgbench one-row durable commit, and the SQL a bulk allow
//! amounts to.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use syncguard_e2e::TestDatabase;
use syncguard_ingest::copy_binary;
use tokio::process::Command;

/// How many times the snapshot is loaded with `psql \copy`; the anchor is the median. One
/// load of 1,000,000 objects took 5.5, 6.3 and 7.4 s in three runs on one machine, so a
/// single load moved every ratio beside it by a quarter.
pub const COPY_RUNS: usize = 3;

/// The `\copy` anchor's format. The anchor is the CSV a psql user loads; the binary
/// file holds exactly the bytes ingest streams, so its load is what ingest's own `COPY` costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// `FORMAT csv`.
    Csv,
    /// `FORMAT binary`, as ingest sends it.
    Binary,
}

impl CopyFormat {
    fn name(self) -> &'static str {
        match self {
            CopyFormat::Csv => "csv",
            CopyFormat::Binary => "binary",
        }
    }
}

/// Writes the snapshot rows in both formats, then times [`COPY_RUNS`] loads of each by
/// `psql \copy` into a table shaped and indexed like `source_objects`, each into an empty
/// table on a settled database (see [`settle`]). Returns each format's times in the order run.
pub async fn time_psql_copy(
    database: &TestDatabase,
    dir: &Path,
    rows: impl Iterator<
        Item = Result<
            syncguard_ingest::source_object::CanonicalObject,
            syncguard_domain::FieldError,
        >,
    >,
) -> anyhow::Result<Vec<(CopyFormat, Vec<Duration>)>> {
    let snapshot_id = uuid::Uuid::nil();
    let snapshot_text = snapshot_id.to_string();
    let (mut csv, mut binary) = (Vec::new(), copy_binary::HEADER.to_vec());
    for canonical in rows {
        let canonical = canonical?;
        crate::snapshot_csv::write_row(&canonical, &snapshot_text, "present", &mut csv);
        copy_binary::write_object(&canonical, &snapshot_id, "present", &mut binary)?;
    }
    binary.extend_from_slice(copy_binary::TRAILER);
    let mut timed = Vec::new();
    for (format, bytes) in [(CopyFormat::Csv, csv), (CopyFormat::Binary, binary)] {
        let file = dir.join(format!("snapshot.{}", format.name()));
        std::fs::write(&file, bytes)?;
        let mut times = Vec::with_capacity(COPY_RUNS);
        for _ in 0..COPY_RUNS {
            psql(
                database,
                "DROP TABLE IF EXISTS bench_copy; \
                 CREATE TABLE bench_copy (snapshot_id uuid, anchor text, change text, object_type text, \
                 distinguished_name text, attributes jsonb, enabled boolean, member_anchors text[], \
                 deleted_in_source boolean, content_hash bytea, PRIMARY KEY (snapshot_id, anchor))",
                "psql could not create the comparison table",
            )
            .await?;
            settle(database).await?;
            let started = Instant::now();
            psql(
                database,
                &format!(
                    "\\copy bench_copy FROM '{}' WITH (FORMAT {})",
                    file.display(),
                    format.name()
                ),
                "psql \\copy failed",
            )
            .await?;
            times.push(started.elapsed());
        }
        std::fs::remove_file(&file)?;
        timed.push((format, times));
    }
    Ok(timed)
}

/// Prints each format's loads and returns the CSV median, the anchor.
pub fn print_copies(total: usize, timed: &[(CopyFormat, Vec<Duration>)]) -> Duration {
    let mut anchor = Duration::ZERO;
    for (format, times) in timed {
        let listed = times
            .iter()
            .map(|time| format!("{:.2} s", time.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ");
        let middle = median(times);
        match format {
            CopyFormat::Csv => {
                anchor = middle;
                println!(
                    "  psql \\copy of the {total}-object snapshot: {:.2} s (median of {listed})",
                    middle.as_secs_f64()
                );
            }
            CopyFormat::Binary => println!(
                "  the same rows in COPY's binary format, as ingest sends them: {:.2} s (median of {listed})",
                middle.as_secs_f64()
            ),
        }
    }
    anchor
}

/// The median of `times` (the middle one of an odd count).
pub fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// Runs one `psql -c` command on the run's database; `failure` says what did not happen.
async fn psql(database: &TestDatabase, command: &str, failure: &str) -> anyhow::Result<()> {
    let status = Command::new("psql")
        .args([&database.url(), "-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(command)
        .status()
        .await?;
    anyhow::ensure!(status.success(), "{failure}");
    Ok(())
}

/// pgbench's average latency of a one-row INSERT commit (durable: synchronous_commit as the
/// server has it) with `clients` clients for `seconds`.
pub async fn pgbench_commit(
    database: &TestDatabase,
    dir: &Path,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Duration> {
    let url = database.url();
    psql(
        database,
        "CREATE TABLE IF NOT EXISTS bench_commit (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), v int)",
        "psql could not create the pgbench table",
    )
    .await?;
    let script = dir.join("commit.sql");
    std::fs::write(&script, "INSERT INTO bench_commit (v) VALUES (1);\n")?;
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
        ])
        .args(["-T", &seconds.to_string(), "-f"])
        .arg(&script)
        .arg(&url)
        .output()
        .await
        .map_err(|error| {
            anyhow::anyhow!("pgbench: {error} (apt-get install postgresql-contrib or postgresql)")
        })?;
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let average = text
        .lines()
        .find_map(|line| line.strip_prefix("latency average = "))
        .and_then(|rest| rest.trim_end_matches(" ms").trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("pgbench printed no latency average:\n{text}"))?;
    Ok(Duration::from_secs_f64(average / 1000.0))
}

/// Copies the job's objects for [`allow_in_sql`], with the same unique index, and an empty
/// log beside them; untimed, and made while the rows are live (before the allow they are
/// compared with). A new copy each time: the last one's rows are deleted.
pub async fn copy_for_allow_in_sql(
    database: &TestDatabase,
    job_id: uuid::Uuid,
) -> anyhow::Result<()> {
    let mut conn = database.connect().await?;
    sqlx::raw_sql("DROP TABLE IF EXISTS bench_objects, bench_log")
        .execute(&mut conn)
        .await?;
    sqlx::query(
        "CREATE TABLE bench_objects AS SELECT object_id, job_id, anchor, object_type, attributes, \
         deleted_at, updated_at FROM directory_objects WHERE job_id = $1",
    )
    .bind(job_id)
    .execute(&mut conn)
    .await?;
    sqlx::query("CREATE UNIQUE INDEX ON bench_objects (job_id, anchor)")
        .execute(&mut conn)
        .await?;
    sqlx::query(
        "CREATE TABLE bench_log (id bigserial PRIMARY KEY, job_id uuid, object_id uuid, anchor text, \
         action text, actor text, at timestamptz DEFAULT now())",
    )
    .execute(&mut conn)
    .await?;
    sqlx::query("ANALYZE bench_objects")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// What an allow of `anchors` amounts to in plain SQL, on the copy [`copy_for_allow_in_sql`]
/// made: one transaction that marks them deleted and writes a log row each. Timed once the
/// database is idle (the allow's notifier and exporter done) and after a checkpoint.
pub async fn allow_in_sql(
    database: &TestDatabase,
    job_id: uuid::Uuid,
    anchors: &[String],
) -> anyhow::Result<Duration> {
    let mut conn = database.connect().await?;
    wait_until_idle(&mut conn).await?;
    checkpoint(&mut conn).await?;
    let started = Instant::now();
    let mut transaction = conn.begin().await?;
    sqlx::query(
        "UPDATE bench_objects SET deleted_at = now(), updated_at = now() \
         WHERE job_id = $1 AND anchor = ANY($2)",
    )
    .bind(job_id)
    .bind(anchors)
    .execute(&mut *transaction)
    .await?;
    sqlx::query(
        "INSERT INTO bench_log (job_id, object_id, anchor, action, actor) \
         SELECT job_id, object_id, anchor, 'delete', 'approver:bench' FROM bench_objects \
         WHERE job_id = $1 AND anchor = ANY($2)",
    )
    .bind(job_id)
    .bind(anchors)
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await?;
    let took = started.elapsed();
    conn.close().await?;
    Ok(took)
}

/// Waits, on a connection of its own, until the database is idle (see [`wait_until_idle`]):
/// the small calls are timed on a server that is not still vacuuming what a large cycle
/// left (after a 1,000,000-object load, autovacuum's workers took up to 0.7 ms of CPU per
/// call beside them, and their ANALYZE commits are commits like any other).
pub async fn wait_for_idle(database: &TestDatabase) -> anyhow::Result<()> {
    let mut conn = database.connect().await?;
    wait_until_idle(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// Waits until no other session of the database has been working (a statement running, a
/// transaction open, autovacuum) at five looks 20 ms apart, so that a step timed next does
/// not share the host with what the last one set off; gives up after a minute, saying so.
async fn wait_until_idle(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet = 0;
    while quiet < 5 {
        let (busy,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() \
             AND (state IS DISTINCT FROM 'idle' OR backend_type = 'autovacuum worker')",
        )
        .fetch_one(&mut *conn)
        .await?;
        quiet = if busy == 0 { quiet + 1 } else { 0 };
        if Instant::now() >= deadline {
            println!("  (the database was still busy after a minute; measuring anyway)");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Waits for an idle database (see [`wait_for_idle`]) and then writes a checkpoint (see
/// [`checkpoint`]): the state each timed bulk step starts from, so that a step does not pay
/// for the autovacuum, dirty buffers or checkpoint that the step before it set off.
pub async fn settle(database: &TestDatabase) -> anyhow::Result<()> {
    wait_for_idle(database).await?;
    checkpoint(&mut database.connect().await?).await
}

/// Writes every dirty buffer out before a bulk write is timed, so that neither side of a
/// comparison pays for writing what the step before it left in the buffer pool (128 MB here,
/// smaller than a 100,000-object run's tables): each starts from a clean pool, and each pays
/// the full-page images its first touches write after a checkpoint.
pub async fn checkpoint(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    sqlx::query("CHECKPOINT").execute(conn).await?;
    Ok(())
}
