//! The watches of a workload controller, whatever its kind: its workloads, and what it
//! observes through — pods (indexed by owner and node), Services, disruption budgets,
//! revisions (by owner), ConfigMaps and Secrets (metadata only), nodes — each a cache
//! and a stream of triggers, wired into a kube `Controller` of the kind. A kind adds its
//! own watches (a StatefulApp's claims) to the Controller this gives.
//!
//! Each reflector's own stream triggers passes, deletions included (a pod deleted
//! outright must wake its workload at once). The Controller polls them, so the caches fill
//! while it runs; passes wait for them ([`Synced::secondary`]). A watch is marked synced
//! only once its reflector has swapped the initial list into the cache: passes run on
//! other threads and would otherwise read an empty one. Pods and revisions are indexed
//! right after their cache. Errors are counted and logged, each watch backing off on its
//! own (see [`trigger`]).

use std::collections::HashSet;
use std::sync::Arc;

use drover_crds::names::label;
use drover_crds::revision::ConfigKind;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::Api;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::{Engine, Error, Object, config, error};
use crate::runtime::backoff::Failures;
use crate::runtime::index::KeyIndex;
use crate::runtime::metrics::Metrics;
use crate::runtime::queue::{QueueDepth, Synced};
use crate::runtime::trim;
use crate::runtime::watch::{scoped, trigger};

/// The watches, by their bit in [`Synced`]. A kind's own watches follow [`SHARED`].
pub mod bit {
    pub const WORKLOADS: u32 = 0;
    pub const PODS: u32 = 1;
    pub const SERVICES: u32 = 2;
    pub const NODES: u32 = 3;
    pub const REVISIONS: u32 = 4;
    pub const CONFIG_MAPS: u32 = 5;
    pub const SECRETS: u32 = 6;
    pub const BUDGETS: u32 = 7;
    /// How many there are; a kind's own watches take the bits from here on.
    pub const SHARED: u32 = 8;
}

/// The caches a pass observes through (besides the engine's revisions and config).
pub struct Caches {
    pub pods: Store<Pod>,
    pub pods_by_owner: Arc<KeyIndex<Pod>>,
    pub pods_by_node: Arc<KeyIndex<Pod>>,
    pub services: Store<Service>,
    pub budgets: Store<PodDisruptionBudget>,
    pub nodes: Store<Node>,
    pub revisions: Store<ControllerRevision>,
    pub revisions_by_owner: Arc<KeyIndex<ControllerRevision>>,
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches").finish_non_exhaustive()
    }
}

type Triggers<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// The watches' triggers, until they are wired into the Controller.
pub struct Streams<K: Object> {
    workloads: Triggers<DeserializeGuard<K>>,
    workload_store: Store<DeserializeGuard<K>>,
    pods: Triggers<Pod>,
    services: Triggers<Service>,
    budgets: Triggers<PodDisruptionBudget>,
    nodes: Triggers<Node>,
    revisions: Triggers<ControllerRevision>,
    config_maps: Triggers<PartialObjectMeta<ConfigMap>>,
    secrets: Triggers<PartialObjectMeta<Secret>>,
}

impl<K: Object> std::fmt::Debug for Streams<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams").finish_non_exhaustive()
    }
}

/// Where the watches are and what they count as.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub namespace: Option<&'a str>,
    /// The label selector of the kind's pods.
    pub pods: &'a str,
    /// The controller, as in metrics.
    pub controller: &'static str,
}

