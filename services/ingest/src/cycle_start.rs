//! Turning recorded pushes into cycles: ingest records each push with the cycle it becomes,
//! then wakes the stager (which owns staging) and reports where the cycle stands. Ingest
//! also reads the sources it pulls itself (files, LDAP) on their schedule.

use std::time::Duration;

use sqlx::PgPool;
use syncguard_bootstrap::{PeerChannel, peer_unreachable};
use syncguard_domain::{FieldError, JobId};
use syncguard_proto::names;
use syncguard_proto::v1::notifier_service_client::NotifierServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use syncguard_proto::v1::{self, CycleState};
use uuid::Uuid;

use crate::error::IngestError;
use crate::export_file::{ExportFile, LdifOptions, parse_json, parse_ldif};
use crate::jobs::{self, JobRow};
use crate::policy::IngestPolicy;
use crate::snapshot_load::{Origin, SnapshotKind, SnapshotSummary, SnapshotWriter};
use crate::source_settings::{FileSettings, SourceSettings};
use std::sync::Arc;

/// Largest export file read or accepted, to bound memory.
pub const MAX_EXPORT_FILE_BYTES: usize = 512 * 1024 * 1024;

/// A recorded push and where its cycle stood when the call answered.
#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// The push.
    pub snapshot: SnapshotSummary,
    /// Where its cycle stands (QUEUED if the stager could not be asked).
    pub cycle_state: CycleState,
}

/// Hands recorded pushes to the stager and pulls the sources ingest reads itself.
#[derive(Clone)]
pub struct CycleStarter {
    pool: PgPool,
    stager: StagerServiceClient<PeerChannel>,
    notifier: NotifierServiceClient<PeerChannel>,
    wait: Duration,
    policy: Arc<IngestPolicy>,
}

impl CycleStarter {
    /// A starter over the database, the stager, and the notifier for failed reads; a push
    /// waits at most `wait` for its cycle to settle before answering.
    pub fn new(
        pool: PgPool,
        stager: StagerServiceClient<PeerChannel>,
        notifier: NotifierServiceClient<PeerChannel>,
        wait: Duration,
        policy: Arc<IngestPolicy>,
    ) -> Self {
        Self {
            pool,
            stager,
            notifier,
            wait,
            policy,
        }
    }

    /// Wakes the stager for the job and reports where the push's cycle stands once it
    /// settles. The push is recorded already: if the stager cannot be reached, the answer is
    /// the recorded state (QUEUED) and the stager stages it when it returns.
    pub async fn hand_over(
        &self,
        job_id: JobId,
        snapshot: SnapshotSummary,
    ) -> Result<PushOutcome, IngestError> {
        let request = v1::StageCycleRequest {
            job_id: job_id.to_string(),
            cycle_id: snapshot.cycle_id.to_string(),
            wait: Some(prost_types::Duration {
                seconds: self.wait.as_secs() as i64,
                nanos: 0,
            }),
        };
        match self.stager.clone().stage_cycle(request).await {
            Ok(response) => {
                return Ok(PushOutcome {
                    snapshot,
                    cycle_state: CycleState::try_from(response.get_ref().state)
                        .unwrap_or(CycleState::Queued),
                });
            }
            Err(status) if peer_unreachable(&status) => {
                tracing::warn!(job = %job_id, cycle = %snapshot.cycle_id, %status, "stager unreachable; the push is kept and staged when it returns");
            }
            Err(status) => {
                tracing::warn!(job = %job_id, cycle = %snapshot.cycle_id, %status, "stager did not report; answering with the recorded state");
            }
        }
        let recorded = syncguard_store::fetch_cycle(&self.pool, snapshot.cycle_id).await?;
        Ok(PushOutcome {
            snapshot,
            cycle_state: recorded
                .map(|cycle| names::cycle_state(cycle.state))
                .unwrap_or(CycleState::Queued),
        })
    }

    /// Lands every object of a parsed export file as one full snapshot.
    pub async fn load_export(
        &self,
        job_id: JobId,
        origin: Origin,
        file: ExportFile,
    ) -> Result<SnapshotSummary, IngestError> {
        let mut writer =
            SnapshotWriter::begin(&self.pool, job_id, SnapshotKind::Full, origin, None).await?;
        for object in file.objects {
            writer.add(object).await?;
        }
        if !file.unresolved_members.is_empty() {
            tracing::warn!(job = %job_id, count = file.unresolved_members.len(), first = %file.unresolved_members[0], "group members outside the file were left out");
        }
        writer.commit(None).await
    }

