//! An independent observer of an App's pods: its own watches, no shared code with the
//! controller. It records every moment the App had more active pods (not terminating,
//! not finished) than it allowed (`replicas` plus the rolling update's `maxSurge`), and,
//! once asked to, every moment fewer pods were ready than a floor.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_crds::App;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Client, ResourceExt};
use tokio::task::JoinHandle;

/// A scale-down lowers `replicas` before the controller's deletes land: for this long
/// after a change, the previous value still counts as asked for.
const SCALE_DOWN_SLACK: Duration = Duration::from_secs(10);
/// The observer's App watch may deliver a scale-up after its pod watch shows the pods
/// created for it: an excess is a suspect until the App catches up within this long.
const APP_WATCH_LAG: Duration = Duration::from_secs(5);
/// A pod that vanishes while ready, never seen terminating, was removed at once from
/// outside (drover only evicts or deletes gracefully, with the pod's UID): a force
/// deletion, or kwok deleting by name a new pod of a reused name when it meant the old
/// one. Like a disruption budget, the floor allows such involuntary losses for this long,
/// the time the controller has to replace them.
const INVOLUNTARY_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Pod name -> active.
    pub(crate) pods: BTreeMap<String, bool>,
    /// Recent ceilings (`replicas` + surge) with the time they were replaced.
    asked: VecDeque<(i32, Option<Instant>)>,
    /// Pod name -> ready (and active).
    pub(crate) ready: BTreeMap<String, bool>,
    /// Fewest ready pods allowed, once set.
    pub(crate) floor: Option<usize>,
    /// Ready counts below the floor: (ready count, description).
    shortfalls: Vec<String>,
    /// When running pods vanished without having been seen terminating.
    involuntary: Vec<Instant>,
    /// Excesses not yet explained by a later `replicas`: (when, active count, description).
    suspects: Vec<(Instant, usize, String)>,
    max_active: usize,
    /// The active count at the last check: only a count that grows (a pod created or
    /// revived) can break the ceiling; an excess left by a scale-down the controller has
    /// yet to act on is not a creation.
    last_count: usize,
    names_seen: Vec<String>,
}

impl State {
    fn allowed(&mut self) -> Option<i32> {
        let now = Instant::now();
        self.asked.retain(|(_, replaced)| {
            replaced.is_none_or(|at| now.duration_since(at) < SCALE_DOWN_SLACK)
        });
        self.asked.iter().map(|(r, _)| *r).max()
    }

    pub(crate) fn check(&mut self) {
        let active: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, a)| **a)
            .map(|(n, _)| n.clone())
            .collect();
        let count = active.len();
        let grew = count > self.last_count;
        self.last_count = count;
        self.max_active = self.max_active.max(count);
        let ready = self.ready.values().filter(|r| **r).count();
        let recent = self
            .involuntary
            .iter()
            .filter(|at| at.elapsed() < INVOLUNTARY_GRACE)
            .count();
        if let Some(floor) = self.floor
            && ready + recent < floor
        {
            self.shortfalls.push(format!(
                "{ready} ready pods while at least {floor} must be: {}",
                active.join(" ")
            ));
        }
        if let Some(allowed) = self.allowed()
            && grew
            && count > usize::try_from(allowed).unwrap_or(0)
        {
            self.suspects.push((
                Instant::now(),
                count,
                format!(
                    "{count} active pods while {allowed} were asked for: {}",
                    active.join(" ")
                ),
            ));
        }
    }

    /// A new `replicas` explains the excesses seen just before it.
    pub(crate) fn asked_for(&mut self, replicas: i32) {
        if self.asked.back().map(|(r, _)| *r) != Some(replicas) {
            if let Some(last) = self.asked.back_mut() {
                last.1 = Some(Instant::now());
            }
            self.asked.push_back((replicas, None));
        }
        let allowed = usize::try_from(replicas).unwrap_or(0);
        self.suspects
            .retain(|(at, count, _)| !(*count <= allowed && at.elapsed() < APP_WATCH_LAG));
        self.check();
    }

    /// Records a pod as it is now.
    pub(crate) fn saw(&mut self, pod: &Pod) {
        let name = pod.name_any();
        if !self.names_seen.contains(&name) {
            self.names_seen.push(name.clone());
        }
        self.ready.insert(name.clone(), is_ready(pod));
        self.pods.insert(name, is_active(pod));
    }

    /// A pod's deletion: a ready one never seen terminating was lost involuntarily (a
    /// pod not bound yet is deleted at once by anyone, drover included, but was not
    /// ready).
    pub(crate) fn gone(&mut self, name: &str) {
        let running = self.pods.remove(name) == Some(true);
        if self.ready.remove(name) == Some(true) && running {
            self.involuntary.push(Instant::now());
        }
    }

    /// Running pods lost involuntarily so far.
    pub(crate) fn involuntary(&self) -> usize {
        self.involuntary.len()
    }

    pub(crate) fn violations(&self) -> Vec<String> {
        self.suspects
            .iter()
            .map(|(_, _, d)| d.clone())
            .chain(self.shortfalls.iter().cloned())
            .collect()
    }
}

