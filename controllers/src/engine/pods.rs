//! A workload's pods as the engine reads them: named `<workload>-<n>` (the App's slot,
//! the StatefulApp's ordinal), read back into what the plans need, and whether one will
//! not start by itself.

use std::collections::HashMap;
use std::sync::Arc;

use drover_crds::names::{label, reason};
use futures::future::join_all;
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, EvictParams, PostParams, Preconditions};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};

use tracing::warn;

use super::error::{WriteOutcome, blocked_by_budget, classify};
use super::{Engine, Error, Object, checks};
use crate::rollout::pods::{NodeHealth, Phase, PodState};
use crate::rollout::status::Stuck;

/// The pod's name for a slot (ordinal).
pub fn pod_name(workload: &str, slot: u32) -> String {
    format!("{workload}-{slot}")
}

/// The slot a name `<workload>-<n>` stands for.
pub fn slot_of(workload: &str, name: &str) -> Option<u32> {
    name.strip_prefix(workload)?.strip_prefix('-')?.parse().ok()
}

/// A pod's UID and revision if the workload (by UID) controls it and it is not going
/// away: a pod the workload counts.
pub fn own_live(pod: &Pod, owner_uid: &str) -> Option<(String, String)> {
    let controlled = pod
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == owner_uid);
    if !controlled || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let revision = pod
        .labels()
        .get(label::REVISION)
        .cloned()
        .unwrap_or_default();
    Some((pod.uid()?, revision))
}

/// What the plans need of an observed pod; `None` for a pod whose name is not one of the
/// workload's slots (ordinals).
pub fn state(workload: &str, pod: &Pod) -> Option<PodState> {
    let name = pod.name_any();
    let slot = slot_of(workload, &name)?;
    let status = pod.status.clone().unwrap_or_default();
    let phase = match status.phase.as_deref() {
        Some("Running") => Phase::Running,
        Some("Succeeded") => Phase::Succeeded,
        Some("Failed") => Phase::Failed,
        Some("Unknown") => Phase::Unknown,
        _ => Phase::Pending,
    };
    let ready_condition = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready");
    let ready = ready_condition.is_some_and(|c| c.status == "True");
    let restarts = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    Some(PodState {
        name,
        uid: pod.uid().unwrap_or_default(),
        slot,
        revision: pod
            .labels()
            .get(label::REVISION)
            .cloned()
            .unwrap_or_default(),
        phase,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        ready,
        ready_since: ready_condition
            .filter(|_| ready)
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0),
        created: pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
        restarts,
    })
}

/// Waiting reasons of a container that will not start by itself: it keeps crashing, its
/// image cannot be had, or the kubelet cannot build it from its spec (a missing
/// ConfigMap or Secret key, a bad command).
const STUCK: [&str; 8] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The pod's containers (init containers included) that will not start by themselves.
pub fn stuck(pod: &Pod) -> Vec<Stuck> {
    let Some(status) = &pod.status else {
        return vec![];
    };
    let init = status.init_container_statuses.iter().flatten();
    init.chain(status.container_statuses.iter().flatten())
        .filter_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.as_deref().filter(|r| STUCK.contains(r))?;
            Some(Stuck {
                pod: pod.name_any(),
                container: c.name.clone(),
                reason: reason.to_string(),
                message: waiting.message.clone().filter(|m| !m.is_empty()),
                restarts: c.restart_count,
                last_exit: c
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| {
                        format!(
                            "{}, exit code {}",
                            t.reason.as_deref().unwrap_or("Terminated"),
                            t.exit_code
                        )
                    }),
            })
        })
        .collect()
}

/// Health of the nodes the pods are bound to, from the node cache.
pub fn node_health(nodes: &Store<Node>, pods: &[PodState]) -> HashMap<String, NodeHealth> {
    let mut health = HashMap::new();
    for node in pods.iter().filter_map(|p| p.node.as_deref()) {
        if health.contains_key(node) {
            continue;
        }
        if let Some(n) = nodes.get(&ObjectRef::<Node>::new(node)) {
            health.insert(node.to_string(), health_of(&n));
        }
    }
    health
}

