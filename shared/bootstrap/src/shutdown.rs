//! One shutdown path: the first SIGINT or SIGTERM starts a graceful drain, a second one
//! exits at once.

/// Resolves on the first SIGINT or SIGTERM; a second signal afterwards exits the process
/// with status 130 without waiting for the drain.
pub async fn shutdown_signal() {
    wait_for_signal().await;
    tracing::info!("shutdown signal received, draining");
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second shutdown signal, exiting now");
        std::process::exit(130);
    });
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the service");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
