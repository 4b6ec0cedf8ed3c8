//! What the controller has written but the watch has not shown yet (the "expectations"
//! of Kubernetes' own controllers), and what the apiserver told it about names and
//! refusals. The plan counts in-flight creates as pods, so a reconcile that runs before
//! the watch catches up never creates a pod twice. A create stops being in flight once
//! the pod watch delivers any event of its UID — a pod deleted before a reconcile saw it
//! included — or once a reconcile's view holds it. In memory only: after a restart the
//! initial list is a fresh read.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::lock;

/// An in-flight create that never shows up (deleted at once by someone else) is forgotten
/// after this long.
const CREATE_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Ledger {
    apps: Mutex<HashMap<String, AppLedger>>,
}

#[derive(Debug, Default)]
struct AppLedger {
    /// Pod name -> the create the apiserver accepted.
    creating: HashMap<String, Creating>,
    /// Names the apiserver said exist but that the App's pods do not have.
    taken: HashSet<String>,
    /// The apiserver's refusal of the last create, until a create succeeds.
    refusal: Option<String>,
    /// Consecutive refused creates, and when the last one was refused.
    refusals: u32,
    refused_at: Option<Instant>,
    /// The App's resourceVersion that drover's own last write replaced, until the App
    /// store moves past it.
    superseded: Option<String>,
}

#[derive(Debug)]
struct Creating {
    /// The UID the apiserver gave the pod.
    uid: String,
    slot: u32,
    revision: String,
    at: Instant,
}

/// The wait before creating again after `refusals` refused creates in a row: 1 s
/// doubling up to 5 min.
fn refusal_backoff(refusals: u32) -> Duration {
    Duration::from_secs(1u64 << refusals.saturating_sub(1).min(8)).min(Duration::from_secs(300))
}

impl Ledger {
    fn with<T>(&self, app_uid: &str, f: impl FnOnce(&mut AppLedger) -> T) -> T {
        let mut apps = lock(&self.apps);
        f(apps.entry(app_uid.to_string()).or_default())
    }

    /// Creates still in flight, as `(name, slot, revision)`; those whose pod the view
    /// holds (`observed`: name -> UID of the App's pods) or that expired are forgotten.
    pub fn in_flight(
        &self,
        app_uid: &str,
        observed: &HashMap<String, String>,
    ) -> Vec<(String, u32, String)> {
        self.with(app_uid, |l| {
            l.creating.retain(|name, c| {
                observed.get(name) != Some(&c.uid) && c.at.elapsed() < CREATE_TTL
            });
            l.taken.retain(|name| !observed.contains_key(name));
            l.creating
                .iter()
                .map(|(n, c)| (n.clone(), c.slot, c.revision.clone()))
                .collect()
        })
    }

    /// The pod watch delivered an event of this pod (created, changed or deleted): its
    /// create is in flight no longer. Without this a pod deleted before any reconcile
    /// saw it would stay counted until its create expired.
    pub fn seen(&self, app_uid: &str, pod_uid: &str) {
        let mut apps = lock(&self.apps);
        if let Some(l) = apps.get_mut(app_uid) {
            l.creating.retain(|_, c| c.uid != pod_uid);
        }
    }

    /// How long until the oldest in-flight create expires: the App is looked at again
    /// then, whatever else happens.
    pub fn next_expiry(&self, app_uid: &str) -> Option<Duration> {
        self.with(app_uid, |l| {
            l.creating
                .values()
                .map(|c| CREATE_TTL.saturating_sub(c.at.elapsed()))
                .min()
        })
    }

    pub fn taken(&self, app_uid: &str) -> HashSet<String> {
        self.with(app_uid, |l| l.taken.clone())
    }

