//! Notifications that a job moved, from Postgres `LISTEN`: `syncguard_cycle_events` (sent by
//! triggers when a move that may settle a cycle commits: a failure or supersession, a
//! quarantine, a quarantine's close, an apply) lets a caller waiting for its cycle answer the
//! moment the cycle settles; `syncguard_feed` (sent by retention's transaction that writes
//! changes into the change feed) wakes the feed's readers. One listening connection
//! per channel and service; waiters subscribe to a broadcast of job ids.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use uuid::Uuid;

/// The channel the cycle triggers notify, with the job id as payload.
pub const CYCLE_EVENTS_CHANNEL: &str = "syncguard_cycle_events";
/// The channel the change feed's writer notifies, with the job id as payload.
pub const FEED_EVENTS_CHANNEL: &str = "syncguard_feed";

/// Jobs that just moved on one channel, as this service hears of them.
#[derive(Debug, Clone)]
pub struct JobEvents {
    sender: broadcast::Sender<Uuid>,
}

/// Announcements that a job's cycle moved.
pub type CycleEvents = JobEvents;

impl JobEvents {
    /// Starts listening on `channel` on a connection of `pool`'s server; the listener
    /// reconnects after a database outage and stops when the pool is closed.
    pub fn start(pool: PgPool, channel: &'static str) -> Self {
        let (sender, _) = broadcast::channel(1024);
        let events = Self { sender };
        let forward = events.sender.clone();
        tokio::spawn(async move {
            while !pool.is_closed() {
                if let Err(error) = listen(&pool, channel, &forward).await {
                    tracing::debug!(%error, channel, "listener lost; waiters poll until it is back");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        events
    }

    /// A receiver of the job ids announced from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.sender.subscribe()
    }
}

async fn listen(
    pool: &PgPool,
    channel: &str,
    forward: &broadcast::Sender<Uuid>,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    loop {
        let notification = listener.recv().await?;
        if let Ok(job_id) = Uuid::parse_str(notification.payload()) {
            // Nobody waiting is fine.
            let _ = forward.send(job_id);
        }
        if pool.is_closed() {
            return Ok(());
        }
    }
}
