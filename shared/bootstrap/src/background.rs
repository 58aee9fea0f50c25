//! A service's background work: periodic loops and keyed workers, started once the database
//! is ready, drained on shutdown (a step in progress finishes; no new one starts).
//!
//! A keyed worker does the work of one item (a job to stage, a job to apply) at a time per
//! key in this process, several keys at once. Calls from other services wake it for a key;
//! a periodic scan finds what is due anyway (after a crash, a lost wake-up, or in another
//! instance), so the path after a failure is the same path as always.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Starts and drains a service's background tasks.
#[derive(Clone)]
pub struct Background {
    tracker: TaskTracker,
    stop: CancellationToken,
    ready: watch::Receiver<bool>,
}

impl Background {
    pub(crate) fn new(ready: watch::Receiver<bool>) -> Self {
        Self {
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            ready,
        }
    }

    /// Cancelled when the service starts to shut down; long steps check it between items.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    async fn until_ready(mut ready: watch::Receiver<bool>, stop: &CancellationToken) -> bool {
        tokio::select! {
            outcome = ready.wait_for(|ready| *ready) => outcome.is_ok(),
            () = stop.cancelled() => false,
        }
    }

    /// Runs `step` every `tick` (and whenever `wake` is notified), once the database is ready,
    /// until shutdown.
    pub fn every<F, Fut>(
        &self,
        name: &'static str,
        tick: Duration,
        wake: Option<Arc<tokio::sync::Notify>>,
        mut step: F,
    ) where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        let ready = self.ready.clone();
        self.tracker.spawn(async move {
            if !Self::until_ready(ready, &stop).await {
                return;
            }
            tracing::debug!(worker = name, "background loop started");
            loop {
                step().await;
                let woken = async {
                    match &wake {
                        Some(notify) => notify.notified().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(tick) => {}
                    () = woken => {}
                }
            }
        });
    }

    /// A worker doing `work(key)` for woken or due keys, at most `concurrency` keys at once.
    /// `work` handles one item and answers whether more may be due for the key right away
    /// (then it runs again). Every `tick`, `due()` lists keys with work waiting.
    pub fn keyed<K, W, WF, D, DF>(
        &self,
        name: &'static str,
        concurrency: usize,
        tick: Duration,
        due: D,
        work: W,
    ) -> KeyedWorker<K>
    where
        K: Copy + Eq + Hash + Send + Sync + std::fmt::Display + 'static,
        W: Fn(K) -> WF + Send + Sync + 'static,
        WF: Future<Output = anyhow::Result<bool>> + Send + 'static,
        D: Fn() -> DF + Send + Sync + 'static,
        DF: Future<Output = anyhow::Result<Vec<K>>> + Send + 'static,
    {
        let worker = KeyedWorker {
            inner: Arc::new(KeyedInner {
                name,
                running: Mutex::new(HashMap::new()),
                permits: Arc::new(Semaphore::new(concurrency.max(1))),
                work: Box::new(move |key| Box::pin(work(key))),
                background: self.clone(),
            }),
        };
        let scanner = worker.clone();
        self.every(name, tick, None, move || {
            let scanner = scanner.clone();
            let listed = due();
            async move {
                match listed.await {
                    Ok(keys) => keys.into_iter().for_each(|key| scanner.wake(key)),
                    Err(error) => {
                        tracing::warn!(
                            worker = scanner.inner.name,
                            error = format!("{error:#}"),
                            "cannot look for due work"
                        )
                    }
                }
            }
        });
        worker
    }

    /// Stops starting new steps and waits up to `grace` for the running ones to finish.
    pub async fn drain(&self, grace: Duration) {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "background work still running after the grace period; it is abandoned and redone by the next start"
            );
        }
    }
}

struct KeyedInner<K> {
    name: &'static str,
    /// Keys with a task in this process; `true` when woken again while running.
    running: Mutex<HashMap<K, bool>>,
    permits: Arc<Semaphore>,
    work: Box<dyn Fn(K) -> BoxFuture<anyhow::Result<bool>> + Send + Sync>,
    background: Background,
}

/// Wakes a keyed worker for one key; see [`Background::keyed`].
pub struct KeyedWorker<K> {
    inner: Arc<KeyedInner<K>>,
}

impl<K> Clone for KeyedWorker<K> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K> KeyedWorker<K>
where
    K: Copy + Eq + Hash + Send + Sync + std::fmt::Display + 'static,
{
    /// Makes sure the work of `key` runs soon: starts a task for it, or tells the running
    /// task to look again when it is done.
    pub fn wake(&self, key: K) {
        let background = &self.inner.background;
        if background.stop.is_cancelled() {
            return;
        }
        {
            let mut running = self.inner.running.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(again) = running.get_mut(&key) {
                *again = true;
                return;
            }
            running.insert(key, false);
        }
        let inner = Arc::clone(&self.inner);
        background.tracker.spawn(async move {
            let stop = inner.background.stop.clone();
            if !Background::until_ready(inner.background.ready.clone(), &stop).await {
                inner.finish(key);
                return;
            }
            let Ok(_permit) = Arc::clone(&inner.permits).acquire_owned().await else {
                inner.finish(key);
                return;
            };
            loop {
                let outcome = (inner.work)(key).await;
                if let Err(error) = &outcome {
                    tracing::warn!(worker = inner.name, key = %key, error = format!("{error:#}"), "background step failed; retried on the next tick");
                }
                let mut running = inner.running.lock().unwrap_or_else(|e| e.into_inner());
                let again = running.get(&key).copied().unwrap_or(false);
                let more = matches!(outcome, Ok(true)) || (again && outcome.is_ok());
                if more && !stop.is_cancelled() {
                    running.insert(key, false);
                    continue;
                }
                running.remove(&key);
                break;
            }
        });
    }
}

impl<K: Eq + Hash> KeyedInner<K> {
    fn finish(&self, key: K) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }
}