fn health_of(node: &Node) -> NodeHealth {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    match ready {
        Some(c) if c.status == "True" => NodeHealth::Ready,
        Some(c) => NodeHealth::NotReadySince(
            c.last_transition_time
                .as_ref()
                .map_or(Timestamp::now(), |t| t.0),
        ),
        // A node that has never reported is not ready yet; its pods get the grace period.
        None => NodeHealth::NotReadySince(
            node.metadata
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::now(), |t| t.0),
        ),
    }
}

/// A workload's pods as the plans see them: the observed ones (`owned`), then the creates
/// still in flight (by the ledger) as pending pods. Returns them, and how many of them
/// were observed.
pub fn with_in_flight(
    engine: &Engine,
    (workload, uid): (&str, &str),
    owned: &[Arc<Pod>],
    now: Timestamp,
) -> (Vec<PodState>, usize) {
    let mut pods: Vec<PodState> = owned.iter().filter_map(|p| state(workload, p)).collect();
    let observed = pods.len();
    let by_name: HashMap<String, String> = pods
        .iter()
        .map(|p| (p.name.clone(), p.uid.clone()))
        .collect();
    for (name, slot, revision) in engine.ledger.in_flight(uid, &by_name) {
        pods.push(PodState {
            name,
            uid: String::new(),
            slot,
            revision,
            phase: Phase::Pending,
            terminating: false,
            node: None,
            ready: false,
            ready_since: None,
            created: now,
            restarts: 0,
        });
    }
    (pods, observed)
}

/// A pod to create, with what the ledger and a refusal's message need.
#[derive(Debug)]
pub struct Planned<'a> {
    pub pod: Pod,
    pub slot: u32,
    pub revision: &'a str,
    /// The template it was built from, to name what a refusal is about.
    pub template: &'a PodTemplateSpec,
}

/// Creates the planned pods in batches of 1, 2, 4, ... so that a template the apiserver
/// refuses costs one request, not `replicas`. Each created pod goes into the ledger as a
/// create in flight. Returns the names created and a transient failure, if any.
pub async fn create<K: Object>(
    engine: &Engine,
    owner: &K,
    uid: &str,
    api: &Api<Pod>,
    planned: Vec<Planned<'_>>,
) -> (Vec<String>, Option<Error>) {
    let mut created = vec![];
    let mut batch = 1;
    let mut rest = planned.as_slice();
    // A refusal stops creating (the condition and event say why); a transient failure
    // also fails the pass, to be retried with backoff.
    let mut stop = false;
    let mut transient = None;
    while !rest.is_empty() && !stop {
        let (now, later) = rest.split_at(batch.min(rest.len()));
        rest = later;
        batch *= 2;
        let results = join_all(now.iter().map(|p| async move {
            let result = api
                .create(&PostParams::default(), &p.pod)
                .await
                .map(|p| p.uid().unwrap_or_default());
            (p, result)
        }))
        .await;
        for (p, result) in results {
            let name = p.pod.name_any();
            match classify(&result) {
                WriteOutcome::Done => {
                    let pod_uid = result.as_deref().unwrap_or_default();
                    engine
                        .ledger
                        .created(uid, &name, pod_uid, p.slot, p.revision);
                    engine.wrote("create", "pods");
                    created.push(name);
                }
                // The name exists. The workload's own pod, which the view has not shown
                // yet, counts as a create in flight (a view that lags must not start a pod
                // in the next slot too); another's pod only holds the name.
                WriteOutcome::AlreadyExists => match api.get_opt(&name).await {
                    Ok(Some(existing)) => match own_live(&existing, uid) {
                        Some((pod_uid, revision)) => {
                            engine
                                .ledger
                                .created(uid, &name, &pod_uid, p.slot, &revision);
                        }
                        None => engine.ledger.name_taken(uid, &name),
                    },
                    _ => engine.ledger.name_taken(uid, &name),
                },
                WriteOutcome::Refused(message) => {
                    let message = checks::refusal(p.template, &message);
                    let count = engine.ledger.refused(uid, &message);
                    warn!(kind = K::KIND, name = %owner.name_any(), pod = %name, %message, "pod create refused");
                    if count == 1 || count.is_power_of_two() {
                        engine
                            .publish(
                                owner,
                                EventType::Warning,
                                reason::FAILED_CREATE,
                                format!("Creating pod {name}: {message}"),
                            )
                            .await;
                    }
                    stop = true;
                }
                // The namespace is going away, and the workload with it.
                WriteOutcome::Gone => {
                    engine.ledger.namespace_closing(uid);
                    stop = true;
                }
                WriteOutcome::Transient => {
                    stop = true;
                    if let Err(source) = result {
                        transient.get_or_insert(Error::PodCreate { pod: name, source });
                    }
                }
            }
        }
    }
    (created, transient)
}

