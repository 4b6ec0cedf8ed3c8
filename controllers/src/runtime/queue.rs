//! What a workload controller's pass waits for and counts before it starts: which
//! watches have delivered their initial list, and how many workloads wait to be
//! reconciled.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use super::lock;
use super::metrics::Metrics;

/// Which watches have delivered their initial list, one bit each. Set from each watch
/// stream's `InitDone` and read through a `watch` channel, which wakes every waiter (a
/// store's own `wait_until_ready` wakes only the last of several concurrent waiters).
#[derive(Debug, Clone)]
pub struct Synced {
    watches: Arc<tokio::sync::watch::Sender<u32>>,
    /// Every watch's bit.
    all: u32,
    /// The bit of the workloads' own watch: a pass has its workload already.
    primary: u32,
    ready: Arc<AtomicBool>,
}

impl Synced {
    /// `count` watches, the first (bit 1) the workloads'; `ready` turns true once all
    /// have synced.
    pub fn new(count: u32, ready: Arc<AtomicBool>) -> Self {
        Synced {
            watches: Arc::new(tokio::sync::watch::channel(0).0),
            all: (1 << count) - 1,
            primary: 1,
            ready,
        }
    }

    fn mark(&self, watch: u32) {
        self.watches.send_modify(|m| *m |= watch);
        if *self.watches.borrow() == self.all {
            self.ready.store(true, Ordering::Relaxed);
        }
    }

    /// A hook for the stream of watch number `index` (0: the workloads') that marks it
    /// synced at its `InitDone`.
    pub fn on_init_done<K>(&self, index: u32) -> impl FnMut(&watcher::Event<K>) + use<K> {
        let synced = self.clone();
        move |event| {
            if matches!(event, watcher::Event::InitDone) {
                synced.mark(1 << index);
            }
        }
    }

    /// Waits until every watch but the workloads' has delivered its initial list: no
    /// decision is taken on a partial view.
    pub async fn secondary(&self) {
        let secondary = self.all & !self.primary;
        let mut rx = self.watches.subscribe();
        let _ = rx.wait_for(|m| m & secondary == secondary).await;
    }
}

/// Workloads with a change waiting to be reconciled, for the queue-depth metric. The
/// controller merges triggers per workload, so this is the number of distinct ones.
#[derive(Debug)]
pub struct QueueDepth {
    waiting: Mutex<HashSet<(String, String)>>,
    metrics: Arc<Metrics>,
    controller: &'static str,
}

impl QueueDepth {
    pub fn new(metrics: Arc<Metrics>, controller: &'static str) -> Self {
        QueueDepth {
            waiting: Mutex::default(),
            metrics,
            controller,
        }
    }

    fn update(&self, f: impl FnOnce(&mut HashSet<(String, String)>)) {
        let mut waiting = lock(&self.waiting);
        f(&mut waiting);
        self.metrics.set_queue_depth(self.controller, waiting.len());
    }

    pub fn note(&self, namespace: Option<String>, name: String) {
        self.update(|w| {
            w.insert((namespace.unwrap_or_default(), name));
        });
    }

    pub fn done<K>(&self, workload: &ObjectRef<K>)
    where
        K: Resource,
        K::DynamicType: Clone + Eq + std::hash::Hash,
    {
        let key = (
            workload.namespace.clone().unwrap_or_default(),
            workload.name.clone(),
        );
        self.update(|w| {
            w.remove(&key);
        });
    }
}
