//! The commands: each calls the services, then prints a table or JSON.

use std::io::{IsTerminal as _, Write as _};

use serde_json::json;
use syncguard_proto::v1::{self, job_source};

use crate::args::{
    CreateJob, CyclesCommand, Decision, DirectoryCommand, JobsCommand, LogAction, LogsArgs,
    QuarantineCommand,
};
use crate::client::Clients;
use crate::failure::Failure;
use crate::listing::{self, Extent};
use crate::out;
use crate::output::{self, Table, print_json};

/// Asks "type yes" on a terminal; refuses in scripts unless `--yes` was given.
pub fn confirm(question: &str, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "{question}: pass --yes to confirm when not at a terminal"
        )));
    }
    eprint!("{question}? Type yes to confirm: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure::usage("not confirmed; nothing was changed"))
    }
}

fn page(limit: u32) -> Option<v1::PageRequest> {
    Some(v1::PageRequest {
        page_size: limit.clamp(1, 1000),
        page_token: String::new(),
    })
}

fn threshold_rule(count: u64) -> v1::ProtectionRule {
    v1::ProtectionRule {
        name: "threshold".into(),
        counted_actions: vec![
            v1::ActionKind::Delete as i32,
            v1::ActionKind::Disable as i32,
        ],
        max_count: Some(count),
        ..Default::default()
    }
}

fn print_job(
    job: &v1::Job,
    protection: Option<&v1::Protection>,
    json: bool,
) -> Result<(), Failure> {
    if json {
        let mut value = output::job_json(job);
        if let Some(protection) = protection {
            value["protection"] = output::protection_json(protection);
        }
        return print_json(&value);
    }
    let spec = job.spec.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    out!("job        {}", job.job_id)?;
    out!("name       {}", spec.name)?;
    out!("status     {}", status.message)?;
    if !status.open_quarantine_id.is_empty() {
        out!(
            "quarantine {}  (syncguard quarantine show {})",
            status.open_quarantine_id,
            job.job_id
        )?;
    }
    out!("recipients {}", spec.notification_recipients.join(", "))?;
    out!("retention  {} days", spec.retention_days)?;
    out!("approvals  {} required", spec.required_approvals.max(1))?;
    match protection {
        Some(protection) if !protection.enabled => {
            out!("protection off ({})", protection.reason)?;
        }
        Some(protection) => {
            for rule in &protection.rules {
                out!("protection {}", output::rule(rule))?;
            }
        }
        None => {
            for rule in &spec.protection_rules {
                out!("protection {}", output::rule(rule))?;
            }
        }
    }
    out!("created by {}", job.created_by)?;
    Ok(())
}

