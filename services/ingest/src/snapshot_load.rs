//! Landing a push in Postgres: one transaction, rows streamed in with `COPY` batch by
//! batch, committed only when the source said it sent everything, together with the cycle it
//! becomes (its id is fixed here) and its place in the job's order of receipt. A broken,
//! cancelled or invalid push rolls back and leaves nothing: no rows, no cycle.

use sqlx::postgres::PgDatabaseError;
use sqlx::{PgPool, Postgres, Transaction};
use syncguard_domain::{FieldError, JobId, SourceAnchor, shortened};
use syncguard_proto::v1;
use syncguard_store::StoreError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::copy_binary;
use crate::error::IngestError;
use crate::source_object::canonicalize;

/// Rows are handed to the copier in chunks of about this many bytes.
const COPY_BATCH_BYTES: usize = 1024 * 1024;
/// Chunks queued for the copier at most: bounds memory while Postgres catches up.
const COPY_CHUNKS_IN_FLIGHT: usize = 4;
/// Pushes up to this many rows land with one `INSERT ... SELECT FROM unnest(...)` instead of
/// `COPY`: a COPY ends with a small `CopyDone` written right behind its data, which the
/// kernel holds until the server's delayed ACK (about 40 ms), since the driver's socket has
/// no TCP_NODELAY. For a one-object delta that wait was most of its latency.
const SMALL_PUSH_ROWS: usize = 1000;

/// A row held back while the push may still be small.
enum PendingRow {
    Object(crate::source_object::CanonicalObject),
    Removal(SourceAnchor),
}

/// Where a snapshot came from.
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// PushSnapshot / PushDelta.
    Push,
    /// ImportFile.
    Import,
    /// A file source read by ingest.
    File,
    /// An LDAP source read by ingest.
    Ldap,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Push => "push",
            Origin::Import => "import",
            Origin::File => "file",
            Origin::Ldap => "ldap",
        }
    }
}

/// A snapshot being written; dropping it without [`SnapshotWriter::commit`] rolls it back.
///
/// Encoding runs here while one `COPY` statement streams the rows to Postgres from its own
/// task, so validation and hashing overlap the server's work instead of waiting for it.
pub struct SnapshotWriter {
    started: std::time::Instant,
    started_at: chrono::DateTime<chrono::Utc>,
    state: WriterState,
    job_id: JobId,
    kind: SnapshotKind,
    snapshot_id: Uuid,
    cycle_id: Uuid,
    objects: u64,
    buffer: Vec<u8>,
    /// Rows not yet encoded for COPY: all of them while the push is small.
    pending: Vec<PendingRow>,
}

enum WriterState {
    /// Before the first row: the transaction is ours (for the header and carried-over rows).
    Open(Transaction<'static, Postgres>),
    /// Rows are streaming: the copier owns the transaction until it finishes.
    Copying {
        chunks: mpsc::Sender<Vec<u8>>,
        copier: JoinHandle<Result<Transaction<'static, Postgres>, sqlx::Error>>,
    },
    /// Nothing left (after a failure).
    Spent,
}

/// A full read of the source, or a delta naming only what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// Everything in scope at one moment: what is missing is gone.
    Full,
    /// Changes only: upserted objects and removed anchors; the rest stays as it is.
    Delta,
}

impl SnapshotKind {
    fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Full => "full",
            SnapshotKind::Delta => "delta",
        }
    }

    /// How an object row of this kind is marked.
    fn object_change(self) -> &'static str {
        match self {
            SnapshotKind::Full => "present",
            SnapshotKind::Delta => "upsert",
        }
    }
}

/// What a committed push holds.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotSummary {
    /// Its id.
    pub snapshot_id: Uuid,
    /// The cycle it becomes.
    pub cycle_id: Uuid,
    /// Rows in it.
    pub objects: u64,
}

