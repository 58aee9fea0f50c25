//! Turning complete snapshots into cycles: reading a job's source when ingest pulls it, and
//! handing each complete snapshot to the stager.

use std::time::Duration;

use sqlx::PgPool;
use syncguard_bootstrap::PeerChannel;
use syncguard_domain::{FieldError, JobId};
use syncguard_proto::v1::notifier_service_client::NotifierServiceClient;
use syncguard_proto::v1::stager_service_client::StagerServiceClient;
use syncguard_proto::v1::{self, CycleState};
use tonic::Code;
use uuid::Uuid;

use crate::error::IngestError;
use crate::export_file::{ExportFile, LdifOptions, parse_json, parse_ldif};
use crate::jobs::{self, JobRow};
use crate::snapshot_load::{Origin, SnapshotSummary, SnapshotWriter};

/// Largest export file read or accepted, to bound memory.
pub const MAX_EXPORT_FILE_BYTES: usize = 512 * 1024 * 1024;

/// The cycle a snapshot became, if it became one now.
#[derive(Debug, Clone)]
pub struct StagedSnapshot {
    /// The snapshot.
    pub snapshot: SnapshotSummary,
    /// Empty when the job had an open cycle (a quarantine): the snapshot waits.
    pub cycle_id: String,
    /// The state the cycle reached before the call returned.
    pub cycle_state: CycleState,
}

/// Starts cycles for complete snapshots.
#[derive(Clone)]
pub struct CycleStarter {
    pool: PgPool,
    stager: StagerServiceClient<PeerChannel>,
    notifier: NotifierServiceClient<PeerChannel>,
}

impl CycleStarter {
    /// A starter over the database, the stager, and the notifier for failed reads.
    pub fn new(
        pool: PgPool,
        stager: StagerServiceClient<PeerChannel>,
        notifier: NotifierServiceClient<PeerChannel>,
    ) -> Self {
        Self {
            pool,
            stager,
            notifier,
        }
    }

    /// Asks the stager to stage `snapshot`. A job whose previous cycle is still open (held in
    /// quarantine) keeps the snapshot without staging it.
    pub async fn stage(
        &self,
        job_id: JobId,
        snapshot: SnapshotSummary,
    ) -> Result<StagedSnapshot, IngestError> {
        let request = v1::StageCycleRequest {
            job_id: job_id.to_string(),
            snapshot_id: snapshot.snapshot_id.to_string(),
        };
        match self.stager.clone().stage_cycle(request).await {
            Ok(response) => {
                let cycle = response.into_inner();
                Ok(StagedSnapshot {
                    snapshot,
                    cycle_id: cycle.cycle_id,
                    cycle_state: CycleState::try_from(cycle.state).unwrap_or_default(),
                })
            }
            Err(status) if status.code() == Code::FailedPrecondition => {
                tracing::info!(job = %job_id, snapshot = %snapshot.snapshot_id, reason = status.message(), "snapshot kept, not staged");
                Ok(StagedSnapshot {
                    snapshot,
                    cycle_id: String::new(),
                    cycle_state: CycleState::Unspecified,
                })
            }
            Err(status) => Err(IngestError::Peer {
                service: "stager",
                status,
            }),
        }
    }

    /// Lands every object of a parsed export file as one snapshot.
    pub async fn load_export(
        &self,
        job_id: JobId,
        origin: Origin,
        file: ExportFile,
    ) -> Result<SnapshotSummary, IngestError> {
        let mut writer = SnapshotWriter::begin(&self.pool, job_id, "full", origin, None).await?;
        for object in file.objects {
            writer.add(object).await?;
        }
        if !file.unresolved_members.is_empty() {
            tracing::warn!(job = %job_id, count = file.unresolved_members.len(), first = %file.unresolved_members[0], "group members outside the file were left out");
        }
        writer.commit(None).await
    }

