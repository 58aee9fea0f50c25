//! The `IngestService` gRPC API.

use syncguard_bootstrap::{PeerChannel, principal};
use syncguard_domain::{FieldError, JobId, Role, SourceAnchor};
use syncguard_proto::v1;
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::ingest_service_server::IngestService;
use syncguard_store::{PgPool, in_transaction};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cycle_start::{CycleStarter, MAX_EXPORT_FILE_BYTES, StagedSnapshot, parse_export};
use crate::error::IngestError;
use crate::snapshot_load::{Origin, SnapshotWriter};
use crate::{job_spec, jobs};

/// Handlers of `syncguard.v1.IngestService`.
#[derive(Clone)]
pub struct IngestApi {
    pool: PgPool,
    gate: GateServiceClient<PeerChannel>,
    starter: CycleStarter,
}

impl IngestApi {
    /// An API over the shared database, calling the gate and the stager.
    pub fn new(pool: PgPool, gate: GateServiceClient<PeerChannel>, starter: CycleStarter) -> Self {
        Self {
            pool,
            gate,
            starter,
        }
    }

    /// A previous push with the same idempotency key, answered again instead of re-applied.
    async fn replayed_push(
        &self,
        job_id: JobId,
        key: &str,
    ) -> Result<Option<v1::PushSnapshotResponse>, IngestError> {
        if key.is_empty() {
            return Ok(None);
        }
        let previous: Option<(Uuid, i64, Option<Uuid>, Option<String>)> = sqlx::query_as(
            "SELECT s.snapshot_id, s.object_count, c.cycle_id, c.state FROM snapshots s \
             LEFT JOIN cycles c ON c.snapshot_id = s.snapshot_id \
             WHERE s.job_id = $1 AND s.idempotency_key = $2",
        )
        .bind(job_id.0)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(previous.map(
            |(snapshot_id, objects, cycle_id, state)| v1::PushSnapshotResponse {
                snapshot_id: snapshot_id.to_string(),
                objects_received: objects as u64,
                cycle_id: cycle_id.map(|id| id.to_string()).unwrap_or_default(),
                cycle_state: state
                    .as_deref()
                    .map(cycle_state_from_db)
                    .unwrap_or_default() as i32,
            },
        ))
    }

    async fn job_view(&self, row: &jobs::JobRow) -> Result<v1::Job, IngestError> {
        let status = jobs::job_status(&self.pool, row.job_id()).await?;
        Ok(row.to_proto(status))
    }
}

/// The API's cycle state for a stored state name.
fn cycle_state_from_db(state: &str) -> v1::CycleState {
    use v1::CycleState as S;
    match state {
        "ingesting" => S::Ingesting,
        "staged" => S::Staged,
        "evaluating" => S::Evaluating,
        "applying" => S::Applying,
        "completed" => S::Completed,
        "quarantined" => S::Quarantined,
        "allowed" => S::Allowed,
        "rejected" => S::Rejected,
        "superseded" => S::Superseded,
        "failed" => S::Failed,
        _ => S::Unspecified,
    }
}

fn push_response(staged: StagedSnapshot) -> v1::PushSnapshotResponse {
    v1::PushSnapshotResponse {
        snapshot_id: staged.snapshot.snapshot_id.to_string(),
        objects_received: staged.snapshot.objects,
        cycle_id: staged.cycle_id,
        cycle_state: staged.cycle_state as i32,
    }
}

