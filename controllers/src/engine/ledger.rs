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

use crate::runtime::backoff::Backoff;
use crate::runtime::lock;

/// An in-flight create that never shows up (deleted at once by someone else) is forgotten
/// after this long.
const CREATE_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Ledger {
    workloads: Mutex<HashMap<String, Entries>>,
}

#[derive(Debug, Default)]
struct Entries {
    /// Pod name -> the create the apiserver accepted.
    creating: HashMap<String, Creating>,
    /// Names the apiserver said exist but that the workload's pods do not have.
    taken: HashSet<String>,
    /// The apiserver's refusal of the last create, until a create succeeds.
    refusal: Option<String>,
    /// Consecutive refused creates, and when the last one was refused.
    refusals: u32,
    refused_at: Option<Instant>,
    /// When a create was refused because the namespace is being deleted.
    closing_at: Option<Instant>,
    /// The workload's resourceVersion that drover's own last write replaced, until its
    /// cache moves past it.
    superseded: Option<String>,
    /// When drover last wrote the workload's status.
    status_written: Option<Instant>,
    /// Consecutive passes whose update revision could not be stored.
    store_failures: u32,
}

#[derive(Debug)]
struct Creating {
    /// The UID the apiserver gave the pod.
    uid: String,
    slot: u32,
    revision: String,
    at: Instant,
}

/// No pod is created this long after the namespace refused one as being deleted: every
/// pod event of its teardown would otherwise bring another create that cannot succeed.
const NAMESPACE_CLOSING: Duration = Duration::from_secs(30);

/// The wait before creating again after `refusals` refused creates in a row.
fn refusal_backoff(refusals: u32) -> Duration {
    Backoff::RECONCILE.after(refusals)
}

/// Storing a revision is tried again soon: what refused it (a quota, config that could
/// not be read) is lifted without any event that wakes the workload, and until then
/// its pods stay on an older revision.
const STORE_RETRY: Backoff = Backoff {
    first: Duration::from_secs(2),
    max: Duration::from_secs(30),
};

impl Ledger {
    fn with<T>(&self, uid: &str, f: impl FnOnce(&mut Entries) -> T) -> T {
        let mut workloads = lock(&self.workloads);
        f(workloads.entry(uid.to_string()).or_default())
    }