/// `syncguard jobs ...`
pub async fn jobs(clients: &mut Clients, command: JobsCommand, json: bool) -> Result<(), Failure> {
    match command {
        JobsCommand::Create(create) => {
            let job = clients
                .ingest
                .create_job(v1::CreateJobRequest {
                    spec: Some(job_spec(create)?),
                })
                .await?
                .into_inner();
            print_job(&job, None, json)?;
        }
        JobsCommand::Show { job } => {
            let job = clients
                .ingest
                .get_job(v1::GetJobRequest { job_id: job })
                .await?
                .into_inner();
            let protection = clients
                .gate
                .get_protection(v1::GetProtectionRequest {
                    job_id: job.job_id.clone(),
                })
                .await?
                .into_inner();
            print_job(&job, Some(&protection), json)?;
        }
        JobsCommand::List => {
            let jobs = clients
                .ingest
                .list_jobs(v1::ListJobsRequest { page: page(1000) })
                .await?
                .into_inner()
                .jobs;
            if json {
                return print_json(&json!(
                    jobs.iter().map(output::job_json).collect::<Vec<_>>()
                ));
            }
            let mut table = Table::new(&["JOB", "NAME", "STATUS"]);
            for job in &jobs {
                let status = job.status.clone().unwrap_or_default();
                table.row(vec![
                    job.job_id.clone(),
                    job.spec.clone().unwrap_or_default().name,
                    status.message,
                ]);
            }
            table.print()?;
        }
        JobsCommand::Protection {
            job,
            threshold,
            off,
            reason,
        } => {
            let protection = if threshold.is_some() || off {
                let reason = reason
                    .ok_or_else(|| Failure::usage("--reason is required to change protection"))?;
                clients
                    .gate
                    .set_protection(v1::SetProtectionRequest {
                        job_id: job,
                        enabled: !off,
                        rules: threshold.map(threshold_rule).into_iter().collect(),
                        reason,
                    })
                    .await?
                    .into_inner()
            } else {
                clients
                    .gate
                    .get_protection(v1::GetProtectionRequest { job_id: job })
                    .await?
                    .into_inner()
            };
            if json {
                return print_json(&output::protection_json(&protection));
            }
            out!(
                "protection {}",
                if protection.enabled { "on" } else { "OFF" }
            )?;
            for rule in &protection.rules {
                out!("rule {}", output::rule(rule))?;
            }
            out!("set by {}", protection.updated_by)?;
        }
        JobsCommand::Recipients {
            job,
            recipients,
            reason,
        } => {
            let updated = update_job(clients, &job, &reason, |spec| {
                spec.notification_recipients = recipients
            })
            .await?;
            print_job(&updated, None, json)?;
        }
        JobsCommand::Retention { job, days, reason } => {
            let updated =
                update_job(clients, &job, &reason, |spec| spec.retention_days = days).await?;
            print_job(&updated, None, json)?;
        }
        JobsCommand::Delete { job, yes } => {
            confirm(&format!("delete the configuration of job {job}"), yes)?;
            clients
                .ingest
                .delete_job(v1::DeleteJobRequest {
                    job_id: job.clone(),
                })
                .await?;
            out!("job {job} deleted; its objects and logs are kept")?;
        }
    }
    Ok(())
}

async fn update_job(
    clients: &mut Clients,
    job_id: &str,
    reason: &str,
    change: impl FnOnce(&mut v1::JobSpec),
) -> Result<v1::Job, Failure> {
    let job = clients
        .ingest
        .get_job(v1::GetJobRequest {
            job_id: job_id.into(),
        })
        .await?
        .into_inner();
    let mut spec = job.spec.unwrap_or_default();
    change(&mut spec);
    Ok(clients
        .ingest
        .update_job(v1::UpdateJobRequest {
            job_id: job_id.into(),
            spec: Some(spec),
            reason: reason.into(),
        })
        .await?
        .into_inner())
}

fn job_spec(create: CreateJob) -> Result<v1::JobSpec, Failure> {
    let source = match &create.file {
        None => job_source::Kind::Push(v1::PushSource {}),
        Some(path) => job_source::Kind::File(v1::FileSource {
            path: path.display().to_string(),
            format: file_format(path)? as i32,
            anchor_attribute: String::new(),
        }),
    };
    Ok(v1::JobSpec {
        name: create.name,
        source: Some(v1::JobSource { kind: Some(source) }),
        scope: Some(v1::ScopeRules {
            base_dns: create.base_dns,
            ..Default::default()
        }),
        deprovision_mode: if create.disable_mode {
            v1::DeprovisionMode::Disable
        } else {
            v1::DeprovisionMode::Delete
        } as i32,
        notification_recipients: create.recipients,
        retention_days: create.retention_days.unwrap_or(0),
        protection_rules: create.threshold.map(threshold_rule).into_iter().collect(),
        ..Default::default()
    })
}

/// The export format a file's extension names.
pub fn file_format(path: &std::path::Path) -> Result<v1::FileFormat, Failure> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("ldif") => Ok(v1::FileFormat::Ldif),
        Some("json") => Ok(v1::FileFormat::Json),
        _ => Err(Failure::usage(format!(
            "{}: expected a .ldif or .json file",
            path.display()
        ))),
    }
}

