//! Leader election on a `coordination.k8s.io` Lease. Only the holder runs the controllers;
//! when it cannot renew within the renew deadline it stops (the process exits), before any
//! other process may take the lease, so at most one writes. Leader election is not
//! fencing: writes still carry preconditions.
//!
//! As client-go's, a candidate judges a lease expired by its own clock: the holder's
//! record has not changed for the lease's duration since this process saw it change. The
//! holder's `renewTime`, written by another machine's clock, is never compared with ours.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::time::{Instant, timeout};
use tracing::{info, warn};

use super::fence::Fence;
use super::lock;

#[derive(Debug)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    observed: Mutex<Observed>,
    /// Open while the lease is ours by this process's clock.
    fence: Fence,
}

/// A lease holder's record as this process last read it, and when (by this process's
/// clock) it last saw that record change.
#[derive(Debug, Default)]
pub struct Observed {
    record: Option<(Option<String>, Option<MicroTime>, Option<i32>)>,
    since: Option<Instant>,
}

impl Observed {
    /// Whether the lease in `spec` has expired at `now`: its record has stayed the same
    /// for its duration since this process saw it change.
    pub fn expired(&mut self, spec: &LeaseSpec, now: Instant) -> bool {
        let record = (
            spec.holder_identity.clone(),
            spec.renew_time.clone(),
            spec.lease_transitions,
        );
        if self.record.as_ref() != Some(&record) {
            self.record = Some(record);
            self.since = Some(now);
        }
        let held = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        );
        self.since
            .is_none_or(|since| now.saturating_duration_since(since) >= held)
    }
}

/// The lease spec to write to hold the lease, or `None` while someone else validly holds
/// it. `expired`: the current holder's lease has run out (see [`Observed::expired`]).
pub fn claim(
    current: Option<&LeaseSpec>,
    identity: &str,
    duration: Duration,
    now: Timestamp,
    expired: bool,
) -> Option<LeaseSpec> {
    let seconds = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX);
    let fresh = |transitions: i32| LeaseSpec {
        holder_identity: Some(identity.into()),
        lease_duration_seconds: Some(seconds),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let Some(spec) = current else {
        return Some(fresh(0));
    };
    if spec.holder_identity.as_deref() == Some(identity) {
        return Some(LeaseSpec {
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(seconds),
            ..spec.clone()
        });
    }
    let free = spec.holder_identity.as_deref().is_none_or(str::is_empty) || expired;
    free.then(|| fresh(spec.lease_transitions.unwrap_or(0) + 1))
}

