//! `targets` and `watch`: where each export target of a job stands, what a target refused,
//! retrying it; and the change feed followed line by line (or as JSON lines for scripts).

use serde_json::{Value, json};
use syncguard_proto::v1::{self, watch_changes_response::Event};

use crate::args::{TargetsCommand, WatchArgs, WatchedType};
use crate::client::Clients;
use crate::failure::Failure;
use crate::listing::{self, Extent};
use crate::out;
use crate::output::{self, Table, print_json};

fn kind_name(kind: i32) -> &'static str {
    match v1::TargetKind::try_from(kind) {
        Ok(v1::TargetKind::Ldap) => "ldap",
        Ok(v1::TargetKind::Scim) => "scim",
        _ => "?",
    }
}

fn failure_status(status: i32) -> &'static str {
    match v1::ExportFailureStatus::try_from(status) {
        Ok(v1::ExportFailureStatus::Retrying) => "retrying",
        Ok(v1::ExportFailureStatus::Failed) => "failed",
        Ok(v1::ExportFailureStatus::Resolved) => "resolved",
        _ => "?",
    }
}

fn target_json(target: &v1::TargetStatus) -> Value {
    json!({
        "job_id": target.job_id,
        "target": target.target,
        "kind": kind_name(target.kind),
        "cursor": target.cursor,
        "bootstrapping": target.bootstrapping,
        "pending_changes": target.pending_changes,
        "lag_seconds": target.lag_seconds,
        "exported": target.exported,
        "retrying": target.retrying,
        "failed": target.failed,
        "last_success_at": output::rfc3339(target.last_success_at.as_ref()),
        "last_error": target.last_error,
        "last_error_at": output::rfc3339(target.last_error_at.as_ref()),
    })
}

fn failure_json(failure: &v1::ExportFailure) -> Value {
    json!({
        "failure_id": failure.failure_id,
        "job_id": failure.job_id,
        "target": failure.target,
        "anchor": failure.anchor,
        "object_id": failure.object_id,
        "object_type": output::object_type(failure.object_type),
        "change": failure.change,
        "status": failure_status(failure.status),
        "attempts": failure.attempts,
        "last_error": failure.last_error,
        "next_attempt_at": output::rfc3339(failure.next_attempt_at.as_ref()),
        "updated_at": output::rfc3339(failure.updated_at.as_ref()),
    })
}

/// `syncguard targets ...`
pub async fn targets(
    clients: &mut Clients,
    command: TargetsCommand,
    json: bool,
) -> Result<(), Failure> {
    match command {
        TargetsCommand::Status { job } => {
            let targets = clients
                .exporter
                .list_targets(v1::ListTargetsRequest {
                    job_id: job.unwrap_or_default(),
                })
                .await?
                .into_inner()
                .targets;
            if json {
                return print_json(&Value::Array(targets.iter().map(target_json).collect()));
            }
            if targets.is_empty() {
                return out!("no export targets (a job's spec names them: targets)");
            }
            let mut table = Table::new(&[
                "JOB",
                "TARGET",
                "KIND",
                "STATE",
                "PENDING",
                "LAG",
                "EXPORTED",
                "RETRYING",
                "FAILED",
                "LAST SUCCESS",
            ]);
            for target in &targets {
                let state = if !target.last_error.is_empty() {
                    "waiting for the target"
                } else if target.bootstrapping {
                    "initial export"
                } else if target.pending_changes > 0 {
                    "exporting"
                } else {
                    "up to date"
                };
                table.row(vec![
                    target.job_id.clone(),
                    target.target.clone(),
                    kind_name(target.kind).to_owned(),
                    state.to_owned(),
                    target.pending_changes.to_string(),
                    format!("{:.0}s", target.lag_seconds),
                    target.exported.to_string(),
                    target.retrying.to_string(),
                    target.failed.to_string(),
                    output::time(target.last_success_at.as_ref()),
                ]);
            }
            table.print()?;
            for target in targets.iter().filter(|t| !t.last_error.is_empty()) {
                out!(
                    "{} {}: {} (since {})",
                    target.job_id,
                    target.target,
                    target.last_error,
                    output::time(target.last_error_at.as_ref())
                )?;
            }
            Ok(())
        }
        TargetsCommand::Failures {
            job,
            target,
            resolved,
            limit,
            all,
        } => {
            let exporter = clients.exporter.clone();
            let statuses = if resolved {
                vec![
                    v1::ExportFailureStatus::Retrying as i32,
                    v1::ExportFailureStatus::Failed as i32,
                    v1::ExportFailureStatus::Resolved as i32,
                ]
            } else {
                Vec::new()
            };
            let listed = listing::list(
                Extent { limit, all, json },
                |page| {
                    let mut exporter = exporter.clone();
                    let request = v1::ListExportFailuresRequest {
                        job_id: job.clone(),
                        target: target.clone().unwrap_or_default(),
                        statuses: statuses.clone(),
                        page,
                    };
                    async move {
                        let answer = exporter.list_export_failures(request).await?.into_inner();
                        Ok((answer.failures, answer.next_page_token))
                    }
                },
                failure_json,
            )
            .await?;
            if let Some((failures, note)) = listed {
                if failures.is_empty() {
                    return out!("no refused objects");
                }
                let mut table = Table::new(&[
                    "FAILURE", "TARGET", "ANCHOR", "CHANGE", "STATUS", "ATTEMPTS", "NEXT TRY",
                    "ERROR",
                ]);
                for failure in &failures {
                    table.row(vec![
                        failure.failure_id.clone(),
                        failure.target.clone(),
                        failure.anchor.clone(),
                        failure.change.clone(),
                        failure_status(failure.status).to_owned(),
                        failure.attempts.to_string(),
                        output::time(failure.next_attempt_at.as_ref()),
                        failure.last_error.clone(),
                    ]);
                }
                table.print()?;
                if let Some(note) = note {
                    out!("{note}")?;
                }
            }
            Ok(())
        }
        TargetsCommand::Retry {
            job,
            target,
            failure,
        } => {
            let retrying = clients
                .exporter
                .retry_export(v1::RetryExportRequest {
                    failure_id: failure.unwrap_or_default(),
                    job_id: job.unwrap_or_default(),
                    target: target.unwrap_or_default(),
                })
                .await?
                .into_inner()
                .retrying;
            if json {
                return print_json(&json!({ "retrying": retrying }));
            }
            out!("{retrying} refused object(s) will be tried again now")
        }
    }
}

