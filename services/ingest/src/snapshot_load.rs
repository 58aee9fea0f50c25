//! Landing a snapshot in Postgres: one transaction, rows streamed in with `COPY` batch by
//! batch, committed only when the source said it sent everything. A broken, cancelled or
//! invalid snapshot rolls back and leaves no rows.

use sqlx::postgres::PgDatabaseError;
use sqlx::{PgPool, Postgres, Transaction};
use syncguard_domain::{FieldError, JobId};
use syncguard_proto::v1;
use syncguard_store::StoreError;
use uuid::Uuid;

use crate::error::IngestError;
use crate::source_object::canonicalize;

/// Rows are sent to Postgres in COPY statements of about this many bytes.
const COPY_BATCH_BYTES: usize = 4 * 1024 * 1024;

const COPY_STATEMENT: &str = "COPY source_objects (snapshot_id, anchor, change, object_type, \
    distinguished_name, attributes, enabled, member_anchors, deleted_in_source, content_hash) \
    FROM STDIN WITH (FORMAT csv)";

/// Where a snapshot came from.
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// PushSnapshot / PushDelta.
    Push,
    /// ImportFile.
    Import,
    /// A file source read by ingest.
    File,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Push => "push",
            Origin::Import => "import",
            Origin::File => "file",
        }
    }
}

/// A snapshot being written; dropping it without [`SnapshotWriter::commit`] rolls it back.
pub struct SnapshotWriter {
    transaction: Transaction<'static, Postgres>,
    snapshot_id: Uuid,
    snapshot_text: String,
    objects: u64,
    buffer: Vec<u8>,
}

/// What a committed snapshot holds.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotSummary {
    /// Its id.
    pub snapshot_id: Uuid,
    /// Rows in it.
    pub objects: u64,
}

impl SnapshotWriter {
    /// Opens the transaction and records the snapshot header.
    pub async fn begin(
        pool: &PgPool,
        job_id: JobId,
        kind: &str,
        origin: Origin,
        idempotency_key: Option<&str>,
    ) -> Result<Self, IngestError> {
        let mut transaction = pool.begin().await.map_err(StoreError::from)?;
        let snapshot_id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO snapshots (snapshot_id, job_id, kind, origin, idempotency_key, object_count) \
             VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(snapshot_id)
        .bind(job_id.0)
        .bind(kind)
        .bind(origin.as_str())
        .bind(idempotency_key)
        .execute(&mut *transaction)
        .await?;
        Ok(Self {
            transaction,
            snapshot_id,
            snapshot_text: snapshot_id.to_string(),
            objects: 0,
            buffer: Vec::with_capacity(COPY_BATCH_BYTES + 64 * 1024),
        })
    }

    /// Objects accepted so far.
    pub fn objects(&self) -> u64 {
        self.objects
    }

    /// Validates and queues one object; sends a COPY batch when enough has queued.
    pub async fn add(&mut self, object: &v1::SourceObject) -> Result<(), IngestError> {
        let canonical = canonicalize(&format!("objects[{}]", self.objects), object)?;
        canonical.write_csv_row(&self.snapshot_text, "present", &mut self.buffer);
        self.objects += 1;
        if self.buffer.len() >= COPY_BATCH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Copies every object of the job's latest snapshot except `skip_anchors` into this one,
    /// inside Postgres: the base a delta is applied onto.
    pub async fn carry_over_latest(
        &mut self,
        job_id: JobId,
        skip_anchors: &[String],
    ) -> Result<(), IngestError> {
        let copied = sqlx::query(
            "INSERT INTO source_objects (snapshot_id, anchor, change, object_type, distinguished_name, \
                 attributes, enabled, member_anchors, deleted_in_source, content_hash) \
             SELECT $1, anchor, 'present', object_type, distinguished_name, attributes, enabled, \
                 member_anchors, deleted_in_source, content_hash \
             FROM source_objects \
             WHERE snapshot_id = (SELECT snapshot_id FROM snapshots WHERE job_id = $2 AND snapshot_id <> $1 \
                                  ORDER BY received_at DESC, snapshot_id DESC LIMIT 1) \
               AND anchor <> ALL($3)",
        )
        .bind(self.snapshot_id)
        .bind(job_id.0)
        .bind(skip_anchors)
        .execute(&mut *self.transaction)
        .await?;
        self.objects += copied.rows_affected();
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), IngestError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut copy = self
            .transaction
            .copy_in_raw(COPY_STATEMENT)
            .await
            .map_err(StoreError::from)?;
        let sent = copy.send(self.buffer.as_slice()).await.map(|_| ());
        let outcome = match sent {
            Ok(()) => copy.finish().await.map(|_| ()),
            Err(error) => {
                let _ = copy.abort("send failed").await;
                Err(error)
            }
        };
        self.buffer.clear();
        outcome.map_err(duplicate_anchor_or_store_error)
    }

    /// Sends what is queued, checks the count the source announced, and commits.
    pub async fn commit(
        mut self,
        expected_objects: Option<u64>,
    ) -> Result<SnapshotSummary, IngestError> {
        self.flush().await?;
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
        sqlx::query("UPDATE snapshots SET object_count = $2 WHERE snapshot_id = $1")
            .bind(self.snapshot_id)
            .bind(self.objects as i64)
            .execute(&mut *self.transaction)
            .await?;
        self.transaction.commit().await.map_err(StoreError::from)?;
        Ok(SnapshotSummary {
            snapshot_id: self.snapshot_id,
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
