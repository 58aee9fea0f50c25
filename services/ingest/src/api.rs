//! The `IngestService` gRPC API.

use prost::Message as _;
use syncguard_bootstrap::{PeerChannel, peer_status, principal};
use syncguard_domain::{FieldError, JobId, Principal, Role, SourceAnchor};
use syncguard_proto::v1;
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::ingest_service_server::IngestService;
use syncguard_store::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cycle_start::{CycleStarter, MAX_EXPORT_FILE_BYTES, PushOutcome, parse_export};
use crate::error::IngestError;
use crate::policy::IngestPolicy;
use crate::snapshot_load::{Origin, SnapshotKind, SnapshotSummary, SnapshotWriter};
use crate::{job_spec, jobs};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Handlers of `syncguard.v1.IngestService`.
#[derive(Clone)]
pub struct IngestApi {
    pool: PgPool,
    gate: GateServiceClient<PeerChannel>,
    starter: CycleStarter,
    policy: Arc<IngestPolicy>,
    pushes: Arc<Semaphore>,
}

impl IngestApi {
    /// An API over the shared database, calling the gate and the stager, within `policy`.
    pub fn new(
        pool: PgPool,
        gate: GateServiceClient<PeerChannel>,
        starter: CycleStarter,
        policy: Arc<IngestPolicy>,
    ) -> Self {
        let pushes = Arc::new(Semaphore::new(policy.max_pushes));
        Self {
            pool,
            gate,
            starter,
            policy,
            pushes,
        }
    }

    /// A previous push with the same idempotency key: its cycle, handed to the stager again
    /// (a push whose hand-over a crash cut off is staged now) and reported as it stands.
    async fn replayed_push(
        &self,
        job_id: JobId,
        key: &str,
    ) -> Result<Option<PushOutcome>, IngestError> {
        if key.is_empty() {
            return Ok(None);
        }
        let previous: Option<(Uuid, Uuid, i64)> = sqlx::query_as(
            "SELECT snapshot_id, cycle_id, object_count FROM snapshots \
             WHERE job_id = $1 AND idempotency_key = $2 AND seq IS NOT NULL",
        )
        .bind(job_id.0)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some((snapshot_id, cycle_id, objects)) = previous else {
            return Ok(None);
        };
        let snapshot = SnapshotSummary {
            snapshot_id,
            cycle_id,
            objects: objects.max(0) as u64,
        };
        tracing::info!(job = %job_id, cycle = %cycle_id, key, "push replayed by its idempotency key");
        Ok(Some(self.starter.hand_over(job_id, snapshot).await?))
    }

    /// Commits a push and reports its cycle; a concurrent push with the same key that
    /// committed first is answered instead.
    async fn commit_push(
        &self,
        job_id: JobId,
        key: &str,
        writer: SnapshotWriter,
        announced: Option<u64>,
    ) -> Result<PushOutcome, IngestError> {
        match writer.commit(announced).await {
            Ok(snapshot) => {
                tracing::info!(job = %job_id, cycle = %snapshot.cycle_id, objects = snapshot.objects, "push accepted");
                self.starter.hand_over(job_id, snapshot).await
            }
            Err(IngestError::Replayed) => self.replay_or_conflict(job_id, key).await,
            Err(error) => Err(error),
        }
    }

    async fn replay_or_conflict(
        &self,
        job_id: JobId,
        key: &str,
    ) -> Result<PushOutcome, IngestError> {
        self.replayed_push(job_id, key).await?.ok_or_else(|| {
            IngestError::StreamBroken(
                "a push with the same idempotency key is in progress; retry when it has answered"
                    .into(),
            )
        })
    }

    async fn begin_push(
        &self,
        job_id: JobId,
        kind: SnapshotKind,
        origin: Origin,
        key: &str,
    ) -> Result<Result<SnapshotWriter, PushOutcome>, IngestError> {
        let key_option = Some(key).filter(|key| !key.is_empty());
        match SnapshotWriter::begin(&self.pool, job_id, kind, origin, key_option).await {
            Ok(writer) => Ok(Ok(writer)),
            Err(IngestError::Replayed) => Ok(Err(self.replay_or_conflict(job_id, key).await?)),
            Err(error) => Err(error),
        }
    }

