//! The soak suite's observer: every App of a namespace and all their pods, on watches of
//! its own (no code shared with the controller), checked at every event against what
//! drover promises whatever happens to the control plane:
//! - no more active pods than `replicas` plus the surge were created, and no fewer ready
//!   than a floor, where one is set (the per-App checks of [`crate::observer`]);
//! - every pod's `drover.dev/slot` label is the number its name ends in, so two pods of an
//!   App never claim one slot;
//! - a pod, once on a node, is never bound again (to the same or another node);
//! - an App's status never goes back: observed generation, revision number, the revision
//!   all pods ran (`currentRevision`), the blue-green active revision, the canary step of
//!   one revision, and the last command acted on.
//!
//! It is hardened: a watch of its own that ends, fails without recovering, or goes quiet
//! while the namespace is busy is itself a violation, so a blind observer cannot pass.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_crds::App;
use drover_crds::names::label;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Client, ResourceExt};
use tokio::task::JoinHandle;

use crate::observer::{State, ceiling};

/// The longest one of the observer's watches may fail without a single success (an
/// apiserver restart takes well under this) or stay silent while Apps keep changing.
pub const BLIND_LIMIT: Duration = Duration::from_secs(150);

/// How one of the observer's own watches has fared.
#[derive(Debug)]
struct WatchHealth {
    what: &'static str,
    errors: u64,
    /// Since when it has failed without an event in between.
    failing_since: Option<Instant>,
    last_event: Instant,
    /// The longest it went without an event.
    longest_silence: Duration,
    ended: bool,
}

impl WatchHealth {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            errors: 0,
            failing_since: None,
            last_event: Instant::now(),
            longest_silence: Duration::ZERO,
            ended: false,
        }
    }

    fn event(&mut self) {
        self.failing_since = None;
        self.longest_silence = self.longest_silence.max(self.last_event.elapsed());
        self.last_event = Instant::now();
    }

    fn error(&mut self) {
        self.errors += 1;
        self.failing_since.get_or_insert_with(Instant::now);
    }

    fn violations(&self) -> Vec<String> {
        let silence = self.longest_silence.max(self.last_event.elapsed());
        let mut found = vec![];
        if self.ended {
            found.push(format!("the observer's {} watch ended", self.what));
        }
        if silence > BLIND_LIMIT {
            found.push(format!(
                "the observer's {} watch was blind for {}s ({} errors)",
                self.what,
                silence.as_secs(),
                self.errors
            ));
        }
        found
    }
}

/// How far an App's status has come; it may only move forward.
#[derive(Debug, Default)]
struct StatusTrack {
    generation: i64,
    revision: i64,
    /// Revision name -> number, as the status paired them.
    numbers: HashMap<String, i64>,
    current: i64,
    active: i64,
    canary: Option<(String, i32)>,
    command_at: Option<Time>,
}

impl StatusTrack {
    /// Takes the App's status as it is now; returns what went back.
    fn saw(&mut self, app: &App) -> Vec<String> {
        let Some(status) = &app.status else {
            return vec![];
        };
        let name = app.name_any();
        let mut back = vec![];
        let mut forward = |what: &str, was: &mut i64, now: i64| {
            if now < *was {
                back.push(format!("App {name}: {what} went back from {was} to {now}"));
            }
            *was = now.max(*was);
        };
        forward(
            "observedGeneration",
            &mut self.generation,
            status.observed_generation.unwrap_or(0),
        );
        if let Some(revision) = status.revision {
            self.numbers
                .insert(status.update_revision.clone(), revision);
            forward("the revision number", &mut self.revision, revision);
        }
        if let Some(&current) = self.numbers.get(&status.current_revision) {
            forward("currentRevision", &mut self.current, current);
        }
        if let Some(bg) = &status.blue_green
            && let Some(&active) = self.numbers.get(&bg.active)
        {
            forward("the blue-green active revision", &mut self.active, active);
        }
        if let Some(canary) = &status.canary {
            if let Some((revision, step)) = &self.canary
                && *revision == canary.revision
                && canary.step < *step
            {
                back.push(format!(
                    "App {name}: the canary step of {revision} went back from {step} to {}",
                    canary.step
                ));
            }
            let furthest = match &self.canary {
                Some((revision, step)) if *revision == canary.revision => canary.step.max(*step),
                _ => canary.step,
            };
            self.canary = Some((canary.revision.clone(), furthest));
        }
        if let Some(at) = status.last_command.as_ref().and_then(|c| c.set_at.clone()) {
            if let Some(was) = &self.command_at
                && at.0 < was.0
            {
                back.push(format!(
                    "App {name}: the last command acted on went back from one set at {} to \
                     one set at {}",
                    was.0, at.0
                ));
            }
            if self.command_at.as_ref().is_none_or(|was| at.0 > was.0) {
                self.command_at = Some(at);
            }
        }
        back
    }
}