fn print_cycle(cycle: &v1::Cycle, json: bool) -> Result<(), Failure> {
    if json {
        return print_json(&output::cycle_json(cycle));
    }
    out!("cycle   {}", cycle.cycle_id)?;
    out!("job     {}", cycle.job_id)?;
    out!("state   {}", output::cycle_state(cycle.state))?;
    out!("objects {}", cycle.source_objects)?;
    out!("actions {}", output::counts(&cycle.counts))?;
    for phase in &cycle.phases {
        let millis = phase
            .duration
            .map(|d| d.seconds * 1000 + i64::from(d.nanos) / 1_000_000)
            .unwrap_or(0);
        out!("phase   {:<8} {millis} ms", phase.phase)?;
    }
    if !cycle.error.is_empty() {
        out!("error   {}", cycle.error)?;
    }
    if !cycle.quarantine_id.is_empty() {
        out!("quarantine {}", cycle.quarantine_id)?;
    }
    Ok(())
}

/// `syncguard cycles ...`
pub async fn cycles(
    clients: &mut Clients,
    command: CyclesCommand,
    json: bool,
) -> Result<(), Failure> {
    match command {
        CyclesCommand::Trigger { job } => {
            let triggered = clients
                .ingest
                .trigger_cycle(v1::TriggerCycleRequest { job_id: job })
                .await?
                .into_inner();
            let cycle = clients
                .stager
                .get_cycle(v1::GetCycleRequest {
                    cycle_id: triggered.cycle_id,
                })
                .await?
                .into_inner();
            print_cycle(&cycle, json)?;
        }
        CyclesCommand::Show { cycle } => {
            let cycle = clients
                .stager
                .get_cycle(v1::GetCycleRequest { cycle_id: cycle })
                .await?
                .into_inner();
            print_cycle(&cycle, json)?;
        }
        CyclesCommand::List { job, limit, all } => {
            let extent = Extent { limit, all, json };
            let job_id = job.unwrap_or_default();
            let stager = clients.stager.clone();
            let listed = listing::list(
                extent,
                |page| {
                    let mut stager = stager.clone();
                    let job_id = job_id.clone();
                    async move {
                        let answer = stager
                            .list_cycles(v1::ListCyclesRequest {
                                job_id,
                                states: vec![],
                                page,
                            })
                            .await?
                            .into_inner();
                        Ok((answer.cycles, answer.next_page_token))
                    }
                },
                output::cycle_json,
            )
            .await?;
            let Some((cycles, note)) = listed else {
                return Ok(());
            };
            let mut table = Table::new(&["CYCLE", "STATE", "OBJECTS", "ACTIONS", "CREATED"]);
            for cycle in &cycles {
                table.row(vec![
                    cycle.cycle_id.clone(),
                    output::cycle_state(cycle.state),
                    cycle.source_objects.to_string(),
                    output::counts(&cycle.counts),
                    output::time(cycle.created_at.as_ref()),
                ]);
            }
            table.print()?;
            if let Some(note) = note {
                out!("{note}")?;
            }
        }
    }
    Ok(())
}

/// The held actions read per page when a whole quarantine is fetched.
const HELD_PAGE: u32 = 1000;

