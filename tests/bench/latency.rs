//! Latency samples and their percentiles.

use std::future::Future;
use std::time::{Duration, Instant};

/// Sorted call durations.
pub struct Latencies(Vec<Duration>);

impl Latencies {
    /// The `q` quantile (0.5 is the median).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.0.len() as f64 - 1.0) * q).round() as usize;
        self.0[index.min(self.0.len() - 1)]
    }

    /// The median.
    pub fn p50(&self) -> Duration {
        self.quantile(0.5)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    /// `p50 x ms, p99 y ms (n calls)`.
    pub fn summary(&self) -> String {
        format!(
            "p50 {:>8.2} ms  p99 {:>8.2} ms  ({} calls)",
            ms(self.p50()),
            ms(self.p99()),
            self.0.len()
        )
    }
}

/// Milliseconds as a float.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Calls each caller makes before its timed ones. A caller's first calls open the services'
/// pooled connections and fill each new database session's caches (prepared statements, the
/// PL/pgSQL functions' plans): 30-60 ms apiece on this machine, paid once per connection, not
/// by a running service's calls. Timed, they were the p99 of 200 concurrent calls.
pub const WARM_UP: usize = 10;

/// Times `calls` calls of `call`, one after the other, after [`WARM_UP`] untimed ones; a
/// failed call fails the benchmark.
pub async fn sequential<F, Fut>(calls: usize, mut call: F) -> anyhow::Result<Latencies>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut samples = Vec::with_capacity(calls);
    for index in 0..WARM_UP + calls {
        let started = Instant::now();
        call(index).await?;
        if index >= WARM_UP {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    Ok(Latencies(samples))
}

/// Times `clients` callers making `calls` calls each at the same time. Every caller makes its
/// [`WARM_UP`] untimed calls first, and the timed ones start together once all are done.
pub async fn concurrent<F, Fut>(clients: usize, calls: usize, call: F) -> anyhow::Result<Latencies>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    Ok(concurrent_metered(clients, calls, call, || ()).await?.0)
}

/// [`concurrent`], with `at_start` run once at the instant the timed calls start (after every
/// caller's warm-up: a new pooled connection's first calls cost tens of milliseconds of
/// server CPU that a running service does not pay), its value returned beside the latencies.
pub async fn concurrent_metered<F, Fut, S, T>(
    clients: usize,
    calls: usize,
    call: F,
    at_start: S,
) -> anyhow::Result<(Latencies, T)>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
    S: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    use std::sync::{Arc, Mutex};
    let at_start = Arc::new(Mutex::new(Some(at_start)));
    let started: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
    // Two barriers: all warmed up; then, once one caller has run `at_start`, all go.
    let warmed = Arc::new(tokio::sync::Barrier::new(clients));
    let go = Arc::new(tokio::sync::Barrier::new(clients));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let call = call.clone();
        let (warmed, go) = (warmed.clone(), go.clone());
        let (at_start, started) = (at_start.clone(), started.clone());
        tasks.push(tokio::spawn(async move {
            // A caller whose warm-up fails still reaches the barriers, so the others are not
            // left waiting; its error is reported after.
            let mut warm_up = Ok(());
            for index in 0..WARM_UP {
                if warm_up.is_ok() {
                    warm_up = call(client, index).await;
                }
            }
            if warmed.wait().await.is_leader() {
                let start = at_start.lock().ok().and_then(|mut start| start.take());
                if let (Some(start), Ok(mut started)) = (start, started.lock()) {
                    *started = Some(start());
                }
            }
            go.wait().await;
            warm_up?;
            let mut samples = Vec::with_capacity(calls);
            for index in WARM_UP..WARM_UP + calls {
                let started = Instant::now();
                call(client, index).await?;
                samples.push(started.elapsed());
            }
            anyhow::Ok(samples)
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    let started = started
        .lock()
        .ok()
        .and_then(|mut started| started.take())
        .ok_or_else(|| anyhow::anyhow!("no caller ran the start of the timed calls"))?;
    samples.sort();
    Ok((Latencies(samples), started))
}