/// Starts the shared watches of workloads `K` (their streams start when the Controller
/// polls them).
pub fn start<K: Object>(
    client: &Client,
    scope: Scope<'_>,
    synced: &Synced,
    metrics: &Arc<Metrics>,
) -> (Caches, Streams<K>) {
    let Scope {
        namespace,
        pods: pod_labels,
        controller,
    } = scope;
    let ours = watcher::Config::default().labels(label::APP);
    let pods_by_owner = Arc::new(KeyIndex::by_owner());
    let pods_by_node: Arc<KeyIndex<Pod>> = Arc::new(KeyIndex::new(|p: &Pod| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref())
    }));
    let revisions_by_owner = Arc::new(KeyIndex::by_owner());
    let (workload_store, workloads_writer) = reflector::store();
    let (pods, pods_writer) = reflector::store();
    let (services, services_writer) = reflector::store();
    let (budgets, budgets_writer) = reflector::store();
    let (nodes, nodes_writer) = reflector::store();
    let (revisions, revisions_writer) = reflector::store();
    let (config_maps, config_maps_writer) = reflector::store();
    let (secrets, secrets_writer) = reflector::store();

    let workloads = watcher(
        scoped::<DeserializeGuard<K>>(client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(workloads_writer)
    .inspect_ok(synced.on_init_done(bit::WORKLOADS))
    .touched_objects();
    let (by_owner, by_node) = (pods_by_owner.clone(), pods_by_node.clone());
    let pod_events = watcher(
        scoped::<Pod>(client, namespace),
        watcher::Config::default().labels(pod_labels),
    )
    .default_backoff()
    .modify(trim::pod)
    .reflect(pods_writer)
    .inspect_ok(move |event| {
        by_owner.observe(event);
        by_node.observe(event);
    })
    .inspect_ok(synced.on_init_done(bit::PODS))
    .touched_objects();
    let service_events = watcher(scoped::<Service>(client, namespace), ours.clone())
        .default_backoff()
        .reflect(services_writer)
        .inspect_ok(synced.on_init_done(bit::SERVICES))
        .touched_objects();
    let budget_events = watcher(
        scoped::<PodDisruptionBudget>(client, namespace),
        ours.clone(),
    )
    .default_backoff()
    .modify(|b: &mut PodDisruptionBudget| b.metadata.managed_fields = None)
    .reflect(budgets_writer)
    .inspect_ok(synced.on_init_done(bit::BUDGETS))
    .touched_objects();
    let index = revisions_by_owner.clone();
    let revision_events = watcher(scoped::<ControllerRevision>(client, namespace), ours)
        .default_backoff()
        .modify(|r: &mut ControllerRevision| r.metadata.managed_fields = None)
        .reflect(revisions_writer)
        .inspect_ok(move |event| index.observe(event))
        .inspect_ok(synced.on_init_done(bit::REVISIONS))
        .touched_objects();
    // Metadata only: a PartialObjectMeta Api lists and watches without bodies.
    let config_map_events = watcher(
        scoped::<PartialObjectMeta<ConfigMap>>(client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(trim::meta)
    .reflect(config_maps_writer)
    .inspect_ok(synced.on_init_done(bit::CONFIG_MAPS))
    .touched_objects();
    let secret_events = watcher(
        scoped::<PartialObjectMeta<Secret>>(client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(trim::meta)
    .reflect(secrets_writer)
    .inspect_ok(synced.on_init_done(bit::SECRETS))
    .touched_objects();
    let node_events = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(trim::node)
        .reflect(nodes_writer)
        .inspect_ok(synced.on_init_done(bit::NODES))
        .touched_objects();

    let streams = Streams {
        workloads: trigger(workloads, metrics, controller, K::PLURAL).boxed(),
        workload_store,
        pods: trigger(pod_events, metrics, controller, "pods").boxed(),
        services: trigger(service_events, metrics, controller, "services").boxed(),
        budgets: trigger(budget_events, metrics, controller, "poddisruptionbudgets").boxed(),
        nodes: trigger(node_events, metrics, controller, "nodes").boxed(),
        revisions: trigger(revision_events, metrics, controller, "controllerrevisions").boxed(),
        config_maps: trigger(config_map_events, metrics, controller, "configmaps").boxed(),
        secrets: trigger(secret_events, metrics, controller, "secrets").boxed(),
    };
    let caches = Caches {
        pods,
        pods_by_owner,
        pods_by_node,
        services,
        budgets,
        nodes,
        revisions,
        revisions_by_owner,
        config_maps,
        secrets,
    };
    (caches, streams)
}

/// What the wiring needs of a controller's context.
pub trait Pass: Send + Sync + 'static {
    fn engine(&self) -> &Engine;
    fn queue(&self) -> &QueueDepth;
    fn backoff(&self) -> &Failures;
}

/// The pod's controlling workload of kind `K`, if any.
pub fn owner<K: Object>(pod: &Pod) -> Option<&OwnerReference> {
    pod.owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == K::kind(&()))
}

impl<K: Object> Streams<K> {
    /// A Controller of `K` with every shared watch wired in: a workload's own events and
    /// its pods' wake it (and keep the queue depth and the ledger of creates), as do its
    /// Services, budget and revisions, the nodes its pods run on, and the ConfigMaps and
    /// Secrets its template references.
    pub fn controller<C: Pass>(
        self,
        caches: &Caches,
        ctx: Arc<C>,
    ) -> Controller<DeserializeGuard<K>> {
        let (q, store) = (ctx.clone(), self.workload_store.clone());
        let workloads = self.workloads.inspect(move |w| {
            if let Ok(w) = w {
                // The store follows the watch first: a workload it no longer holds (under
                // this UID) was deleted, and what was kept for it goes.
                let uid = w.uid().unwrap_or_default();
                let kept = store.get(&ObjectRef::from_obj(w));
                if kept.is_none_or(|k| k.uid().as_deref() != Some(uid.as_str())) {
                    q.engine().forget(&uid);
                    q.backoff().reset(&uid);
                    return;
                }
                q.queue().note(w.namespace(), w.name_any());
            }
        });
        let q = ctx.clone();
        let pods = self.pods.inspect(move |pod| {
            if let Ok(pod) = pod
                && let Some(owner) = owner::<K>(pod)
            {
                q.engine()
                    .ledger
                    .seen(&owner.uid, &pod.uid().unwrap_or_default());
                q.queue().note(pod.namespace(), owner.name.clone());
            }
        });
        let (q, by_node, pod_store) = (
            ctx.clone(),
            caches.pods_by_node.clone(),
            caches.pods.clone(),
        );
        let node_to_workloads = move |node: Node| {
            let workloads: HashSet<ObjectRef<DeserializeGuard<K>>> = by_node
                .get(&pod_store, &node.name_any())
                .iter()
                .filter_map(|p| {
                    let owner = &owner::<K>(p)?.name;
                    q.queue().note(p.namespace(), owner.clone());
                    Some(ObjectRef::new(owner).within(&p.namespace()?))
                })
                .collect();
            workloads.into_iter()
        };
        // A ConfigMap or Secret its store no longer holds was deleted: it leaves the config
        // cache, and the workloads that use it look again.
        let (store, q) = (self.workload_store.clone(), ctx.clone());
        let config_map_users = move |object: PartialObjectMeta<ConfigMap>| {
            let engine = q.engine();
            if engine
                .config_maps
                .get(&ObjectRef::from_obj(&object))
                .is_none()
            {
                engine
                    .config_cache
                    .forget(ConfigKind::ConfigMap, &object.metadata);
            }
            config::users(&store, ConfigKind::ConfigMap, &object.metadata).into_iter()
        };
        let (store, q) = (self.workload_store.clone(), ctx);
        let secret_users = move |object: PartialObjectMeta<Secret>| {
            let engine = q.engine();
            if engine.secrets.get(&ObjectRef::from_obj(&object)).is_none() {
                engine
                    .config_cache
                    .forget(ConfigKind::Secret, &object.metadata);
            }
            config::users(&store, ConfigKind::Secret, &object.metadata).into_iter()
        };
        Controller::for_stream(workloads, self.workload_store)
            .owns_stream(pods)
            .owns_stream(self.services)
            .owns_stream(self.revisions)
            .owns_stream(self.budgets)
            .watches_stream(self.nodes, node_to_workloads)
            .watches_stream(self.config_maps, config_map_users)
            .watches_stream(self.secrets, secret_users)
    }
}

/// Runs `controller` until shutdown: passes of `reconcile`, at most `concurrency` at
/// once; a failed pass is reported ([`error::report_failure`]) and tried again with
/// backoff ([`error::retry`]).
pub async fn drive<K, C, F, Fut>(
    controller: Controller<DeserializeGuard<K>>,
    concurrency: u16,
    reconcile: F,
    ctx: Arc<C>,
) where
    K: Object,
    C: Pass,
    F: FnMut(Arc<DeserializeGuard<K>>, Arc<C>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    let retry = |workload: Arc<DeserializeGuard<K>>, e: &Error, ctx: Arc<C>| {
        error::retry(e, ctx.backoff(), &workload.uid().unwrap_or_default())
    };
    let events = ctx.engine().events.clone();
    controller
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(reconcile, retry, ctx)
        .for_each(|result| {
            error::report_failure(&events, result);
            futures::future::ready(())
        })
        .await;
}
