//! The StatefulApp controller: pods with a stable identity (`<name>-<ordinal>`, a DNS
//! name through a headless Service) and claims of their own that follow the ordinal,
//! at most one pod per ordinal at any moment. It runs on the App's workload engine
//! (revisions, config snapshots, undo, commands, status); what is its own is the
//! ordinal plan, the claims and the Services. This file wires the watches to the pass;
//! the pass is [`reconcile`], one step per file.

mod act;
pub mod claims;
mod observe;
pub mod plan;
mod pod;
mod reconcile;
mod report;
mod service;
mod snapshots;
mod volumes;
mod workload;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Result;
use drover_crds::StatefulApp;
use drover_crds::names::{field_manager, label};
use drover_crds::revision::ConfigKind;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::Api;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::engine::{self, Engine, Error};
use crate::runtime::backoff::{Backoff, Failures};
use crate::runtime::events::Publisher;
use crate::runtime::index::KeyIndex;
use crate::runtime::metrics::Metrics;
use crate::runtime::queue::{QueueDepth, Synced};
use crate::runtime::trim;
use crate::runtime::watch::{scoped, trigger};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "statefulapp";

#[derive(Debug, Clone)]
pub struct Config {
    /// Watch StatefulApps of this namespace only (all namespaces when `None`).
    pub namespace: Option<String>,
    /// How long a node may be NotReady before its pods are reported stranded.
    pub node_lost_grace: Duration,
    /// StatefulApps reconciled at the same time.
    pub concurrency: u16,
    /// Digests config contents, Secrets' with the installation's key.
    pub digester: crate::rollout::config::Digester,
}

/// Everything a pass needs: the engine, the caches it observes through, and the
/// controller's own bookkeeping.
pub struct Context {
    pub engine: Engine,
    pub config: Config,
    pub pods: Store<Pod>,
    pub pods_by_owner: Arc<KeyIndex<Pod>>,
    pub claims: Store<PersistentVolumeClaim>,
    /// Claims by the StatefulApp their `drover.dev/app` label names (a retained claim has
    /// no owner).
    pub claims_by_app: Arc<KeyIndex<PersistentVolumeClaim>>,
    pub nodes: Store<Node>,
    pub services: Store<Service>,
    pub budgets: Store<PodDisruptionBudget>,
    queue: QueueDepth,
    backoff: Failures,
    synced: Synced,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The controller's watches, by their bit in [`Synced`] (the StatefulApps' first).
mod watch {
    pub const STATEFUL_APPS: u32 = 0;
    pub const PODS: u32 = 1;
    pub const SERVICES: u32 = 2;
    pub const NODES: u32 = 3;
    pub const REVISIONS: u32 = 4;
    pub const CONFIG_MAPS: u32 = 5;
    pub const SECRETS: u32 = 6;
    pub const BUDGETS: u32 = 7;
    pub const CLAIMS: u32 = 8;
    pub const COUNT: u32 = 9;
}

fn owner(pod: &Pod) -> Option<&OwnerReference> {
    pod.owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "StatefulApp")
}

