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

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Result;
use drover_crds::names::{field_manager, label};
use drover_crds::{App, StatefulApp};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::engine::rivals::{self, Rivals};
use crate::engine::{Engine, watches};
use crate::runtime::backoff::{Backoff, Failures};
use crate::runtime::index::KeyIndex;
use crate::runtime::metrics::Metrics;
use crate::runtime::queue::{QueueDepth, Synced};
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
    /// Apps, one of which may hold a StatefulApp's name first.
    pub rivals: Rivals<App>,
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

/// Runs the StatefulApp controller until shutdown. `ready` turns true once every watch
/// has delivered its initial list.
pub async fn run(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    recorder: Recorder,
) -> Result<()> {
    // The shared watches, and the claims' (by the `drover.dev/app` label: a retained
    // claim has no owner).
    const CLAIMS: u32 = watches::bit::SHARED;
    // And the Apps' (a rival of the same name).
    const RIVALS: u32 = CLAIMS + 1;
    let synced = Synced::new(RIVALS + 1, ready);
    let scope = watches::Scope {
        namespace: config.namespace.as_deref(),
        // Only StatefulApps' pods carry an ordinal.
        pods: label::ORDINAL,
        controller: CONTROLLER,
    };
    let (caches, streams) = watches::start::<StatefulApp>(&client, scope, &synced, &metrics);
    let namespace = config.namespace.as_deref();
    let (rivals, rival_events) =
        rivals::watch::<App>(&client, namespace, (&synced, RIVALS), &metrics, CONTROLLER);
    let claims_by_app: Arc<KeyIndex<PersistentVolumeClaim>> =
        Arc::new(KeyIndex::new(observe::claim_owner));
    let (claims, claims_writer) = reflector::store();
    let by_app = claims_by_app.clone();
    let claim_events = watcher(
        scoped::<PersistentVolumeClaim>(&client, config.namespace.as_deref()),
        watcher::Config::default().labels(label::APP),
    )
    .default_backoff()
    .modify(|c: &mut PersistentVolumeClaim| c.metadata.managed_fields = None)
    .reflect(claims_writer)
    .inspect_ok(move |event| by_app.observe(event))
    .inspect_ok(synced.on_init_done(CLAIMS))
    .touched_objects();
    let claim_events = trigger(claim_events, &metrics, CONTROLLER, "persistentvolumeclaims");

    let ctx = Arc::new(Context {
        engine: Engine::new(
            client,
            recorder,
            metrics.clone(),
            (CONTROLLER, field_manager::STATEFUL_APP),
            &caches,
            config.digester.clone(),
        ),
        config: config.clone(),
        pods: caches.pods.clone(),
        pods_by_owner: caches.pods_by_owner.clone(),
        claims,
        claims_by_app,
        nodes: caches.nodes.clone(),
        services: caches.services.clone(),
        budgets: caches.budgets.clone(),
        rivals,
        queue: QueueDepth::new(metrics, CONTROLLER),
        backoff: Failures::new(Backoff::RECONCILE),
        synced,
    });
    // A claim wakes the StatefulApp its label names.
    let claim_to_app = |claim: PersistentVolumeClaim| {
        let app = observe::claim_owner(&claim).map(String::from);
        app.zip(claim.namespace())
            .map(|(app, ns)| ObjectRef::new(&app).within(&ns))
    };
    let controller = streams
        .controller(&caches, ctx.clone())
        .watches_stream(claim_events, claim_to_app)
        .watches_stream(rival_events, rivals::woken::<App, StatefulApp>);
    watches::drive(controller, config.concurrency, reconcile::reconcile, ctx).await;
    Ok(())
}

impl watches::Pass for Context {
    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn queue(&self) -> &QueueDepth {
        &self.queue
    }

    fn backoff(&self) -> &Failures {
        &self.backoff
    }
}
