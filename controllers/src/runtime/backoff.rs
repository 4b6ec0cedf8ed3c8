//! Exponential backoff, one policy for everything that retries: a failed reconcile, a
//! refused pod create, a pod that fit no node.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::lock;

/// Waits that double from `first` on each failure in a row, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// 1 s doubling to 256 s (about 4 min): failed reconciles and refused creates.
    pub const RECONCILE: Backoff = Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(256),
    };

    /// The wait after `failures` failures in a row (none: no wait).
    pub fn after(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        // 2^16 times any sensible `first` is past any sensible `max`.
        let factor = 1u32 << (failures - 1).min(16);
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// Failures in a row per key (a workload's UID), and the wait each next failure earns.
#[derive(Debug)]
pub struct Failures {
    policy: Backoff,
    counts: Mutex<HashMap<String, u32>>,
}

impl Failures {
    pub fn new(policy: Backoff) -> Self {
        Failures {
            policy,
            counts: Mutex::default(),
        }
    }

    /// Counts a failure of `key`; returns how long to wait before trying again.
    pub fn next(&self, key: &str) -> Duration {
        let mut counts = lock(&self.counts);
        let n = counts.entry(key.to_string()).or_default();
        *n = n.saturating_add(1);
        self.policy.after(*n)
    }

    pub fn reset(&self, key: &str) {
        lock(&self.counts).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let f = Failures::new(Backoff::RECONCILE);
        let waits: Vec<u64> = (0..11).map(|_| f.next("a").as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 256, 256]);
        assert_eq!(f.next("b").as_secs(), 1, "per key");
        f.reset("a");
        assert_eq!(f.next("a").as_secs(), 1);
    }

    #[test]
    fn short_policies_cap_early_and_never_overflow() {
        let b = Backoff {
            first: Duration::from_millis(500),
            max: Duration::from_secs(10),
        };
        assert_eq!(b.after(0), Duration::ZERO);
        assert_eq!(b.after(1), Duration::from_millis(500));
        assert_eq!(b.after(3), Duration::from_secs(2));
        assert_eq!(b.after(6), Duration::from_secs(10));
        assert_eq!(b.after(u32::MAX), Duration::from_secs(10));
    }
}