/// Runs the StatefulApp controller until shutdown. `ready` turns true once every watch
/// has delivered its initial list.
pub async fn run(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    recorder: Recorder,
) -> Result<()> {
    let namespace = config.namespace.as_deref();
    let apps_api: Api<DeserializeGuard<StatefulApp>> = scoped(&client, namespace);
    let pods_api: Api<Pod> = scoped(&client, namespace);
    let services_api: Api<Service> = scoped(&client, namespace);
    let revisions_api: Api<ControllerRevision> = scoped(&client, namespace);
    let budgets_api: Api<PodDisruptionBudget> = scoped(&client, namespace);
    let claims_api: Api<PersistentVolumeClaim> = scoped(&client, namespace);
    let config_maps_api: Api<PartialObjectMeta<ConfigMap>> = scoped(&client, namespace);
    let secrets_api: Api<PartialObjectMeta<Secret>> = scoped(&client, namespace);
    let nodes_api: Api<Node> = Api::all(client.clone());
    let ours = watcher::Config::default().labels(label::APP);
    // Only StatefulApps' pods carry an ordinal.
    let our_pods = watcher::Config::default().labels(label::ORDINAL);

    // As in the App controller: each reflector's own stream triggers passes, a watch is
    // marked synced once its store holds the initial list, and passes wait for that.
    let synced = Synced::new(watch::COUNT, ready);
    let pods_by_owner = Arc::new(KeyIndex::by_owner());
    let pods_by_node: Arc<KeyIndex<Pod>> = Arc::new(KeyIndex::new(|p: &Pod| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref())
    }));
    let claims_by_app: Arc<KeyIndex<PersistentVolumeClaim>> =
        Arc::new(KeyIndex::new(observe::claim_owner));
    let revisions_by_owner = Arc::new(KeyIndex::by_owner());
    let (apps, apps_writer) = reflector::store();
    let (pods, pods_writer) = reflector::store();
    let (services, services_writer) = reflector::store();
    let (budgets, budgets_writer) = reflector::store();
    let (claims, claims_writer) = reflector::store();
    let (nodes, nodes_writer) = reflector::store();
    let (revisions, revisions_writer) = reflector::store();
    let (config_maps, config_maps_writer) = reflector::store();
    let (secrets, secrets_writer) = reflector::store();
    let app_events = watcher(apps_api, watcher::Config::default())
        .default_backoff()
        .reflect(apps_writer)
        .inspect_ok(synced.on_init_done(watch::STATEFUL_APPS))
        .touched_objects();
    let (by_owner, by_node) = (pods_by_owner.clone(), pods_by_node.clone());
    let pod_events = watcher(pods_api, our_pods)
        .default_backoff()
        .modify(trim::pod)
        .reflect(pods_writer)
        .inspect_ok(move |event| {
            by_owner.observe(event);
            by_node.observe(event);
        })
        .inspect_ok(synced.on_init_done(watch::PODS))
        .touched_objects();
    let service_events = watcher(services_api, ours.clone())
        .default_backoff()
        .reflect(services_writer)
        .inspect_ok(synced.on_init_done(watch::SERVICES))
        .touched_objects();
    let budget_events = watcher(budgets_api, ours.clone())
        .default_backoff()
        .modify(|b: &mut PodDisruptionBudget| b.metadata.managed_fields = None)
        .reflect(budgets_writer)
        .inspect_ok(synced.on_init_done(watch::BUDGETS))
        .touched_objects();
    let by_app = claims_by_app.clone();
    let claim_events = watcher(claims_api, ours.clone())
        .default_backoff()
        .modify(|c: &mut PersistentVolumeClaim| c.metadata.managed_fields = None)
        .reflect(claims_writer)
        .inspect_ok(move |event| by_app.observe(event))
        .inspect_ok(synced.on_init_done(watch::CLAIMS))
        .touched_objects();
    let index = revisions_by_owner.clone();
    let revision_events = watcher(revisions_api, ours)
        .default_backoff()
        .modify(|r: &mut ControllerRevision| r.metadata.managed_fields = None)
        .reflect(revisions_writer)
        .inspect_ok(move |event| index.observe(event))
        .inspect_ok(synced.on_init_done(watch::REVISIONS))
        .touched_objects();
    let config_map_events = watcher(config_maps_api, watcher::Config::default())
        .default_backoff()
        .modify(trim::meta)
        .reflect(config_maps_writer)
        .inspect_ok(synced.on_init_done(watch::CONFIG_MAPS))
        .touched_objects();
    let secret_events = watcher(secrets_api, watcher::Config::default())
        .default_backoff()
        .modify(trim::meta)
        .reflect(secrets_writer)
        .inspect_ok(synced.on_init_done(watch::SECRETS))
        .touched_objects();
    let node_events = watcher(nodes_api, watcher::Config::default())
        .default_backoff()
        .modify(trim::node)
        .reflect(nodes_writer)
        .inspect_ok(synced.on_init_done(watch::NODES))
        .touched_objects();
    let app_events = trigger(app_events, &metrics, CONTROLLER, "statefulapps");
    let pod_events = trigger(pod_events, &metrics, CONTROLLER, "pods");
    let service_events = trigger(service_events, &metrics, CONTROLLER, "services");
    let budget_events = trigger(budget_events, &metrics, CONTROLLER, "poddisruptionbudgets");
    let claim_events = trigger(claim_events, &metrics, CONTROLLER, "persistentvolumeclaims");
    let revision_events = trigger(revision_events, &metrics, CONTROLLER, "controllerrevisions");
    let config_map_events = trigger(config_map_events, &metrics, CONTROLLER, "configmaps");
    let secret_events = trigger(secret_events, &metrics, CONTROLLER, "secrets");
    let node_events = trigger(node_events, &metrics, CONTROLLER, "nodes");

    let ctx = Arc::new(Context {
        engine: Engine {
            client,
            events: Arc::new(Publisher::new(
                recorder,
                metrics.clone(),
                CONTROLLER,
                "Reconcile",
            )),
            metrics: metrics.clone(),
            controller: CONTROLLER,
            field_manager: field_manager::STATEFUL_APP,
            revisions,
            revisions_by_owner,
            config_maps,
            secrets,
            config_cache: engine::config::ConfigCache::default(),
            digester: config.digester.clone(),
            ledger: engine::ledger::Ledger::default(),
        },
        config: config.clone(),
        pods: pods.clone(),
        pods_by_owner,
        claims,
        claims_by_app,
        nodes,
        services,
        budgets,
        queue: QueueDepth::new(metrics, CONTROLLER),
        backoff: Failures::new(Backoff::RECONCILE),
        synced,
    });

    let (q, store) = (ctx.clone(), apps.clone());
    let app_triggers = app_events.inspect(move |app| {
        if let Ok(app) = app {
            // A StatefulApp the store no longer holds (under this UID) was deleted.
            let uid = app.uid().unwrap_or_default();
            let kept = store.get(&ObjectRef::from_obj(app));
            if kept.is_none_or(|a| a.uid().as_deref() != Some(uid.as_str())) {
                q.engine.forget(&uid);
                q.backoff.reset(&uid);
                return;
            }
            q.queue.note(app.namespace(), app.name_any());
        }
    });
    let q = ctx.clone();
    let pod_triggers = pod_events.inspect(move |pod| {
        if let Ok(pod) = pod
            && let Some(owner) = owner(pod)
        {
            q.engine
                .ledger
                .seen(&owner.uid, &pod.uid().unwrap_or_default());
            q.queue.note(pod.namespace(), owner.name.clone());
        }
    });
    let q = ctx.clone();
    let node_to_apps = move |node: Node| {
        let apps: HashSet<ObjectRef<DeserializeGuard<StatefulApp>>> = pods_by_node
            .get(&pods, &node.name_any())
            .iter()
            .filter_map(|p| {
                let owner = &owner(p)?.name;
                q.queue.note(p.namespace(), owner.clone());
                Some(ObjectRef::new(owner).within(&p.namespace()?))
            })
            .collect();
        apps.into_iter()
    };
    // A claim wakes the StatefulApp its label names (a retained claim has no owner).
    let claim_to_app = |claim: PersistentVolumeClaim| {
        let app = observe::claim_owner(&claim).map(String::from);
        app.zip(claim.namespace())
            .map(|(app, ns)| ObjectRef::new(&app).within(&ns))
    };
    let config_map_users = {
        let (apps, q) = (apps.clone(), ctx.clone());
        move |object: PartialObjectMeta<ConfigMap>| {
            if q.engine
                .config_maps
                .get(&ObjectRef::from_obj(&object))
                .is_none()
            {
                q.engine
                    .config_cache
                    .forget(ConfigKind::ConfigMap, &object.metadata);
            }
            users(&apps, ConfigKind::ConfigMap, &object.metadata)
        }
    };
    let secret_users = {
        let (apps, q) = (apps.clone(), ctx.clone());
        move |object: PartialObjectMeta<Secret>| {
            if q.engine
                .secrets
                .get(&ObjectRef::from_obj(&object))
                .is_none()
            {
                q.engine
                    .config_cache
                    .forget(ConfigKind::Secret, &object.metadata);
            }
            users(&apps, ConfigKind::Secret, &object.metadata)
        }
    };

    Controller::for_stream(app_triggers, apps)
        .owns_stream(pod_triggers)
        .owns_stream(service_events)
        .owns_stream(revision_events)
        .owns_stream(budget_events)
        .watches_stream(claim_events, claim_to_app)
        .watches_stream(node_events, node_to_apps)
        .watches_stream(config_map_events, config_map_users)
        .watches_stream(secret_events, secret_users)
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .shutdown_on_signal()
        .run(reconcile::reconcile, error_policy, ctx.clone())
        .for_each(|result| {
            engine::error::report_failure(&ctx.engine.events, result);
            futures::future::ready(())
        })
        .await;
    Ok(())
}

/// The StatefulApps whose template references a ConfigMap or Secret.
fn users(
    apps: &Store<DeserializeGuard<StatefulApp>>,
    kind: ConfigKind,
    object: &ObjectMeta,
) -> std::vec::IntoIter<ObjectRef<DeserializeGuard<StatefulApp>>> {
    engine::config::users(apps, kind, object).into_iter()
}

fn error_policy(
    app: Arc<DeserializeGuard<StatefulApp>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    engine::error::retry(error, &ctx.backoff, &app.uid().unwrap_or_default())
}
