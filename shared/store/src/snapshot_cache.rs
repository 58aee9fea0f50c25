//! A read cache that is never stale: an entry answers only while nothing has committed in
//! the database since it was read.
//!
//! Small reads that reviewers and dashboards repeat (a quarantine's page, the newest log
//! entries) cost the database and the service far more than the call's own round trip. Any
//! owner may write what such a view shows (the gate its decisions, retention the applied
//! cycle, every service the log), so no one service could invalidate a cache on its own
//! writes. Postgres can tell instead: two statement snapshots (`pg_current_snapshot()`:
//! `xmin:xmax:in-progress`) that are equal see exactly the same committed rows, since any
//! commit in between ends a transaction the first listed as in progress or one that began at
//! or after its `xmax`, and neither comes back. A call costs one trivial statement while
//! nothing commits, and that statement plus its read when something did.
//!
//! A cached read must depend on the committed rows and its key only (no `now()`): what a
//! view derives from the clock is computed per call, outside the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;

/// Where the database's commits stand, as the text of a statement's snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPoint(String);

impl CommitPoint {
    /// The commit point a statement run now sees.
    pub async fn now(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let (snapshot,): (String,) = sqlx::query_as("SELECT pg_current_snapshot()::text")
            .fetch_one(pool)
            .await?;
        Ok(Self(snapshot))
    }
}

/// Reads by key, kept for the commit point they were read at. Once the database has moved
/// past a point it never returns to it, so the cache holds the entries of one point only.
pub struct SnapshotCache<V> {
    capacity: usize,
    current: Arc<Mutex<Option<Entries<V>>>>,
}

impl<V> Clone for SnapshotCache<V> {
    fn clone(&self) -> Self {
        Self {
            capacity: self.capacity,
            current: Arc::clone(&self.current),
        }
    }
}

/// The entries read at one commit point.
struct Entries<V> {
    point: CommitPoint,
    by_key: HashMap<Vec<u8>, Arc<V>>,
}

impl<V> SnapshotCache<V> {
    /// A cache of at most `capacity` reads (the caller bounds each read's size).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            current: Arc::new(Mutex::new(None)),
        }
    }

    /// The value under `key` as the database has it now: the cached one when nothing has
    /// committed since it was read, else `read`'s, kept for the next call. Errors are not
    /// kept. The commit point is taken before `read` runs, so a commit during the read moves
    /// the database past the point it is kept under and the entry is never used.
    pub async fn read<E, F, Fut>(&self, pool: &PgPool, key: Vec<u8>, read: F) -> Result<Arc<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: From<sqlx::Error>,
    {
        let point = CommitPoint::now(pool).await?;
        if let Some(value) = self.cached(&point, &key) {
            return Ok(value);
        }
        let value = Arc::new(read().await?);
        self.keep(point, key, Arc::clone(&value));
        Ok(value)
    }

    fn cached(&self, point: &CommitPoint, key: &[u8]) -> Option<Arc<V>> {
        let current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        current
            .as_ref()
            .filter(|entries| entries.point == *point)
            .and_then(|entries| entries.by_key.get(key).cloned())
    }

    fn keep(&self, point: CommitPoint, key: Vec<u8>, value: Arc<V>) {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entries = match current.as_mut() {
            Some(entries) if entries.point == point => entries,
            // Another point's entries are dead (or, for a read that began before the last
            // one kept, about to be): the newest read wins the slot either way.
            _ => current.insert(Entries {
                point,
                by_key: HashMap::new(),
            }),
        };
        if entries.by_key.len() < self.capacity || entries.by_key.contains_key(&key) {
            entries.by_key.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn counted(
        cache: &SnapshotCache<i64>,
        pool: &PgPool,
        reads: &AtomicUsize,
    ) -> Result<i64, sqlx::Error> {
        let value = cache
            .read(pool, b"total".to_vec(), || async {
                reads.fetch_add(1, Ordering::SeqCst);
                let (total,): (i64,) = sqlx::query_as("SELECT coalesce(sum(n), 0)::int8 FROM t")
                    .fetch_one(pool)
                    .await?;
                Ok::<_, sqlx::Error>(total)
            })
            .await?;
        Ok(*value)
    }

    async fn table(pool: &PgPool) {
        sqlx::query("CREATE TABLE t (n int)")
            .execute(pool)
            .await
            .unwrap();
    }

    // Commit points are the cluster's: other tests' commits (and autovacuum's) move them too.
    // A call is known to be answered from the cache only when the point was the same before
    // and after it, so this waits for such a quiet pair of calls.
    #[sqlx::test(migrations = false)]
    async fn a_repeated_read_with_nothing_committed_between_is_answered_from_the_cache(
        pool: PgPool,
    ) {
        table(&pool).await;
        let cache = SnapshotCache::new(8);
        let reads = AtomicUsize::new(0);
        for _ in 0..5_000 {
            let before = CommitPoint::now(&pool).await.unwrap();
            assert_eq!(counted(&cache, &pool, &reads).await.unwrap(), 0);
            let read_so_far = reads.load(Ordering::SeqCst);
            assert_eq!(counted(&cache, &pool, &reads).await.unwrap(), 0);
            let after = CommitPoint::now(&pool).await.unwrap();
            if before == after {
                assert_eq!(
                    reads.load(Ordering::SeqCst),
                    read_so_far,
                    "nothing committed, yet the second call read again"
                );
                return;
            }
        }
        panic!("the cluster never stayed without a commit for two calls in 5,000 tries");
    }

    #[sqlx::test(migrations = false)]
    async fn a_commit_is_seen_by_the_next_call(pool: PgPool) {
        table(&pool).await;
        let cache = SnapshotCache::new(8);
        let reads = AtomicUsize::new(0);
        assert_eq!(counted(&cache, &pool, &reads).await.unwrap(), 0);
        sqlx::query("INSERT INTO t VALUES (5)")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(counted(&cache, &pool, &reads).await.unwrap(), 5);
    }

    #[sqlx::test(migrations = false)]
    async fn a_commit_during_the_read_is_seen_by_the_next_call(pool: PgPool) {
        table(&pool).await;
        let cache = SnapshotCache::new(8);
        // The first read runs before a commit it does not see, as a slow read would.
        let stale = cache
            .read(&pool, b"total".to_vec(), || async {
                let (total,): (i64,) = sqlx::query_as("SELECT coalesce(sum(n), 0)::int8 FROM t")
                    .fetch_one(&pool)
                    .await?;
                sqlx::query("INSERT INTO t VALUES (7)")
                    .execute(&pool)
                    .await?;
                Ok::<_, sqlx::Error>(total)
            })
            .await
            .unwrap();
        assert_eq!(*stale, 0);
        let reads = AtomicUsize::new(0);
        assert_eq!(counted(&cache, &pool, &reads).await.unwrap(), 7);
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[sqlx::test(migrations = false)]
    async fn an_open_transaction_that_commits_later_is_seen_once_committed(pool: PgPool) {
        table(&pool).await;
        let mut writer = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (3)")
            .execute(&mut *writer)
            .await
            .unwrap();
        let cache = SnapshotCache::new(8);
        let reads = AtomicUsize::new(0);
        assert_eq!(counted(&cache, &pool, &reads).await.unwrap(), 0);
        assert_eq!(counted(&cache, &pool, &reads).await.unwrap(), 0);
        writer.commit().await.unwrap();
        assert_eq!(counted(&cache, &pool, &reads).await.unwrap(), 3);
    }
}