    /// A permit to stream a push: each open push holds a database transaction, so only
    /// `max_pushes` run at once and the rest of the service keeps its connections.
    fn push_permit(&self) -> Result<OwnedSemaphorePermit, IngestError> {
        Arc::clone(&self.pushes).try_acquire_owned().map_err(|_| {
            IngestError::Busy(format!(
                "{} pushes are streaming already; retry in a moment",
                self.policy.max_pushes
            ))
        })
    }

    /// The next message of a push stream; a stream silent for the idle limit is aborted (the
    /// caller drops what it wrote, so nothing is stored).
    async fn next_part<T>(
        &self,
        stream: &mut tonic::Streaming<T>,
    ) -> Result<Option<T>, IngestError> {
        match tokio::time::timeout(self.policy.push_idle, stream.message()).await {
            Ok(Ok(message)) => Ok(message),
            Ok(Err(status)) => Err(broken(&status)),
            Err(_) => Err(IngestError::StreamBroken(format!(
                "the stream sent nothing for {} s and was aborted; nothing was stored",
                self.policy.push_idle.as_secs()
            ))),
        }
    }

    /// Whether the protection fields of an update say what is recorded already (a client
    /// that read the job, changed something else, and sent it back).
    async fn protection_unchanged(
        &self,
        job_id: JobId,
        asked: &v1::JobSpec,
    ) -> Result<bool, IngestError> {
        let recorded = self
            .gate
            .clone()
            .get_protection(v1::GetProtectionRequest {
                job_id: job_id.to_string(),
            })
            .await
            .map_err(|status| IngestError::Peer {
                service: "gate",
                status,
            })?
            .into_inner();
        Ok(recorded.rules == asked.protection_rules
            && recorded.enabled != asked.protection_disabled)
    }

    /// One job with its protection as the gate has it recorded (the default rule when none
    /// was asked for); listings leave the rules out.
    async fn job_with_protection(&self, row: &jobs::JobRow) -> Result<v1::Job, IngestError> {
        let mut job = self.job_view(row).await?;
        let recorded = self
            .gate
            .clone()
            .get_protection(v1::GetProtectionRequest {
                job_id: job.job_id.clone(),
            })
            .await;
        match recorded {
            Ok(recorded) => {
                if let Some(spec) = job.spec.as_mut() {
                    let recorded = recorded.into_inner();
                    spec.protection_rules = recorded.rules;
                    spec.protection_disabled = !recorded.enabled;
                    spec.protection_reason = recorded.reason;
                }
            }
            // A read does not fail because the gate is away: the job comes without its rules.
            Err(status) => {
                tracing::warn!(job = %job.job_id, %status, "job shown without its protection: the gate did not answer");
            }
        }
        Ok(job)
    }

    async fn job_view(&self, row: &jobs::JobRow) -> Result<v1::Job, IngestError> {
        let status = jobs::job_status(&self.pool, row.job_id()).await?;
        Ok(row.to_proto(status))
    }
}

fn push_response(pushed: PushOutcome) -> v1::PushSnapshotResponse {
    v1::PushSnapshotResponse {
        snapshot_id: pushed.snapshot.snapshot_id.to_string(),
        objects_received: pushed.snapshot.objects,
        cycle_id: pushed.snapshot.cycle_id.to_string(),
        cycle_state: pushed.cycle_state as i32,
    }
}

fn broken(status: &Status) -> IngestError {
    if matches!(
        status.code(),
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
    ) {
        return IngestError::Malformed(format!(
            "{}; the push is refused and nothing was stored",
            status.message()
        ));
    }
    IngestError::StreamBroken(format!(
        "the stream broke before its end marker ({}: {}); the snapshot is incomplete and nothing was stored",
        status.code(),
        status.message()
    ))
}

/// Reads a page request; the token is the last job id of the previous page.
fn page(page: Option<&v1::PageRequest>) -> Result<(Option<Uuid>, u32), FieldError> {
    let page = syncguard_bootstrap::page(page)?;
    let after = page.token_as::<Uuid>()?;
    Ok((after, page.size as u32))
}

