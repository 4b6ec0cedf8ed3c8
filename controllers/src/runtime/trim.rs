//! What the watches keep of objects they cache: the fields no decision reads go, so
//! caches of many objects stay small.

use k8s_openapi::api::core::v1::{Node, Pod};
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

/// What the scheduler keeps of a pod: enough to place it and to count it on its node.
pub fn pod_for_placement(p: &mut Pod) {
    pod(p);
    if let Some(spec) = p.spec.as_mut() {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            c.env = None;
            c.env_from = None;
            c.command = None;
            c.args = None;
            c.volume_mounts = None;
            c.liveness_probe = None;
            c.readiness_probe = None;
            c.startup_probe = None;
        }
        // Claims keep the pod from being placed (see `PodInfo::blocked`).
        if let Some(volumes) = spec.volumes.as_mut() {
            volumes.retain(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some());
        }
    }
    if let Some(status) = p.status.as_mut() {
        status.container_statuses = None;
        status.init_container_statuses = None;
    }
}

/// Metadata of an object watched by metadata only, without managed fields and
/// annotations (its resourceVersion is what is read).
pub fn meta<K>(object: &mut PartialObjectMeta<K>) {
    object.metadata.managed_fields = None;
    object.metadata.annotations = None;
}
