//! The observe step of an App's pass: its pods (and the creates still in flight), its
//! revisions with the update revision stored, the health and fill of the nodes its pods
//! run on, and the pending command — read from the caches, found through the owner
//! indexes. Only the config the update revision pins is read from the API, and only
//! when its resourceVersion moved.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use drover_crds::App;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::plan;
use super::{Config, Context};
use crate::engine::revisions::{self, UpdateRevision};
use crate::engine::{Error, command, pods};
use crate::rollout::command::Command;
use crate::rollout::disruption_budget;
use crate::rollout::pods::{NodeHealth, PodState};
use crate::rollout::strategy::{self, Decision};
use crate::rollout::workload::Workload;

/// What one pass knows.
#[derive(Debug)]
pub struct Observed {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// The App's pods, as cached.
    pub owned: Vec<Arc<Pod>>,
    /// Those pods (the first `observed`), then the creates still in flight.
    pub pods: Vec<PodState>,
    pub observed: usize,
    /// The App's stored revisions, and their names.
    pub revisions: Vec<Arc<ControllerRevision>>,
    pub stored: Vec<String>,
    pub update: UpdateRevision,
    pub nodes: HashMap<String, NodeHealth>,
    /// Pod names the apiserver said someone else holds.
    pub taken: HashSet<String>,
    /// How full the nodes are, for a bin-packed App's scale-in.
    pub node_fill: HashMap<String, u32>,
    pub command: Option<Command>,
    pub now: Timestamp,
}

pub async fn observe(ctx: &Context, app: &App, uid: &str) -> Result<Observed, Error> {
    let engine = &ctx.engine;
    let name = app.name_any();
    let now = Timestamp::now();
    let owned = ctx.pods_by_owner.get(&ctx.pods, uid);
    let (pods, observed) = pods::with_in_flight(engine, (&name, uid), &owned, now);
    let in_use: HashSet<String> = pods[..observed]
        .iter()
        .map(|p| p.revision.clone())
        .collect();
    let revisions = revisions::owned(engine, uid);
    let update = revisions::sync(engine, app, &revisions, &in_use).await?;
    let nodes = pods::node_health(&ctx.nodes, &pods);
    let node_fill = if app.spec.placement.as_ref().is_some_and(|p| p.bin_pack) {
        ctx.node_usage.start(&engine.client, engine.metrics.clone());
        ctx.node_usage
            .fills(&ctx.nodes, pods.iter().filter_map(|p| p.node.as_deref()))
    } else {
        HashMap::new()
    };
    Ok(Observed {
        namespace: app.namespace().unwrap_or_default(),
        uid: uid.to_string(),
        owned,
        pods,
        observed,
        stored: revisions.iter().map(|r| r.name_any()).collect(),
        revisions,
        update,
        nodes,
        taken: engine.ledger.taken(uid),
        node_fill,
        command: command::pending(app),
        now,
        name,
    })
}

impl Observed {
    /// What the strategy decides on.
    pub fn strategy_input<'a>(&'a self, app: &'a App) -> strategy::Input<'a> {
        strategy::Input {
            spec: app.rollout_spec(),
            recorded: app.recorded(),
            update: &self.update.name,
            stored: &self.stored,
            pods: &self.pods,
            command: self.command,
            now: self.now,
        }
    }

    /// What the replica plan starts from, with the strategy's decision.
    pub fn plan_input<'a>(
        &'a self,
        app: &App,
        config: &Config,
        decision: &Decision,
    ) -> plan::Input<'a> {
        let spec = app.rollout_spec();
        plan::Input {
            app: &self.name,
            replicas: spec.replicas,
            update_revision: &self.update.name,
            method: decision.method,
            stable: decision.stable.is_some(),
            disruption_budget: app
                .spec
                .disruption
                .as_ref()
                .map(|d| disruption_budget(&d.max_unavailable, spec.replicas)),
            min_ready: spec.min_ready,
            pods: &self.pods,
            nodes: &self.nodes,
            taken: &self.taken,
            node_fill: &self.node_fill,
            now: self.now,
            node_lost_grace: config.node_lost_grace,
        }
    }

    /// The observed pods, without the creates in flight.
    pub fn observed_pods(&self) -> &[PodState] {
        &self.pods[..self.observed]
    }
}
