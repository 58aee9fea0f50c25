//! The benchmark's directory: N objects (every 100th a group of the 20 before it), and the
//! snapshots of later rounds, built before any clock starts.

use std::collections::HashMap;
use std::ops::Range;

use syncguard_proto::v1::{self, ObjectType, push_snapshot_request::Part};

/// Objects per push batch.
const BATCH: usize = 2000;

/// Which version of the directory a snapshot carries.
#[derive(Clone, Debug)]
pub enum Round {
    /// All N objects.
    Initial,
    /// 200 deleted (0..200), 200 disabled (200..400), 1% updated, 1% new.
    Changed,
    /// The changed directory with the objects in `removed` gone as well.
    Shrunk(Range<usize>),
}

/// Object `n` as `round` has it, or `None` when it is gone.
pub fn object(n: usize, round: &Round, total: usize) -> Option<v1::SourceObject> {
    let one_percent = (total / 100).max(1);
    let is_group = n % 100 == 99;
    let mut title = "Engineer".to_owned();
    let mut enabled = true;
    if let Round::Changed | Round::Shrunk(_) = round {
        if n < 200 {
            return None;
        }
        if (200..400).contains(&n) && !is_group {
            enabled = false;
        }
        if (400..400 + one_percent).contains(&n) {
            title = "Staff Engineer".to_owned();
        }
    }
    if let Round::Shrunk(removed) = round
        && removed.contains(&n)
    {
        return None;
    }
    let mut attributes = HashMap::new();
    let mut put = |name: &str, value: String| {
        attributes.insert(
            name.to_owned(),
            v1::AttributeValues {
                values: vec![value],
            },
        );
    };
    put("cn", format!("Person {n}"));
    put("title", title);
    put("department", format!("Department {}", n % 40));
    if is_group {
        let members = (n.saturating_sub(20)..n)
            .map(|m| format!("a-{m:08}"))
            .collect();
        return Some(v1::SourceObject {
            anchor: format!("a-{n:08}"),
            object_type: ObjectType::Group as i32,
            distinguished_name: format!("cn=group{n},ou=groups,dc=example,dc=org"),
            attributes,
            enabled: true,
            member_anchors: members,
            deleted_in_source: false,
        });
    }
    put("mail", format!("person{n}@example.org"));
    put("employeeNumber", format!("{n}"));
    Some(v1::SourceObject {
        anchor: format!("a-{n:08}"),
        object_type: ObjectType::User as i32,
        distinguished_name: format!("uid=person{n},ou=people,dc=example,dc=org"),
        attributes,
        enabled,
        member_anchors: Vec::new(),
        deleted_in_source: false,
    })
}

/// The objects of a round.
pub fn snapshot(total: usize, round: Round) -> impl Iterator<Item = v1::SourceObject> {
    let extra = match round {
        Round::Initial => 0,
        Round::Changed | Round::Shrunk(_) => (total / 100).max(1),
    };
    (0..total + extra).filter_map(move |n| object(n, &round, total))
}

/// Every message of a push of `round`.
pub fn messages(job_id: &str, total: usize, round: Round) -> Vec<v1::PushSnapshotRequest> {
    let objects: Vec<v1::SourceObject> = snapshot(total, round).collect();
    let expected = objects.len() as u64;
    let mut messages = vec![v1::PushSnapshotRequest {
        part: Some(Part::Header(v1::SnapshotHeader {
            job_id: job_id.to_owned(),
            idempotency_key: String::new(),
        })),
    }];
    let mut objects = objects.into_iter().peekable();
    while objects.peek().is_some() {
        messages.push(v1::PushSnapshotRequest {
            part: Some(Part::Batch(v1::ObjectBatch {
                objects: objects.by_ref().take(BATCH).collect(),
            })),
        });
    }
    messages.push(v1::PushSnapshotRequest {
        part: Some(Part::End(v1::SnapshotEnd {
            total_objects: expected,
        })),
    });
    messages
}

/// A one-object delta: object `n` with a title that differs on every call (`version`).
pub fn one_object_delta(job_id: &str, n: usize, version: usize) -> v1::PushDeltaRequest {
    let mut changed = object(n, &Round::Initial, n + 1).expect("object n exists initially");
    changed.attributes.insert(
        "title".to_owned(),
        v1::AttributeValues {
            values: vec![format!("Engineer {version}")],
        },
    );
    v1::PushDeltaRequest {
        job_id: job_id.to_owned(),
        idempotency_key: String::new(),
        upserts: vec![changed],
        deleted_anchors: Vec::new(),
    }
}
