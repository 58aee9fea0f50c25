//! Export files as sources: an LDIF and a JSON import land the same target as the push.

use syncguard_e2e::Suite;
use syncguard_e2e::directory::push_snapshot;
use syncguard_proto::v1::{self, CycleState, FileFormat, import_file_request::Part, job_source};
use tonic::Code;

use crate::cycle::live_objects;
use crate::jobs::push_job;

const LDIF: &str = "version: 1

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: uid=ada,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
entryUUID: 0b6f7c1a-0000-4000-8000-000000000001
cn: Ada Lovelace
mail: ada@example.org
title: Analyst

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
entryUUID: 0b6f7c1a-0000-4000-8000-000000000002
cn:: Qm9iIETDvHJy
mail: bob@example.org
nsAccountLock: true

dn: cn=staff,ou=groups,dc=example,dc=org
objectClass: groupOfNames
entryUUID: 0b6f7c1a-0000-4000-8000-000000000003
cn: staff
member: uid=ada,ou=people,dc=example,dc=org
member: uid=bob,ou=people,dc=example,dc=org
";

const JSON: &str = r#"{"objects": [
  {"anchor": "0b6f7c1a-0000-4000-8000-000000000001", "type": "user",
   "dn": "uid=ada,ou=people,dc=example,dc=org",
   "attributes": {"objectClass": "inetOrgPerson", "cn": "Ada Lovelace", "mail": "ada@example.org", "title": "Analyst"}},
  {"anchor": "0b6f7c1a-0000-4000-8000-000000000002", "type": "user", "enabled": false,
   "dn": "uid=bob,ou=people,dc=example,dc=org",
   "attributes": {"objectClass": ["inetOrgPerson"], "cn": "Bob Dürr", "mail": "bob@example.org", "nsAccountLock": "true"}},
  {"anchor": "0b6f7c1a-0000-4000-8000-000000000003", "type": "group",
   "dn": "cn=staff,ou=groups,dc=example,dc=org",
   "attributes": {"objectClass": "groupOfNames", "cn": "staff"},
   "members": ["0b6f7c1a-0000-4000-8000-000000000001", "0b6f7c1a-0000-4000-8000-000000000002"]}
]}"#;

fn import_messages(
    job_id: &str,
    format: FileFormat,
    name: &str,
    text: &str,
) -> Vec<v1::ImportFileRequest> {
    let mut messages = vec![v1::ImportFileRequest {
        part: Some(Part::Header(v1::ImportFileHeader {
            job_id: job_id.into(),
            format: format as i32,
            file_name: name.into(),
            anchor_attribute: String::new(),
        })),
    }];
    // Small chunks, split mid-line and mid-character, as a streaming client would send them.
    for chunk in text.as_bytes().chunks(37) {
        messages.push(v1::ImportFileRequest {
            part: Some(Part::Chunk(chunk.to_vec())),
        });
    }
    messages
}

fn comparable(objects: std::collections::BTreeMap<String, v1::DirectoryObject>) -> Vec<String> {
    objects
        .into_values()
        .map(|object| {
            let attributes: std::collections::BTreeMap<_, _> = object
                .attributes
                .into_iter()
                .map(|(k, v)| (k, v.values))
                .collect();
            format!(
                "{} {} {} {} {:?} {:?}",
                object.anchor,
                object.object_type,
                object.distinguished_name,
                object.enabled,
                attributes,
                object.member_anchors
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldif_json_and_push_produce_the_same_target() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let mut retention = suite.retention(Some(&suite.tokens.reader));
    let mut jobs = Vec::new();
    for name in ["ldif", "json", "push"] {
        let job = ingest
            .create_job(v1::CreateJobRequest {
                spec: Some(push_job(name)),
            })
            .await?
            .into_inner();
        jobs.push(job.job_id);
    }
    let ldif = ingest
        .import_file(tokio_stream::iter(import_messages(
            &jobs[0],
            FileFormat::Ldif,
            "people.ldif",
            LDIF,
        )))
        .await?
        .into_inner();
    assert_eq!(
        (ldif.objects_received, ldif.cycle_state),
        (3, CycleState::Completed as i32)
    );
    let json = ingest
        .import_file(tokio_stream::iter(import_messages(
            &jobs[1],
            FileFormat::Json,
            "people.json",
            JSON,
        )))
        .await?
        .into_inner();
    assert_eq!(json.objects_received, 3);

    // The push sends what the JSON says, as a backend would.
    let parsed = syncguard_ingest::export_file::parse_json("people.json", JSON)?;
    push_snapshot(&mut ingest, &jobs[2], &parsed.objects).await?;

    let from_ldif = comparable(live_objects(&mut retention, &jobs[0]).await?);
    let from_json = comparable(live_objects(&mut retention, &jobs[1]).await?);
    let from_push = comparable(live_objects(&mut retention, &jobs[2]).await?);
    assert_eq!(from_ldif.len(), 3);
    assert_eq!(from_ldif, from_json);
    assert_eq!(from_json, from_push);
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_refused_naming_file_line_and_field() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest {
            spec: Some(push_job("imports")),
        })
        .await?
        .into_inner()
        .job_id;
    let broken = LDIF.replace("entryUUID: 0b6f7c1a-0000-4000-8000-000000000002\n", "");
    let error = ingest
        .import_file(tokio_stream::iter(import_messages(
            &job_id,
            FileFormat::Ldif,
            "people.ldif",
            &broken,
        )))
        .await
        .expect_err("an entry without an anchor is refused");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(
        error.message(),
        "people.ldif: line 14: entryUUID or objectGUID: entry \"uid=bob,ou=people,dc=example,dc=org\" has no anchor"
    );
    let error = ingest
        .import_file(tokio_stream::iter(import_messages(
            &job_id,
            FileFormat::Json,
            "hr.json",
            r#"[{"anchor": "E-1", "type": "user"}, {"anchor": "E-2", "type": "robot"}]"#,
        )))
        .await
        .expect_err("an unknown type is refused");
    assert_eq!(
        error.message(),
        "hr.json: record 2: type: \"robot\" is not \"user\" or \"group\""
    );
    let cycles = suite
        .stager(Some(&suite.tokens.reader))
        .list_cycles(v1::ListCyclesRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .cycles;
    assert!(cycles.is_empty());
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_source_is_read_when_its_cycle_is_triggered() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    // The export lives in ingest's import directory; the job names it relative to it.
    let path = suite.import_dir().join("nightly.ldif");
    std::fs::write(&path, LDIF)?;
    let mut spec = push_job("nightly export");
    spec.source = Some(v1::JobSource {
        kind: Some(job_source::Kind::File(v1::FileSource {
            path: "nightly.ldif".into(),
            format: FileFormat::Ldif as i32,
            anchor_attribute: String::new(),
        })),
    });
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .job_id;
    let triggered = ingest
        .trigger_cycle(v1::TriggerCycleRequest {
            job_id: job_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(triggered.cycle_state, CycleState::Completed as i32);
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert_eq!(live.len(), 3);

    // The file disappears: the read fails, nothing is staged, and the job shows why.
    std::fs::remove_file(&path)?;
    let error = ingest
        .trigger_cycle(v1::TriggerCycleRequest {
            job_id: job_id.clone(),
        })
        .await
        .expect_err("a missing file is not an empty directory");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(
        error.message().contains("cannot be opened"),
        "{}",
        error.message()
    );
    let live = live_objects(&mut suite.retention(Some(&suite.tokens.reader)), &job_id).await?;
    assert_eq!(live.len(), 3, "nothing was deleted");
    suite.stop().await
}
