//! What the controller has written but the watch has not shown yet (the "expectations"
//! of Kubernetes' own controllers), and what the apiserver told it about names and
//! refusals. The plan counts in-flight creates as pods, so a reconcile that runs before
//! the watch catches up never creates a pod twice. In memory only: after a restart the
//! initial list is a fresh read.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An in-flight create that never shows up (deleted at once by someone else) is forgotten
/// after this long.
const CREATE_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Ledger {
    apps: Mutex<HashMap<String, AppLedger>>,
}

#[derive(Debug, Default)]
struct AppLedger {
    /// Pod name -> (slot, revision, when the create was accepted).
    creating: HashMap<String, (u32, String, Instant)>,
    /// Names the apiserver said exist but that the App's pods do not have.
    taken: HashSet<String>,
    /// The apiserver's refusal of the last create, until a create succeeds.
    refusal: Option<String>,
    /// Consecutive refused creates, and when the last one was refused.
    refusals: u32,
    refused_at: Option<Instant>,
}

/// The wait before creating again after `refusals` refused creates in a row: 1 s
/// doubling up to 5 min.
fn refusal_backoff(refusals: u32) -> Duration {
    Duration::from_secs(1u64 << refusals.saturating_sub(1).min(8)).min(Duration::from_secs(300))
}

impl Ledger {
    fn with<T>(&self, app_uid: &str, f: impl FnOnce(&mut AppLedger) -> T) -> T {
        let mut apps = match self.apps.lock() {
            Ok(apps) => apps,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(apps.entry(app_uid.to_string()).or_default())
    }

    /// Creates still in flight, as `(name, slot, revision)`; those the watch now shows
    /// (or that expired) are forgotten.
    pub fn in_flight(
        &self,
        app_uid: &str,
        observed: &HashSet<String>,
    ) -> Vec<(String, u32, String)> {
        self.with(app_uid, |l| {
            l.creating
                .retain(|name, (_, _, at)| !observed.contains(name) && at.elapsed() < CREATE_TTL);
            l.taken.retain(|name| !observed.contains(name));
            l.creating
                .iter()
                .map(|(n, (s, r, _))| (n.clone(), *s, r.clone()))
                .collect()
        })
    }

    pub fn taken(&self, app_uid: &str) -> HashSet<String> {
        self.with(app_uid, |l| l.taken.clone())
    }

    pub fn created(&self, app_uid: &str, name: &str, slot: u32, revision: &str) {
        self.with(app_uid, |l| {
            l.creating.insert(
                name.to_string(),
                (slot, revision.to_string(), Instant::now()),
            );
            l.refusal = None;
            l.refusals = 0;
            l.refused_at = None;
        });
    }

    /// The name exists already: either the App's own pod the watch has not shown yet,
    /// or someone else's. Either way the slot is not free.
    pub fn name_taken(&self, app_uid: &str, name: &str) {
        self.with(app_uid, |l| {
            l.taken.insert(name.to_string());
        });
    }

    /// Records a refused create; returns how many in a row were refused.
    pub fn refused(&self, app_uid: &str, message: &str) -> u32 {
        self.with(app_uid, |l| {
            l.refusal = Some(message.to_string());
            l.refusals += 1;
            l.refused_at = Some(Instant::now());
            l.refusals
        })
    }

    /// How long to hold off creating after refusals. Reconciles come with every pod and
    /// status change; without this a refused template would be retried on each of them.
    pub fn create_backoff(&self, app_uid: &str) -> Option<Duration> {
        self.with(app_uid, |l| {
            let at = l.refused_at?;
            refusal_backoff(l.refusals).checked_sub(at.elapsed())
        })
    }

    pub fn refusal(&self, app_uid: &str) -> Option<String> {
        self.with(app_uid, |l| l.refusal.clone())
    }

    /// The App no longer needs pods (or is gone): nothing is pending for it.
    pub fn settle(&self, app_uid: &str) {
        self.with(app_uid, |l| {
            l.refusal = None;
            l.refusals = 0;
            l.refused_at = None;
        });
    }

    pub fn forget(&self, app_uid: &str) {
        let mut apps = match self.apps.lock() {
            Ok(apps) => apps,
            Err(poisoned) => poisoned.into_inner(),
        };
        apps.remove(app_uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_stay_in_flight_until_observed() {
        let l = Ledger::default();
        l.created("a", "web-0", 0, "r");
        l.created("a", "web-1", 1, "r");
        let mut seen = l.in_flight("a", &HashSet::new());
        seen.sort();
        assert_eq!(
            seen,
            [
                ("web-0".to_string(), 0, "r".to_string()),
                ("web-1".to_string(), 1, "r".to_string())
            ]
        );
        let observed = HashSet::from(["web-0".to_string()]);
        assert_eq!(
            l.in_flight("a", &observed),
            [("web-1".to_string(), 1, "r".to_string())]
        );
        assert!(l.in_flight("b", &HashSet::new()).is_empty(), "per App");
    }

    #[test]
    fn refusals_count_until_a_create_succeeds() {
        let l = Ledger::default();
        assert_eq!(l.refused("a", "forbidden"), 1);
        assert_eq!(l.refused("a", "forbidden"), 2);
        assert_eq!(l.refusal("a").as_deref(), Some("forbidden"));
        l.created("a", "web-0", 0, "r");
        assert_eq!(l.refusal("a"), None);
        assert_eq!(l.refused("a", "quota"), 1);
    }

    #[test]
    fn refused_creates_back_off() {
        let l = Ledger::default();
        assert_eq!(l.create_backoff("a"), None);
        l.refused("a", "no");
        assert!(
            l.create_backoff("a")
                .is_some_and(|w| w <= Duration::from_secs(1))
        );
        l.refused("a", "no");
        assert!(
            l.create_backoff("a")
                .is_some_and(|w| w > Duration::from_secs(1))
        );
        assert_eq!(refusal_backoff(1), Duration::from_secs(1));
        assert_eq!(refusal_backoff(4), Duration::from_secs(8));
        assert_eq!(refusal_backoff(40), Duration::from_secs(256));
        l.settle("a");
        assert_eq!(l.create_backoff("a"), None);
    }

    #[test]
    fn taken_names_are_remembered_until_observed_as_the_apps_own() {
        let l = Ledger::default();
        l.name_taken("a", "web-0");
        assert!(l.taken("a").contains("web-0"));
        l.in_flight("a", &HashSet::from(["web-0".to_string()]));
        assert!(l.taken("a").is_empty());
    }
}