/// Streams chunks into one COPY, framed by the binary format's header and trailer, and hands
/// the transaction back when the chunks end.
async fn copy_chunks(
    mut transaction: Transaction<'static, Postgres>,
    mut chunks: mpsc::Receiver<Vec<u8>>,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut copy = transaction.copy_in_raw(copy_binary::COPY_STATEMENT).await?;
    let mut sent = copy.send(copy_binary::HEADER).await;
    while sent.is_ok() {
        let Some(chunk) = chunks.recv().await else {
            break;
        };
        sent = copy.send(chunk).await;
    }
    if let Err(error) = sent {
        let _ = copy.abort("sending rows failed").await;
        return Err(error);
    }
    copy.send(copy_binary::TRAILER).await?;
    copy.finish().await?;
    Ok(transaction)
}

impl SnapshotWriter {
    /// Opens the transaction and records the snapshot header with the cycle id it becomes.
    /// A second push with the same idempotency key waits for the first and then fails with
    /// [`IngestError::Replayed`].
    pub async fn begin(
        pool: &PgPool,
        job_id: JobId,
        kind: SnapshotKind,
        origin: Origin,
        idempotency_key: Option<&str>,
    ) -> Result<Self, IngestError> {
        let started = std::time::Instant::now();
        let started_at = chrono::Utc::now();
        let mut transaction = pool.begin().await.map_err(StoreError::from)?;
        let snapshot_id = Uuid::now_v7();
        let cycle_id = Uuid::now_v7();
        let inserted = sqlx::query(
            "INSERT INTO snapshots (snapshot_id, job_id, kind, origin, idempotency_key, object_count, \
                 cycle_id, trace_parent) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
        )
        .bind(snapshot_id)
        .bind(job_id.0)
        .bind(kind.as_str())
        .bind(origin.as_str())
        .bind(idempotency_key)
        .bind(cycle_id)
        // Every step of the cycle continues the trace of the call that pushed it.
        .bind(syncguard_telemetry::current_traceparent())
        .execute(&mut *transaction)
        .await;
        if let Err(error) = inserted {
            return Err(match StoreError::from(error) {
                StoreError::AlreadyExists { .. } if idempotency_key.is_some() => {
                    IngestError::Replayed
                }
                other => other.into(),
            });
        }
        Ok(Self {
            started,
            started_at,
            state: WriterState::Open(transaction),
            job_id,
            kind,
            snapshot_id,
            cycle_id,
            objects: 0,
            buffer: Vec::new(),
            pending: Vec::new(),
        })
    }

    /// Objects accepted so far.
    pub fn objects(&self) -> u64 {
        self.objects
    }

    /// Validates and queues one object; hands a chunk to the copier when enough has queued.
    pub async fn add(&mut self, object: v1::SourceObject) -> Result<(), IngestError> {
        let canonical = canonicalize(self.objects, object)?;
        self.objects += 1;
        self.queue(PendingRow::Object(canonical)).await
    }

    /// Queues the removal of `anchor` (deltas only).
    pub async fn add_removal(&mut self, anchor: &SourceAnchor) -> Result<(), IngestError> {
        debug_assert_eq!(self.kind, SnapshotKind::Delta);
        self.objects += 1;
        self.queue(PendingRow::Removal(anchor.clone())).await
    }

    /// Holds rows back while the push may stay small; past that, encodes them for COPY and
    /// hands a chunk to the copier whenever enough has queued.
    async fn queue(&mut self, row: PendingRow) -> Result<(), IngestError> {
        if self.buffer.is_empty() && self.pending.len() < SMALL_PUSH_ROWS {
            self.pending.push(row);
            return Ok(());
        }
        if self.buffer.capacity() == 0 {
            self.buffer.reserve(COPY_BATCH_BYTES + 64 * 1024);
        }
        for pending in std::mem::take(&mut self.pending) {
            self.encode(&pending)?;
        }
        self.encode(&row)?;
        if self.buffer.len() >= COPY_BATCH_BYTES {
            self.send_chunk().await?;
        }
        Ok(())
    }

