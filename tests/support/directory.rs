//! Test directories: users and groups to push, and the calls that push them.

use std::collections::HashMap;

use syncguard_proto::v1::{self, ObjectType, push_snapshot_request::Part};
use tonic::Status;

use crate::suite::Authed;
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;

fn attributes(pairs: &[(&str, &str)]) -> HashMap<String, v1::AttributeValues> {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                (*name).to_owned(),
                v1::AttributeValues {
                    values: vec![(*value).to_owned()],
                },
            )
        })
        .collect()
}

/// User `n`: anchor `u-0000n`, in `ou=people`, enabled, title "Engineer".
pub fn user(n: usize) -> v1::SourceObject {
    v1::SourceObject {
        anchor: format!("u-{n:05}"),
        object_type: ObjectType::User as i32,
        distinguished_name: format!("uid=user{n},ou=people,dc=example,dc=org"),
        attributes: attributes(&[
            ("cn", &format!("User {n}")),
            ("mail", &format!("user{n}@example.org")),
            ("title", "Engineer"),
        ]),
        enabled: true,
        member_anchors: Vec::new(),
        deleted_in_source: false,
    }
}

/// Group `n`: anchor `g-0000n`, in `ou=groups`, with the given member anchors.
pub fn group(n: usize, members: Vec<String>) -> v1::SourceObject {
    v1::SourceObject {
        anchor: format!("g-{n:05}"),
        object_type: ObjectType::Group as i32,
        distinguished_name: format!("cn=group{n},ou=groups,dc=example,dc=org"),
        attributes: attributes(&[("cn", &format!("Group {n}"))]),
        enabled: true,
        member_anchors: members,
        deleted_in_source: false,
    }
}

/// `users` users and `groups` groups; group `g` holds users `20g .. 20g+20`.
pub fn directory(users: usize, groups: usize) -> Vec<v1::SourceObject> {
    let mut objects: Vec<v1::SourceObject> = (0..users).map(user).collect();
    for g in 0..groups {
        let members = (g * 20..(g * 20 + 20).min(users))
            .map(|n| format!("u-{n:05}"))
            .collect();
        objects.push(group(g, members));
    }
    objects
}

/// The messages of a complete snapshot push: header, batches of `batch`, end marker.
pub fn snapshot_messages(
    job_id: &str,
    objects: &[v1::SourceObject],
    batch: usize,
) -> Vec<v1::PushSnapshotRequest> {
    let mut messages = vec![v1::PushSnapshotRequest {
        part: Some(Part::Header(v1::SnapshotHeader {
            job_id: job_id.to_owned(),
            idempotency_key: String::new(),
        })),
    }];
    for chunk in objects.chunks(batch.max(1)) {
        messages.push(v1::PushSnapshotRequest {
            part: Some(Part::Batch(v1::ObjectBatch {
                objects: chunk.to_vec(),
            })),
        });
    }
    messages.push(v1::PushSnapshotRequest {
        part: Some(Part::End(v1::SnapshotEnd {
            total_objects: objects.len() as u64,
        })),
    });
    messages
}

/// Pushes `objects` as one complete snapshot.
pub async fn push_snapshot(
    ingest: &mut IngestServiceClient<Authed>,
    job_id: &str,
    objects: &[v1::SourceObject],
) -> Result<v1::PushSnapshotResponse, Status> {
    let messages = snapshot_messages(job_id, objects, 500);
    ingest
        .push_snapshot(tokio_stream::iter(messages))
        .await
        .map(tonic::Response::into_inner)
}