    /// Runs a cycle of `job` now: reads a file source, or re-stages a push job's latest data.
    pub async fn run(&self, job: &JobRow) -> Result<StagedSnapshot, IngestError> {
        let job_id = job.job_id();
        match job.source_kind() {
            "file" => {
                let file = match read_file_source(job.source_config()).await {
                    Ok(file) => file,
                    Err(error) => {
                        self.source_failed(job_id, "file", &error.to_string()).await;
                        return Err(error);
                    }
                };
                let snapshot = self.load_export(job_id, Origin::File, file).await?;
                self.stage(job_id, snapshot).await
            }
            "push" => {
                let snapshot = self.latest_unstaged_or_copy(job_id).await?;
                self.stage(job_id, snapshot).await
            }
            "ldap" => {
                let mut writer =
                    SnapshotWriter::begin(&self.pool, job_id, "full", Origin::Ldap, None).await?;
                let read = match crate::ldap_source::read(job.source_config(), &mut writer).await {
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
                let snapshot = writer.commit(None).await?;
                self.stage(job_id, snapshot).await
            }
            other => Err(IngestError::Unavailable(format!(
                "reading {other} sources is not implemented"
            ))),
        }
    }

    /// The latest snapshot when no cycle used it yet; otherwise a fresh copy of it (so the
    /// new cycle re-applies the current scope rules to the same data).
    async fn latest_unstaged_or_copy(&self, job_id: JobId) -> Result<SnapshotSummary, IngestError> {
        let latest: Option<(Uuid, i64, bool)> = sqlx::query_as(
            "SELECT s.snapshot_id, s.object_count, EXISTS (SELECT 1 FROM cycles c WHERE c.snapshot_id = s.snapshot_id) \
             FROM snapshots s WHERE s.job_id = $1 ORDER BY s.received_at DESC, s.snapshot_id DESC LIMIT 1",
        )
        .bind(job_id.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some((snapshot_id, objects, used)) = latest else {
            return Err(IngestError::NoSourceData(format!(
                "job {job_id} has no snapshot yet: push one with PushSnapshot first"
            )));
        };
        if !used {
            return Ok(SnapshotSummary {
                snapshot_id,
                objects: objects as u64,
            });
        }
        let mut writer =
            SnapshotWriter::begin(&self.pool, job_id, "full", Origin::Push, None).await?;
        writer.carry_over_latest(job_id, &[]).await?;
        writer.commit(None).await
    }
}

async fn read_file_source(config: &serde_json::Value) -> Result<ExportFile, IngestError> {
    let path = config
        .get("path")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let format = config
        .get("format")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let metadata = tokio::fs::metadata(path)
        .await
        .map_err(|error| IngestError::NoSourceData(format!("cannot read {path}: {error}")))?;
    if metadata.len() as usize > MAX_EXPORT_FILE_BYTES {
        return Err(IngestError::NoSourceData(format!(
            "{path} is {} bytes, more than the {MAX_EXPORT_FILE_BYTES} an export file may have",
            metadata.len()
        )));
    }
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|error| IngestError::NoSourceData(format!("cannot read {path}: {error}")))?;
    parse_export(path, format, &text)
}

/// Parses an export file's text in the named format.
pub fn parse_export(name: &str, format: &str, text: &str) -> Result<ExportFile, IngestError> {
    let parsed = match format {
        "ldif" => parse_ldif(name, text, &LdifOptions::default()),
        "json" => parse_json(name, text),
        other => {
            return Err(FieldError::new("format", format!("{other:?} is not ldif or json")).into());
        }
    };
    parsed.map_err(IngestError::ExportFile)
}

impl CycleStarter {
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
        }
        tracing::warn!(job = %job_id, origin, error, "source read failed; no cycle");
        let job: Result<(String, Vec<String>), sqlx::Error> =
            sqlx::query_as("SELECT name, notification_recipients FROM jobs WHERE job_id = $1")
                .bind(job_id.0)
                .fetch_one(&self.pool)
                .await;
        let Ok((name, recipients)) = job else {
            return;
        };
        if recipients.is_empty() {
            return;
        }
        let notice = v1::NotifyRequest {
            idempotency_key: format!("{job_id}:source_failure:{failure_id}"),
            recipients,
            event: Some(v1::NotificationEvent {
                kind: v1::NotificationKind::CycleFailed as i32,
                job_id: job_id.to_string(),
                job_name: name,
                detail: format!(
                    "the {origin} source could not be read completely, so no cycle ran: {error}"
                ),
                ..Default::default()
            }),
        };
        if let Err(status) = self.notifier.clone().notify(notice).await {
            tracing::warn!(job = %job_id, %status, "the failure notice was not handed to the notifier");
        }
    }
}

/// Runs due jobs with sources ingest reads itself (files), each on its interval.
pub async fn run_scheduler(starter: CycleStarter, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let due: Result<Vec<(Uuid,)>, sqlx::Error> = sqlx::query_as(
            "UPDATE jobs SET next_run_at = now() + make_interval(secs => schedule_interval_secs) \
             WHERE job_id IN (SELECT job_id FROM jobs WHERE deleted_at IS NULL AND source_kind IN ('file', 'ldap') \
                              AND next_run_at <= now() ORDER BY next_run_at LIMIT 5 FOR UPDATE SKIP LOCKED) \
             RETURNING job_id",
        )
        .fetch_all(&starter.pool)
        .await;
        let due = match due {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "scheduler could not read due jobs");
                continue;
            }
        };
        for (job_id,) in due {
            let job_id = JobId(job_id);
            let outcome = match jobs::get(&starter.pool, job_id).await {
                Ok(job) => starter.run(&job).await.map(|staged| staged.cycle_id),
                Err(error) => Err(error),
            };
            match outcome {
                Ok(cycle_id) => {
                    tracing::info!(job = %job_id, cycle = cycle_id, "scheduled cycle ran")
                }
                Err(error) => tracing::warn!(job = %job_id, %error, "scheduled cycle failed"),
            }
        }
    }
}