    /// Creates still in flight, as `(name, slot, revision)`; those whose pod the view
    /// holds (`observed`: name -> UID of the workload's pods) or that expired are forgotten.
    pub fn in_flight(
        &self,
        uid: &str,
        observed: &HashMap<String, String>,
    ) -> Vec<(String, u32, String)> {
        self.with(uid, |l| {
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
    pub fn seen(&self, uid: &str, pod_uid: &str) {
        let mut workloads = lock(&self.workloads);
        if let Some(l) = workloads.get_mut(uid) {
            l.creating.retain(|_, c| c.uid != pod_uid);
        }
    }

    /// How long until the oldest in-flight create expires: the workload is looked at
    /// again then, whatever else happens.
    pub fn next_expiry(&self, uid: &str) -> Option<Duration> {
        self.with(uid, |l| {
            l.creating
                .values()
                .map(|c| CREATE_TTL.saturating_sub(c.at.elapsed()))
                .min()
        })
    }

    pub fn taken(&self, uid: &str) -> HashSet<String> {
        self.with(uid, |l| l.taken.clone())
    }

    pub fn created(&self, uid: &str, name: &str, pod_uid: &str, slot: u32, revision: &str) {
        self.with(uid, |l| {
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

    /// The name exists already: either the workload's own pod the watch has not shown
    /// yet, or someone else's. Either way the slot is not free.
    pub fn name_taken(&self, uid: &str, name: &str) {
        self.with(uid, |l| {
            l.taken.insert(name.to_string());
        });
    }

    /// Records a refused create; returns how many in a row were refused.
    pub fn refused(&self, uid: &str, message: &str) -> u32 {
        self.with(uid, |l| {
            l.refusal = Some(message.to_string());
            l.refusals += 1;
            l.refused_at = Some(Instant::now());
            l.refusals
        })
    }

    /// The namespace refused a create because it is being deleted.
    pub fn namespace_closing(&self, uid: &str) {
        self.with(uid, |l| l.closing_at = Some(Instant::now()));
    }

    /// How long to hold off creating after refusals. Reconciles come with every pod and
    /// status change; without this a refused template would be retried on each of them.
    pub fn create_backoff(&self, uid: &str) -> Option<Duration> {
        self.with(uid, |l| {
            let refused = l
                .refused_at
                .and_then(|at| refusal_backoff(l.refusals).checked_sub(at.elapsed()));
            let closing = l
                .closing_at
                .and_then(|at| NAMESPACE_CLOSING.checked_sub(at.elapsed()));
            refused.max(closing)
        })
    }

    pub fn refusal(&self, uid: &str) -> Option<String> {
        self.with(uid, |l| l.refusal.clone())
    }

    /// drover wrote the workload (its status, an annotation): the version read before the
    /// write is stale from now on. A write that changed nothing (same version) is not one.
    pub fn wrote(&self, uid: &str, before: Option<String>, after: Option<String>) {
        if before.is_some() && before != after {
            self.with(uid, |l| l.superseded = before);
        }
    }

    /// drover wrote the workload's status.
    pub fn status_written(&self, uid: &str) {
        self.with(uid, |l| l.status_written = Some(Instant::now()));
    }

    /// How much longer a status that moved only in its counts waits, so that the
    /// workload's status is written at most once per `interval` while only its pods move.
    pub fn status_wait(&self, uid: &str, interval: Duration) -> Option<Duration> {
        self.with(uid, |l| {
            let since = l.status_written?.elapsed();
            (since < interval).then(|| interval - since)
        })
    }

    /// The update revision could not be stored; returns how soon to try again.
    pub fn store_failed(&self, uid: &str) -> Duration {
        self.with(uid, |l| {
            l.store_failures = l.store_failures.saturating_add(1);
            STORE_RETRY.after(l.store_failures)
        })
    }

    pub fn stored(&self, uid: &str) {
        self.with(uid, |l| l.store_failures = 0);
    }

    /// Whether this version of the workload is one drover's own write replaced: the store has
    /// not shown that write yet, and acting on the older version would undo it (a canary
    /// step promoted, a blue-green side switched). Any other version is the write or later.
    pub fn is_stale(&self, uid: &str, version: Option<&str>) -> bool {
        self.with(uid, |l| {
            if l.superseded.is_some() && l.superseded.as_deref() == version {
                return true;
            }
            l.superseded = None;
            false
        })
    }

    /// The workload no longer needs pods (or is gone): nothing is pending for it.
    pub fn settle(&self, uid: &str) {
        self.with(uid, |l| {
            l.refusal = None;
            l.refusals = 0;
            l.refused_at = None;
        });
    }

    pub fn forget(&self, uid: &str) {
        lock(&self.workloads).remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_waits_out_the_interval_since_the_last_write() {
        let l = Ledger::default();
        let interval = Duration::from_secs(60);
        assert_eq!(l.status_wait("a", interval), None, "never written");
        l.status_written("a");
        let wait = l.status_wait("a", interval).expect("written just now");
        assert!(wait > Duration::from_secs(59) && wait <= interval);
        assert_eq!(l.status_wait("a", Duration::ZERO), None);
        l.forget("a");
        assert_eq!(l.status_wait("a", interval), None, "forgotten");
    }

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
        l.wrote("a", Some("1".into()), Some("1".into()));
        assert!(!l.is_stale("a", Some("1")), "a write that changed nothing");
        l.wrote("a", Some("1".into()), Some("2".into()));
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
    fn a_closing_namespace_holds_creates() {
        let l = Ledger::default();
        l.namespace_closing("a");
        assert!(
            l.create_backoff("a")
                .is_some_and(|w| w > Duration::from_secs(25))
        );
        assert_eq!(l.create_backoff("b"), None, "per workload");
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
    fn a_failed_store_is_retried_within_half_a_minute() {
        let l = Ledger::default();
        let waits: Vec<u64> = (0..6).map(|_| l.store_failed("a").as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30]);
        l.stored("a");
        assert_eq!(l.store_failed("a"), Duration::from_secs(2));
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

/// A model of the App cache lagging behind drover's own writes, and of a controller that
/// stops between its status write and the removal of a command's annotation: passes run
/// on whatever version the cache shows, decide with the real canary strategy, act on the
/// split it asks for, write their status (with the record of the command acted on)
/// conditional on the version read (as the apiserver does), and remove the command's
/// annotation. A pass on a version older than drover's own last write would act on a
/// split a promotion already left: the ledger skips it. A command whose record the status
/// holds is never acted on again.
#[cfg(test)]
mod stale_view {
    use std::collections::HashSet;

    use drover_crds::CanaryStatus;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use proptest::prelude::*;
    use serde_json::json;

    use super::Ledger;
    use crate::rollout::canary::updated_for;
    use crate::rollout::command::Command;
    use crate::rollout::strategy::fixture::{pods, spec, strategy, t};
    use crate::rollout::strategy::{Input, decide};
    use crate::rollout::workload::Recorded;

    const REPLICAS: u32 = 10;

    /// One version of the App: what its status recorded, and the promote annotation.
    #[derive(Debug, Clone, Default)]
    struct Version {
        canary: Option<CanaryStatus>,
        /// Stands for the pod counts of the status: it changes with the pods.
        ready: u32,
        /// The promote annotation in place, by the moment it was set.
        promote: Option<u32>,
        /// The status's record of the last command acted on.
        recorded: Option<u32>,
    }

    #[derive(Debug, Clone, Copy)]
    enum Event {
        /// A pass over the version the cache shows; `true`: the controller stops right
        /// after the status write, before removing the annotation (its successor takes
        /// the next pass).
        Pass(bool),
        /// The cache shows this many versions more (never beyond the latest).
        CatchUp(usize),
        /// `kubectl annotate ... drover.dev/promote=step`.
        Promote,
        /// A pod changes: the next status differs.
        Churn,
    }

    struct World {
        versions: Vec<Version>,
        cached: usize,
        ready: u32,
        ledger: Ledger,
        /// Without the record (as before it existed), a successor knows nothing of what
        /// its predecessor acted on.
        recording: bool,
        /// The split the last pass acted on, as a canary step.
        acted_on: u32,
        /// Commands acted on, by the moment they were set.
        acted: HashSet<u32>,
        clock: u32,
    }

    impl World {
        fn new(recording: bool) -> Self {
            World {
                versions: vec![Version::default()],
                cached: 0,
                ready: 0,
                ledger: Ledger::default(),
                recording,
                acted_on: 0,
                acted: HashSet::new(),
                clock: 0,
            }
        }

        fn rv(i: usize) -> String {
            i.to_string()
        }

        /// Appends a version drover wrote from version `read`.
        fn write(&mut self, read: usize, version: Version) {
            self.versions.push(version);
            let written = self.versions.len() - 1;
            self.ledger
                .wrote("a", Some(Self::rv(read)), Some(Self::rv(written)));
        }

        fn pass(&mut self, stops: bool) -> Result<(), TestCaseError> {
            let read = self.cached;
            if self.ledger.is_stale("a", Some(&Self::rv(read))) {
                return Ok(());
            }
            let seen = self.versions[read].clone();
            let new_command = seen.promote.filter(|at| seen.recorded != Some(*at));
            let command = new_command.map(|_| Command::Promote);
            let latest = self.versions.last().cloned().unwrap_or_default();
            // The pods stand where the latest status put them.
            let weight = latest.canary.as_ref().map_or(0, |c| c.weight.max(0) as u32);
            let new = updated_for(weight, REPLICAS);
            let mut all = pods("web-a", 0, REPLICAS - new);
            all.extend(pods("web-b", REPLICAS - new, new));
            let (template, strategy) = (
                PodTemplateSpec::default(),
                strategy(json!({"type": "Canary", "canary": {"steps": [
                    {"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}},
                ]}})),
            );
            let stored = ["web-a".to_string(), "web-b".to_string()];
            let d = decide(&Input {
                spec: spec(&template, &strategy, REPLICAS),
                recorded: Recorded {
                    current_revision: "web-a",
                    update_revision: "web-b",
                    canary: seen.canary.as_ref(),
                    blue_green: None,
                    last_command: None,
                },
                update: "web-b",
                stored: &stored,
                pods: &all,
                command,
                now: t(10),
            });
            // Act: the pods move to the decided split.
            let step = d.canary.as_ref().map_or(0, |c| c.step.max(0) as u32);
            prop_assert!(
                step >= self.acted_on,
                "a pass acted on step {step} after step {}",
                self.acted_on
            );
            self.acted_on = step;
            let recorded = if self.recording {
                new_command.or(seen.recorded)
            } else {
                seen.recorded
            };
            // The version the annotation's removal is conditional on: the pass's own
            // status write, or what it read.
            let mut base = read;
            if d.canary != seen.canary || self.ready != seen.ready || recorded != seen.recorded {
                if read != self.versions.len() - 1 {
                    // 409: the App changed since it was read; the next pass reads again.
                    return Ok(());
                }
                if let Some(at) = new_command {
                    prop_assert!(
                        self.acted.insert(at),
                        "the command set at {at} was acted on twice"
                    );
                }
                // A status patch: the rest of the object is the latest version's.
                let version = Version {
                    canary: d.canary,
                    ready: self.ready,
                    recorded,
                    ..latest
                };
                self.write(read, version);
                base = self.versions.len() - 1;
            }
            if stops {
                return Ok(());
            }
            // Settled: the annotation is removed, unless the App changed since `base` (a
            // command given meanwhile must not go unseen): 409, the next pass reads again.
            if seen.promote.is_some() && base == self.versions.len() - 1 {
                let mut version = self.versions[base].clone();
                version.promote = None;
                self.write(base, version);
            }
            Ok(())
        }

        fn apply(&mut self, event: Event) -> Result<(), TestCaseError> {
            match event {
                Event::Pass(stops) => self.pass(stops)?,
                Event::CatchUp(n) => self.cached = (self.cached + n).min(self.versions.len() - 1),
                Event::Promote => {
                    self.clock += 1;
                    let mut version = self.versions.last().cloned().unwrap_or_default();
                    version.promote = Some(self.clock);
                    self.versions.push(version);
                }
                Event::Churn => self.ready += 1,
            }
            Ok(())
        }
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            3 => Just(Event::Pass(false)),
            1 => Just(Event::Pass(true)),
            3 => (0usize..3).prop_map(Event::CatchUp),
            1 => Just(Event::Promote),
            2 => Just(Event::Churn),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn a_pass_on_a_stale_view_or_after_a_failover_never_undoes_or_repeats_a_promotion(
            events in prop::collection::vec(arb_event(), 0..60),
        ) {
            let mut world = World::new(true);
            for event in events {
                world.apply(event)?;
            }
        }
    }

    #[test]
    fn a_successor_does_not_act_on_a_command_its_predecessor_recorded() {
        let events = [
            // To the open pause (step 1).
            Event::Pass(false),
            Event::CatchUp(1),
            Event::Pass(false),
            Event::CatchUp(1),
            Event::Promote,
            Event::CatchUp(1),
            // Acts, records, and stops before removing the annotation.
            Event::Pass(true),
            Event::CatchUp(1),
            // The successor sees the annotation: with the record it only removes it.
            Event::Pass(false),
            Event::CatchUp(1),
            Event::Churn,
            Event::Pass(false),
        ];
        let run = |recording: bool| {
            let mut world = World::new(recording);
            events.into_iter().try_for_each(|e| world.apply(e))?;
            Ok::<_, TestCaseError>(world)
        };
        let world = run(true).unwrap();
        assert_eq!(world.acted.len(), 1, "acted on once");
        assert!(world.acted_on >= 2, "past the first pause");
        assert!(world.versions.last().unwrap().promote.is_none());
        let twice = run(false).err().expect("without the record it acts again");
        assert!(twice.to_string().contains("acted on twice"), "{twice}");
    }
}
