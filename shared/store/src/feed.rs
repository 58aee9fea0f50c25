//! Reading the change feed (`directory_changes`): retention's `WatchChanges` streams it to
//! backends and the exporter follows it to the targets. Positions are cursors
//! `<batch>.<position>`: a reader resuming after one gets every later change once.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// A position in the feed: after change `position` of the transaction numbered `batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor {
    /// The writing transaction, in commit order.
    pub batch: i64,
    /// The change within it.
    pub position: i32,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.batch, self.position)
    }
}

/// A cursor that is not `<batch>.<position>`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0:?} is not a feed cursor (<batch>.<position>, as a change carries it)")]
pub struct BadCursor(pub String);

impl FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadCursor(text.chars().take(40).collect());
        let (batch, position) = text.trim().split_once('.').ok_or_else(bad)?;
        let cursor = Cursor {
            batch: batch.parse().map_err(|_| bad())?,
            position: position.parse().map_err(|_| bad())?,
        };
        if cursor.batch < 0 || cursor.position < 0 {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// One change of the target directory, with the object as it is after it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedChange {
    /// Its transaction.
    pub batch: i64,
    /// Its place in the transaction.
    pub position: i32,
    /// The job.
    pub job_id: Uuid,
    /// The object.
    pub object_id: Uuid,
    /// Its source anchor.
    pub anchor: String,
    /// `user` or `group`.
    pub object_type: String,
    /// `create`, `update`, `disable`, `enable`, `soft_delete`, `restore`, `purge`.
    pub change: String,
    /// What an update changed.
    pub changed_attributes: Vec<String>,
    /// The object after the change.
    pub distinguished_name: String,
    /// Attribute name to values.
    pub attributes: sqlx::types::JsonValue,
    /// Sign-in allowed.
    pub enabled: bool,
    /// A group's members.
    pub member_anchors: Vec<String>,
    /// The cycle that made it (none for a restore or purge on request).
    pub cycle_id: Option<Uuid>,
    /// When it committed.
    pub at: DateTime<Utc>,
}

impl FeedChange {
    /// Where a reader stands after this change.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            batch: self.batch,
            position: self.position,
        }
    }

    /// The values of one attribute (as stored: lowercase names, arrays of strings).
    pub fn values(&self, name: &str) -> Vec<String> {
        self.attributes
            .get(name)
            .and_then(|values| values.as_array())
            .map(|values| {
                values
                    .iter()
                    .filter_map(|value| value.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Up to `limit` changes after `after` (of one job, or all; of the given object types, or
/// all), in commit order. One statement: no transaction is held between reads.
pub async fn changes_after<'e>(
    executor: impl PgExecutor<'e>,
    job_id: Option<Uuid>,
    object_types: &[String],
    after: Cursor,
    limit: i64,
) -> Result<Vec<FeedChange>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT batch, position, job_id, object_id, anchor, object_type, change, changed_attributes, \
                distinguished_name, attributes, enabled, member_anchors, cycle_id, at \
         FROM directory_changes \
         WHERE (batch, position) > ($1, $2) AND ($3::uuid IS NULL OR job_id = $3) \
           AND (cardinality($4::text[]) = 0 OR object_type = ANY($4)) \
         ORDER BY batch, position LIMIT $5",
    )
    .bind(after.batch)
    .bind(after.position)
    .bind(job_id)
    .bind(object_types)
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

/// The newest batch numbered, and the last batch pruned (resuming before it is impossible).
pub async fn feed_bounds<'e>(executor: impl PgExecutor<'e>) -> Result<(i64, i64), StoreError> {
    Ok(
        sqlx::query_as("SELECT batch, pruned_through FROM feed_clock")
            .fetch_one(executor)
            .await?,
    )
}
