//! How full each node is, for the scale-in of bin-packed Apps: their pods on the least
//! used nodes go first, so those nodes empty and can be removed.
//!
//! A node's fill counts every pod bound to it, whoever owns it, so it comes from a watch of
//! all pods in the cluster. That watch costs what other Apps do not need: it starts with
//! the first bin-packed App reconciled and keeps only each pod's node and requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{info, warn};

use crate::scheduler::resources::{Resources, allocatable, pod_requests};

/// Requests on each node, from a watch of every pod.
#[derive(Default)]
pub struct NodeUsage {
    started: OnceLock<()>,
    synced: Arc<AtomicBool>,
    state: Arc<Mutex<Usage>>,
}

/// Each bound, unfinished pod's node and requests, and their sums per node.
#[derive(Debug, Default)]
struct Usage {
    pods: HashMap<ObjectRef<Pod>, (String, Resources)>,
    nodes: HashMap<String, Resources>,
}

impl Usage {
    fn set(&mut self, pod: &Pod) {
        let key = ObjectRef::from_obj(pod);
        self.remove(&key);
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        let (Some(spec), false) = (pod.spec.as_ref(), finished) else {
            return;
        };
        let Some(node) = spec.node_name.clone().filter(|n| !n.is_empty()) else {
            return;
        };
        let requests = pod_requests(spec).fit;
        let sum = self.nodes.entry(node.clone()).or_default();
        *sum = *sum + requests;
        self.pods.insert(key, (node, requests));
    }

    fn remove(&mut self, key: &ObjectRef<Pod>) {
        if let Some((node, requests)) = self.pods.remove(key)
            && let Some(sum) = self.nodes.get_mut(&node)
        {
            *sum = *sum - requests;
            if sum.pods == 0 {
                self.nodes.remove(&node);
            }
        }
    }
}

/// Parts per thousand of `allocatable` that `used` takes: CPU and memory averaged, as the
/// scheduler's default weights score a node.
fn fill(used: Resources, allocatable: Resources) -> u32 {
    let share = |u: u64, a: u64| if a == 0 { 0 } else { u.min(a) * 1000 / a };
    u32::try_from((share(used.cpu, allocatable.cpu) + share(used.memory, allocatable.memory)) / 2)
        .unwrap_or(1000)
}

impl NodeUsage {
    /// Starts the watch, once.
    pub fn start(&self, client: &Client) {
        self.started.get_or_init(|| {
            let (synced, state) = (self.synced.clone(), self.state.clone());
            let api: Api<Pod> = Api::all(client.clone());
            info!("watching every pod for the fill of nodes (an App bin-packs)");
            tokio::spawn(async move {
                let mut fresh: Option<Usage> = None;
                let watch = watcher(api, watcher::Config::default())
                    .default_backoff()
                    .try_for_each(|event| {
                        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                        match event {
                            watcher::Event::Apply(p) => state.set(&p),
                            watcher::Event::Delete(p) => state.remove(&ObjectRef::from_obj(&p)),
                            watcher::Event::Init => fresh = Some(Usage::default()),
                            watcher::Event::InitApply(p) => {
                                fresh.get_or_insert_with(Usage::default).set(&p);
                            }
                            watcher::Event::InitDone => {
                                *state = fresh.take().unwrap_or_default();
                                synced.store(true, Ordering::Relaxed);
                            }
                        }
                        futures::future::ready(Ok(()))
                    });
                if let Err(e) = watch.await {
                    warn!(error = %e, "the watch of every pod ended: scale-in no longer prefers the least used nodes");
                    synced.store(false, Ordering::Relaxed);
                }
            });
        });
    }

    /// The fill of `nodes` (parts per thousand of their allocatable CPU and memory); empty
    /// until the watch has listed every pod.
    pub fn fills<'a>(
        &self,
        nodes: &Store<Node>,
        names: impl IntoIterator<Item = &'a str>,
    ) -> HashMap<String, u32> {
        if !self.synced.load(Ordering::Relaxed) {
            return HashMap::new();
        }
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        names
            .into_iter()
            .filter_map(|name| {
                let node = nodes.get(&ObjectRef::new(name))?;
                let used = state.nodes.get(name).copied().unwrap_or_default();
                Some((name.to_string(), fill(used, allocatable(&node))))
            })
            .collect()
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
                "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}]},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn sums_follow_binding_finishing_and_deletion() {
        let mut u = Usage::default();
        u.set(&pod("a", None, "500m", "Pending"));
        assert!(u.nodes.is_empty());
        u.set(&pod("a", Some("n1"), "500m", "Running"));
        u.set(&pod("b", Some("n1"), "250m", "Running"));
        assert_eq!(u.nodes["n1"].cpu, 750);
        assert_eq!(u.nodes["n1"].memory, 2 << 30);
        u.set(&pod("b", Some("n1"), "250m", "Failed"));
        assert_eq!(u.nodes["n1"].cpu, 500);
        u.remove(&ObjectRef::from_obj(&pod("a", None, "0", "")));
        assert!(u.nodes.is_empty(), "{u:?}");
    }

    #[test]
    fn fill_averages_cpu_and_memory() {
        let alloc = Resources {
            cpu: 2000,
            memory: 4 << 30,
            ..Resources::default()
        };
        let used = Resources {
            cpu: 1000,
            memory: 0,
            ..Resources::default()
        };
        assert_eq!(fill(used, alloc), 250);
        assert_eq!(fill(alloc, alloc), 1000);
        assert_eq!(fill(used, Resources::default()), 0);
    }
}
