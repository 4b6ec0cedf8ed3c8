//! Cached objects indexed by a key — the UID of their controlling owner, the node a pod
//! is bound to — kept in step with a watch: a workload's pods and revisions, or a node's
//! pods, are found in the time it takes to visit them, not the time it takes to visit
//! every object of the cluster.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use super::lock;

/// The objects of one watch by key. Fed the watch's events after its reflector: a
/// relist builds a fresh index, swapped in when the list is complete, as the reflector
/// swaps its store.
pub struct KeyIndex<K: Resource<DynamicType = ()>> {
    key: fn(&K) -> Option<&str>,
    inner: Mutex<Inner<K>>,
}

impl<K: Resource<DynamicType = ()>> std::fmt::Debug for KeyIndex<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyIndex").finish_non_exhaustive()
    }
}

struct Inner<K: Resource<DynamicType = ()>> {
    live: Index<K>,
    /// Being built by a relist.
    relist: Option<Index<K>>,
}

struct Index<K: Resource<DynamicType = ()>> {
    by_key: HashMap<String, HashSet<ObjectRef<K>>>,
    key_of: HashMap<ObjectRef<K>, String>,
}

impl<K: Resource<DynamicType = ()>> Default for Index<K> {
    fn default() -> Self {
        Index {
            by_key: HashMap::new(),
            key_of: HashMap::new(),
        }
    }
}

/// The UID of the object's controlling owner: the key of an owner index.
pub fn controller_uid<K: Resource>(object: &K) -> Option<&str> {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

impl<K: Resource<DynamicType = ()>> Index<K>
where
    ObjectRef<K>: Hash + Eq,
{
    fn remove(&mut self, object: &ObjectRef<K>) {
        if let Some(key) = self.key_of.remove(object)
            && let Some(set) = self.by_key.get_mut(&key)
        {
            set.remove(object);
            if set.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    fn apply(&mut self, object: &K, key: Option<&str>) {
        let reference = ObjectRef::from_obj(object);
        self.remove(&reference);
        if let Some(key) = key {
            self.key_of.insert(reference.clone(), key.to_string());
            self.by_key
                .entry(key.to_string())
                .or_default()
                .insert(reference);
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone> KeyIndex<K>
where
    ObjectRef<K>: Hash + Eq,
{
    /// An index by `key` (objects without one are left out).
    pub fn new(key: fn(&K) -> Option<&str>) -> Self {
        KeyIndex {
            key,
            inner: Mutex::new(Inner {
                live: Index::default(),
                relist: None,
            }),
        }
    }

    /// An index by controlling owner.
    pub fn by_owner() -> Self {
        Self::new(controller_uid)
    }

    /// Follows one event of the watch.
    pub fn observe(&self, event: &watcher::Event<K>) {
        let mut inner = lock(&self.inner);
        match event {
            watcher::Event::Apply(o) => inner.live.apply(o, (self.key)(o)),
            watcher::Event::Delete(o) => inner.live.remove(&ObjectRef::from_obj(o)),
            watcher::Event::Init => inner.relist = Some(Index::default()),
            watcher::Event::InitApply(o) => {
                inner.relist.get_or_insert_default().apply(o, (self.key)(o))
            }
            watcher::Event::InitDone => {
                if let Some(fresh) = inner.relist.take() {
                    inner.live = fresh;
                }
            }
        }
    }

    /// The cached objects under `key`.
    pub fn get(&self, store: &Store<K>, key: &str) -> Vec<Arc<K>> {
        let references: Vec<ObjectRef<K>> = lock(&self.inner)
            .live
            .by_key
            .get(key)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        references
            .iter()
            .filter_map(|r| store.get(r))
            // The store may hold a newer version, under another key since.
            .filter(|o| (self.key)(o.as_ref()) == Some(key))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::reflector;
    use serde_json::json;

    use super::*;

    fn pod(name: &str, owner: Option<&str>) -> Pod {
        let owners = owner.map(|uid| {
            json!([{"apiVersion": "drover.dev/v1alpha1", "kind": "App", "name": "a", "uid": uid, "controller": true}])
        });
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "ownerReferences": owners},
        }))
        .unwrap()
    }

    fn names(pods: Vec<Arc<Pod>>) -> Vec<String> {
        let mut names: Vec<String> = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn follows_the_watch_and_its_relists() {
        let (store, mut writer) = reflector::store::<Pod>();
        let index = KeyIndex::by_owner();
        let mut feed = |event: watcher::Event<Pod>| {
            writer.apply_watcher_event(&event);
            index.observe(&event);
        };
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(pod("a-0", Some("u1"))));
        feed(watcher::Event::InitApply(pod("b-0", Some("u2"))));
        feed(watcher::Event::InitApply(pod("loose", None)));
        assert!(
            index.get(&store, "u1").is_empty(),
            "not before the list is complete"
        );
        feed(watcher::Event::InitDone);
        assert_eq!(names(index.get(&store, "u1")), ["a-0"]);
        feed(watcher::Event::Apply(pod("a-1", Some("u1"))));
        assert_eq!(names(index.get(&store, "u1")), ["a-0", "a-1"]);
        feed(watcher::Event::Delete(pod("a-0", Some("u1"))));
        assert_eq!(names(index.get(&store, "u1")), ["a-1"]);
        // Orphaned (its owner reference removed): no longer the owner's.
        feed(watcher::Event::Apply(pod("b-0", None)));
        assert!(index.get(&store, "u2").is_empty());
        assert!(
            lock(&index.inner).live.by_key.len() == 1,
            "no key left empty"
        );
        // A relist that no longer holds a-1 drops it.
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(pod("a-2", Some("u1"))));
        assert_eq!(
            names(index.get(&store, "u1")),
            ["a-1"],
            "old view until done"
        );
        feed(watcher::Event::InitDone);
        assert_eq!(names(index.get(&store, "u1")), ["a-2"]);
    }
}
