//! The scheduler at work: watches nodes and pods, places every pending pod that names
//! this scheduler (see [`super::place`]), binds it through `pods/binding`, and reports a
//! pod that fits nowhere with a `PodScheduled=False` condition and a `FailedScheduling`
//! event. A pod held by scheduling gates waits, its `PodScheduled` condition saying so.
//!
//! What bound pods take of each node is summed as the watch reports them (see
//! [`super::bound`]), so a pass costs the pending pods times the nodes, not every pod.
//! Pods it has bound count on their node until the watch shows them bound ("assumed"),
//! so a burst of pods is never over-committed onto one node before the watch catches up.
//! A pod that fits nowhere is tried again once a node or a bound pod has changed and its
//! backoff (1 s doubling to 10 s) has passed, and at least every 5 minutes.
//!
//! At most twice `binds_in_flight` placed pods wait for their binding; pods beyond that
//! stay pending in the [`Queue`] and are placed again in a later pass, with those that
//! arrive meanwhile, once half of that room is free. Bin packing also lets a pod wait
//! (for at most `pack_wait`) while pods keep arriving, unless the plan fills its node:
//! placed with the later ones, it may fill a node they leave part-empty.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use drover_crds::names::reason;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tracing::{debug, info, warn};

use super::bound::{Bound, bound_node, is_terminal};
use super::queue::{Decision, Queue};
use super::{NodeInfo, PodInfo, Policy, Weights};
use crate::runtime::backoff::Backoff;
use crate::runtime::events::{self, Publisher};
use crate::runtime::metrics::Metrics;
use crate::runtime::watch::endure;
use crate::runtime::{lock, trim};

/// The scheduler's name in metrics and logs.
pub const SCHEDULER: &str = "scheduler";

#[derive(Debug, Clone)]
pub struct Config {
    /// Pods whose `spec.schedulerName` is this are ours.
    pub name: String,
    pub policy: Policy,
    pub weights: Weights,
    /// Bindings in flight at once.
    pub binds_in_flight: usize,
    /// Bin packing: how long a pod may wait for more pods to be placed with.
    pub pack_wait: Duration,
}

const RETRY: Backoff = Backoff {
    first: Duration::from_secs(1),
    max: Duration::from_secs(10),
};
/// An unschedulable pod is tried again this often even if nothing seems to change.
const FLUSH: Duration = Duration::from_secs(300);
/// A bound pod the watch has not shown bound after this long no longer counts.
const ASSUME_TTL: Duration = Duration::from_secs(60);
/// No pod arriving for this long ends a stream: the pods waiting for more are bound.
const STREAM_PAUSE: Duration = Duration::from_millis(100);

/// `PodScheduled` reasons: fits on no node; waits for its scheduling gates.
const UNSCHEDULABLE: &str = "Unschedulable";
const GATED: &str = "SchedulingGated";

/// Whether the pod waits for scheduling gates to be removed before it may be placed.
fn is_gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

/// A pod bound (or being bound) by this scheduler, not yet seen bound by the watch.
#[derive(Debug)]
struct Assumed {
    node: String,
    info: PodInfo,
    since: Instant,
}

/// A pod that fit nowhere.
#[derive(Debug)]
struct Retry {
    attempts: u32,
    failed_at: Instant,
    /// The cluster's generation when it failed: trying again is worth it once it moved.
    generation: u64,
}

impl Retry {
    fn due(&self, generation: u64) -> Instant {
        let backoff = RETRY.after(self.attempts.max(1));
        if generation == self.generation {
            self.failed_at + FLUSH
        } else {
            self.failed_at + backoff
        }
    }
}

struct Scheduler {
    client: Client,
    events: Publisher,
    metrics: Arc<Metrics>,
    config: Config,
    pods: Store<Pod>,
    nodes: Store<Node>,
    /// Moves when a node changes or a bound pod goes: capacity may have appeared.
    generation: AtomicU64,
    /// Whether the node event being followed changes what placement reads of the node.
    node_changed: AtomicBool,
    changed: Notify,
    assumed: Mutex<HashMap<ObjectRef<Pod>, Assumed>>,
    /// Pods the watch shows bound, counted on their nodes.
    bound: Mutex<Bound>,
    retries: Mutex<HashMap<String, Retry>>,
    binds: Arc<Semaphore>,
    /// Bindings started and not yet answered.
    outstanding: AtomicUsize,
    /// The last pass left placed pods pending because enough bindings were outstanding.
    holding: AtomicBool,
    /// The pending pods' last plan, kept from pass to pass.
    queue: Mutex<Queue<ObjectRef<Pod>>>,
    /// When each pending pod (by uid) was first seen.
    first_seen: Mutex<HashMap<String, Instant>>,
    /// Pods (by uid) held by scheduling gates whose condition says so.
    gated: Mutex<HashSet<String>>,
}