/// The protection a creator asked for, kept with the job for the gate to record.
fn initial_protection(spec: Option<&v1::JobSpec>) -> v1::InitialProtection {
    v1::InitialProtection {
        rules: spec
            .map(|spec| spec.protection_rules.clone())
            .unwrap_or_default(),
        disabled: spec.is_some_and(|spec| spec.protection_disabled),
        reason: spec
            .map(|spec| spec.protection_reason.trim().to_owned())
            .unwrap_or_default(),
    }
}

fn require_admin_for(caller: &Principal, what: &str) -> Result<(), IngestError> {
    if caller.role != Role::Admin {
        return Err(IngestError::NotAllowed(format!(
            "{what} needs the admin role; {} has role {}",
            caller.name, caller.role
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl IngestService for IngestApi {
    async fn create_job(
        &self,
        request: Request<v1::CreateJobRequest>,
    ) -> Result<Response<v1::Job>, Status> {
        let caller = principal(&request)?;
        let body = request.into_inner();
        let spec =
            job_spec::validate(body.spec.as_ref(), &self.policy).map_err(IngestError::from)?;
        let protection = initial_protection(body.spec.as_ref());
        if protection.disabled {
            require_admin_for(&caller, "creating a job without deletion protection")?;
        }
        let job_id = JobId::generate();
        let actor = caller.to_string();
        let row = jobs::insert(
            &self.pool,
            job_id,
            &spec,
            &actor,
            &protection.encode_to_vec(),
        )
        .await?;

        // The gate owns protection: it records what the creator asked for (and validates the
        // rules); without it the job is not created.
        let init = v1::InitProtectionRequest {
            job_id: job_id.to_string(),
        };
        if let Err(status) = self.gate.clone().init_protection(init).await {
            jobs::remove_unused(&self.pool, job_id).await?;
            return Err(peer_status("gate", &status));
        }
        tracing::info!(job = %job_id, name = %spec.name, source = spec.source.kind(), actor, "job created");
        Ok(Response::new(self.job_with_protection(&row).await?))
    }

    async fn update_job(
        &self,
        request: Request<v1::UpdateJobRequest>,
    ) -> Result<Response<v1::Job>, Status> {
        let caller = principal(&request)?;
        let body = request.into_inner();
        let job_id = JobId::parse("job_id", &body.job_id).map_err(IngestError::from)?;
        let spec =
            job_spec::validate(body.spec.as_ref(), &self.policy).map_err(IngestError::from)?;
        if let Some(asked) = body
            .spec
            .as_ref()
            .filter(|spec| !spec.protection_rules.is_empty() || spec.protection_disabled)
            && !self.protection_unchanged(job_id, asked).await?
        {
            return Err(IngestError::Invalid(FieldError::new(
                "spec.protection_rules",
                "protection of an existing job changes through GateService.SetProtection",
            ))
            .into());
        }
        let reason = syncguard_domain::text::optional_reason("reason", &body.reason)
            .map_err(IngestError::from)?
            .unwrap_or_default();
        let row = jobs::update(&self.pool, job_id, &spec, &caller, &reason).await?;
        Ok(Response::new(self.job_with_protection(&row).await?))
    }

    async fn get_job(
        &self,
        request: Request<v1::GetJobRequest>,
    ) -> Result<Response<v1::Job>, Status> {
        let job_id =
            JobId::parse("job_id", &request.get_ref().job_id).map_err(IngestError::from)?;
        let row = jobs::get(&self.pool, job_id).await?;
        Ok(Response::new(self.job_with_protection(&row).await?))
    }

    async fn list_jobs(
        &self,
        request: Request<v1::ListJobsRequest>,
    ) -> Result<Response<v1::ListJobsResponse>, Status> {
        let (after, size) = page(request.get_ref().page.as_ref()).map_err(IngestError::from)?;
        let mut rows = jobs::list(&self.pool, after, i64::from(size) + 1).await?;
        let next_page_token = if rows.len() > size as usize {
            rows.truncate(size as usize);
            rows.last()
                .map(|row| row.job_id().to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let mut views = Vec::with_capacity(rows.len());
        for row in &rows {
            views.push(self.job_view(row).await?);
        }
        Ok(Response::new(v1::ListJobsResponse {
            jobs: views,
            next_page_token,
        }))
    }

    async fn delete_job(
        &self,
        request: Request<v1::DeleteJobRequest>,
    ) -> Result<Response<v1::DeleteJobResponse>, Status> {
        let caller = principal(&request)?;
        let job_id =
            JobId::parse("job_id", &request.get_ref().job_id).map_err(IngestError::from)?;
        jobs::retire(&self.pool, job_id).await?;
        tracing::info!(job = %job_id, actor = %caller, "job deleted");
        Ok(Response::new(v1::DeleteJobResponse {}))
    }

    async fn push_snapshot(
        &self,
        request: Request<tonic::Streaming<v1::PushSnapshotRequest>>,
    ) -> Result<Response<v1::PushSnapshotResponse>, Status> {
        use v1::push_snapshot_request::Part;
        let _permit = self.push_permit()?;
        let mut stream = request.into_inner();
        let header = match self.next_part(&mut stream).await? {
            Some(v1::PushSnapshotRequest {
                part: Some(Part::Header(header)),
            }) => header,
            _ => {
                return Err(IngestError::from(FieldError::new(
                    "header",
                    "the first message of a snapshot must be its header",
                ))
                .into());
            }
        };
        let job_id = JobId::parse("header.job_id", &header.job_id).map_err(IngestError::from)?;
        let key = header.idempotency_key.trim();
        jobs::get(&self.pool, job_id).await?;
        if let Some(previous) = self.replayed_push(job_id, key).await? {
            return Ok(Response::new(push_response(previous)));
        }
        let mut writer = match self
            .begin_push(job_id, SnapshotKind::Full, Origin::Push, key)
            .await?
        {
            Ok(writer) => writer,
            Err(previous) => return Ok(Response::new(push_response(previous))),
        };
        let announced = loop {
            match self.next_part(&mut stream).await? {
                Some(v1::PushSnapshotRequest {
                    part: Some(Part::Batch(batch)),
                }) => {
                    for object in batch.objects {
                        writer.add(object).await?;
                    }
                }
                Some(v1::PushSnapshotRequest {
                    part: Some(Part::End(end)),
                }) => break end.total_objects,
                Some(_) => {
                    return Err(IngestError::from(FieldError::new(
                        "header",
                        "a snapshot has one header, then batches, then its end marker",
                    ))
                    .into());
                }
                None => {
                    return Err(IngestError::StreamBroken(format!(
                        "the stream ended after {} objects without its end marker; the snapshot is incomplete and nothing was stored",
                        writer.objects()
                    ))
                    .into());
                }
            }
        };
        if self.next_part(&mut stream).await?.is_some() {
            return Err(IngestError::from(FieldError::new(
                "end",
                "nothing may follow the end marker",
            ))
            .into());
        }
        let pushed = self
            .commit_push(job_id, key, writer, Some(announced))
            .await?;
        Ok(Response::new(push_response(pushed)))
    }

    async fn push_delta(
        &self,
        request: Request<v1::PushDeltaRequest>,
    ) -> Result<Response<v1::PushDeltaResponse>, Status> {
        let body = request.into_inner();
        let job_id = JobId::parse("job_id", &body.job_id).map_err(IngestError::from)?;
        let key = body.idempotency_key.trim();
        jobs::get(&self.pool, job_id).await?;
        let delta_response = |pushed: PushOutcome| v1::PushDeltaResponse {
            snapshot_id: pushed.snapshot.snapshot_id.to_string(),
            cycle_id: pushed.snapshot.cycle_id.to_string(),
            cycle_state: pushed.cycle_state as i32,
        };
        if let Some(previous) = self.replayed_push(job_id, key).await? {
            return Ok(Response::new(delta_response(previous)));
        }
        let mut removed = Vec::with_capacity(body.deleted_anchors.len());
        for (index, anchor) in body.deleted_anchors.iter().enumerate() {
            removed.push(
                SourceAnchor::parse(&format!("deleted_anchors[{index}]"), anchor)
                    .map_err(IngestError::from)?,
            );
        }
        if body.upserts.is_empty() && removed.is_empty() {
            return Err(IngestError::from(FieldError::new(
                "upserts",
                "a delta names at least one upserted object or removed anchor",
            ))
            .into());
        }
        let mut writer = match self
            .begin_push(job_id, SnapshotKind::Delta, Origin::Push, key)
            .await?
        {
            Ok(writer) => writer,
            Err(previous) => return Ok(Response::new(delta_response(previous))),
        };
        for object in body.upserts {
            writer.add(object).await?;
        }
        for anchor in &removed {
            writer.add_removal(anchor).await?;
        }
        let pushed = self.commit_push(job_id, key, writer, None).await?;
        Ok(Response::new(delta_response(pushed)))
    }

    async fn import_file(
        &self,
        request: Request<tonic::Streaming<v1::ImportFileRequest>>,
    ) -> Result<Response<v1::PushSnapshotResponse>, Status> {
        use v1::import_file_request::Part;
        let _permit = self.push_permit()?;
        let mut stream = request.into_inner();
        let header = match self.next_part(&mut stream).await? {
            Some(v1::ImportFileRequest {
                part: Some(Part::Header(header)),
            }) => header,
            _ => {
                return Err(IngestError::from(FieldError::new(
                    "header",
                    "the first message of an import must be its header",
                ))
                .into());
            }
        };
        let job_id = JobId::parse("header.job_id", &header.job_id).map_err(IngestError::from)?;
        let format = match v1::FileFormat::try_from(header.format) {
            Ok(v1::FileFormat::Ldif) => "ldif",
            Ok(v1::FileFormat::Json) => "json",
            _ => {
                return Err(IngestError::from(FieldError::new(
                    "header.format",
                    "choose FILE_FORMAT_LDIF or FILE_FORMAT_JSON",
                ))
                .into());
            }
        };
        let anchor_attribute =
            job_spec::anchor_attribute("header.anchor_attribute", &header.anchor_attribute)
                .map_err(IngestError::from)?;
        jobs::get(&self.pool, job_id).await?;
        let mut bytes = Vec::new();
        loop {
            match self.next_part(&mut stream).await? {
                Some(v1::ImportFileRequest {
                    part: Some(Part::Chunk(chunk)),
                }) => {
                    if bytes.len() + chunk.len() > MAX_EXPORT_FILE_BYTES {
                        return Err(IngestError::from(FieldError::new(
                            "chunk",
                            format!("the file is larger than {MAX_EXPORT_FILE_BYTES} bytes"),
                        ))
                        .into());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Some(_) => {
                    return Err(IngestError::from(FieldError::new(
                        "header",
                        "an import has one header",
                    ))
                    .into());
                }
                None => break,
            }
        }
        let name = if header.file_name.is_empty() {
            "import"
        } else {
            header.file_name.as_str()
        };
        let text = String::from_utf8(bytes).map_err(|error| {
            IngestError::from(FieldError::new(
                "chunk",
                format!(
                    "{name} is not UTF-8 text (byte {})",
                    error.utf8_error().valid_up_to()
                ),
            ))
        })?;
        let file = parse_export(name, format, &anchor_attribute, &text)?;
        let snapshot = self
            .starter
            .load_export(job_id, Origin::Import, file)
            .await?;
        let pushed = self.starter.hand_over(job_id, snapshot).await?;
        Ok(Response::new(push_response(pushed)))
    }

    async fn trigger_cycle(
        &self,
        request: Request<v1::TriggerCycleRequest>,
    ) -> Result<Response<v1::TriggerCycleResponse>, Status> {
        let job_id =
            JobId::parse("job_id", &request.get_ref().job_id).map_err(IngestError::from)?;
        let job = jobs::get(&self.pool, job_id).await?;
        let pushed = self.starter.run(&job).await?;
        Ok(Response::new(v1::TriggerCycleResponse {
            cycle_id: pushed.snapshot.cycle_id.to_string(),
            cycle_state: pushed.cycle_state as i32,
        }))
    }
}
