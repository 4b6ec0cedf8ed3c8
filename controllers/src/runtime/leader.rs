//! Leader election on a `coordination.k8s.io` Lease. Only the holder runs the controllers;
//! when it cannot renew in time it stops (the process exits), so at most one writes for
//! long. Leader election is not fencing: writes still carry preconditions.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

/// The lease spec to write to hold the lease, or `None` while someone else validly holds it.
pub fn claim(
    current: Option<&LeaseSpec>,
    identity: &str,
    duration: Duration,
    now: Timestamp,
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
    let expires = spec.renew_time.as_ref().map(|t| {
        let held = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        );
        t.0.checked_add(held).unwrap_or(Timestamp::MAX)
    });
    let free = spec.holder_identity.as_deref().is_none_or(str::is_empty)
        || expires.is_none_or(|e| e < now);
    free.then(|| fresh(spec.lease_transitions.unwrap_or(0) + 1))
}

impl LeaseLock {
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
        }
    }

    /// One attempt to take or renew the lease; `Ok(true)` when we hold it afterwards.
    async fn try_hold(&self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let Some(spec) = claim(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            self.duration,
            Timestamp::now(),
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
        Ok(true)
    }

    /// Waits until this process holds the lease.
    pub async fn acquire(&self) {
        info!(lease = %self.name, identity = %self.identity, "waiting for leadership");
        loop {
            match self.try_hold().await {
                Ok(true) => {
                    info!(lease = %self.name, "became the leader");
                    return;
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "could not take the lease"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Gives the lease up (after a graceful shutdown), so a successor need not wait for
    /// it to expire.
    pub async fn release(&self) {
        let Ok(mut lease) = self.api.get(&self.name).await else {
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
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!(lease = %self.name, "released the lease"),
            Err(e) => warn!(error = %e, "could not release the lease"),
        }
    }

    /// Renews the lease until renewing fails for two thirds of its duration or someone
    /// else holds it; then returns (and the caller must stop acting).
    pub async fn hold(&self) {
        let deadline = self.duration * 2 / 3;
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            loop {
                match self.try_hold().await {
                    Ok(true) => {
                        renewed = tokio::time::Instant::now();
                        break;
                    }
                    Ok(false) => {
                        warn!(lease = %self.name, "another process holds the lease");
                        return;
                    }
                    Err(e) => warn!(error = %e, "could not renew the lease"),
                }
                if renewed.elapsed() > deadline {
                    warn!(lease = %self.name, "lease not renewed in time");
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
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
        let new = claim(None, "a", D, t(0)).unwrap();
        assert_eq!(new.holder_identity.as_deref(), Some("a"));
        assert_eq!(new.lease_transitions, Some(0));
        // Held by b, renewed at 0: b holds it until 15.
        let held_by_b = claim(None, "b", D, t(0)).unwrap();
        assert!(claim(Some(&held_by_b), "a", D, t(10)).is_none());
        let taken = claim(Some(&held_by_b), "a", D, t(16)).unwrap();
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.acquire_time, Some(MicroTime(t(16))));
    }

    #[test]
    fn the_holder_renews_without_a_transition() {
        let held = claim(None, "a", D, t(0)).unwrap();
        let renewed = claim(Some(&held), "a", D, t(5)).unwrap();
        assert_eq!(renewed.renew_time, Some(MicroTime(t(5))));
        assert_eq!(renewed.acquire_time, Some(MicroTime(t(0))));
        assert_eq!(renewed.lease_transitions, Some(0));
    }

    #[test]
    fn a_released_lease_is_free() {
        let released = LeaseSpec::default();
        assert!(claim(Some(&released), "a", D, t(0)).is_some());
    }
}