    pub fn created(&self, app_uid: &str, name: &str, pod_uid: &str, slot: u32, revision: &str) {
        self.with(app_uid, |l| {
            l.creating.insert(
                name.to_string(),
                Creating {
                    uid: pod_uid.to_string(),
                    slot,
                    revision: revision.to_string(),
                    at: Instant::now(),
                },
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

    /// drover wrote the App (its status, an annotation): the version read before the
    /// write is stale from now on. A write that changed nothing (same version) is not one.
    pub fn wrote_app(&self, app_uid: &str, before: Option<String>, after: Option<String>) {
        if before.is_some() && before != after {
            self.with(app_uid, |l| l.superseded = before);
        }
    }

    /// Whether this version of the App is one drover's own write replaced: the store has
    /// not shown that write yet, and acting on the older version would undo it (a canary
    /// step promoted, a blue-green side switched). Any other version is the write or later.
    pub fn is_stale(&self, app_uid: &str, version: Option<&str>) -> bool {
        self.with(app_uid, |l| {
            if l.superseded.is_some() && l.superseded.as_deref() == version {
                return true;
            }
            l.superseded = None;
            false
        })
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
        let mut apps = lock(&self.apps);
        apps.remove(app_uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_stay_in_flight_until_observed() {
        let l = Ledger::default();
        l.created("a", "web-0", "u0", 0, "r");
        l.created("a", "web-1", "u1", 1, "r");
        let mut seen = l.in_flight("a", &HashMap::new());
        seen.sort();
        assert_eq!(
            seen,
            [
                ("web-0".to_string(), 0, "r".to_string()),
                ("web-1".to_string(), 1, "r".to_string())
            ]
        );
        let observed = HashMap::from([("web-0".to_string(), "u0".to_string())]);
        assert_eq!(
            l.in_flight("a", &observed),
            [("web-1".to_string(), 1, "r".to_string())]
        );
        assert!(l.in_flight("b", &HashMap::new()).is_empty(), "per App");
        assert!(l.next_expiry("a").is_some_and(|d| d <= CREATE_TTL));
    }

    #[test]
    fn an_older_pod_of_the_same_name_is_not_the_create() {
        let l = Ledger::default();
        l.created("a", "web-0", "new", 0, "r");
        let old = HashMap::from([("web-0".to_string(), "old".to_string())]);
        assert_eq!(l.in_flight("a", &old).len(), 1);
    }

    #[test]
    fn a_watch_event_of_the_pod_ends_its_create() {
        let l = Ledger::default();
        l.created("a", "web-0", "u0", 0, "r");
        l.created("a", "web-1", "u1", 1, "r");
        // web-0 was created and deleted before any reconcile looked.
        l.seen("a", "u0");
        l.seen("b", "u1");
        assert_eq!(
            l.in_flight("a", &HashMap::new()),
            [("web-1".to_string(), 1, "r".to_string())]
        );
        l.seen("a", "u1");
        assert_eq!(l.next_expiry("a"), None);
    }

    #[test]
    fn the_version_before_an_own_write_is_stale_until_the_store_moves_on() {
        let l = Ledger::default();
        assert!(!l.is_stale("a", Some("1")));
        l.wrote_app("a", Some("1".into()), Some("1".into()));
        assert!(!l.is_stale("a", Some("1")), "a write that changed nothing");
        l.wrote_app("a", Some("1".into()), Some("2".into()));
        assert!(l.is_stale("a", Some("1")));
        assert!(!l.is_stale("b", Some("1")), "per App");
        assert!(!l.is_stale("a", Some("3")), "a later version");
        assert!(
            !l.is_stale("a", Some("1")),
            "forgotten once the store moved on"
        );
    }

    #[test]
    fn refusals_count_until_a_create_succeeds() {
        let l = Ledger::default();
        assert_eq!(l.refused("a", "forbidden"), 1);
        assert_eq!(l.refused("a", "forbidden"), 2);
        assert_eq!(l.refusal("a").as_deref(), Some("forbidden"));
        l.created("a", "web-0", "u0", 0, "r");
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
        l.in_flight(
            "a",
            &HashMap::from([("web-0".to_string(), "u".to_string())]),
        );
        assert!(l.taken("a").is_empty());
    }
}