/// A job id (its open quarantine) or a quarantine id: the quarantine, with every held
/// action (read page by page).
pub async fn find_quarantine(
    clients: &mut Clients,
    target: &str,
) -> Result<v1::Quarantine, Failure> {
    if uuid::Uuid::parse_str(target).is_err() {
        return Err(Failure::usage(format!(
            "{target:?} is not a job id or a quarantine id (both are UUIDs, e.g. from `syncguard jobs list`)"
        )));
    }
    let fetch = |job_id: String, quarantine_id: String, token: String| {
        let mut gate = clients.gate.clone();
        async move {
            gate.get_quarantine(v1::GetQuarantineRequest {
                job_id,
                quarantine_id,
                page: Some(v1::PageRequest {
                    page_size: HELD_PAGE,
                    page_token: token,
                }),
                ..Default::default()
            })
            .await
            .map(tonic::Response::into_inner)
        }
    };
    // A job id names its open quarantine; otherwise the id is a quarantine's own.
    let (mut quarantine, by_job) = match fetch(target.into(), String::new(), String::new()).await {
        Ok(found) => (found, true),
        Err(status) if status.code() == tonic::Code::NotFound => {
            match fetch(String::new(), target.into(), String::new()).await {
                Ok(found) => (found, false),
                Err(status) if status.code() == tonic::Code::NotFound => {
                    return Err(Failure::from(tonic::Status::not_found(format!(
                        "{target} is neither a job with an open quarantine nor a quarantine id"
                    ))));
                }
                Err(status) => return Err(status.into()),
            }
        }
        Err(status) => return Err(status.into()),
    };
    while !quarantine.next_page_token.is_empty() {
        let (job_id, quarantine_id) = if by_job {
            (target.to_owned(), String::new())
        } else {
            (String::new(), target.to_owned())
        };
        let next = fetch(job_id, quarantine_id, quarantine.next_page_token.clone()).await?;
        quarantine.held.extend(next.held);
        quarantine.next_page_token = next.next_page_token;
    }
    Ok(quarantine)
}