    /// Runs a cycle of `job` now: reads its file or LDAP source, or, for a push job, records
    /// its latest data (newest full snapshot plus later deltas) as a fresh full snapshot.
    pub async fn run(&self, job: &JobRow) -> Result<PushOutcome, IngestError> {
        let job_id = job.job_id();
        let snapshot = match job.source()? {
            SourceSettings::File(file) => {
                let export = match read_file_source(&self.policy, &file).await {
                    Ok(export) => export,
                    Err(error) => {
                        self.source_failed(job_id, "file", &error.to_string()).await;
                        return Err(error);
                    }
                };
                self.load_export(job_id, Origin::File, export).await?
            }
            SourceSettings::Push => {
                let mut writer = SnapshotWriter::begin(
                    &self.pool,
                    job_id,
                    SnapshotKind::Full,
                    Origin::Push,
                    None,
                )
                .await?;
                writer.copy_latest_data().await?;
                writer.commit(None).await?
            }
            SourceSettings::Ldap(ldap) => {
                let mut writer = SnapshotWriter::begin(
                    &self.pool,
                    job_id,
                    SnapshotKind::Full,
                    Origin::Ldap,
                    None,
                )
                .await?;
                let read = match crate::ldap_source::read(&self.policy, &ldap, &mut writer).await {
                    Ok(read) => read,
                    Err(error) => {
                        // The writer is dropped: the partial snapshot rolls back.
                        self.source_failed(job_id, "ldap", &error.to_string()).await;
                        return Err(error);
                    }
                };
                if !read.unresolved_members.is_empty() {
                    tracing::warn!(job = %job_id, count = read.unresolved_members.len(), first = %read.unresolved_members[0], "group members outside the read were left out");
                }
                writer.commit(None).await?
            }
        };
        self.hand_over(job_id, snapshot).await
    }

    /// Records a failed read on the job and asks the notifier to tell its recipients.
    async fn source_failed(&self, job_id: JobId, origin: &str, error: &str) {
        let failure_id = Uuid::now_v7();
        let outcome = sqlx::query(
            "INSERT INTO source_failures (failure_id, job_id, origin, error) VALUES ($1, $2, $3, $4)",
        )
        .bind(failure_id)
        .bind(job_id.0)
        .bind(origin)
        .bind(error)
        .execute(&self.pool)
        .await;
        if let Err(db_error) = outcome {
            tracing::error!(job = %job_id, error = %db_error, "could not record a source failure");
            return;
        }
        tracing::warn!(job = %job_id, origin, error, "source read failed; no cycle");
        let notice = v1::NotifyRequest {
            kind: v1::NotificationKind::CycleFailed as i32,
            job_id: job_id.to_string(),
            failure_id: failure_id.to_string(),
            ..Default::default()
        };
        if let Err(status) = self.notifier.clone().notify(notice).await {
            tracing::warn!(job = %job_id, %status, "the failure notice was not handed to the notifier");
        }
    }

