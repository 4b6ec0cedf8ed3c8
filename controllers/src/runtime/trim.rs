//! What the watches keep of objects they cache: the fields no decision reads go, so
//! caches of many objects stay small.

use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec, PodStatus, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;

/// A node without managed fields, annotations and its image list (often the largest
/// part of a real node's status).
pub fn node(node: &mut Node) {
    node.metadata.managed_fields = None;
    node.metadata.annotations = None;
    if let Some(status) = node.status.as_mut() {
        status.images = None;
    }
}

/// A pod without managed fields and annotations: what the workload controllers keep
/// (they read labels, owners, the node, phase, conditions and container statuses).
pub fn pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
}

/// What the scheduler keeps of a pod: enough to place it and to count it on its node,
/// named field by field. Labels stay (affinity terms and spread constraints match them),
/// and of the status only the phase and `PodScheduled`. Once the pod is bound, its store
/// keeps still less ([`bound_pod`]); `tests/pod_cache_size.rs` measures what is left.
pub fn pod_for_placement(p: &mut Pod) {
    let meta = std::mem::take(&mut p.metadata);
    p.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        labels: meta.labels,
        creation_timestamp: meta.creation_timestamp,
        deletion_timestamp: meta.deletion_timestamp,
        ..ObjectMeta::default()
    };
    let slim = |c: Container| Container {
        name: c.name,
        // Requests only: limits are not read.
        resources: c.resources.map(|r| ResourceRequirements {
            requests: r.requests,
            ..ResourceRequirements::default()
        }),
        // Sidecars (restartable init containers) count with the containers.
        restart_policy: c.restart_policy,
        ports: c
            .ports
            .map(|ports| {
                ports
                    .into_iter()
                    .filter(|port| port.host_port.is_some_and(|h| h > 0))
                    .collect::<Vec<_>>()
            })
            .filter(|ports| !ports.is_empty()),
        ..Container::default()
    };
    p.spec = p.spec.take().map(|spec| PodSpec {
        containers: spec.containers.into_iter().map(slim).collect(),
        init_containers: spec
            .init_containers
            .map(|cs| cs.into_iter().map(slim).collect()),
        node_name: spec.node_name,
        scheduler_name: spec.scheduler_name,
        node_selector: spec.node_selector,
        affinity: spec.affinity,
        tolerations: spec.tolerations,
        priority: spec.priority,
        topology_spread_constraints: spec.topology_spread_constraints,
        scheduling_gates: spec.scheduling_gates,
        overhead: spec.overhead,
        // Claims keep the pod from being placed (see `PodInfo::blocked`).
        volumes: spec
            .volumes
            .map(|volumes| {
                volumes
                    .into_iter()
                    .filter(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some())
                    .collect::<Vec<_>>()
            })
            .filter(|volumes| !volumes.is_empty()),
        ..PodSpec::default()
    });
    p.status = p.status.take().map(|status| PodStatus {
        phase: status.phase,
        conditions: status.conditions.map(|cs| {
            cs.into_iter()
                .filter(|c| c.type_ == "PodScheduled")
                .collect()
        }),
        ..PodStatus::default()
    });
}

/// What the scheduler's store keeps of a pod once it is bound, after the pod's load was
/// counted on its node (see `scheduler::bound`): that it is bound, and where. Bound pods
/// are most of a cluster's.
pub fn bound_pod(p: &mut Pod) {
    let Some(node) = p.spec.as_mut().and_then(|s| s.node_name.take()) else {
        return;
    };
    let scheduler = p.spec.as_mut().and_then(|s| s.scheduler_name.take());
    p.metadata.labels = None;
    p.metadata.creation_timestamp = None;
    p.spec = Some(PodSpec {
        node_name: Some(node),
        scheduler_name: scheduler,
        ..PodSpec::default()
    });
    if let Some(status) = p.status.as_mut() {
        status.conditions = None;
    }
}

/// Metadata of an object watched by metadata only, without managed fields and
/// annotations (its resourceVersion is what is read).
pub fn meta<K>(object: &mut PartialObjectMeta<K>) {
    object.metadata.managed_fields = None;
    object.metadata.annotations = None;
}