#[derive(Debug, Default)]
struct Shared {
    /// App name -> its pods' bounds.
    pods: BTreeMap<String, State>,
    statuses: BTreeMap<String, StatusTrack>,
    /// Pod UID -> (name, node) once bound.
    bound: HashMap<String, (String, String)>,
    violations: Vec<String>,
    checks: u64,
    health: Vec<WatchHealth>,
}

impl Shared {
    fn app_pods(&mut self, app: &str) -> &mut State {
        self.pods.entry(app.to_string()).or_default()
    }

    /// A pod as it is now: its slot and node, then its App's bounds.
    fn saw_pod(&mut self, pod: &Pod) {
        let Some(app) = pod.labels().get(label::APP).cloned() else {
            return;
        };
        let name = pod.name_any();
        let slot = pod.labels().get(label::SLOT);
        let suffix = name.strip_prefix(&format!("{app}-"));
        if slot.map(String::as_str) != suffix {
            self.violations.push(format!(
                "pod {name} of App {app} claims slot {slot:?}, not the one its name holds"
            ));
        }
        if let (Some(uid), Some(node)) = (
            pod.uid(),
            pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        ) {
            if let Some((_, was)) = self.bound.get(&uid)
                && *was != node
            {
                self.violations.push(format!(
                    "pod {name} ({uid}) was bound to {was}, then to {node}"
                ));
            }
            self.bound.insert(uid, (name, node));
        }
        self.app_pods(&app).saw(pod);
        self.checks += 3;
    }

    fn forget_pod(&mut self, pod: &Pod) {
        if let Some(app) = pod.labels().get(label::APP).cloned() {
            self.app_pods(&app).gone(&pod.name_any());
        }
    }

    fn saw_app(&mut self, app: &App) {
        let name = app.name_any();
        self.app_pods(&name).asked_for(ceiling(app));
        let back = self.statuses.entry(name).or_default().saw(app);
        self.violations.extend(back);
        self.checks += 7;
    }

    fn check_all(&mut self) {
        for state in self.pods.values_mut() {
            state.check();
        }
        self.checks += self.pods.len() as u64;
    }
}

/// What the observer saw over the whole run.
#[derive(Debug)]
pub struct Report {
    pub violations: Vec<String>,
    /// Invariant checks made.
    pub checks: u64,
    /// Its own watches' errors, by watch.
    pub watch_errors: Vec<(&'static str, u64)>,
    /// Pods seen bound.
    pub pods_bound: usize,
    /// Running pods removed from outside drover (never seen terminating), by App.
    pub involuntary: BTreeMap<String, usize>,
}

pub struct Invariants {
    shared: Arc<Mutex<Shared>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Invariants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invariants").finish_non_exhaustive()
    }
}