    /// Reads due file and LDAP jobs (claimed with `SKIP LOCKED`, so several ingest instances
    /// read each once). Jobs held in quarantine are not read: their next read counts once
    /// the quarantine is decided.
    pub async fn run_due_sources(&self) {
        let due: Result<Vec<(Uuid,)>, sqlx::Error> = sqlx::query_as(
            "UPDATE jobs SET next_run_at = now() + make_interval(secs => schedule_interval_secs) \
             WHERE job_id IN (SELECT j.job_id FROM jobs j WHERE j.deleted_at IS NULL \
                                AND j.source_kind IN ('file', 'ldap') AND j.next_run_at <= now() \
                                AND NOT EXISTS (SELECT 1 FROM quarantines q WHERE q.job_id = j.job_id AND q.state = 'open') \
                              ORDER BY j.next_run_at LIMIT 5 FOR UPDATE SKIP LOCKED) \
             RETURNING job_id",
        )
        .fetch_all(&self.pool)
        .await;
        let due = match due {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "scheduler could not read due jobs");
                return;
            }
        };
        for (job_id,) in due {
            let job_id = JobId(job_id);
            let outcome = match jobs::get(&self.pool, job_id).await {
                Ok(job) => self.run(&job).await,
                Err(error) => Err(error),
            };
            match outcome {
                Ok(pushed) => {
                    tracing::info!(job = %job_id, cycle = %pushed.snapshot.cycle_id, "scheduled cycle ran")
                }
                Err(error) => tracing::warn!(job = %job_id, %error, "scheduled cycle failed"),
            }
        }
    }

    /// Releases the source rows no cycle will read again: those of snapshots older than a
    /// newer full snapshot whose own cycle is finished (applied, superseded or failed; a
    /// queued one waits until the stager superseded it, so staging never loses its rows).
    /// The snapshot headers stay for the history of cycles.
    pub async fn release_old_rows(&self) {
        let released: Result<Vec<(Uuid,)>, sqlx::Error> = sqlx::query_as(
            "WITH doomed AS (
                 SELECT s.snapshot_id FROM snapshots s
                 WHERE NOT s.rows_released AND s.seq IS NOT NULL
                   AND EXISTS (SELECT 1 FROM snapshots newer WHERE newer.job_id = s.job_id
                                 AND newer.kind = 'full' AND newer.seq > s.seq)
                   AND EXISTS (SELECT 1 FROM cycle_states cs WHERE cs.cycle_id = s.cycle_id
                                 AND cs.state IN ('completed', 'superseded', 'failed'))
                 ORDER BY s.seq LIMIT 20
                 FOR UPDATE OF s SKIP LOCKED
             ),
             gone AS (
                 DELETE FROM source_objects o USING doomed WHERE o.snapshot_id = doomed.snapshot_id
             )
             UPDATE snapshots s SET rows_released = true FROM doomed
             WHERE s.snapshot_id = doomed.snapshot_id RETURNING s.snapshot_id",
        )
        .fetch_all(&self.pool)
        .await;
        match released {
            Ok(released) if !released.is_empty() => {
                tracing::debug!(snapshots = released.len(), "older source rows released")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "older source rows not released; retried later"),
        }
    }
}

/// Reads a file source: only a regular file inside the import directory (resolved now, so a
/// symlink or a swapped file cannot lead elsewhere), and never more bytes than an export may
/// have, whatever size the file claims. Errors name the file, never its content.
async fn read_file_source(
    policy: &IngestPolicy,
    file: &FileSettings,
) -> Result<ExportFile, IngestError> {
    use tokio::io::AsyncReadExt as _;
    let resolved = policy
        .resolve_import(&file.path)
        .map_err(IngestError::NoSourceData)?;
    let opened = tokio::fs::File::open(&resolved).await.map_err(|error| {
        IngestError::NoSourceData(format!("cannot read {}: {}", file.path, error.kind()))
    })?;
    let mut bytes = Vec::new();
    opened
        .take(MAX_EXPORT_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|error| {
            IngestError::NoSourceData(format!("cannot read {}: {}", file.path, error.kind()))
        })?;
    if bytes.len() > MAX_EXPORT_FILE_BYTES {
        return Err(IngestError::NoSourceData(format!(
            "{} is larger than the {MAX_EXPORT_FILE_BYTES} bytes an export file may have",
            file.path
        )));
    }
    let text = String::from_utf8(bytes).map_err(|error| {
        IngestError::NoSourceData(format!(
            "{} is not UTF-8 text (byte {})",
            file.path,
            error.utf8_error().valid_up_to()
        ))
    })?;
    parse_export(&file.path, &file.format, &file.anchor_attribute, &text)
}

/// Parses an export file's text in the named format; `anchor_attribute` names the LDIF
/// anchor (empty: entryUUID, else objectGUID, per entry).
pub fn parse_export(
    name: &str,
    format: &str,
    anchor_attribute: &str,
    text: &str,
) -> Result<ExportFile, IngestError> {
    let parsed = match format {
        "ldif" => parse_ldif(name, text, &LdifOptions::with_anchor(anchor_attribute)),
        "json" => parse_json(name, text),
        other => {
            return Err(FieldError::new("format", format!("{other:?} is not ldif or json")).into());
        }
    };
    parsed.map_err(IngestError::ExportFile)
}