impl LeaseLock {
    /// `client` should be the lease's own: renewals must not wait behind the component's
    /// requests in a shared rate limit.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            duration,
            observed: Mutex::default(),
            fence: Fence::closed(),
        }
    }

    /// The fence the workload's writes pass: open until the renew deadline after the
    /// last successful renewal, counted from when it was sent.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// How long the holder keeps trying to renew before it stops: two thirds of the
    /// lease, so it has stopped before any candidate may take the lease over.
    fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// How often the holder renews and a candidate tries.
    fn retry_period(&self) -> Duration {
        self.duration / 5
    }

    /// One attempt to take or renew the lease; `Ok(true)` when we hold it afterwards.
    async fn try_hold(&self) -> Result<bool, kube::Error> {
        let sent = Instant::now();
        let current = self.api.get_opt(&self.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let expired = spec.is_some_and(|s| lock(&self.observed).expired(s, Instant::now()));
        let Some(spec) = claim(
            spec,
            &self.identity,
            self.duration,
            Timestamp::now(),
            expired,
        ) else {
            return Ok(false);
        };
        match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await?;
            }
            Some(mut lease) => {
                // Replacing with the resourceVersion we read makes a concurrent taker fail.
                lease.spec = Some(spec);
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await?;
            }
        }
        self.fence.open_until(sent + self.renew_deadline());
        Ok(true)
    }

    /// Waits until this process holds the lease.
    pub async fn acquire(&self) {
        info!(lease = %self.name, identity = %self.identity, "waiting for leadership");
        loop {
            match timeout(self.retry_period(), self.try_hold()).await {
                Ok(Ok(true)) => {
                    info!(lease = %self.name, "became the leader");
                    return;
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => warn!(error = %e, "could not take the lease"),
                Err(_) => warn!("taking the lease timed out"),
            }
            tokio::time::sleep(self.retry_period()).await;
        }
    }

    /// Gives the lease up (after a graceful shutdown), so a successor need not wait for
    /// it to expire.
    pub async fn release(&self) {
        self.fence.close();
        let Ok(Ok(mut lease)) = timeout(self.retry_period(), self.api.get(&self.name)).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        let params = PostParams::default();
        let replace = self.api.replace(&self.name, &params, &lease);
        match timeout(self.retry_period(), replace).await {
            Ok(Ok(_)) => info!(lease = %self.name, "released the lease"),
            Ok(Err(e)) => warn!(error = %e, "could not release the lease"),
            Err(_) => warn!("releasing the lease timed out"),
        }
    }

    /// Renews the lease until a renewal has not succeeded within the renew deadline
    /// (each attempt is cut off when the deadline passes) or someone else holds it; then
    /// returns, and the caller must stop acting at once.
    pub async fn hold(&self) {
        let deadline = self.renew_deadline();
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.retry_period()).await;
            let left = deadline.saturating_sub(renewed.elapsed());
            match timeout(left, self.try_hold()).await {
                Ok(Ok(true)) => renewed = Instant::now(),
                Ok(Ok(false)) => {
                    self.fence.close();
                    warn!(lease = %self.name, "another process holds the lease");
                    return;
                }
                Ok(Err(e)) => warn!(error = %e, "could not renew the lease"),
                Err(_) => {}
            }
            if renewed.elapsed() >= deadline {
                self.fence.close();
                warn!(lease = %self.name, "lease not renewed within its renew deadline");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn takes_a_missing_or_expired_lease() {
        let new = claim(None, "a", D, t(0), false).unwrap();
        assert_eq!(new.holder_identity.as_deref(), Some("a"));
        assert_eq!(new.lease_transitions, Some(0));
        let held_by_b = claim(None, "b", D, t(0), false).unwrap();
        assert!(claim(Some(&held_by_b), "a", D, t(10), false).is_none());
        let taken = claim(Some(&held_by_b), "a", D, t(16), true).unwrap();
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.acquire_time, Some(MicroTime(t(16))));
    }

    #[test]
    fn the_holder_renews_without_a_transition() {
        let held = claim(None, "a", D, t(0), false).unwrap();
        let renewed = claim(Some(&held), "a", D, t(5), false).unwrap();
        assert_eq!(renewed.renew_time, Some(MicroTime(t(5))));
        assert_eq!(renewed.acquire_time, Some(MicroTime(t(0))));
        assert_eq!(renewed.lease_transitions, Some(0));
    }

    #[test]
    fn a_released_lease_is_free() {
        let released = LeaseSpec::default();
        assert!(claim(Some(&released), "a", D, t(0), false).is_some());
    }

    #[test]
    fn expiry_is_judged_by_the_candidates_own_clock() {
        // The holder's clock is an hour behind: its renewTime looks long expired, but the
        // record keeps changing, so the lease is held.
        let at = Instant::now();
        let mut observed = Observed::default();
        let mut spec = claim(None, "b", D, t(-3600), false).unwrap();
        assert!(!observed.expired(&spec, at));
        for i in 1..10 {
            spec.renew_time = Some(MicroTime(t(-3600 + i * 5)));
            assert!(!observed.expired(&spec, at + Duration::from_secs(i as u64 * 5)));
        }
        // Its clock is an hour ahead and it stops renewing: the record stays the same
        // and the lease expires a lease duration after this process saw it last change.
        let mut observed = Observed::default();
        let ahead = claim(None, "b", D, t(3600), false).unwrap();
        assert!(!observed.expired(&ahead, at));
        assert!(!observed.expired(&ahead, at + Duration::from_secs(14)));
        assert!(observed.expired(&ahead, at + Duration::from_secs(15)));
    }
}