impl Invariants {
    /// Starts watching every App of `namespace` and their pods; returns once both watches
    /// have listed.
    pub async fn start(client: &Client, namespace: &str) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            health: vec![WatchHealth::new("App"), WatchHealth::new("pod")],
            ..Shared::default()
        }));
        let (apps_listed, apps_ready) = tokio::sync::oneshot::channel();
        let apps: Api<App> = Api::namespaced(client.clone(), namespace);
        let app_task = tokio::spawn(watch_all(
            watcher(apps, watcher::Config::default()),
            shared.clone(),
            0,
            apps_listed,
            |s, app: &App| s.saw_app(app),
            |_, _| {},
            // What a status reached stays reached across a relist.
            |_| {},
        ));
        let (pods_listed, pods_ready) = tokio::sync::oneshot::channel();
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let pod_task = tokio::spawn(watch_all(
            watcher(pods, watcher::Config::default().labels(label::APP)),
            shared.clone(),
            1,
            pods_listed,
            |s, pod: &Pod| s.saw_pod(pod),
            |s, pod| s.forget_pod(pod),
            |s| {
                for state in s.pods.values_mut() {
                    state.pods.clear();
                    state.ready.clear();
                }
            },
        ));
        for (what, listed) in [("App", apps_ready), ("pod", pods_ready)] {
            tokio::time::timeout(Duration::from_secs(60), listed)
                .await
                .unwrap_or_else(|_| panic!("the observer's first {what} list within 60 s"))
                .unwrap_or_else(|_| panic!("the observer's {what} watch ended before listing"));
        }
        Self {
            shared,
            tasks: vec![app_task, pod_task],
        }
    }

    /// From now on, fewer than `floor` ready pods of App `app` is a violation.
    pub fn require_ready(&self, app: &str, floor: usize) {
        let mut s = self.shared.lock().unwrap();
        let state = s.app_pods(app);
        state.floor = Some(floor);
        state.check();
    }

    /// The violations found so far (the run can stop early on the first).
    pub fn violations(&self) -> Vec<String> {
        let s = self.shared.lock().unwrap();
        let mut found = s.violations.clone();
        for state in s.pods.values() {
            found.extend(state.violations());
        }
        found
    }

    /// Stops watching and returns what was seen.
    pub async fn stop(self) -> Report {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for t in &self.tasks {
            t.abort();
        }
        let mut s = self.shared.lock().unwrap();
        s.check_all();
        let mut violations = s.violations.clone();
        for state in s.pods.values() {
            violations.extend(state.violations());
        }
        for health in &s.health {
            violations.extend(health.violations());
        }
        Report {
            violations,
            checks: s.checks,
            watch_errors: s.health.iter().map(|h| (h.what, h.errors)).collect(),
            pods_bound: s.bound.len(),
            involuntary: s
                .pods
                .iter()
                .map(|(app, state)| (app.clone(), state.involuntary()))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// Follows one watch for good: each (re)list replaces what it fed as a whole (`reset`,
/// then every object); errors are counted and retried with a backoff.
async fn watch_all<K, S>(
    events: S,
    shared: Arc<Mutex<Shared>>,
    health: usize,
    listed: tokio::sync::oneshot::Sender<()>,
    apply: impl Fn(&mut Shared, &K),
    delete: impl Fn(&mut Shared, &K),
    reset: impl Fn(&mut Shared),
) where
    S: futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send,
{
    let mut events = std::pin::pin!(events.default_backoff());
    let mut listed = Some(listed);
    let mut relist: Option<Vec<K>> = None;
    while let Some(event) = events.next().await {
        let mut s = shared.lock().unwrap();
        let Ok(event) = event else {
            s.health[health].error();
            continue;
        };
        s.health[health].event();
        match event {
            Event::Init => relist = Some(vec![]),
            Event::InitApply(object) => relist.get_or_insert_with(Vec::new).push(object),
            Event::InitDone => {
                reset(&mut s);
                for object in relist.take().unwrap_or_default() {
                    apply(&mut s, &object);
                }
                s.check_all();
                if let Some(tx) = listed.take() {
                    let _ = tx.send(());
                }
            }
            Event::Apply(object) => {
                apply(&mut s, &object);
                s.check_all();
            }
            Event::Delete(object) => {
                delete(&mut s, &object);
                s.check_all();
            }
        }
    }
    shared.lock().unwrap().health[health].ended = true;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(status: serde_json::Value) -> App {
        serde_json::from_value(json!({
            "apiVersion": "drover.dev/v1alpha1", "kind": "App",
            "metadata": {"name": "web"},
            "spec": {"replicas": 1, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    fn status(revision: i64, update: &str, current: &str) -> serde_json::Value {
        json!({
            "replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1,
            "revision": revision, "updateRevision": update, "currentRevision": current,
            "selector": "drover.dev/app=web", "observedGeneration": revision,
        })
    }

    #[test]
    fn a_status_that_goes_back_is_caught() {
        let mut track = StatusTrack::default();
        assert!(track.saw(&app(status(1, "web-a", "web-a"))).is_empty());
        assert!(track.saw(&app(status(2, "web-b", "web-a"))).is_empty());
        assert!(track.saw(&app(status(2, "web-b", "web-b"))).is_empty());
        let back = track.saw(&app(status(2, "web-b", "web-a")));
        assert_eq!(back.len(), 1, "{back:?}");
        assert!(back[0].contains("currentRevision"));
        let back = track.saw(&app(status(1, "web-a", "web-b")));
        assert!(
            back.iter().any(|b| b.contains("revision number")),
            "{back:?}"
        );
    }

    #[test]
    fn a_canary_step_and_an_active_revision_only_move_forward() {
        let mut track = StatusTrack::default();
        let mut s = status(1, "web-a", "web-a");
        assert!(track.saw(&app(s.clone())).is_empty());
        s = status(2, "web-b", "web-a");
        s["canary"] = json!({"revision": "web-b", "step": 3, "weight": 50});
        s["blueGreen"] = json!({"active": "web-b"});
        assert!(track.saw(&app(s.clone())).is_empty());
        s["canary"]["step"] = json!(1);
        s["blueGreen"]["active"] = json!("web-a");
        let back = track.saw(&app(s));
        assert_eq!(back.len(), 2, "{back:?}");
    }

    #[test]
    fn a_pod_bound_twice_or_in_a_slot_not_its_own_is_caught() {
        let pod = |name: &str, slot: &str, node: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "uid": "u1",
                    "labels": {"drover.dev/app": "web", "drover.dev/slot": slot}},
                "spec": {"containers": [], "nodeName": node},
            }))
            .unwrap()
        };
        let mut s = Shared::default();
        s.saw_pod(&pod("web-3", "3", "a"));
        s.saw_pod(&pod("web-3", "3", "a"));
        assert!(s.violations.is_empty(), "{:?}", s.violations);
        s.saw_pod(&pod("web-3", "3", "b"));
        assert_eq!(s.violations.len(), 1);
        s.saw_pod(&pod("web-3", "4", "b"));
        assert_eq!(s.violations.len(), 2);
    }

    #[test]
    fn a_blind_watch_is_a_violation() {
        let mut health = WatchHealth::new("pod");
        assert!(health.violations().is_empty());
        health.last_event = Instant::now() - BLIND_LIMIT * 2;
        health.error();
        assert_eq!(health.violations().len(), 1);
        health.event();
        health.ended = true;
        assert_eq!(
            health.violations().len(),
            2,
            "the silence before still counts"
        );
    }
}