/// Runs the scheduler until shutdown; `ready` turns true once both watches have synced.
pub async fn run(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    recorder: Recorder,
) -> Result<()> {
    let (pods, pods_writer) = reflector::store();
    let (nodes, nodes_writer) = reflector::store();
    let scheduler = Arc::new(Scheduler {
        client: client.clone(),
        events: Publisher::new(recorder, metrics.clone(), SCHEDULER, "Scheduling"),
        metrics,
        binds: Arc::new(Semaphore::new(config.binds_in_flight.max(1))),
        config,
        pods,
        nodes,
        generation: AtomicU64::new(0),
        node_changed: AtomicBool::new(false),
        changed: Notify::new(),
        assumed: Mutex::default(),
        bound: Mutex::default(),
        retries: Mutex::default(),
        outstanding: AtomicUsize::new(0),
        holding: AtomicBool::new(false),
        queue: Mutex::default(),
        first_seen: Mutex::default(),
        gated: Mutex::default(),
    });
    info!(name = %scheduler.config.name, policy = ?scheduler.config.policy, "scheduling");

    let s = scheduler.clone();
    let observer = scheduler.clone();
    let pod_events = endure(
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .modify(trim::pod_for_placement)
            .inspect_ok(move |event| observer.observe(event))
            .modify(trim::bound_pod)
            .reflect(pods_writer),
        scheduler.metrics.clone(),
        SCHEDULER,
        "pods",
    )
    .for_each(move |event| {
        // A pass is worth it when capacity may have appeared (a bound pod went or
        // finished) or a pod may be waiting for this scheduler; the status updates of
        // running pods, most of the traffic, change nothing.
        let (freed, waiting) = match &event {
            watcher::Event::Delete(p) => (bound_node(p).is_some(), false),
            watcher::Event::Apply(p) | watcher::Event::InitApply(p) => (
                bound_node(p).is_some() && is_terminal(p),
                bound_node(p).is_none() && s.is_ours(p),
            ),
            watcher::Event::Init | watcher::Event::InitDone => (false, true),
        };
        if freed {
            s.generation.fetch_add(1, Ordering::Relaxed);
        }
        if freed || waiting {
            s.changed.notify_one();
        }
        futures::future::ready(())
    });
    let (s, seen) = (scheduler.clone(), scheduler.clone());
    let node_events = endure(
        watcher(Api::<Node>::all(client), watcher::Config::default())
            .default_backoff()
            .modify(crate::runtime::trim::node)
            // Only what placement reads counts as a change (a node's status is rewritten on
            // every heartbeat): compared before the store takes the new version, counted
            // after.
            .inspect_ok(move |event| {
                let changed = match event {
                    watcher::Event::Apply(node) => seen
                        .nodes
                        .get(&ObjectRef::from_obj(node))
                        .is_none_or(|old| NodeInfo::from_node(&old) != NodeInfo::from_node(node)),
                    watcher::Event::Delete(_) | watcher::Event::InitDone => true,
                    watcher::Event::Init | watcher::Event::InitApply(_) => false,
                };
                seen.node_changed.store(changed, Ordering::Relaxed);
            })
            .reflect(nodes_writer),
        scheduler.metrics.clone(),
        SCHEDULER,
        "nodes",
    )
    .for_each(move |_| {
        if s.node_changed.load(Ordering::Relaxed) {
            s.generation.fetch_add(1, Ordering::Relaxed);
            s.changed.notify_one();
        }
        futures::future::ready(())
    });
    // Neither watch ends: each lists again after an error.
    let watches = async {
        tokio::join!(pod_events, node_events);
    };

    let s = scheduler.clone();
    let work = async move {
        let (Ok(()), Ok(())) = tokio::join!(s.pods.wait_until_ready(), s.nodes.wait_until_ready())
        else {
            anyhow::bail!("the pod or node watch ended before it synced");
        };
        ready.store(true, Ordering::Relaxed);
        info!(
            nodes = s.nodes.state().len(),
            pods = s.pods.state().len(),
            "watches synced"
        );
        loop {
            // A pass holds its thread; the watches and bindings go on on the others.
            let wake = tokio::task::block_in_place(|| s.pass());
            let wait = wake.map_or(FLUSH, |at| at.saturating_duration_since(Instant::now()));
            tokio::select! {
                () = s.changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    };
    tokio::select! {
        () = watches => anyhow::bail!("the pod and node watches ended"),
        result = work => result,
        // Returning lets the caller release the lease, so a standby takes over at once
        // instead of after the lease runs out. A binding in flight lands or not; either
        // way the successor's first list shows which.
        () = crate::runtime::shutdown_signal() => {
            info!("asked to stop");
            Ok(())
        }
    }
}

impl Scheduler {
    /// The pod names this scheduler.
    fn is_ours(&self, pod: &Pod) -> bool {
        pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref())
            == Some(self.config.name.as_str())
    }

    /// Follows the pod watch before the store does: counts bound pods on their nodes, and
    /// stops assuming what the watch now shows (bound, or gone).
    fn observe(&self, event: &watcher::Event<Pod>) {
        let mut assumed = lock(&self.assumed);
        let mut bound = lock(&self.bound);
        bound.event(event);
        match event {
            watcher::Event::Apply(p) if bound_node(p).is_some() => {
                assumed.remove(&ObjectRef::from_obj(p));
            }
            watcher::Event::Delete(p) => {
                assumed.remove(&ObjectRef::from_obj(p));
            }
            watcher::Event::InitDone => assumed.retain(|pod, _| !bound.contains(pod)),
            _ => {}
        }
    }

    /// Places the pending pods that are due and binds as many as the binder can take;
    /// returns when the next retry is due.
    fn pass(self: &Arc<Self>) -> Option<Instant> {
        let now = Instant::now();
        let generation = self.generation.load(Ordering::Relaxed);
        let room = self
            .commit_limit()
            .saturating_sub(self.outstanding.load(Ordering::Relaxed));
        // Pods queue behind the binder: placing them again (with any new ones) for a few
        // bindings is not worth it; the pass waits for half the room (`wake_if_held`).
        if self.holding.load(Ordering::Relaxed) && room < self.commit_limit() / 2 {
            return self.next_retry(&lock(&self.retries));
        }
        self.holding.store(false, Ordering::Relaxed);
        let all = self.pods.state();
        let mut assumed = lock(&self.assumed);
        // An assumption the watch has not confirmed in time (the binding got lost).
        assumed.retain(|_, a| now.duration_since(a.since) < ASSUME_TTL);
        let bound = lock(&self.bound);
        let (gated, mut pending): (Vec<Arc<Pod>>, Vec<Arc<Pod>>) = all
            .into_iter()
            .filter(|pod| {
                bound_node(pod).is_none()
                    && self.is_ours(pod)
                    && pod.metadata.deletion_timestamp.is_none()
                    && !is_terminal(pod)
                    && {
                        let key = ObjectRef::from_obj(pod.as_ref());
                        !assumed.contains_key(&key) && !bound.contains(&key)
                    }
            })
            .partition(|pod| is_gated(pod));
        self.report_gated(gated);
        let mut retries = lock(&self.retries);
        let pending_uids: HashSet<String> = pending.iter().filter_map(|p| p.uid()).collect();
        retries.retain(|uid, _| pending_uids.contains(uid));
        let mut first_seen = lock(&self.first_seen);
        first_seen.retain(|uid, _| pending_uids.contains(uid));
        pending.retain(|p| {
            retries
                .get(&p.uid().unwrap_or_default())
                .is_none_or(|r| r.due(generation) <= now)
        });
        self.metrics.set_queue_depth(SCHEDULER, pending.len());
        let queued = pending.len() > room && room < self.commit_limit() / 2;
        if pending.is_empty() || queued {
            if queued {
                self.holding.store(true, Ordering::Relaxed);
                self.wake_if_held();
            }
            return self.next_retry(&retries);
        }
        // The oldest first: binding goes in this order (placement puts higher priority
        // and larger pods before, see `place_batch`).
        pending.sort_by_key(|p| {
            (
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.namespace(),
                p.name_any(),
            )
        });

        let mut nodes: Vec<NodeInfo> = self
            .nodes
            .state()
            .iter()
            .map(|n| {
                let mut info = NodeInfo::from_node(n);
                if let Some(load) = bound.load(&info.name) {
                    info.load = load.clone();
                }
                info
            })
            .collect();
        drop(bound);
        let index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let on: Vec<(usize, &PodInfo)> = assumed
            .values()
            .filter_map(|a| Some((*index.get(a.node.as_str())?, &a.info)))
            .collect();
        drop(index);
        for (i, info) in on {
            nodes[i].add(info);
        }
        // The watch goes on (counting what it shows bound) while the pods are placed.
        drop(assumed);
        let infos: Vec<PodInfo> = pending.iter().map(|p| PodInfo::from_pod(p)).collect();
        let keys: Vec<ObjectRef<Pod>> = pending
            .iter()
            .map(|p| ObjectRef::from_obj(p.as_ref()))
            .collect();
        // Bin packing: while pods keep arriving, those that came within `pack_wait` may
        // wait for more to be placed with.
        let uids: Vec<String> = pending
            .iter()
            .map(|p| p.uid().unwrap_or_default())
            .collect();
        let arrived = uids.iter().any(|uid| !first_seen.contains_key(uid));
        let packing = self.config.policy == Policy::BinPack && arrived;
        let may_wait: Vec<bool> = uids
            .into_iter()
            .map(|uid| {
                let since = *first_seen.entry(uid).or_insert(now);
                packing && now.duration_since(since) < self.config.pack_wait
            })
            .collect();
        drop(first_seen);
        let decisions = lock(&self.queue).pass(
            &keys,
            &infos,
            &mut nodes,
            room,
            &may_wait,
            (self.config.policy, &self.config.weights),
        );

        let mut assumed = lock(&self.assumed);
        let mut waiting = false;
        for (((pod, key), info), decision) in
            pending.into_iter().zip(keys).zip(infos).zip(decisions)
        {
            let uid = pod.uid().unwrap_or_default();
            match decision {
                Decision::Bind(n) => {
                    let node = nodes[n].name.clone();
                    assumed.insert(
                        key,
                        Assumed {
                            node: node.clone(),
                            info,
                            since: now,
                        },
                    );
                    retries.remove(&uid);
                    self.spawn_bind(pod, node);
                }
                Decision::Hold => self.holding.store(true, Ordering::Relaxed),
                Decision::Wait => waiting = true,
                Decision::Unschedulable(why) => {
                    let r = retries.entry(uid).or_insert(Retry {
                        attempts: 0,
                        failed_at: now,
                        generation,
                    });
                    r.attempts = r.attempts.saturating_add(1);
                    r.failed_at = now;
                    r.generation = generation;
                    self.spawn_report(pod, UNSCHEDULABLE, why.to_string());
                }
            }
        }
        self.wake_if_held();
        let stream_end = waiting.then(|| now + STREAM_PAUSE);
        self.next_retry(&retries)
            .into_iter()
            .chain(stream_end)
            .min()
    }

    /// When the first pod that fit nowhere is due to be tried again.
    fn next_retry(&self, retries: &HashMap<String, Retry>) -> Option<Instant> {
        let generation = self.generation.load(Ordering::Relaxed);
        retries.values().map(|r| r.due(generation)).min()
    }

    /// Another pass, for pods the last one held back, once half the outstanding bindings
    /// it allows are answered.
    fn wake_if_held(&self) {
        if self.holding.load(Ordering::Relaxed)
            && self.outstanding.load(Ordering::Relaxed) <= self.commit_limit() / 2
        {
            self.changed.notify_one();
        }
    }

    /// Pods placed but not yet bound at most: the bindings in flight and as many again
    /// waiting, so the binder never idles while a pass runs.
    fn commit_limit(&self) -> usize {
        2 * self.config.binds_in_flight.max(1)
    }

    fn spawn_bind(self: &Arc<Self>, pod: Arc<Pod>, node: String) {
        let s = self.clone();
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let Ok(permit) = s.binds.clone().acquire_owned().await else {
                s.outstanding.fetch_sub(1, Ordering::Relaxed);
                return;
            };
            let namespace = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            let api: Api<Pod> = Api::namespaced(s.client.clone(), &namespace);
            let binding = json!({
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name, "uid": pod.uid()},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            let result: Result<serde_json::Value, kube::Error> = api
                .create_subresource("binding", &name, &PostParams::default(), &binding)
                .await;
            s.metrics.write(SCHEDULER, "create", "pods/binding");
            drop(permit);
            // Pods held back wait for room among the outstanding bindings; a pass for them
            // once half of it is free.
            s.outstanding.fetch_sub(1, Ordering::Relaxed);
            s.wake_if_held();
            match result {
                Ok(_) => {
                    debug!(pod = %name, %namespace, %node, "bound");
                    s.publish(
                        &pod,
                        EventType::Normal,
                        reason::SCHEDULED,
                        format!("Successfully assigned {namespace}/{name} to {node}"),
                    )
                    .await;
                }
                // Bound already (by an earlier run of this scheduler): the watch will
                // show where.
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    debug!(pod = %name, %namespace, "already bound");
                }
                Err(e) => {
                    warn!(pod = %name, %namespace, %node, error = %e, "binding failed");
                    s.events
                        .failed(
                            &pod.object_ref(&()),
                            "BindFailed",
                            format!("Binding to node {node}: {e}"),
                        )
                        .await;
                    lock(&s.assumed).remove(&ObjectRef::from_obj(pod.as_ref()));
                    let generation = s.generation.load(Ordering::Relaxed);
                    let mut retries = lock(&s.retries);
                    let r = retries
                        .entry(pod.uid().unwrap_or_default())
                        .or_insert(Retry {
                            attempts: 0,
                            failed_at: Instant::now(),
                            generation,
                        });
                    r.attempts = r.attempts.saturating_add(1);
                    r.failed_at = Instant::now();
                    // Not the cluster's fault: due after the backoff alone.
                    r.generation = generation.wrapping_sub(1);
                    drop(retries);
                    s.changed.notify_one();
                }
            }
        });
    }

    /// Pods waiting for their scheduling gates to go are not placed; as kube-scheduler
    /// does, their `PodScheduled` condition says so (once), without an event.
    fn report_gated(self: &Arc<Self>, gated: Vec<Arc<Pod>>) {
        let mut reported = lock(&self.gated);
        let now: HashSet<String> = gated.iter().filter_map(|p| p.uid()).collect();
        reported.retain(|uid| now.contains(uid));
        for pod in gated {
            if reported.insert(pod.uid().unwrap_or_default()) {
                let gates = pod
                    .spec
                    .iter()
                    .flat_map(|s| s.scheduling_gates.iter().flatten())
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>();
                let message = format!(
                    "Scheduling is blocked due to non-empty scheduling gates: {}",
                    events::list(&gates)
                );
                self.spawn_report(pod, GATED, message);
            }
        }
    }

    /// `PodScheduled=False` with `reason` (written only when its message changes) and,
    /// for a pod that fits nowhere, a `FailedScheduling` event.
    fn spawn_report(self: &Arc<Self>, pod: Arc<Pod>, reason: &'static str, message: String) {
        let s = self.clone();
        tokio::spawn(async move {
            let namespace = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            debug!(pod = %name, %namespace, %message, "unschedulable");
            let current = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
                .and_then(|c| c.message.clone());
            if current.as_deref() != Some(message.as_str()) {
                let api: Api<Pod> = Api::namespaced(s.client.clone(), &namespace);
                let patch = json!({"status": {"conditions": [{
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": Timestamp::now().to_string(),
                }]}});
                match api
                    .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                    .await
                {
                    Ok(_) => s.metrics.write(SCHEDULER, "patch_status", "pods"),
                    Err(e) => {
                        warn!(pod = %name, %namespace, error = %e, "could not set PodScheduled")
                    }
                }
            }
            if reason == UNSCHEDULABLE {
                s.publish(&pod, EventType::Warning, reason::FAILED_SCHEDULING, message)
                    .await;
            }
        });
    }

    async fn publish(&self, pod: &Pod, type_: EventType, reason: &str, note: String) {
        self.events
            .publish(&pod.object_ref(&()), type_, reason, note)
            .await;
    }
}
