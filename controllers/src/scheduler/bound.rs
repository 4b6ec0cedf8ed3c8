//! What the pods bound to each node request, summed per node and kept current from a pod
//! watch's events, so that reading a node's load does not go over every pod again.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use super::filter::{Load, PodInfo};

/// Every bound, unfinished pod's node and requests, and their sums per node.
#[derive(Debug, Default)]
pub struct Bound {
    pods: HashMap<ObjectRef<Pod>, (String, PodInfo)>,
    nodes: HashMap<String, Load>,
    /// The state a relist is building, swapped in when it is done.
    relist: Option<Box<Bound>>,
}

/// Whether the pod has finished (Succeeded or Failed): it holds nothing of its node.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The node the pod is bound to.
pub fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

impl Bound {
    /// Follows one watch event.
    pub fn event(&mut self, event: &watcher::Event<Pod>) {
        match event {
            watcher::Event::Apply(p) => self.apply(p),
            watcher::Event::Delete(p) => self.remove(&ObjectRef::from_obj(p)),
            watcher::Event::Init => self.relist = Some(Box::default()),
            watcher::Event::InitApply(p) => self.relist.get_or_insert_with(Box::default).apply(p),
            watcher::Event::InitDone => {
                let relist = self.relist.take().unwrap_or_default();
                self.pods = relist.pods;
                self.nodes = relist.nodes;
            }
        }
    }

    /// A pod as it is now: counted on its node while bound and unfinished.
    pub fn apply(&mut self, pod: &Pod) {
        let key = ObjectRef::from_obj(pod);
        self.remove(&key);
        let Some(node) = bound_node(pod).filter(|_| !is_terminal(pod)) else {
            return;
        };
        let info = PodInfo::load_of(pod);
        self.nodes.entry(node.to_string()).or_default().add(&info);
        self.pods.insert(key, (node.to_string(), info));
    }

    pub fn remove(&mut self, key: &ObjectRef<Pod>) {
        let Some((node, info)) = self.pods.remove(key) else {
            return;
        };
        if let Some(load) = self.nodes.get_mut(&node) {
            load.remove(&info);
            if load.requested.fit.pods == 0 {
                self.nodes.remove(&node);
            }
        }
    }

    /// Whether the pod is counted (bound and unfinished).
    pub fn contains(&self, pod: &ObjectRef<Pod>) -> bool {
        self.pods.contains_key(pod)
    }

    /// What the pods bound to `node` request (nothing if none is).
    pub fn load(&self, node: &str) -> Option<&Load> {
        self.nodes.get(node)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, node: Option<&str>, cpu: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"nodeName": node, "containers": [{"name": "c",
                "ports": [{"containerPort": 80, "hostPort": 8080}],
                "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}]},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn sums_follow_binding_finishing_deletion_and_relists() {
        let mut b = Bound::default();
        b.apply(&pod("a", None, "500m", "Pending"));
        assert!(b.load("n1").is_none());
        b.apply(&pod("a", Some("n1"), "500m", "Running"));
        b.apply(&pod("b", Some("n1"), "250m", "Running"));
        let load = b.load("n1").unwrap();
        assert_eq!(load.requested.fit.cpu, 750);
        assert_eq!(load.requested.fit.memory, 2 << 30);
        assert_eq!(load.requested.fit.pods, 2);
        assert_eq!(load.host_ports.len(), 2);
        b.apply(&pod("b", Some("n1"), "250m", "Failed"));
        assert_eq!(b.load("n1").unwrap().requested.fit.cpu, 500);
        assert_eq!(b.load("n1").unwrap().host_ports.len(), 1);
        b.event(&watcher::Event::Delete(pod("a", None, "0", "")));
        assert!(b.load("n1").is_none());

        // A relist replaces everything once done, not before.
        b.apply(&pod("gone", Some("n2"), "1", "Running"));
        b.event(&watcher::Event::Init);
        b.event(&watcher::Event::InitApply(pod(
            "c",
            Some("n1"),
            "100m",
            "Running",
        )));
        assert_eq!(b.load("n2").unwrap().requested.fit.cpu, 1000);
        b.event(&watcher::Event::InitDone);
        assert!(b.load("n2").is_none());
        assert_eq!(b.load("n1").unwrap().requested.fit.cpu, 100);
    }
}