    fn encode(&mut self, row: &PendingRow) -> Result<(), IngestError> {
        match row {
            PendingRow::Object(canonical) => copy_binary::write_object(
                canonical,
                &self.snapshot_id,
                self.kind.object_change(),
                &mut self.buffer,
            )
            .map_err(|error| {
                FieldError::new(
                    "objects",
                    format!(
                        "the attributes of anchor {:?} cannot be stored: {error}",
                        shortened(&canonical.anchor, 40)
                    ),
                )
                .into()
            }),
            PendingRow::Removal(anchor) => {
                copy_binary::write_removal(&self.snapshot_id, anchor, &mut self.buffer);
                Ok(())
            }
        }
    }

    /// Lands the held-back rows of a small push with one statement.
    async fn insert_pending(
        &mut self,
        transaction: &mut Transaction<'static, Postgres>,
    ) -> Result<(), IngestError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending);
        let mut anchors = Vec::with_capacity(rows.len());
        let mut changes = Vec::with_capacity(rows.len());
        let mut types: Vec<Option<&str>> = Vec::with_capacity(rows.len());
        let mut names = Vec::with_capacity(rows.len());
        let mut attributes = Vec::with_capacity(rows.len());
        let mut enabled = Vec::with_capacity(rows.len());
        let mut members = Vec::with_capacity(rows.len());
        let mut deleted = Vec::with_capacity(rows.len());
        let mut hashes: Vec<Vec<u8>> = Vec::with_capacity(rows.len());
        for row in rows {
            match row {
                PendingRow::Object(object) => {
                    anchors.push(object.anchor);
                    changes.push(self.kind.object_change());
                    types.push(Some(object.object_type));
                    names.push(object.distinguished_name);
                    attributes.push(serde_json::json!(object.attributes));
                    enabled.push(object.enabled);
                    members.push(serde_json::json!(object.member_anchors));
                    deleted.push(object.deleted_in_source);
                    hashes.push(object.content_hash.to_vec());
                }
                PendingRow::Removal(anchor) => {
                    anchors.push(anchor.as_str().to_owned());
                    changes.push("delete");
                    types.push(None);
                    names.push(String::new());
                    attributes.push(serde_json::json!({}));
                    enabled.push(true);
                    members.push(serde_json::json!([]));
                    deleted.push(false);
                    hashes.push(Vec::new());
                }
            }
        }
        sqlx::query(
            "INSERT INTO source_objects (snapshot_id, anchor, change, object_type, distinguished_name, \
                 attributes, enabled, member_anchors, deleted_in_source, content_hash) \
             SELECT $1, r.anchor, r.change, r.object_type, r.dn, r.attributes, r.enabled, \
                 ARRAY(SELECT jsonb_array_elements_text(r.members)), r.deleted, r.hash \
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::bool[], \
                         $8::jsonb[], $9::bool[], $10::bytea[]) \
                  AS r(anchor, change, object_type, dn, attributes, enabled, members, deleted, hash)",
        )
        .bind(self.snapshot_id)
        .bind(&anchors)
        .bind(&changes)
        .bind(&types)
        .bind(&names)
        .bind(&attributes)
        .bind(&enabled)
        .bind(&members)
        .bind(&deleted)
        .bind(&hashes)
        .execute(&mut **transaction)
        .await
        .map_err(duplicate_anchor_or_store_error)?;
        Ok(())
    }

    /// Fills this full snapshot with the job's latest source data, inside Postgres: its
    /// newest full snapshot with every later delta applied in order. Used to run a fresh
    /// cycle of a push job (restart, trigger) on what the source last said.
    pub async fn copy_latest_data(&mut self) -> Result<(), IngestError> {
        debug_assert_eq!(self.kind, SnapshotKind::Full);
        let WriterState::Open(transaction) = &mut self.state else {
            return Err(IngestError::StreamBroken(
                "rows are already streaming".into(),
            ));
        };
        let base: Option<(i64,)> = sqlx::query_as(
            "SELECT seq FROM snapshots WHERE job_id = $1 AND kind = 'full' AND seq IS NOT NULL \
               AND NOT rows_released ORDER BY seq DESC LIMIT 1",
        )
        .bind(self.job_id.0)
        .fetch_optional(&mut **transaction)
        .await?;
        let Some((base_seq,)) = base else {
            return Err(IngestError::NoSourceData(format!(
                "job {} has no full snapshot yet: push one with PushSnapshot first",
                self.job_id
            )));
        };
        let copied = sqlx::query(
            "INSERT INTO source_objects (snapshot_id, anchor, change, object_type, distinguished_name, \
                 attributes, enabled, member_anchors, deleted_in_source, content_hash) \
             SELECT $1, latest.anchor, 'present', latest.object_type, latest.distinguished_name, \
                 latest.attributes, latest.enabled, latest.member_anchors, latest.deleted_in_source, \
                 latest.content_hash \
             FROM (SELECT DISTINCT ON (o.anchor) o.* FROM source_objects o \
                   JOIN snapshots s ON s.snapshot_id = o.snapshot_id \
                   WHERE s.job_id = $2 AND s.seq >= $3 AND s.snapshot_id <> $1 \
                   ORDER BY o.anchor, s.seq DESC) latest \
             WHERE latest.change <> 'delete'",
        )
        .bind(self.snapshot_id)
        .bind(self.job_id.0)
        .bind(base_seq)
        .execute(&mut **transaction)
        .await?;
        self.objects += copied.rows_affected();
        Ok(())
    }

    async fn send_chunk(&mut self) -> Result<(), IngestError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        // The first chunk hands the transaction to a copier task.
        self.state = match std::mem::replace(&mut self.state, WriterState::Spent) {
            WriterState::Open(transaction) => {
                let (chunks, receiver) = mpsc::channel(COPY_CHUNKS_IN_FLIGHT);
                let copier = tokio::spawn(copy_chunks(transaction, receiver));
                WriterState::Copying { chunks, copier }
            }
            other => other,
        };
        let chunk = std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(COPY_BATCH_BYTES + 64 * 1024),
        );
        let WriterState::Copying { chunks, .. } = &self.state else {
            return Err(IngestError::StreamBroken(
                "the snapshot writer failed earlier".into(),
            ));
        };
        if chunks.send(chunk).await.is_err() {
            // The copier stopped: its error is reported by commit; stop feeding it.
            return self.finish_copy().await.map(|_| ());
        }
        Ok(())
    }

    async fn finish_copy(&mut self) -> Result<Transaction<'static, Postgres>, IngestError> {
        match std::mem::replace(&mut self.state, WriterState::Spent) {
            WriterState::Open(transaction) => Ok(transaction),
            WriterState::Copying { chunks, copier } => {
                drop(chunks);
                let copied = copier.await.map_err(|error| {
                    IngestError::StreamBroken(format!("the copy task failed: {error}"))
                })?;
                copied.map_err(duplicate_anchor_or_store_error)
            }
            WriterState::Spent => Err(IngestError::StreamBroken(
                "the snapshot writer failed earlier".into(),
            )),
        }
    }

    /// Sends what is queued, checks the count the source announced, and commits.
    pub async fn commit(
        mut self,
        expected_objects: Option<u64>,
    ) -> Result<SnapshotSummary, IngestError> {
        self.send_chunk().await?;
        let mut transaction = self.finish_copy().await?;
        self.insert_pending(&mut transaction).await?;
        if let Some(expected) = expected_objects
            && expected != self.objects
        {
            return Err(FieldError::new(
                "end.total_objects",
                format!(
                    "the stream announced {expected} objects but sent {}: the snapshot is incomplete and was discarded",
                    self.objects
                ),
            )
            .into());
        }
        // The job's next number in its order of receipt, taken last: the job row stays locked
        // only from here to the commit, so concurrent pushes of a job commit in number order
        // and each is staged after the ones acknowledged before it. One statement numbers
        // the job and the snapshot; a job deleted meanwhile leaves the number empty.
        let (seq,): (Option<i64>,) = sqlx::query_as(
            "WITH numbered AS (
                 UPDATE jobs SET push_seq = push_seq + 1 WHERE job_id = $2 AND deleted_at IS NULL
                 RETURNING push_seq)
             UPDATE snapshots SET object_count = $3, load_started_at = $4, load_millis = $5,
                 seq = (SELECT push_seq FROM numbered)
             WHERE snapshot_id = $1 RETURNING seq",
        )
        .bind(self.snapshot_id)
        .bind(self.job_id.0)
        .bind(self.objects as i64)
        .bind(self.started_at)
        .bind(self.started.elapsed().as_millis() as i64)
        .fetch_one(&mut *transaction)
        .await?;
        if seq.is_none() {
            return Err(IngestError::JobNotFound(self.job_id));
        }
        transaction.commit().await.map_err(StoreError::from)?;
        Ok(SnapshotSummary {
            snapshot_id: self.snapshot_id,
            cycle_id: self.cycle_id,
            objects: self.objects,
        })
    }
}

