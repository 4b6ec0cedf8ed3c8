//! The App controller: keeps `spec.replicas` pods of the template running, moves them
//! between revisions by the App's strategy, and keeps the App's Services and disruption
//! budget in step with its spec. This file wires the watches to the pass; the pass is
//! [`reconcile`], one step per file.

mod act;
mod observe;
pub mod plan;
mod pod;
mod reconcile;
mod report;
pub(crate) mod service;
mod usage;
mod workload;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Result;
use drover_crds::names::{field_manager, label};
use drover_crds::{App, StatefulApp};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use crate::engine::rivals::{self, Rivals};
use crate::engine::{Engine, watches};
use crate::runtime::backoff::{Backoff, Failures};
use crate::runtime::index::KeyIndex;
use crate::runtime::metrics::Metrics;
use crate::runtime::queue::{QueueDepth, Synced};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "app";

#[derive(Debug, Clone)]
pub struct Config {
    /// Watch Apps of this namespace only (all namespaces when `None`).
    pub namespace: Option<String>,
    /// How long a node may be NotReady before its pods are replaced elsewhere.
    pub node_lost_grace: Duration,
    /// Apps reconciled at the same time.
    pub concurrency: u16,
    /// drover's scheduler, for Apps with `placement.binPack`.
    pub scheduler_name: String,
    /// Digests config contents, Secrets' with the installation's key.
    pub digester: crate::rollout::config::Digester,
}

/// Everything a pass needs: the engine (client, Events, revisions, config, ledger), the
/// caches it observes through, and the controller's own bookkeeping.
pub struct Context {
    pub engine: Engine,
    pub config: Config,
    pub pods: Store<Pod>,
    pub pods_by_owner: Arc<KeyIndex<Pod>>,
    pub nodes: Store<Node>,
    pub services: Store<Service>,
    pub budgets: Store<PodDisruptionBudget>,
    /// How full nodes are, for bin-packed Apps' scale-in.
    node_usage: usage::NodeUsage,
    /// StatefulApps, one of which may hold an App's name first.
    pub rivals: Rivals<StatefulApp>,
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

impl Context {
    /// Waits until every watch but the Apps' has delivered its initial list: no decision
    /// is taken on a partial view.
    async fn synced(&self) {
        self.synced.secondary().await;
    }
}

/// Runs the App controller until shutdown. `ready` turns true once every watch has
/// delivered its initial list.
pub async fn run(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    recorder: Recorder,
) -> Result<()> {
    // The shared watches, and the StatefulApps' (a rival of the same name).
    const RIVALS: u32 = watches::bit::SHARED;
    let synced = Synced::new(RIVALS + 1, ready);
    let scope = watches::Scope {
        namespace: config.namespace.as_deref(),
        pods: label::APP,
        controller: CONTROLLER,
    };
    let (caches, streams) = watches::start::<App>(&client, scope, &synced, &metrics);
    let namespace = config.namespace.as_deref();
    let (rivals, rival_events) =
        rivals::watch::<StatefulApp>(&client, namespace, (&synced, RIVALS), &metrics, CONTROLLER);
    let ctx = Arc::new(Context {
        engine: Engine::new(
            client,
            recorder,
            metrics.clone(),
            (CONTROLLER, field_manager::APP),
            &caches,
            config.digester.clone(),
        ),
        config: config.clone(),
        pods: caches.pods.clone(),
        pods_by_owner: caches.pods_by_owner.clone(),
        nodes: caches.nodes.clone(),
        services: caches.services.clone(),
        budgets: caches.budgets.clone(),
        node_usage: usage::NodeUsage::default(),
        rivals,
        queue: QueueDepth::new(metrics, CONTROLLER),
        backoff: Failures::new(Backoff::RECONCILE),
        synced,
    });
    let controller = streams
        .controller(&caches, ctx.clone())
        .watches_stream(rival_events, rivals::woken::<StatefulApp, App>);
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
