//! The `StagerService` gRPC API.

use syncguard_bootstrap::{PeerChannel, principal};
use syncguard_domain::{FieldError, JobId};
use syncguard_proto::v1;
use syncguard_proto::v1::gate_service_client::GateServiceClient;
use syncguard_proto::v1::retention_service_client::RetentionServiceClient;
use syncguard_proto::v1::stager_service_server::StagerService;
use syncguard_store::PgPool;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::error::StagerError;
use crate::stage::Staged;
use crate::{apply, preview, reads, stage};

/// Handlers of `syncguard.v1.StagerService`.
#[derive(Clone)]
pub struct StagerApi {
    pool: PgPool,
    gate: GateServiceClient<PeerChannel>,
    retention: RetentionServiceClient<PeerChannel>,
}

impl StagerApi {
    /// An API over the shared database, calling the gate and retention.
    pub fn new(
        pool: PgPool,
        gate: GateServiceClient<PeerChannel>,
        retention: RetentionServiceClient<PeerChannel>,
    ) -> Self {
        Self {
            pool,
            gate,
            retention,
        }
    }
}

fn required_id(field: &str, value: &str) -> Result<Uuid, StagerError> {
    Uuid::parse_str(value)
        .map_err(|_| FieldError::new(field, format!("{value:?} is not an id (a UUID)")).into())
}

#[tonic::async_trait]
impl StagerService for StagerApi {
    async fn stage_cycle(
        &self,
        request: Request<v1::StageCycleRequest>,
    ) -> Result<Response<v1::Cycle>, Status> {
        let body = request.into_inner();
        let job_id = JobId::parse("job_id", &body.job_id).map_err(StagerError::from)?;
        let snapshot_id = required_id("snapshot_id", &body.snapshot_id)?;
        let span = tracing::info_span!(
            "cycle.stage",
            job.id = %job_id,
            snapshot.id = %snapshot_id,
            cycle.id = tracing::field::Empty,
        );
        let staged = stage::stage(&self.pool, job_id, snapshot_id)
            .instrument(span.clone())
            .await?;
        let cycle_id = match staged {
            Staged::New(cycle_id) => {
                // The gate decides at once: apply within limits, or quarantine.
                self.gate
                    .clone()
                    .decide_cycle(v1::DecideCycleRequest {
                        cycle_id: cycle_id.to_string(),
                    })
                    .instrument(span)
                    .await
                    .map_err(|status| StagerError::Peer {
                        service: "gate",
                        status,
                    })?;
                cycle_id
            }
            Staged::SuspectEmpty(cycle_id) => {
                syncguard_telemetry::cycle_outcome("failed");
                cycle_id
            }
            Staged::Existing(cycle_id) => cycle_id,
        };
        let cycle = reads::get_cycle(&self.pool, cycle_id).await?;
        if matches!(staged, Staged::New(_)) {
            for count in &cycle.counts {
                let kind = v1::ActionKind::try_from(count.action).unwrap_or_default();
                let object_type = v1::ObjectType::try_from(count.object_type).unwrap_or_default();
                syncguard_telemetry::metrics().staged_actions.add(
                    count.count,
                    &[
                        syncguard_telemetry::KeyValue::new("kind", kind.as_str_name()),
                        syncguard_telemetry::KeyValue::new(
                            "object_type",
                            object_type.as_str_name(),
                        ),
                    ],
                );
            }
        }
        Ok(Response::new(cycle))
    }

    async fn apply_cycle(
        &self,
        request: Request<v1::ApplyCycleRequest>,
    ) -> Result<Response<v1::Cycle>, Status> {
        let caller = principal(&request)?;
        let body = request.into_inner();
        let cycle_id = required_id("cycle_id", &body.cycle_id)?;
        let actor = if body.actor.trim().is_empty() {
            caller.to_string()
        } else {
            body.actor.trim().to_owned()
        };
        let span = tracing::info_span!("cycle.apply", cycle.id = %cycle_id, actor = %actor);
        apply::apply(&self.pool, &self.retention, cycle_id, &actor)
            .instrument(span)
            .await?;
        Ok(Response::new(reads::get_cycle(&self.pool, cycle_id).await?))
    }

    async fn get_cycle(
        &self,
        request: Request<v1::GetCycleRequest>,
    ) -> Result<Response<v1::Cycle>, Status> {
        let cycle_id = required_id("cycle_id", &request.get_ref().cycle_id)?;
        Ok(Response::new(reads::get_cycle(&self.pool, cycle_id).await?))
    }

    async fn list_cycles(
        &self,
        request: Request<v1::ListCyclesRequest>,
    ) -> Result<Response<v1::ListCyclesResponse>, Status> {
        Ok(Response::new(
            reads::list_cycles(&self.pool, request.get_ref()).await?,
        ))
    }

    async fn list_staged_actions(
        &self,
        request: Request<v1::ListStagedActionsRequest>,
    ) -> Result<Response<v1::ListStagedActionsResponse>, Status> {
        Ok(Response::new(
            reads::list_staged_actions(&self.pool, request.get_ref()).await?,
        ))
    }

    async fn query_provisioning_logs(
        &self,
        request: Request<v1::QueryProvisioningLogsRequest>,
    ) -> Result<Response<v1::QueryProvisioningLogsResponse>, Status> {
        Ok(Response::new(
            reads::query_logs(&self.pool, request.get_ref()).await?,
        ))
    }

    async fn preview_cycle(
        &self,
        request: Request<v1::PreviewCycleRequest>,
    ) -> Result<Response<v1::PreviewCycleResponse>, Status> {
        let body = request.into_inner();
        let job_id = JobId::parse("job_id", &body.job_id).map_err(StagerError::from)?;
        let snapshot_id = if body.snapshot_id.is_empty() {
            None
        } else {
            Some(required_id("snapshot_id", &body.snapshot_id)?)
        };
        let preview = preview::preview(
            &self.pool,
            &self.gate,
            job_id,
            snapshot_id,
            body.sample_size,
        )
        .await?;
        Ok(Response::new(preview))
    }
}