/// A duplicate anchor in one snapshot is the caller's error: name the anchor.
fn duplicate_anchor_or_store_error(error: sqlx::Error) -> IngestError {
    if let sqlx::Error::Database(database) = &error
        && database.code().as_deref() == Some("23505")
    {
        let anchor = database
            .try_downcast_ref::<PgDatabaseError>()
            .and_then(|pg| pg.detail())
            // "Key (snapshot_id, anchor)=(<uuid>, <anchor>) already exists."
            .and_then(|detail| detail.split_once(")=("))
            .and_then(|(_, values)| values.split_once(", "))
            .map(|(_, rest)| {
                rest.trim_end_matches(" already exists.")
                    .trim_end_matches(')')
                    .to_owned()
            })
            .unwrap_or_default();
        return FieldError::new(
            "objects",
            format!("anchor {anchor:?} appears more than once in the snapshot"),
        )
        .into();
    }
    StoreError::from(error).into()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sqlx::PgPool;
    use syncguard_domain::{JobId, SourceAnchor};
    use syncguard_proto::v1::{self, ObjectType};
    use uuid::Uuid;

    use super::{Origin, SMALL_PUSH_ROWS, SnapshotKind, SnapshotWriter};

    /// Objects whose every text field needs care in one format or another: quotes,
    /// backslashes, commas, braces, newlines, non-ASCII, empty values, a group's members.
    fn awkward_objects() -> Vec<v1::SourceObject> {
        let values = |values: &[&str]| v1::AttributeValues {
            values: values.iter().map(|value| value.to_string()).collect(),
        };
        let mut attributes = HashMap::new();
        attributes.insert("cn".to_owned(), values(&["O\"Brien, \\ Ann {x}"]));
        attributes.insert("description".to_owned(), values(&["line\nbreak\ttab", ""]));
        attributes.insert("displayName".to_owned(), values(&["Zoë 李 🙂"]));
        vec![
            v1::SourceObject {
                anchor: "u-\"quoted\",\\back{slash}".into(),
                object_type: ObjectType::User as i32,
                distinguished_name: "cn=O\\\"Brien\\, Ann,ou=people,dc=example".into(),
                attributes,
                enabled: false,
                deleted_in_source: true,
                ..Default::default()
            },
            v1::SourceObject {
                anchor: "g-ünïcode".into(),
                object_type: ObjectType::Group as i32,
                member_anchors: vec![
                    "u-\"quoted\",\\back{slash}".into(),
                    "m,2".into(),
                    "NULL".into(),
                ],
                enabled: true,
                ..Default::default()
            },
            v1::SourceObject {
                anchor: "g-empty".into(),
                object_type: ObjectType::Group as i32,
                enabled: true,
                ..Default::default()
            },
        ]
    }

    fn filler(n: usize) -> v1::SourceObject {
        v1::SourceObject {
            anchor: format!("filler-{n:05}"),
            object_type: ObjectType::User as i32,
            enabled: true,
            ..Default::default()
        }
    }

    /// A snapshot of `kind` with `objects` and `removals`, committed.
    async fn land(
        pool: &PgPool,
        job: JobId,
        kind: SnapshotKind,
        objects: Vec<v1::SourceObject>,
        removals: &[&str],
    ) -> Uuid {
        let mut writer = SnapshotWriter::begin(pool, job, kind, Origin::Push, None)
            .await
            .expect("snapshot opened");
        for object in objects {
            writer.add(object).await.expect("object accepted");
        }
        for anchor in removals {
            let anchor = SourceAnchor::parse("anchor", anchor).expect("valid anchor");
            writer.add_removal(&anchor).await.expect("removal accepted");
        }
        writer.commit(None).await.expect("committed").snapshot_id
    }

    /// The rows of `snapshot` not made up for the test's size, as text.
    async fn rows(pool: &PgPool, snapshot: Uuid) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT concat_ws(' | ', anchor, change, object_type, distinguished_name, attributes::text,
                              enabled, member_anchors::text, cardinality(member_anchors), deleted_in_source,
                              encode(content_hash, 'hex'))
             FROM source_objects WHERE snapshot_id = $1 AND anchor NOT LIKE 'filler-%'
             ORDER BY anchor COLLATE \"C\"",
        )
        .bind(snapshot)
        .fetch_all(pool)
        .await
        .expect("rows read")
    }

    /// A push large enough to stream through `COPY` lands every value exactly as a small
    /// push's `INSERT` does, removals of a delta included.
    #[sqlx::test(migrations = false)]
    async fn a_copied_push_lands_the_same_rows_as_an_inserted_one(pool: PgPool) {
        syncguard_store::MIGRATOR
            .run(&pool)
            .await
            .expect("migrated");
        let job = JobId(Uuid::now_v7());
        sqlx::query(
            "INSERT INTO jobs (job_id, name, source_kind, created_by) VALUES ($1, 'copy', 'push', 'test')",
        )
        .bind(job.0)
        .execute(&pool)
        .await
        .expect("job created");
        let large = |objects: Vec<v1::SourceObject>| {
            objects
                .into_iter()
                .chain((0..SMALL_PUSH_ROWS + 10).map(filler))
                .collect::<Vec<_>>()
        };
        for kind in [SnapshotKind::Full, SnapshotKind::Delta] {
            let removals: &[&str] = match kind {
                SnapshotKind::Full => &[],
                SnapshotKind::Delta => &["gone,\"1\"", "gone-2"],
            };
            let small = land(&pool, job, kind, awkward_objects(), removals).await;
            let copied = land(&pool, job, kind, large(awkward_objects()), removals).await;
            let (small, copied) = (rows(&pool, small).await, rows(&pool, copied).await);
            assert_eq!(small.len(), 3 + removals.len(), "{small:#?}");
            assert_eq!(copied, small, "{kind:?}");
        }
        let (deleted_type, members): (Option<String>, Vec<String>) = sqlx::query_as(
            "SELECT (SELECT object_type FROM source_objects WHERE anchor = 'gone-2' LIMIT 1),
                    (SELECT member_anchors FROM source_objects WHERE anchor = 'g-ünïcode' LIMIT 1)",
        )
        .fetch_one(&pool)
        .await
        .expect("read back");
        assert_eq!(deleted_type, None, "a removal's type is unknown");
        assert_eq!(members, ["NULL", "m,2", "u-\"quoted\",\\back{slash}"]);
    }
}
