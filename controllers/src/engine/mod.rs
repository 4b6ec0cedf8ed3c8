//! The workload engine: the parts of a workload controller that touch the API and do not
//! depend on the workload's kind — storing revisions with snapshots of their config,
//! undo, command annotations, the ledger of in-flight creates, and the errors they raise.
//! Any kind that implements [`Workload`] gets them; the decisions they act on are the
//! pure ones of [`crate::rollout`].

pub mod checks;
pub mod children;
pub mod command;
pub mod config;
pub mod disruption;
pub mod error;
pub mod ledger;
pub mod pass;
pub mod pods;
pub mod revisions;
pub mod rivals;
pub mod status;
pub mod undo;
pub mod watches;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use drover_crds::names::label;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::core::PartialObjectMeta;
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::{Error, WriteOutcome, blocked_by_budget, classify};

use crate::rollout::workload::Workload;
use crate::runtime::events::Publisher;
use crate::runtime::index::KeyIndex;
use crate::runtime::metrics::Metrics;

/// A workload kind as the engine handles it: a namespaced custom resource the engine
/// reads, patches and replaces.
pub trait Object:
    Workload
    + Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<T> Object for T where
    T: Workload
        + Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// The labels of every object drover makes for a workload: the workload's name (what
/// its Services and budget select) and who manages it.
pub fn labels(workload: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (label::APP.to_string(), workload.to_string()),
        (
            label::MANAGED_BY.to_string(),
            label::MANAGED_BY_VALUE.to_string(),
        ),
    ])
}

/// The metadata of an object `name` the workload owns (and is the controller of), in its
/// namespace, with [`labels`]; `None` before the workload has a UID.
pub fn child_meta<K: Object>(owner: &K, name: &str) -> Option<ObjectMeta> {
    Some(ObjectMeta {
        name: Some(name.to_string()),
        namespace: owner.namespace(),
        labels: Some(labels(&owner.name_any())),
        owner_references: Some(vec![controller_ref(owner)?]),
        ..ObjectMeta::default()
    })
}

/// The owner reference of an object the workload controls (`None` before the workload has
/// a UID). It blocks the owner's deletion, as a ReplicaSet's pods do: a foreground delete
/// (`kubectl delete --cascade=foreground`) returns only once they are gone.
pub fn controller_ref<K: Object>(owner: &K) -> Option<OwnerReference> {
    let mut reference = owner.controller_owner_ref(&())?;
    reference.block_owner_deletion = Some(true);
    Some(reference)
}

/// What the engine works with: the client, where it publishes and counts, the caches of
/// revisions and config it reads, and its memory of its own writes.
pub struct Engine {
    pub client: Client,
    pub events: Arc<Publisher>,
    pub metrics: Arc<Metrics>,
    /// The controller, as in metrics.
    pub controller: &'static str,
    /// Server-side-apply field manager of the controller's writes.
    pub field_manager: &'static str,
    pub revisions: Store<ControllerRevision>,
    pub revisions_by_owner: Arc<KeyIndex<ControllerRevision>>,
    /// ConfigMaps and Secrets, metadata only: their resourceVersions tell when a
    /// referenced one changed.
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub config_cache: config::ConfigCache,
    pub digester: crate::rollout::config::Digester,
    pub ledger: ledger::Ledger,
}

impl Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("controller", &self.controller)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// The engine of controller `controller` (writing as `field_manager`), reading
    /// revisions and config from the shared watches' caches.
    pub fn new(
        client: Client,
        recorder: kube::runtime::events::Recorder,
        metrics: Arc<Metrics>,
        (controller, field_manager): (&'static str, &'static str),
        caches: &watches::Caches,
        digester: crate::rollout::config::Digester,
    ) -> Self {
        Engine {
            client,
            events: Arc::new(Publisher::new(
                recorder,
                metrics.clone(),
                controller,
                "Reconcile",
            )),
            metrics,
            controller,
            field_manager,
            revisions: caches.revisions.clone(),
            revisions_by_owner: caches.revisions_by_owner.clone(),
            config_maps: caches.config_maps.clone(),
            secrets: caches.secrets.clone(),
            config_cache: config::ConfigCache::default(),
            digester,
            ledger: ledger::Ledger::default(),
        }
    }

    /// Drops what the engine remembers of a workload that is gone (deleted, in any way):
    /// its memory holds only workloads that exist.
    pub fn forget(&self, uid: &str) {
        self.ledger.forget(uid);
    }

    /// Publishes an Event about a workload.
    pub async fn publish<K: Object>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        self.events
            .publish(&object.object_ref(&()), type_, reason, note)
            .await;
    }

    /// Counts a write the controller made.
    pub fn wrote(&self, verb: &'static str, resource: &'static str) {
        self.metrics.write(self.controller, verb, resource);
    }
}
