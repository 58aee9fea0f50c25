//! The malformed-input corpus: over two hundred requests no well-behaved client sends (bytes
//! that are no protobuf, truncated messages, unknown enum values, 1 MB strings, NUL bytes,
//! 100,000 attributes, oversized messages, broken LDIF base64, deeply nested JSON, duplicate
//! anchors, ids that are no ids). Each must answer a clear code whose message names what
//! was wrong; afterwards every service is SERVING, nothing panicked, and no table gained or
//! lost a row.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::Connection as _;
use syncguard_bootstrap::{METHOD_ACCESS, ServiceName};
use syncguard_domain::{Access, Role};
use syncguard_e2e::directory::user;
use syncguard_e2e::raw::call;
use syncguard_e2e::{Suite, TestDatabase};
use syncguard_proto::v1::{self, import_file_request, push_snapshot_request::Part};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::jobs::push_job;
use crate::roles::serving;

/// One case's verdict.
struct Case {
    category: &'static str,
    name: String,
    code: Code,
    message: String,
    problem: Option<String>,
}

/// Collects cases and what went wrong with them.
#[derive(Default)]
struct Corpus {
    cases: Vec<Case>,
}

impl Corpus {
    /// Records `answer`: it must be one of `codes`, and its message must mention `mention`.
    fn expect<T>(
        &mut self,
        category: &'static str,
        name: impl Into<String>,
        answer: Result<T, Status>,
        codes: &[Code],
        mention: &str,
    ) {
        let name = name.into();
        let (code, message) = match answer {
            Ok(_) => (Code::Ok, String::new()),
            Err(status) => (status.code(), status.message().to_owned()),
        };
        let problem = if !codes.contains(&code) {
            Some(format!(
                "answered {code:?} ({message}), expected one of {codes:?}"
            ))
        } else if !message.to_lowercase().contains(&mention.to_lowercase()) {
            Some(format!(
                "the message does not mention {mention:?}: {message}"
            ))
        } else if message.len() > 2_000 {
            Some(format!(
                "the message is {} bytes long: it quotes too much",
                message.len()
            ))
        } else {
            None
        };
        self.cases.push(Case {
            category,
            name,
            code,
            message,
            problem,
        });
    }
}

/// Rows of every table, to show the corpus changed nothing.
async fn row_counts(database: &TestDatabase) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut conn = database.connect().await?;
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut counts = BTreeMap::new();
    for (table,) in tables {
        let (count,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{table}\""
        )))
        .fetch_one(&mut conn)
        .await?;
        counts.insert(table, count);
    }
    conn.close().await?;
    Ok(counts)
}

/// A token whose role may call a method that needs `access`.
fn token_for(tokens: &syncguard_e2e::Tokens, access: Access) -> &str {
    if Role::Service.grants(access) && !Role::Admin.grants(access) {
        &tokens.service
    } else {
        &tokens.admin
    }
}

/// Bodies that are not protobuf, or not the method's message: every one must fail to decode.
fn undecodable_bodies(seed: u64) -> Vec<(&'static str, Vec<u8>)> {
    let mut state = seed | 1;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Wire type 7 in the first tag byte makes it certain not to decode.
                (state & 0xff) as u8
            })
            .collect()
    };
    let mut noise = random(64);
    noise[0] = 0x0f;
    vec![
        ("random bytes", noise),
        // Field 1, length-delimited, announces 100 bytes and carries 3.
        ("truncated message", vec![0x0a, 0x64, b'a', b'b', b'c']),
        // Field 1 with wire type 7, which does not exist.
        ("invalid wire type", vec![0x0f, 0x00]),
        // A varint of eleven continuation bytes.
        ("varint overflow", {
            let mut bytes = vec![0x08];
            bytes.extend([0xff; 11]);
            bytes
        }),
        // Field number 0 is reserved.
        ("field number zero", vec![0x02, 0x00]),
    ]
}

