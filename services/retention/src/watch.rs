//! `WatchChanges`: the change feed streamed to a backend from its cursor on. Rows are read in
//! short statements (no transaction stays open) and handed to a bounded channel, so a slow
//! reader slows the reading instead of filling memory; new changes wake the stream through
//! the feed's notification, and an idle stream sends heartbeats.

use std::time::Duration;

use syncguard_bootstrap::{JobEvents, timestamp};
use syncguard_domain::{FieldError, JobId};
use syncguard_proto::v1;
use syncguard_store::PgPool;
use syncguard_store::feed::{Cursor, FeedChange, changes_after, feed_bounds};
use tokio::sync::mpsc;
use tonic::Status;
use uuid::Uuid;

use crate::error::RetentionError;

/// Changes read per statement.
const READ_BATCH: i64 = 500;
/// Changes in flight to a reader: a slow reader holds the stream here.
const IN_FLIGHT: usize = 256;
/// Longest pause between looks when no notification comes.
const POLL: Duration = Duration::from_secs(2);

/// What a watch asks for, validated.
struct Watch {
    job_id: Option<Uuid>,
    object_types: Vec<String>,
    after: Cursor,
    heartbeat: Duration,
    until_now: bool,
}

/// The stream of changes `request` asks for.
pub async fn watch(
    pool: &PgPool,
    events: &JobEvents,
    request: &v1::WatchChangesRequest,
) -> Result<mpsc::Receiver<Result<v1::WatchChangesResponse, Status>>, RetentionError> {
    let job_id = if request.job_id.is_empty() {
        None
    } else {
        let job = JobId::parse("job_id", &request.job_id)?;
        if !syncguard_store::job_exists(pool, job.0).await? {
            return Err(RetentionError::NotFound(format!("job {job} not found")));
        }
        Some(job.0)
    };
    let mut object_types = Vec::new();
    for (index, object_type) in request.object_types.iter().enumerate() {
        match v1::ObjectType::try_from(*object_type) {
            Ok(v1::ObjectType::User) => object_types.push("user".to_owned()),
            Ok(v1::ObjectType::Group) => object_types.push("group".to_owned()),
            _ => {
                return Err(FieldError::new(
                    format!("object_types[{index}]"),
                    format!("{object_type} is not an object type"),
                )
                .into());
            }
        }
    }
    let heartbeat = match request.heartbeat_seconds {
        0 => Duration::from_secs(15),
        seconds @ 1..=300 => Duration::from_secs(u64::from(seconds)),
        _ => {
            return Err(FieldError::new("heartbeat_seconds", "between 1 and 300 seconds").into());
        }
    };
    let (_, pruned_through) = feed_bounds(pool).await?;
    let after = if request.after.trim().is_empty() {
        Cursor {
            batch: pruned_through,
            position: 0,
        }
    } else {
        request
            .after
            .parse::<Cursor>()
            .map_err(|error| FieldError::new("after", error.to_string()))?
    };
    if after.batch < pruned_through {
        return Err(RetentionError::OutOfRange(format!(
            "cursor {after} is older than the feed keeps: changes up to batch {pruned_through} were pruned; the oldest cursor still kept is {}",
            Cursor {
                batch: pruned_through,
                position: 0
            }
        )));
    }
    let watch = Watch {
        job_id,
        object_types,
        after,
        heartbeat,
        until_now: request.until_now,
    };
    let (sender, receiver) = mpsc::channel(IN_FLIGHT);
    tokio::spawn(stream(pool.clone(), events.subscribe(), watch, sender));
    Ok(receiver)
}

async fn stream(
    pool: PgPool,
    mut announced: tokio::sync::broadcast::Receiver<Uuid>,
    mut watch: Watch,
    sender: mpsc::Sender<Result<v1::WatchChangesResponse, Status>>,
) {
    let mut last_sent = tokio::time::Instant::now();
    loop {
        let rows = match changes_after(
            &pool,
            watch.job_id,
            &watch.object_types,
            watch.after,
            READ_BATCH,
        )
        .await
        {
            Ok(rows) => rows,
            Err(error) => {
                let _ = sender
                    .send(Err(Status::unavailable(format!(
                        "the change feed could not be read: {error}; resume from cursor {}",
                        watch.after
                    ))))
                    .await;
                return;
            }
        };
        let caught_up = (rows.len() as i64) < READ_BATCH;
        for row in rows {
            watch.after = row.cursor();
            let event = v1::WatchChangesResponse {
                event: Some(v1::watch_changes_response::Event::Change(change_view(row))),
            };
            // A reader that went away ends the stream.
            if sender.send(Ok(event)).await.is_err() {
                return;
            }
            last_sent = tokio::time::Instant::now();
        }
        if !caught_up {
            continue;
        }
        if watch.until_now {
            // Caught up: everything committed before the call has been sent.
            return;
        }
        // Idle: wait for this job's changes (any job's, unfiltered), or send a heartbeat.
        let wait = watch
            .heartbeat
            .saturating_sub(last_sent.elapsed())
            .min(POLL)
            .max(Duration::from_millis(10));
        let job_id = watch.job_id;
        let woken = tokio::time::timeout(wait, async {
            loop {
                match announced.recv().await {
                    Ok(job) if job_id.is_none_or(|wanted| wanted == job) => return,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await
                    }
                }
            }
        })
        .await;
        if woken.is_err() && last_sent.elapsed() >= watch.heartbeat {
            let beat = v1::WatchChangesResponse {
                event: Some(v1::watch_changes_response::Event::Heartbeat(
                    v1::Heartbeat {
                        cursor: watch.after.to_string(),
                        at: Some(timestamp(chrono::Utc::now())),
                    },
                )),
            };
            if sender.send(Ok(beat)).await.is_err() {
                return;
            }
            last_sent = tokio::time::Instant::now();
        }
    }
}

fn change_kind(change: &str) -> v1::ChangeKind {
    match change {
        "create" => v1::ChangeKind::Create,
        "update" => v1::ChangeKind::Update,
        "disable" => v1::ChangeKind::Disable,
        "enable" => v1::ChangeKind::Enable,
        "soft_delete" => v1::ChangeKind::SoftDelete,
        "restore" => v1::ChangeKind::Restore,
        "purge" => v1::ChangeKind::Purge,
        _ => v1::ChangeKind::Unspecified,
    }
}

/// The API view of a feed row: the change and the object after it.
pub fn change_view(row: FeedChange) -> v1::DirectoryChange {
    let cursor = row.cursor().to_string();
    let attributes = syncguard_domain::stored_attributes(&row.attributes)
        .map(|(name, values)| (name.clone(), v1::AttributeValues { values }))
        .collect();
    let deleted = matches!(row.change.as_str(), "soft_delete" | "purge");
    v1::DirectoryChange {
        cursor,
        kind: change_kind(&row.change) as i32,
        changed_attributes: row.changed_attributes,
        object: Some(v1::DirectoryObject {
            object_id: row.object_id.to_string(),
            job_id: row.job_id.to_string(),
            anchor: row.anchor,
            object_type: if row.object_type == "group" {
                v1::ObjectType::Group as i32
            } else {
                v1::ObjectType::User as i32
            },
            distinguished_name: row.distinguished_name,
            attributes,
            enabled: row.enabled,
            member_anchors: row.member_anchors,
            created_at: None,
            updated_at: Some(timestamp(row.at)),
            deleted_at: deleted.then(|| timestamp(row.at)),
            restorable_until: None,
        }),
        cycle_id: row.cycle_id.map(|id| id.to_string()).unwrap_or_default(),
        at: Some(timestamp(row.at)),
    }
}