fn broken(status: &Status) -> IngestError {
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

#[tonic::async_trait]
impl IngestService for IngestApi {
    async fn create_job(
        &self,
        request: Request<v1::CreateJobRequest>,
    ) -> Result<Response<v1::Job>, Status> {
        let caller = principal(&request)?;
        let body = request.into_inner();
        let spec = job_spec::validate(body.spec.as_ref()).map_err(IngestError::from)?;
        let protection_rules = body
            .spec
            .as_ref()
            .map(|spec| spec.protection_rules.clone())
            .unwrap_or_default();
        let protection_disabled = body
            .spec
            .as_ref()
            .is_some_and(|spec| spec.protection_disabled);
        let protection_reason = body
            .spec
            .as_ref()
            .map(|spec| spec.protection_reason.clone())
            .unwrap_or_default();
        if protection_disabled && caller.role != Role::Admin {
            return Err(IngestError::NotAllowed(
                "creating a job without deletion protection needs the admin role".into(),
            )
            .into());
        }
        let job_id = JobId::generate();
        let actor = caller.to_string();
        let row = in_transaction(&self.pool, async |conn| {
            jobs::insert(conn, job_id, &spec, &actor).await
        })
        .await?;

        // The gate owns protection: record the job's first rules there, or undo the job.
        let init = v1::InitProtectionRequest {
            job_id: job_id.to_string(),
            rules: protection_rules,
            disabled: protection_disabled,
            reason: protection_reason,
            on_behalf_of: actor.clone(),
        };
        if let Err(status) = self.gate.clone().init_protection(init).await {
            jobs::remove_unused(&self.pool, job_id).await?;
            return Err(IngestError::Peer {
                service: "gate",
                status,
            }
            .into());
        }
        tracing::info!(job = %job_id, name = %spec.name, source = spec.source_kind, actor, "job created");
        Ok(Response::new(self.job_view(&row).await?))
    }

    async fn update_job(
        &self,
        request: Request<v1::UpdateJobRequest>,
    ) -> Result<Response<v1::Job>, Status> {
        let body = request.into_inner();
        let job_id = JobId::parse("job_id", &body.job_id).map_err(IngestError::from)?;
        let spec = job_spec::validate(body.spec.as_ref()).map_err(IngestError::from)?;
        if body
            .spec
            .as_ref()
            .is_some_and(|spec| !spec.protection_rules.is_empty() || spec.protection_disabled)
        {
            return Err(IngestError::Invalid(FieldError::new(
                "spec.protection_rules",
                "protection of an existing job changes through GateService.SetProtection",
            ))
            .into());
        }
        let row = jobs::update(&self.pool, job_id, &spec).await?;
        Ok(Response::new(self.job_view(&row).await?))
    }

    async fn get_job(
        &self,
        request: Request<v1::GetJobRequest>,
    ) -> Result<Response<v1::Job>, Status> {
        let job_id =
            JobId::parse("job_id", &request.get_ref().job_id).map_err(IngestError::from)?;
        let row = jobs::get(&self.pool, job_id).await?;
        Ok(Response::new(self.job_view(&row).await?))
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
        let mut stream = request.into_inner();
        let header = match stream.message().await {
            Ok(Some(v1::PushSnapshotRequest {
                part: Some(Part::Header(header)),
            })) => header,
            Ok(_) => {
                return Err(IngestError::from(FieldError::new(
                    "header",
                    "the first message of a snapshot must be its header",
                ))
                .into());
            }
            Err(status) => return Err(broken(&status).into()),
        };
        let job_id = JobId::parse("header.job_id", &header.job_id).map_err(IngestError::from)?;
        jobs::get(&self.pool, job_id).await?;
        if let Some(previous) = self.replayed_push(job_id, &header.idempotency_key).await? {
            return Ok(Response::new(previous));
        }
        let key = Some(header.idempotency_key.as_str()).filter(|key| !key.is_empty());
        let mut writer =
            SnapshotWriter::begin(&self.pool, job_id, "full", Origin::Push, key).await?;
        let announced = loop {
            match stream.message().await {
                Ok(Some(v1::PushSnapshotRequest {
                    part: Some(Part::Batch(batch)),
                })) => {
                    for object in batch.objects {
                        writer.add(object).await?;
                    }
                }
                Ok(Some(v1::PushSnapshotRequest {
                    part: Some(Part::End(end)),
                })) => break end.total_objects,
                Ok(Some(_)) => {
                    return Err(IngestError::from(FieldError::new(
                        "header",
                        "a snapshot has one header, then batches, then its end marker",
                    ))
                    .into());
                }
                Ok(None) => {
                    return Err(IngestError::StreamBroken(format!(
                        "the stream ended after {} objects without its end marker; the snapshot is incomplete and nothing was stored",
                        writer.objects()
                    ))
                    .into());
                }
                Err(status) => return Err(broken(&status).into()),
            }
        };
        match stream.message().await {
            Ok(None) => {}
            Ok(Some(_)) => {
                return Err(IngestError::from(FieldError::new(
                    "end",
                    "nothing may follow the end marker",
                ))
                .into());
            }
            Err(status) => return Err(broken(&status).into()),
        }
        let snapshot = writer.commit(Some(announced)).await?;
        tracing::info!(job = %job_id, snapshot = %snapshot.snapshot_id, objects = snapshot.objects, "snapshot received");
        let staged = self.starter.stage(job_id, snapshot).await?;
        Ok(Response::new(push_response(staged)))
    }

    async fn push_delta(
        &self,
        request: Request<v1::PushDeltaRequest>,
    ) -> Result<Response<v1::PushDeltaResponse>, Status> {
        let body = request.into_inner();
        let job_id = JobId::parse("job_id", &body.job_id).map_err(IngestError::from)?;
        jobs::get(&self.pool, job_id).await?;
        if let Some(previous) = self.replayed_push(job_id, &body.idempotency_key).await? {
            return Ok(Response::new(v1::PushDeltaResponse {
                snapshot_id: previous.snapshot_id,
                cycle_id: previous.cycle_id,
                cycle_state: previous.cycle_state,
            }));
        }
        let mut touched = Vec::with_capacity(body.upserts.len() + body.deleted_anchors.len());
        for (index, anchor) in body.deleted_anchors.iter().enumerate() {
            touched.push(
                SourceAnchor::parse(&format!("deleted_anchors[{index}]"), anchor)
                    .map_err(IngestError::from)?
                    .to_string(),
            );
        }
        touched.extend(body.upserts.iter().map(|object| object.anchor.clone()));
        let key = Some(body.idempotency_key.as_str()).filter(|key| !key.is_empty());
        let mut writer =
            SnapshotWriter::begin(&self.pool, job_id, "delta", Origin::Push, key).await?;
        writer.carry_over_latest(job_id, &touched).await?;
        for object in body.upserts {
            writer.add(object).await?;
        }
        let snapshot = writer.commit(None).await?;
        let staged = self.starter.stage(job_id, snapshot).await?;
        Ok(Response::new(v1::PushDeltaResponse {
            snapshot_id: staged.snapshot.snapshot_id.to_string(),
            cycle_id: staged.cycle_id,
            cycle_state: staged.cycle_state as i32,
        }))
    }

    async fn import_file(
        &self,
        request: Request<tonic::Streaming<v1::ImportFileRequest>>,
    ) -> Result<Response<v1::PushSnapshotResponse>, Status> {
        use v1::import_file_request::Part;
        let mut stream = request.into_inner();
        let header = match stream.message().await {
            Ok(Some(v1::ImportFileRequest {
                part: Some(Part::Header(header)),
            })) => header,
            Ok(_) => {
                return Err(IngestError::from(FieldError::new(
                    "header",
                    "the first message of an import must be its header",
                ))
                .into());
            }
            Err(status) => return Err(broken(&status).into()),
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
        jobs::get(&self.pool, job_id).await?;
        let mut bytes = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(v1::ImportFileRequest {
                    part: Some(Part::Chunk(chunk)),
                })) => {
                    if bytes.len() + chunk.len() > MAX_EXPORT_FILE_BYTES {
                        return Err(IngestError::from(FieldError::new(
                            "chunk",
                            format!("the file is larger than {MAX_EXPORT_FILE_BYTES} bytes"),
                        ))
                        .into());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(Some(_)) => {
                    return Err(IngestError::from(FieldError::new(
                        "header",
                        "an import has one header",
                    ))
                    .into());
                }
                Ok(None) => break,
                Err(status) => return Err(broken(&status).into()),
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
        let file = parse_export(name, format, &text)?;
        let snapshot = self
            .starter
            .load_export(job_id, Origin::Import, file)
            .await?;
        let staged = self.starter.stage(job_id, snapshot).await?;
        Ok(Response::new(push_response(staged)))
    }

    async fn trigger_cycle(
        &self,
        request: Request<v1::TriggerCycleRequest>,
    ) -> Result<Response<v1::TriggerCycleResponse>, Status> {
        let job_id =
            JobId::parse("job_id", &request.get_ref().job_id).map_err(IngestError::from)?;
        let job = jobs::get(&self.pool, job_id).await?;
        let staged = self.starter.run(&job).await?;
        if staged.cycle_id.is_empty() {
            return Err(IngestError::NoSourceData(format!(
                "job {job_id} has an open cycle (quarantined?): decide it or restart the job first"
            ))
            .into());
        }
        Ok(Response::new(v1::TriggerCycleResponse {
            cycle_id: staged.cycle_id,
            cycle_state: staged.cycle_state as i32,
        }))
    }
}
