//! The `IngestService` gRPC API.

use syncguard_bootstrap::{PeerChannel, principal};
use syncguard_domain::{FieldError, JobId, Role};
use syncguard_proto::v1;
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::ingest_service_server::IngestService;
use syncguard_store::{PgPool, in_transaction};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::IngestError;
use crate::{job_spec, jobs};

const DEFAULT_PAGE_SIZE: u32 = 100;
const MAX_PAGE_SIZE: u32 = 1000;

/// Handlers of `syncguard.v1.IngestService`.
#[derive(Clone)]
pub struct IngestApi {
    pool: PgPool,
    gate: GateServiceClient<PeerChannel>,
}

impl IngestApi {
    /// An API over the shared database, calling the gate through `gate`.
    pub fn new(pool: PgPool, gate: PeerChannel) -> Self {
        Self {
            pool,
            gate: GateServiceClient::new(gate),
        }
    }

    async fn job_view(&self, row: &jobs::JobRow) -> Result<v1::Job, IngestError> {
        let status = jobs::job_status(&self.pool, row.job_id()).await?;
        Ok(row.to_proto(status))
    }
}

/// Reads a page request: size within bounds, token the last id of the previous page.
fn page(page: Option<&v1::PageRequest>) -> Result<(Option<Uuid>, u32), FieldError> {
    let Some(page) = page else {
        return Ok((None, DEFAULT_PAGE_SIZE));
    };
    let size = match page.page_size {
        0 => DEFAULT_PAGE_SIZE,
        size if size > MAX_PAGE_SIZE => {
            return Err(FieldError::new(
                "page.page_size",
                format!("at most {MAX_PAGE_SIZE}"),
            ));
        }
        size => size,
    };
    let after =
        match page.page_token.as_str() {
            "" => None,
            token => Some(Uuid::parse_str(token).map_err(|_| {
                FieldError::new("page.page_token", "not a token this service issued")
            })?),
        };
    Ok((after, size))
}

fn not_yet(method: &str) -> Status {
    Status::unimplemented(format!("{method} is not implemented yet"))
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
        _request: Request<tonic::Streaming<v1::PushSnapshotRequest>>,
    ) -> Result<Response<v1::PushSnapshotResponse>, Status> {
        Err(not_yet("PushSnapshot"))
    }

    async fn push_delta(
        &self,
        _request: Request<v1::PushDeltaRequest>,
    ) -> Result<Response<v1::PushDeltaResponse>, Status> {
        Err(not_yet("PushDelta"))
    }

    async fn import_file(
        &self,
        _request: Request<tonic::Streaming<v1::ImportFileRequest>>,
    ) -> Result<Response<v1::PushSnapshotResponse>, Status> {
        Err(not_yet("ImportFile"))
    }

    async fn trigger_cycle(
        &self,
        _request: Request<v1::TriggerCycleRequest>,
    ) -> Result<Response<v1::TriggerCycleResponse>, Status> {
        Err(not_yet("TriggerCycle"))
    }
}