/// What became of a pod's removal.
#[derive(Debug)]
pub enum Removed {
    /// Removed (or gone already); counted as a write.
    Done,
    /// A disruption budget allows no more just now (other 429s are throttling).
    Blocked,
    /// Failed: the pass reports it and is tried again.
    Failed(Error),
}

/// Sorts the answer to [`remove`] of pod `name`, counting the write when it was done.
pub fn removed(engine: &Engine, name: &str, result: Result<(), kube::Error>) -> Removed {
    if matches!(classify(&result), WriteOutcome::Done | WriteOutcome::Gone) {
        engine.wrote("delete", "pods");
        return Removed::Done;
    }
    if blocked_by_budget(&result) {
        return Removed::Blocked;
    }
    match result {
        Err(source) => Removed::Failed(Error::PodDelete {
            pod: name.to_string(),
            source,
        }),
        Ok(()) => Removed::Done,
    }
}

/// Removes a pod, with its UID as precondition (a pod re-created under the same name is
/// never removed by mistake): through the Eviction API when `evict` (a voluntary
/// removal, which PodDisruptionBudgets allow or refuse), deleted otherwise.
pub async fn remove(api: &Api<Pod>, name: &str, uid: &str, evict: bool) -> Result<(), kube::Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    if evict {
        let evict = EvictParams {
            delete_options: Some(params),
            post_options: PostParams::default(),
        };
        api.evict(name, &evict).await.map(drop)
    } else {
        api.delete(name, &params).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn containers_that_cannot_start_are_stuck_and_starting_ones_are_not() {
        let waiting = |name: &str, reason: &str| {
            json!({"name": name, "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                   "state": {"waiting": {"reason": reason, "message": format!("{reason} here")}}})
        };
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0"},
            "status": {
                "initContainerStatuses": [waiting("init", "CreateContainerConfigError")],
                "containerStatuses": [
                    waiting("app", "InvalidImageName"),
                    waiting("side", "ContainerCreating"),
                    waiting("pull", "ErrImageNeverPull"),
                ],
            },
        }))
        .unwrap();
        let found: Vec<(String, String)> = stuck(&pod)
            .into_iter()
            .map(|s| (s.container, s.reason))
            .collect();
        assert_eq!(
            found,
            [
                ("init".into(), "CreateContainerConfigError".into()),
                ("app".into(), "InvalidImageName".into()),
                ("pull".into(), "ErrImageNeverPull".into()),
            ]
        );
    }

    #[test]
    fn reads_pod_state_and_crash_loops() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-2", "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"drover.dev/revision": "web-abc"}},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:01:00Z"}],
                "containerStatuses": [{
                    "name": "app", "ready": false, "restartCount": 4, "image": "i", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
                }],
            },
        }))
        .unwrap();
        let s = state("web", &pod).unwrap();
        assert_eq!(
            (s.slot, s.phase, s.ready, s.restarts),
            (2, Phase::Running, false, 4)
        );
        assert_eq!(s.node.as_deref(), Some("n1"));
        assert_eq!(s.revision, "web-abc");
        assert_eq!(s.ready_since, None);
        let loops = stuck(&pod);
        assert_eq!(loops.len(), 1);
        assert_eq!(loops[0].reason, "CrashLoopBackOff");
        assert_eq!(loops[0].last_exit.as_deref(), Some("Error, exit code 1"));
        assert!(state("api", &pod).is_none(), "not a slot of another app");
    }

    #[test]
    fn node_health_reads_the_ready_condition() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        }))
        .unwrap();
        assert_eq!(
            health_of(&node),
            NodeHealth::NotReadySince("2026-01-01T00:00:00Z".parse().unwrap())
        );
    }
}