/// Prints a quarantine for people: at most `limit` of its actions, and how many more.
pub fn print_quarantine(quarantine: &v1::Quarantine, limit: usize) -> Result<(), Failure> {
    let state = output::quarantine_json(quarantine)["state"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    out!("quarantine {}  ({state})", quarantine.quarantine_id)?;
    out!("job        {}", quarantine.job_id)?;
    out!("cycle      {}", quarantine.cycle_id)?;
    for breach in &quarantine.breaches {
        out!("tripped    {}", breach.explanation)?;
    }
    out!("planned    {}", output::counts(&quarantine.counts))?;
    if state == "open" {
        out!(
            "hold until {}",
            output::time(quarantine.hold_until.as_ref())
        )?;
    }
    out!("digest     {}", quarantine.digest)?;
    for approval in &quarantine.approvals {
        out!(
            "approved   by {} at {}: {}",
            approval.principal,
            output::time(approval.at.as_ref()),
            approval.reason
        )?;
    }
    let mut table = Table::new(&[
        "ACTION",
        "ANCHOR",
        "NAME",
        "REASON",
        "STATUS",
        "RESTORABLE UNTIL",
    ]);
    for held in quarantine.held.iter().take(limit) {
        if let Some(action) = &held.action {
            table.row(vec![
                output::action(action.action),
                action.anchor.clone(),
                action.display_name.clone(),
                output::reason(action.reason),
                output::status(action.status),
                output::time(held.restorable_until.as_ref()),
            ]);
        }
    }
    table.print()?;
    if quarantine.held.len() > limit {
        out!(
            "... and {} more (use --all, or --json)",
            quarantine.held.len() - limit
        )?;
    }
    if state == "open" {
        out!(
            "RESTORABLE UNTIL is an estimate while the deletes wait: allowed, each object stays restorable for the job's retention from the moment it is soft-deleted."
        )?;
    }
    Ok(())
}

async fn decide(
    clients: &mut Clients,
    decision: Decision,
    allow: bool,
    json: bool,
) -> Result<(), Failure> {
    let quarantine = find_quarantine(clients, &decision.target).await?;
    let what = if decision.anchors.is_empty() {
        format!(
            "{} all {} held actions of quarantine {}",
            if allow { "allow" } else { "reject" },
            quarantine.held.len(),
            quarantine.quarantine_id
        )
    } else {
        format!(
            "{} {} held actions of quarantine {}",
            if allow { "allow" } else { "reject" },
            decision.anchors.len(),
            quarantine.quarantine_id
        )
    };
    confirm(&what, decision.yes)?;
    let response = if allow {
        clients
            .gate
            .allow_deletes(v1::AllowDeletesRequest {
                quarantine_id: quarantine.quarantine_id.clone(),
                digest: quarantine.digest.clone(),
                reason: decision.reason,
                anchors: decision.anchors,
            })
            .await?
    } else {
        clients
            .gate
            .reject_deletes(v1::RejectDeletesRequest {
                quarantine_id: quarantine.quarantine_id.clone(),
                digest: quarantine.digest.clone(),
                reason: decision.reason,
                anchors: decision.anchors,
            })
            .await?
    }
    .into_inner();
    if json {
        return print_json(&json!({
            "applied": response.applied,
            "actions_applied": response.actions_applied,
            "actions_rejected": response.actions_rejected,
            "quarantine": response.quarantine.as_ref().map(output::quarantine_json),
        }));
    }
    if allow && !response.applied {
        out!(
            "approval recorded; the job needs a second, different approver before anything is applied"
        )?;
    } else if allow {
        out!(
            "allowed: {} actions applied, {} rejected (and pinned)",
            response.actions_applied,
            response.actions_rejected
        )?;
    } else {
        out!(
            "rejected: {} actions discarded; those objects are pinned",
            response.actions_rejected
        )?;
    }
    Ok(())
}

/// `syncguard quarantine ...`
pub async fn quarantine(
    clients: &mut Clients,
    command: QuarantineCommand,
    json: bool,
) -> Result<(), Failure> {
    match command {
        QuarantineCommand::Show { target, limit, all } => {
            let quarantine = find_quarantine(clients, &target).await?;
            if json {
                return print_json(&output::quarantine_json(&quarantine));
            }
            let limit = if all {
                usize::MAX
            } else {
                limit.unwrap_or(50) as usize
            };
            print_quarantine(&quarantine, limit)?;
        }
        QuarantineCommand::Allow(decision) => decide(clients, decision, true, json).await?,
        QuarantineCommand::Reject(decision) => decide(clients, decision, false, json).await?,
        QuarantineCommand::Restart { job, reason } => {
            let restarted = clients
                .gate
                .restart_job(v1::RestartJobRequest {
                    job_id: job,
                    reason,
                })
                .await?
                .into_inner();
            if json {
                return print_json(&json!({
                    "superseded_quarantine_id": restarted.superseded_quarantine_id,
                    "cycle_id": restarted.cycle_id,
                }));
            }
            if !restarted.superseded_quarantine_id.is_empty() {
                out!(
                    "superseded quarantine {}",
                    restarted.superseded_quarantine_id
                )?;
            }
            out!("fresh cycle {}", restarted.cycle_id)?;
        }
        QuarantineCommand::Pins {
            job,
            release,
            all,
            reason,
        } => {
            if !release.is_empty() || all {
                let reason =
                    reason.ok_or_else(|| Failure::usage("--reason is required to release pins"))?;
                let released = clients
                    .gate
                    .release_pins(v1::ReleasePinsRequest {
                        job_id: job.clone(),
                        anchors: release,
                        reason,
                    })
                    .await?
                    .into_inner()
                    .released;
                out!("released {released} pins")?;
                return Ok(());
            }
            let extent = Extent {
                limit: None,
                all: true,
                json,
            };
            let gate = clients.gate.clone();
            let listed = listing::list(
                extent,
                |page| {
                    let mut gate = gate.clone();
                    let job_id = job.clone();
                    async move {
                        let answer = gate
                            .list_pins(v1::ListPinsRequest { job_id, page })
                            .await?
                            .into_inner();
                        Ok((answer.pins, answer.next_page_token))
                    }
                },
                |p: &v1::Pin| {
                    json!({
                        "anchor": p.anchor, "pinned_by": p.pinned_by, "reason": p.reason,
                        "pinned_at": output::rfc3339(p.pinned_at.as_ref()),
                    })
                },
            )
            .await?;
            let Some((pins, _)) = listed else {
                return Ok(());
            };
            let mut table = Table::new(&["ANCHOR", "PINNED BY", "REASON", "SINCE"]);
            for pin in &pins {
                table.row(vec![
                    pin.anchor.clone(),
                    pin.pinned_by.clone(),
                    pin.reason.clone(),
                    output::time(pin.pinned_at.as_ref()),
                ]);
            }
            table.print()?;
        }
    }
    Ok(())
}

/// `syncguard logs ...`
pub async fn logs(clients: &mut Clients, args: LogsArgs, json: bool) -> Result<(), Failure> {
    use v1::LogActionFilter as F;
    let action = match args.action {
        None => F::Unspecified,
        Some(LogAction::StagedAction) => F::StagedAction,
        Some(LogAction::StagedDelete) => F::StagedDelete,
        Some(LogAction::StagedDisable) => F::StagedDisable,
        Some(LogAction::Create) => F::Create,
        Some(LogAction::Update) => F::Update,
        Some(LogAction::Disable) => F::Disable,
        Some(LogAction::Enable) => F::Enable,
        Some(LogAction::Delete) => F::Delete,
        Some(LogAction::Restore) => F::Restore,
        Some(LogAction::Purge) => F::Purge,
        Some(LogAction::Admin) => F::Admin,
        Some(LogAction::Export) => F::Export,
        Some(LogAction::ExportFailed) => F::ExportFailed,
    };
    let since = match args.since {
        None => None,
        Some(text) => {
            let at = chrono::DateTime::parse_from_rfc3339(&text).map_err(|error| {
                Failure::usage(format!(
                    "--since {text:?} is not an RFC 3339 time (2026-11-25T08:00:00Z): {error}"
                ))
            })?;
            Some(prost_types::Timestamp {
                seconds: at.timestamp(),
                nanos: 0,
            })
        }
    };
    let request = v1::QueryProvisioningLogsRequest {
        job_id: args.job.unwrap_or_default(),
        cycle_id: args.cycle.unwrap_or_default(),
        anchor: args.anchor.unwrap_or_default(),
        action: action as i32,
        status: 0,
        since,
        until: None,
        actor: args.actor.unwrap_or_default(),
        page: None,
    };
    let extent = Extent {
        limit: args.limit,
        all: args.all,
        json,
    };
    let stager = clients.stager.clone();
    let listed = listing::list(
        extent,
        |page| {
            let mut stager = stager.clone();
            let request = v1::QueryProvisioningLogsRequest {
                page,
                ..request.clone()
            };
            async move {
                let answer = stager.query_provisioning_logs(request).await?.into_inner();
                Ok((answer.entries, answer.next_page_token))
            }
        },
        |e: &v1::ProvisioningLogEntry| {
            json!({
                "at": output::rfc3339(e.at.as_ref()), "action": e.display_action, "status": output::status(e.status),
                "anchor": e.anchor, "reason": output::reason(e.reason), "actor": e.actor, "detail": e.detail,
                "cycle_id": e.cycle_id, "changed_attributes": e.changed_attributes,
            })
        },
    )
    .await?;
    let Some((entries, note)) = listed else {
        return Ok(());
    };
    let mut table = Table::new(&["AT", "ACTION", "ANCHOR", "REASON", "ACTOR", "DETAIL"]);
    for entry in &entries {
        table.row(vec![
            output::time(entry.at.as_ref()),
            entry.display_action.clone(),
            entry.anchor.clone(),
            output::reason(entry.reason),
            entry.actor.clone(),
            entry.detail.clone(),
        ]);
    }
    table.print()?;
    if let Some(note) = note {
        out!("{note}")?;
    }
    Ok(())
}

fn by_id(object: String) -> Option<v1::ObjectRef> {
    Some(v1::ObjectRef {
        by: Some(v1::object_ref::By::ObjectId(object)),
    })
}

fn print_objects(objects: &[v1::DirectoryObject], deleted: bool) -> Result<(), Failure> {
    let mut table = if deleted {
        Table::new(&[
            "OBJECT",
            "ANCHOR",
            "NAME",
            "TYPE",
            "DELETED",
            "RESTORABLE UNTIL",
        ])
    } else {
        Table::new(&["OBJECT", "ANCHOR", "NAME", "TYPE", "ENABLED"])
    };
    for object in objects {
        let mut row = vec![
            object.object_id.clone(),
            object.anchor.clone(),
            output::display_name(object),
            output::object_type(object.object_type),
        ];
        if deleted {
            row.push(output::time(object.deleted_at.as_ref()));
            row.push(output::time(object.restorable_until.as_ref()));
        } else {
            row.push(object.enabled.to_string());
        }
        table.row(row);
    }
    table.print()
}

/// `syncguard directory ...`
pub async fn directory(
    clients: &mut Clients,
    command: DirectoryCommand,
    json: bool,
) -> Result<(), Failure> {
    match command {
        DirectoryCommand::Get { object } => {
            let object = clients
                .retention
                .get_object(v1::GetObjectRequest {
                    object: by_id(object),
                    attributes: vec![],
                })
                .await?
                .into_inner();
            if json {
                return print_json(&output::object_json(&object));
            }
            print_objects(std::slice::from_ref(&object), object.deleted_at.is_some())?;
            let mut names: Vec<_> = object.attributes.iter().collect();
            names.sort_by(|a, b| a.0.cmp(b.0));
            for (name, values) in names {
                out!("  {name}: {}", values.values.join(", "))?;
            }
            if !object.member_anchors.is_empty() {
                out!("  members: {}", object.member_anchors.join(", "))?;
            }
        }
        DirectoryCommand::List { job, limit, all } => {
            let retention = clients.retention.clone();
            let listed = listing::list(
                Extent { limit, all, json },
                |page| {
                    let mut retention = retention.clone();
                    let job_id = job.clone();
                    async move {
                        let answer = retention
                            .list_objects(v1::ListObjectsRequest {
                                job_id,
                                object_type: 0,
                                attributes: vec![],
                                page,
                            })
                            .await?
                            .into_inner();
                        Ok((answer.objects, answer.next_page_token))
                    }
                },
                output::object_json,
            )
            .await?;
            if let Some((objects, note)) = listed {
                print_objects(&objects, false)?;
                if let Some(note) = note {
                    out!("{note}")?;
                }
            }
        }
        DirectoryCommand::Deleted { job, limit, all } => {
            let retention = clients.retention.clone();
            let listed = listing::list(
                Extent { limit, all, json },
                |page| {
                    let mut retention = retention.clone();
                    let job_id = job.clone();
                    async move {
                        let answer = retention
                            .list_deleted_objects(v1::ListDeletedObjectsRequest {
                                job_id,
                                page,
                                ..Default::default()
                            })
                            .await?
                            .into_inner();
                        Ok((answer.objects, answer.next_page_token))
                    }
                },
                output::object_json,
            )
            .await?;
            if let Some((objects, note)) = listed {
                print_objects(&objects, true)?;
                if let Some(note) = note {
                    out!("{note}")?;
                }
            }
        }
        DirectoryCommand::Restore { object, reason } => {
            let restored = clients
                .retention
                .restore_object(v1::RestoreObjectRequest {
                    object: by_id(object),
                    reason,
                })
                .await?
                .into_inner();
            if json {
                return print_json(&output::object_json(&restored));
            }
            out!(
                "restored {} ({}) with the same object id",
                output::display_name(&restored),
                restored.object_id
            )?;
        }
        DirectoryCommand::Purge {
            object,
            reason,
            yes,
        } => {
            confirm(
                &format!("purge object {object} for good (it can never be restored)"),
                yes,
            )?;
            let purged = clients
                .retention
                .purge_object(v1::PurgeObjectRequest {
                    object: by_id(object),
                    reason,
                })
                .await?
                .into_inner();
            out!(
                "purged {} at {}",
                purged.object_id,
                output::time(purged.purged_at.as_ref())
            )?;
        }
    }
    Ok(())
}
