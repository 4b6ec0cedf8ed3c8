//! What every drover component shares: metrics and the admin port, logging, leader
//! election, the client's rate limit, Events, backoff, what watches keep of objects and
//! how they survive errors.

pub mod admin;
pub mod backoff;
pub mod events;
pub mod fence;
pub mod index;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod queue;
pub mod ratelimit;
pub mod trim;
pub mod watch;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// A mutex's guard, also after a panic elsewhere poisoned it (the data stays usable).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Resolves on SIGTERM (what the kubelet sends a pod it stops) or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without handlers the signals keep their default: the process ends.
        _ => std::future::pending().await,
    }
}