/// Counts panics anywhere in this test process (the services run in it).
fn count_panics() -> Arc<AtomicUsize> {
    let panics = Arc::new(AtomicUsize::new(0));
    let counter = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counter.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    panics
}

fn object_with(anchor: &str, attributes: HashMap<String, v1::AttributeValues>) -> v1::SourceObject {
    v1::SourceObject {
        anchor: anchor.to_owned(),
        object_type: v1::ObjectType::User as i32,
        attributes,
        enabled: true,
        ..Default::default()
    }
}

fn snapshot(
    job_id: &str,
    objects: Vec<v1::SourceObject>,
    total: u64,
) -> Vec<v1::PushSnapshotRequest> {
    vec![
        v1::PushSnapshotRequest {
            part: Some(Part::Header(v1::SnapshotHeader {
                job_id: job_id.to_owned(),
                idempotency_key: String::new(),
            })),
        },
        v1::PushSnapshotRequest {
            part: Some(Part::Batch(v1::ObjectBatch { objects })),
        },
        v1::PushSnapshotRequest {
            part: Some(Part::End(v1::SnapshotEnd {
                total_objects: total,
            })),
        },
    ]
}

fn import(job_id: &str, format: v1::FileFormat, content: Vec<u8>) -> Vec<v1::ImportFileRequest> {
    vec![
        v1::ImportFileRequest {
            part: Some(import_file_request::Part::Header(v1::ImportFileHeader {
                job_id: job_id.to_owned(),
                format: format as i32,
                file_name: "corpus".into(),
                anchor_attribute: String::new(),
            })),
        },
        v1::ImportFileRequest {
            part: Some(import_file_request::Part::Chunk(content)),
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_malformed_requests_get_clear_answers_and_change_nothing() -> anyhow::Result<()>
{
    let panics = count_panics();
    let suite = Suite::start().await?;
    let tokens = suite.tokens.clone();
    let job = suite
        .ingest(Some(&tokens.operator))
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("corpus")),
        })
        .await?
        .into_inner()
        .job_id;
    let before = row_counts(suite.database()).await?;
    let mut corpus = Corpus::default();

    // 1. Bytes that are no message of the method, on every method.
    for (method, access) in METHOD_ACCESS {
        for (what, body) in undecodable_bodies(0x5eed ^ method.len() as u64) {
            let answer = call(
                suite.channel(serving(method)),
                method,
                Some(token_for(&tokens, *access)),
                vec![body],
            )
            .await;
            corpus.expect(
                "undecodable",
                format!("{method}: {what}"),
                answer,
                &[Code::InvalidArgument],
                "not a valid",
            );
        }
    }

    // 2. A message over the size limit (16 MiB by default).
    let oversized = call(
        suite.channel(ServiceName::Ingest),
        "syncguard.v1.IngestService/CreateJob",
        Some(&tokens.operator),
        vec![vec![0x0a; 17 * 1024 * 1024]],
    )
    .await;
    corpus.expect(
        "size",
        "a 17 MiB CreateJob",
        oversized,
        &[
            Code::OutOfRange,
            Code::ResourceExhausted,
            Code::InvalidArgument,
        ],
        "message",
    );
    let oversized_stream = call(
        suite.channel(ServiceName::Ingest),
        "syncguard.v1.IngestService/PushSnapshot",
        Some(&tokens.operator),
        vec![vec![0x12; 17 * 1024 * 1024]],
    )
    .await;
    corpus.expect(
        "size",
        "a 17 MiB push batch",
        oversized_stream,
        &[
            Code::OutOfRange,
            Code::ResourceExhausted,
            Code::InvalidArgument,
        ],
        "message",
    );

    // 3. Ids that are no ids, for every method that takes one.
    let mut ingest = suite.ingest(Some(&tokens.admin));
    let mut stager = suite.stager(Some(&tokens.admin));
    let mut gate = suite.gate(Some(&tokens.admin));
    let mut retention = suite.retention(Some(&tokens.admin));
    let mut notifier = suite.notifier(Some(&tokens.admin));
    for bad in [
        "not-a-uuid",
        "",
        "00000000-0000-0000-0000-00000000000g",
        "' OR 1=1 --",
        "\0",
    ] {
        let id = bad.to_owned();
        let category = "ids";
        corpus.expect(
            category,
            format!("GetJob {bad:?}"),
            ingest
                .get_job(v1::GetJobRequest { job_id: id.clone() })
                .await,
            &[Code::InvalidArgument],
            "job_id",
        );
        corpus.expect(
            category,
            format!("DeleteJob {bad:?}"),
            ingest
                .delete_job(v1::DeleteJobRequest { job_id: id.clone() })
                .await,
            &[Code::InvalidArgument],
            "job_id",
        );
        corpus.expect(
            category,
            format!("TriggerCycle {bad:?}"),
            ingest
                .trigger_cycle(v1::TriggerCycleRequest { job_id: id.clone() })
                .await,
            &[Code::InvalidArgument],
            "job_id",
        );
        corpus.expect(
            category,
            format!("GetCycle {bad:?}"),
            stager
                .get_cycle(v1::GetCycleRequest {
                    cycle_id: id.clone(),
                })
                .await,
            &[Code::InvalidArgument],
            "cycle_id",
        );
        corpus.expect(
            category,
            format!("ListStagedActions {bad:?}"),
            stager
                .list_staged_actions(v1::ListStagedActionsRequest {
                    cycle_id: id.clone(),
                    ..Default::default()
                })
                .await,
            &[Code::InvalidArgument],
            "cycle_id",
        );
        corpus.expect(
            category,
            format!("PreviewCycle {bad:?}"),
            stager
                .preview_cycle(v1::PreviewCycleRequest {
                    job_id: id.clone(),
                    ..Default::default()
                })
                .await,
            &[Code::InvalidArgument],
            "job_id",
        );
        corpus.expect(
            category,
            format!("GetProtection {bad:?}"),
            gate.get_protection(v1::GetProtectionRequest { job_id: id.clone() })
                .await,
            &[Code::InvalidArgument],
            "job_id",
        );
        corpus.expect(
            category,
            format!("AllowDeletes {bad:?}"),
            gate.allow_deletes(v1::AllowDeletesRequest {
                quarantine_id: id.clone(),
                digest: "x".into(),
                reason: "corpus".into(),
                anchors: vec![],
            })
            .await,
            &[Code::InvalidArgument],
            "quarantine_id",
        );
        corpus.expect(
            category,
            format!("RejectDeletes {bad:?}"),
            gate.reject_deletes(v1::RejectDeletesRequest {
                quarantine_id: id.clone(),
                digest: "x".into(),
                reason: "corpus".into(),
                anchors: vec![],
            })
            .await,
            &[Code::InvalidArgument],
            "quarantine_id",
        );
        corpus.expect(
            category,
            format!("RestartJob {bad:?}"),
            gate.restart_job(v1::RestartJobRequest {
                job_id: id.clone(),
                reason: "corpus".into(),
            })
            .await,
            &[Code::InvalidArgument],
            "job_id",
        );
        corpus.expect(
            category,
            format!("GetObject {bad:?}"),
            retention
                .get_object(v1::GetObjectRequest {
                    object: Some(v1::ObjectRef {
                        by: Some(v1::object_ref::By::ObjectId(id.clone())),
                    }),
                    ..Default::default()
                })
                .await,
            &[Code::InvalidArgument],
            "object_id",
        );
        corpus.expect(
            category,
            format!("RestoreObject {bad:?}"),
            retention
                .restore_object(v1::RestoreObjectRequest {
                    object: Some(v1::ObjectRef {
                        by: Some(v1::object_ref::By::ObjectId(id.clone())),
                    }),
                    reason: "corpus".into(),
                })
                .await,
            &[Code::InvalidArgument],
            "object_id",
        );
        corpus.expect(
            category,
            format!("GetNotification {bad:?}"),
            notifier
                .get_notification(v1::GetNotificationRequest {
                    notification_id: id.clone(),
                })
                .await,
            &[Code::InvalidArgument],
            "notification_id",
        );
    }

    // 4. Objects no directory holds: unknown enums, huge and NUL-laden strings, too many
    // attributes, duplicate anchors, a wrong count.
    let mut operator = suite.ingest(Some(&tokens.operator));
    let huge = "x".repeat(1024 * 1024);
    let mut cases: Vec<(&str, Vec<v1::SourceObject>, u64, &str)> = Vec::new();
    let mut unknown_type = user(1);
    unknown_type.object_type = 99;
    cases.push((
        "an unknown object type",
        vec![unknown_type],
        1,
        "object_type",
    ));
    let mut unspecified_type = user(1);
    unspecified_type.object_type = 0;
    cases.push((
        "an unspecified object type",
        vec![unspecified_type],
        1,
        "object_type",
    ));
    let mut huge_anchor = user(1);
    huge_anchor.anchor = huge.clone();
    cases.push(("a 1 MiB anchor", vec![huge_anchor], 1, "anchor"));
    let mut nul_anchor = user(1);
    nul_anchor.anchor = "u-1\0".into();
    cases.push(("a NUL in the anchor", vec![nul_anchor], 1, "anchor"));
    let mut empty_anchor = user(1);
    empty_anchor.anchor = String::new();
    cases.push(("an empty anchor", vec![empty_anchor], 1, "anchor"));
    let mut nul_dn = user(1);
    nul_dn.distinguished_name = "uid=a\0,dc=example".into();
    cases.push(("a NUL in the DN", vec![nul_dn], 1, "distinguished_name"));
    let mut huge_dn = user(1);
    huge_dn.distinguished_name = huge.clone();
    cases.push(("a 1 MiB DN", vec![huge_dn], 1, "distinguished_name"));
    let value = |text: &str| v1::AttributeValues {
        values: vec![text.to_owned()],
    };
    cases.push((
        "a NUL in an attribute name",
        vec![object_with(
            "u-1",
            HashMap::from([("c\0n".to_owned(), value("Ada"))]),
        )],
        1,
        "attributes",
    ));
    cases.push((
        "a NUL in an attribute value",
        vec![object_with(
            "u-1",
            HashMap::from([("cn".to_owned(), value("Ada\0"))]),
        )],
        1,
        "attributes",
    ));
    cases.push((
        "a 1 MiB attribute name",
        vec![object_with(
            "u-1",
            HashMap::from([(huge.clone(), value("Ada"))]),
        )],
        1,
        "attributes",
    ));
    cases.push((
        "an empty attribute name",
        vec![object_with(
            "u-1",
            HashMap::from([(String::new(), value("Ada"))]),
        )],
        1,
        "attributes",
    ));
    cases.push((
        "100,000 attributes",
        vec![object_with(
            "u-1",
            (0..100_000)
                .map(|n| (format!("a{n}"), value("v")))
                .collect(),
        )],
        1,
        "attributes",
    ));
    cases.push((
        "100,000 values of one attribute",
        vec![object_with(
            "u-1",
            HashMap::from([(
                "mail".to_owned(),
                v1::AttributeValues {
                    values: (0..100_000).map(|n| format!("{n}@example.org")).collect(),
                },
            )]),
        )],
        1,
        "attributes",
    ));
    let mut member_nul = user(1);
    member_nul.object_type = v1::ObjectType::Group as i32;
    member_nul.member_anchors = vec!["m\0".into()];
    cases.push((
        "a NUL in a member anchor",
        vec![member_nul],
        1,
        "member_anchors",
    ));
    cases.push((
        "a duplicate anchor",
        vec![user(1), user(2), user(1)],
        3,
        "anchor",
    ));
    cases.push((
        "an end marker with the wrong count",
        vec![user(1), user(2)],
        5,
        "total_objects",
    ));
    for (name, objects, total, mention) in cases {
        let answer = operator
            .push_snapshot(tokio_stream::iter(snapshot(&job, objects.clone(), total)))
            .await;
        corpus.expect(
            "objects",
            format!("PushSnapshot: {name}"),
            answer,
            &[Code::InvalidArgument],
            mention,
        );
        if total as usize == objects.len() {
            let answer = operator
                .push_delta(v1::PushDeltaRequest {
                    job_id: job.clone(),
                    idempotency_key: String::new(),
                    upserts: objects,
                    deleted_anchors: vec![],
                })
                .await;
            corpus.expect(
                "objects",
                format!("PushDelta: {name}"),
                answer,
                &[Code::InvalidArgument],
                mention,
            );
        }
    }

    // 5. Streams in the wrong shape.
    let header = |job_id: &str| v1::PushSnapshotRequest {
        part: Some(Part::Header(v1::SnapshotHeader {
            job_id: job_id.to_owned(),
            idempotency_key: String::new(),
        })),
    };
    let batch = v1::PushSnapshotRequest {
        part: Some(Part::Batch(v1::ObjectBatch {
            objects: vec![user(1)],
        })),
    };
    let end = |n: u64| v1::PushSnapshotRequest {
        part: Some(Part::End(v1::SnapshotEnd { total_objects: n })),
    };
    let shapes: Vec<(&str, Vec<v1::PushSnapshotRequest>, &[Code], &str)> = vec![
        (
            "an empty stream",
            vec![],
            &[Code::InvalidArgument, Code::Aborted],
            "header",
        ),
        (
            "a batch before the header",
            vec![batch.clone(), end(1)],
            &[Code::InvalidArgument],
            "header",
        ),
        (
            "two headers",
            vec![header(&job), header(&job), end(0)],
            &[Code::InvalidArgument],
            "header",
        ),
        (
            "no end marker",
            vec![header(&job), batch.clone()],
            &[Code::InvalidArgument, Code::Aborted],
            "end",
        ),
        (
            "a message with no part",
            vec![v1::PushSnapshotRequest { part: None }],
            &[Code::InvalidArgument],
            "header",
        ),
        (
            "a header for a job that is no id",
            vec![header("nope"), end(0)],
            &[Code::InvalidArgument],
            "job_id",
        ),
        (
            "something after the end marker",
            vec![header(&job), batch.clone(), end(1), batch.clone()],
            &[Code::InvalidArgument],
            "end",
        ),
    ];
    for (name, messages, codes, mention) in shapes {
        let answer = operator.push_snapshot(tokio_stream::iter(messages)).await;
        corpus.expect(
            "streams",
            format!("PushSnapshot: {name}"),
            answer,
            codes,
            mention,
        );
    }

    // 6. Export files that are not what they claim.
    let nested_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let files: Vec<(&str, v1::FileFormat, Vec<u8>, &str)> = vec![
        ("LDIF with broken base64", v1::FileFormat::Ldif, b"dn: uid=a,dc=example,dc=org\nobjectClass: inetOrgPerson\nentryUUID: 1\ncn:: !!!not-base64!!!\n".to_vec(), "base64"),
        ("LDIF base64 DN that is no UTF-8 text", v1::FileFormat::Ldif, b"dn:: //79\nobjectClass: inetOrgPerson\nentryUUID: 1\n".to_vec(), "dn"),
        ("LDIF starting with a continuation line", v1::FileFormat::Ldif, b" continued\ndn: uid=a,dc=example,dc=org\n".to_vec(), "line 1"),
        ("LDIF entry without dn", v1::FileFormat::Ldif, b"objectClass: inetOrgPerson\nentryUUID: 1\n".to_vec(), "dn"),
        ("LDIF line without a colon", v1::FileFormat::Ldif, b"dn: uid=a,dc=example,dc=org\njust words\n".to_vec(), "line 2"),
        ("LDIF with a duplicate anchor", v1::FileFormat::Ldif, b"dn: uid=a,dc=example,dc=org\nobjectClass: inetOrgPerson\nentryUUID: 1\n\ndn: uid=b,dc=example,dc=org\nobjectClass: inetOrgPerson\nentryUUID: 1\n".to_vec(), "1"),
        ("LDIF with a NUL in a value", v1::FileFormat::Ldif, b"dn: uid=a,dc=example,dc=org\nobjectClass: inetOrgPerson\nentryUUID: 1\ncn: A\0da\n".to_vec(), "cn"),
        ("LDIF that is no UTF-8", v1::FileFormat::Ldif, b"dn: uid=\xff\xfe,dc=example\n".to_vec(), "utf-8"),
        ("LDIF entry without an anchor", v1::FileFormat::Ldif, b"dn: uid=a,dc=example,dc=org\nobjectClass: inetOrgPerson\ncn: A\n".to_vec(), "entryuuid"),
        ("JSON nested 100,000 deep", v1::FileFormat::Json, nested_json.into_bytes(), "json"),
        ("JSON records that are numbers", v1::FileFormat::Json, b"[1, 2, 3]".to_vec(), "record 1"),
        ("JSON objects of the wrong type", v1::FileFormat::Json, br#"{"objects": 5}"#.to_vec(), "objects"),
        ("JSON with a numeric anchor", v1::FileFormat::Json, br#"{"objects": [{"anchor": 5, "type": "user"}]}"#.to_vec(), "anchor"),
        ("JSON with an unknown type", v1::FileFormat::Json, br#"{"objects": [{"anchor": "a", "type": "robot"}]}"#.to_vec(), "type"),
        ("JSON with a duplicate anchor", v1::FileFormat::Json, br#"{"objects": [{"anchor": "a", "type": "user"}, {"anchor": "a", "type": "user"}]}"#.to_vec(), "a"),
        ("JSON cut short", v1::FileFormat::Json, br#"{"objects": [{"anchor": "a", "ty"#.to_vec(), "json"),
        ("JSON that is no UTF-8", v1::FileFormat::Json, b"{\"objects\": [{\"anchor\": \"\xff\"}]}".to_vec(), "utf-8"),
        ("JSON with a NUL in an anchor", v1::FileFormat::Json, br#"{"objects": [{"anchor": "a\u0000", "type": "user"}]}"#.to_vec(), "anchor"),
        ("an empty JSON file", v1::FileFormat::Json, Vec::new(), "json"),
        ("a file of an unspecified format", v1::FileFormat::Unspecified, b"{}".to_vec(), "format"),
    ];
    for (name, format, content, mention) in files {
        let answer = operator
            .import_file(tokio_stream::iter(import(&job, format, content)))
            .await;
        corpus.expect(
            "files",
            format!("ImportFile: {name}"),
            answer,
            &[Code::InvalidArgument],
            mention,
        );
    }

    // 7. Jobs, rules and decisions with values no one means.
    let mut admin_ingest = suite.ingest(Some(&tokens.admin));
    let spec_cases: Vec<(&str, v1::JobSpec, &str)> = vec![
        (
            "a 1 MiB name",
            v1::JobSpec {
                name: huge.clone(),
                ..push_job("x")
            },
            "name",
        ),
        (
            "a NUL in the name",
            v1::JobSpec {
                name: "a\0b".into(),
                ..push_job("x")
            },
            "name",
        ),
        (
            "an unknown deprovision mode",
            v1::JobSpec {
                deprovision_mode: 42,
                ..push_job("x")
            },
            "deprovision_mode",
        ),
        (
            "a recipient with a NUL",
            v1::JobSpec {
                notification_recipients: vec!["a\0@example.org".into()],
                ..push_job("x")
            },
            "notification_recipients",
        ),
        (
            "a recipient that is no address",
            v1::JobSpec {
                notification_recipients: vec!["nobody".into()],
                ..push_job("x")
            },
            "notification_recipients",
        ),
        (
            "an unknown action kind in a rule",
            v1::JobSpec {
                protection_rules: vec![v1::ProtectionRule {
                    counted_actions: vec![77],
                    max_count: Some(1),
                    ..Default::default()
                }],
                ..push_job("x")
            },
            "counted_actions",
        ),
        (
            "an unknown object type in a rule",
            v1::JobSpec {
                protection_rules: vec![v1::ProtectionRule {
                    object_type: 77,
                    max_count: Some(1),
                    ..Default::default()
                }],
                ..push_job("x")
            },
            "object_type",
        ),
        (
            "a negative percentage",
            v1::JobSpec {
                protection_rules: vec![v1::ProtectionRule {
                    max_percent: Some(-5.0),
                    ..Default::default()
                }],
                ..push_job("x")
            },
            "max_percent",
        ),
        (
            "a NaN percentage",
            v1::JobSpec {
                protection_rules: vec![v1::ProtectionRule {
                    max_percent: Some(f64::NAN),
                    ..Default::default()
                }],
                ..push_job("x")
            },
            "max_percent",
        ),
        (
            "three required approvals",
            v1::JobSpec {
                required_approvals: 3,
                ..push_job("x")
            },
            "required_approvals",
        ),
        (
            "a retention of 10,000 days",
            v1::JobSpec {
                retention_days: 10_000,
                ..push_job("x")
            },
            "retention_days",
        ),
        (
            "a scope base DN with a NUL",
            v1::JobSpec {
                scope: Some(v1::ScopeRules {
                    base_dns: vec!["dc=a\0".into()],
                    ..Default::default()
                }),
                ..push_job("x")
            },
            "scope",
        ),
        (
            "no source",
            v1::JobSpec {
                source: None,
                ..push_job("x")
            },
            "source",
        ),
        (
            "an LDAP URL that is no URL",
            v1::JobSpec {
                source: Some(v1::JobSource {
                    kind: Some(v1::job_source::Kind::Ldap(v1::LdapSource {
                        url: "not a url\0".into(),
                        password_secret: "x".into(),
                        base_dn: "dc=x".into(),
                        ..Default::default()
                    })),
                }),
                ..push_job("x")
            },
            "url",
        ),
        (
            "an LDAP filter with a NUL",
            v1::JobSpec {
                source: Some(v1::JobSource {
                    kind: Some(v1::job_source::Kind::Ldap(v1::LdapSource {
                        url: "ldap://127.0.0.1:9".into(),
                        password_secret: "x".into(),
                        base_dn: "dc=x".into(),
                        filter: "(cn=\0)".into(),
                        ..Default::default()
                    })),
                }),
                ..push_job("x")
            },
            "ldap",
        ),
        (
            "a file source path with a NUL",
            v1::JobSpec {
                source: Some(v1::JobSource {
                    kind: Some(v1::job_source::Kind::File(v1::FileSource {
                        path: "a\0b".into(),
                        format: v1::FileFormat::Json as i32,
                        ..Default::default()
                    })),
                }),
                ..push_job("x")
            },
            "path",
        ),
        (
            "a file source of an unknown format",
            v1::JobSpec {
                source: Some(v1::JobSource {
                    kind: Some(v1::job_source::Kind::File(v1::FileSource {
                        path: "a.json".into(),
                        format: 9,
                        ..Default::default()
                    })),
                }),
                ..push_job("x")
            },
            "format",
        ),
    ];
    for (name, spec, mention) in spec_cases {
        let answer = admin_ingest
            .create_job(v1::CreateJobRequest { spec: Some(spec) })
            .await;
        corpus.expect(
            "jobs",
            format!("CreateJob: {name}"),
            answer,
            &[Code::InvalidArgument],
            mention,
        );
    }
    let mut admin_gate = suite.gate(Some(&tokens.admin));
    corpus.expect(
        "jobs",
        "SetProtection: an unknown action kind",
        admin_gate
            .set_protection(v1::SetProtectionRequest {
                job_id: job.clone(),
                enabled: true,
                rules: vec![v1::ProtectionRule {
                    counted_actions: vec![1234],
                    max_count: Some(5),
                    ..Default::default()
                }],
                reason: "corpus".into(),
            })
            .await,
        &[Code::InvalidArgument],
        "counted_actions",
    );
    corpus.expect(
        "jobs",
        "SetProtection: a 1 MiB reason",
        admin_gate
            .set_protection(v1::SetProtectionRequest {
                job_id: job.clone(),
                enabled: true,
                rules: vec![],
                reason: huge.clone(),
            })
            .await,
        &[Code::InvalidArgument],
        "reason",
    );
    corpus.expect(
        "jobs",
        "UpdateJob: a NUL in the reason",
        admin_ingest
            .update_job(v1::UpdateJobRequest {
                job_id: job.clone(),
                spec: Some(push_job("corpus")),
                reason: "because\0".into(),
            })
            .await,
        &[Code::InvalidArgument],
        "reason",
    );
    corpus.expect(
        "jobs",
        "QueryProvisioningLogs: an unknown action",
        stager
            .query_provisioning_logs(v1::QueryProvisioningLogsRequest {
                job_id: job.clone(),
                action: 999,
                ..Default::default()
            })
            .await,
        &[Code::InvalidArgument],
        "action",
    );
    corpus.expect(
        "jobs",
        "ListCycles: an unknown state",
        stager
            .list_cycles(v1::ListCyclesRequest {
                job_id: job.clone(),
                states: vec![999],
                ..Default::default()
            })
            .await,
        &[Code::InvalidArgument],
        "states",
    );
    corpus.expect(
        "jobs",
        "ListObjects: a page token that is no token",
        retention
            .list_objects(v1::ListObjectsRequest {
                job_id: job.clone(),
                page: Some(v1::PageRequest {
                    page_size: 10,
                    page_token: "\0garbage".into(),
                }),
                ..Default::default()
            })
            .await,
        &[Code::InvalidArgument],
        "page",
    );

    // Afterwards: every service serves, nothing panicked, nothing was written.
    for service in ServiceName::ALL {
        let status = HealthClient::new(suite.channel(service))
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?
            .into_inner()
            .status;
        assert_eq!(
            status,
            1,
            "{} is not SERVING after the corpus",
            service.as_str()
        );
    }
    let after = row_counts(suite.database()).await?;
    let mut by_category: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for case in &corpus.cases {
        let entry = by_category.entry(case.category).or_default();
        entry.0 += 1;
        entry.1 += usize::from(case.problem.is_none());
    }
    println!("{:<12} {:>6} {:>6}", "category", "cases", "clear");
    for (category, (cases, clear)) in &by_category {
        println!("{category:<12} {cases:>6} {clear:>6}");
    }
    let problems: Vec<String> = corpus
        .cases
        .iter()
        .filter_map(|case| {
            case.problem
                .as_ref()
                .map(|problem| format!("[{}] {}: {problem}", case.category, case.name))
        })
        .collect();
    let sample: Vec<String> = corpus
        .cases
        .iter()
        .step_by(37)
        .map(|case| format!("{} -> {:?}: {}", case.name, case.code, case.message))
        .collect();
    println!("sample answers:\n{}", sample.join("\n"));
    assert!(
        corpus.cases.len() >= 200,
        "only {} cases",
        corpus.cases.len()
    );
    assert!(
        problems.is_empty(),
        "{} of {} cases:\n{}",
        problems.len(),
        corpus.cases.len(),
        problems.join("\n")
    );
    assert_eq!(panics.load(Ordering::SeqCst), 0, "something panicked");
    assert_eq!(before, after, "the corpus changed rows");
    suite.stop().await
}
