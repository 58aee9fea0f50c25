//! Notifications that a job's cycle moved (Postgres `LISTEN syncguard_cycle_events`, sent by
//! triggers when a push, a staging, a decision, a quarantine's close or an apply commits), so
//! a caller waiting for its cycle answers the moment the cycle settles instead of on the
//! next poll. One listening connection per service; waiters subscribe to a broadcast.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use uuid::Uuid;

/// The channel the migrations' triggers notify, with the job id as payload.
pub const CYCLE_EVENTS_CHANNEL: &str = "syncguard_cycle_events";

/// Jobs whose cycles just moved, as this service hears of them.
#[derive(Debug, Clone)]
pub struct CycleEvents {
    sender: broadcast::Sender<Uuid>,
}

impl CycleEvents {
    /// Starts listening on a connection of `pool`'s server; the listener reconnects after a
    /// database outage and stops when the pool is closed.
    pub fn start(pool: PgPool) -> Self {
        let (sender, _) = broadcast::channel(1024);
        let events = Self { sender };
        let forward = events.sender.clone();
        tokio::spawn(async move {
            while !pool.is_closed() {
                if let Err(error) = listen(&pool, &forward).await {
                    tracing::debug!(%error, "cycle events: listener lost; waiters poll until it is back");
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

async fn listen(pool: &PgPool, forward: &broadcast::Sender<Uuid>) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CYCLE_EVENTS_CHANNEL).await?;
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