/// What the observer saw.
#[derive(Debug)]
pub struct Report {
    pub violations: Vec<String>,
    pub max_active: usize,
    /// Every pod name seen, in order of first appearance.
    pub names_seen: Vec<String>,
}

pub struct ReplicaObserver {
    state: Arc<Mutex<State>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ReplicaObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaObserver").finish_non_exhaustive()
    }
}

fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(phase, Some("Succeeded") | Some("Failed"))
}

fn is_ready(pod: &Pod) -> bool {
    is_active(pod)
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The most pods an App allows: `replicas`, plus the rolling update's surge (a count, or a
/// percentage of replicas rounded up; 25% when unset), or twice `replicas` for a
/// blue-green preview — computed here independently of the controller.
pub(crate) fn ceiling(app: &App) -> i32 {
    let replicas = app.spec.replicas;
    let spec = serde_json::to_value(&app.spec.strategy).unwrap_or_default();
    if spec["type"] == "Recreate" {
        return replicas;
    }
    // A blue-green preview runs a full set beside the active one.
    if spec["type"] == "BlueGreen" {
        return replicas * 2;
    }
    let surge = match &spec["rollingUpdate"]["maxSurge"] {
        serde_json::Value::Number(n) => n.as_i64().unwrap_or(0) as i32,
        serde_json::Value::String(s) if s.ends_with('%') => {
            let percent: i32 = s.trim_end_matches('%').parse().unwrap_or(0);
            (replicas * percent + 99) / 100
        }
        serde_json::Value::String(s) => s.parse().unwrap_or(0),
        _ => (replicas * 25 + 99) / 100,
    };
    replicas + surge
}

impl ReplicaObserver {
    /// Starts watching the App `name` in `namespace` and its pods.
    pub async fn start(client: &Client, namespace: &str, name: &str) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let apps: Api<App> = Api::namespaced(client.clone(), namespace);
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let app_state = state.clone();
        let app_config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let app_task = tokio::spawn(async move {
            let mut events = watcher(apps, app_config).boxed();
            while let Ok(Some(event)) = events.try_next().await {
                if let Event::Apply(app) | Event::InitApply(app) = event {
                    app_state.lock().unwrap().asked_for(ceiling(&app));
                }
            }
        });
        let pod_state = state.clone();
        let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
        let pod_config = watcher::Config::default().labels(&format!("drover.dev/app={name}"));
        let pod_task = tokio::spawn(async move {
            let mut events = watcher(pods, pod_config).boxed();
            let mut listed = Some(listed_tx);
            // A (re)list arrives pod by pod between `Init` and `InitDone`: it is gathered
            // apart and replaces the state whole, so a half-delivered list never counts.
            let mut relist: Option<Vec<Pod>> = None;
            while let Ok(Some(event)) = events.try_next().await {
                let mut s = pod_state.lock().unwrap();
                match event {
                    Event::Init => relist = Some(Vec::new()),
                    Event::InitApply(pod) => relist.get_or_insert_with(Vec::new).push(pod),
                    Event::InitDone => {
                        s.pods.clear();
                        s.ready.clear();
                        for pod in relist.take().unwrap_or_default() {
                            s.saw(&pod);
                        }
                        if let Some(tx) = listed.take() {
                            let _ = tx.send(());
                        }
                    }
                    Event::Apply(pod) => s.saw(&pod),
                    Event::Delete(pod) => s.gone(&pod.name_any()),
                }
                if relist.is_none() {
                    s.check();
                }
            }
        });
        // The pods are known once the first list is complete; the App's first event
        // comes with its own list.
        tokio::time::timeout(Duration::from_secs(30), listed_rx)
            .await
            .expect("the observer's first pod list within 30 s")
            .expect("the observer's pod watch ended before its first list");
        tokio::time::sleep(Duration::from_millis(200)).await;
        Self {
            state,
            tasks: vec![app_task, pod_task],
        }
    }

    /// From now on, fewer than `floor` ready pods is a violation.
    pub fn require_ready(&self, floor: usize) {
        let mut s = self.state.lock().unwrap();
        s.floor = Some(floor);
        s.check();
    }

    /// Stops watching and returns what was seen (after letting a late App event explain
    /// a last excess).
    pub async fn stop(self) -> Report {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for t in &self.tasks {
            t.abort();
        }
        let s = self.state.lock().unwrap();
        Report {
            violations: s.violations(),
            max_active: s.max_active,
            names_seen: s.names_seen.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_too_few_ready_pods_once_a_floor_is_set() {
        let mut s = State::default();
        s.asked_for(3);
        s.ready.insert("web-0".into(), true);
        s.ready.insert("web-1".into(), false);
        s.check();
        assert!(s.violations().is_empty(), "no floor yet");
        s.floor = Some(2);
        s.check();
        assert_eq!(s.violations().len(), 1);
    }

    #[test]
    fn a_running_pod_removed_from_outside_lowers_the_floor_for_a_while() {
        let mut s = State::default();
        s.asked_for(2);
        for n in ["web-0", "web-1"] {
            s.pods.insert(n.into(), true);
            s.ready.insert(n.into(), true);
        }
        s.floor = Some(2);
        s.check();
        // Evicted: seen terminating first, then gone — drover's doing, no allowance.
        s.pods.insert("web-1".into(), false);
        s.ready.insert("web-1".into(), false);
        s.gone("web-1");
        s.check();
        assert_eq!(s.violations().len(), 1);
        assert_eq!(s.involuntary(), 0);
        // Vanished while running: allowed while it is being replaced.
        s.gone("web-0");
        s.check();
        assert_eq!(
            s.violations().len(),
            2,
            "one more pod lost than the allowance"
        );
        assert_eq!(s.involuntary(), 1);
        s.involuntary[0] = Instant::now() - INVOLUNTARY_GRACE * 2;
        s.check();
        assert_eq!(s.violations().len(), 3, "the allowance has run out");
    }

    #[test]
    fn the_ceiling_adds_the_surge() {
        let app = |strategy: serde_json::Value| -> App {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "drover.dev/v1alpha1", "kind": "App",
                "metadata": {"name": "web"},
                "spec": {"replicas": 10, "template": {}, "strategy": strategy},
            }))
            .unwrap()
        };
        assert_eq!(ceiling(&app(serde_json::json!({}))), 13);
        assert_eq!(
            ceiling(&app(serde_json::json!({"rollingUpdate": {"maxSurge": 0}}))),
            10
        );
        assert_eq!(
            ceiling(&app(
                serde_json::json!({"rollingUpdate": {"maxSurge": "10%"}})
            )),
            11
        );
        assert_eq!(ceiling(&app(serde_json::json!({"type": "Recreate"}))), 10);
    }

    #[test]
    fn flags_more_active_pods_than_asked() {
        let mut s = State::default();
        s.asked_for(2);
        s.pods.insert("web-0".into(), true);
        s.pods.insert("web-1".into(), true);
        s.pods.insert("web-2".into(), false);
        s.check();
        assert!(s.violations().is_empty());
        s.pods.insert("web-3".into(), true);
        s.check();
        assert_eq!(s.violations().len(), 1);
        assert_eq!(s.max_active, 3);
    }

    #[test]
    fn a_scale_up_seen_late_explains_the_pods_created_for_it() {
        let mut s = State::default();
        s.asked_for(2);
        for n in ["a", "b", "c"] {
            s.pods.insert(n.into(), true);
        }
        s.check();
        assert_eq!(s.violations().len(), 1);
        s.asked_for(3);
        assert!(s.violations().is_empty());
    }

    #[test]
    fn a_recent_scale_down_still_allows_the_old_count() {
        let mut s = State::default();
        s.asked.push_back((3, Some(Instant::now())));
        s.asked.push_back((1, None));
        for n in ["a", "b", "c"] {
            s.pods.insert(n.into(), true);
        }
        s.check();
        assert!(s.violations().is_empty(), "deletes have not landed yet");
        s.asked[0].1 = Some(Instant::now() - SCALE_DOWN_SLACK * 2);
        s.check();
        assert!(
            s.violations().is_empty(),
            "an excess the controller has yet to remove was not created"
        );
        s.pods.insert("d".into(), true);
        s.check();
        assert_eq!(s.violations().len(), 1, "a pod created above the ceiling");
    }
}
