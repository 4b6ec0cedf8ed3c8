//! How full each node is, for the scale-in of bin-packed Apps: their pods on the least
//! used nodes go first, so those nodes empty and can be removed.
//!
//! A node's fill counts every pod bound to it, whoever owns it, so it comes from a watch of
//! all pods in the cluster. That watch costs what other Apps do not need: it starts with
//! the first bin-packed App reconciled and keeps only each pod's node and requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tracing::info;

use super::CONTROLLER as APP;
use crate::runtime::lock;
use crate::runtime::metrics::Metrics;
use crate::runtime::watch::endure;
use crate::scheduler::bound::Bound;
use crate::scheduler::resources::{Resources, allocatable};

/// Requests on each node, from a watch of every pod.
#[derive(Default)]
pub struct NodeUsage {
    started: OnceLock<()>,
    synced: Arc<AtomicBool>,
    state: Arc<Mutex<Bound>>,
}

/// Parts per thousand of `allocatable` that `used` takes: CPU and memory averaged, as the
/// scheduler's default weights score a node.
fn fill(used: Resources, allocatable: Resources) -> u32 {
    let share = |u: u64, a: u64| (u.min(a) * 1000).checked_div(a).unwrap_or(0);
    u32::try_from((share(used.cpu, allocatable.cpu) + share(used.memory, allocatable.memory)) / 2)
        .unwrap_or(1000)
}

impl NodeUsage {
    /// Starts the watch, once.
    pub fn start(&self, client: &Client, metrics: Arc<Metrics>) {
        self.started.get_or_init(|| {
            let (synced, state) = (self.synced.clone(), self.state.clone());
            let api: Api<Pod> = Api::all(client.clone());
            info!("watching every pod for the fill of nodes (an App bin-packs)");
            let events = endure(
                watcher(api, watcher::Config::default()).default_backoff(),
                metrics,
                APP,
                "pods (node fill)",
            );
            tokio::spawn(events.for_each(move |event| {
                lock(&state).event(&event);
                if matches!(event, watcher::Event::InitDone) {
                    synced.store(true, Ordering::Relaxed);
                }
                futures::future::ready(())
            }));
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
        let state = lock(&self.state);
        names
            .into_iter()
            .filter_map(|name| {
                let node = nodes.get(&ObjectRef::new(name))?;
                let used = state.load(name).map(|l| l.requested.fit);
                Some((
                    name.to_string(),
                    fill(used.unwrap_or_default(), allocatable(&node)),
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