fn change_kind(kind: i32) -> &'static str {
    match v1::ChangeKind::try_from(kind) {
        Ok(v1::ChangeKind::Create) => "create",
        Ok(v1::ChangeKind::Update) => "update",
        Ok(v1::ChangeKind::Disable) => "disable",
        Ok(v1::ChangeKind::Enable) => "enable",
        Ok(v1::ChangeKind::SoftDelete) => "soft_delete",
        Ok(v1::ChangeKind::Restore) => "restore",
        Ok(v1::ChangeKind::Purge) => "purge",
        _ => "?",
    }
}

fn change_json(change: &v1::DirectoryChange) -> Value {
    json!({
        "cursor": change.cursor,
        "kind": change_kind(change.kind),
        "changed_attributes": change.changed_attributes,
        "cycle_id": change.cycle_id,
        "at": output::rfc3339(change.at.as_ref()),
        "object": change.object.as_ref().map(output::object_json),
    })
}

/// `syncguard watch ...`: runs until the stream ends (with `--until-now`) or is interrupted.
pub async fn watch(clients: &mut Clients, args: WatchArgs, json: bool) -> Result<(), Failure> {
    let object_types = match args.object_type {
        None => Vec::new(),
        Some(WatchedType::User) => vec![v1::ObjectType::User as i32],
        Some(WatchedType::Group) => vec![v1::ObjectType::Group as i32],
    };
    let mut stream = clients
        .retention
        .watch_changes(v1::WatchChangesRequest {
            job_id: args.job.unwrap_or_default(),
            after: args.after.unwrap_or_default(),
            object_types,
            heartbeat_seconds: 0,
            until_now: args.until_now,
        })
        .await?
        .into_inner();
    while let Some(message) = stream.message().await? {
        let Some(Event::Change(change)) = message.event else {
            continue;
        };
        if json {
            out!("{}", change_json(&change))?;
            continue;
        }
        let object = change.object.clone().unwrap_or_default();
        let changed = if change.changed_attributes.is_empty() {
            String::new()
        } else {
            format!(" ({})", change.changed_attributes.join(", "))
        };
        out!(
            "{}  {}  {:<11} {} {} {}{changed}",
            change.cursor,
            output::time(change.at.as_ref()),
            change_kind(change.kind),
            output::object_type(object.object_type),
            object.anchor,
            output::display_name(&object),
        )?;
    }
    Ok(())
}
