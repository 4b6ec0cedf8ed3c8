//! What every drover component shares: metrics and the admin port, logging, leader
//! election, the client's rate limit, Events, backoff, what watches keep of objects.

pub mod admin;
pub mod backoff;
pub mod events;
pub mod index;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod ratelimit;
pub mod trim;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// A mutex's guard, also after a panic elsewhere poisoned it (the data stays usable).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
