//! The observe step of a StatefulApp's pass: its pods (and the creates still in flight),
//! its revisions with the update revision stored, its claims, the health of the nodes its
//! pods run on, and the pending command — read from the caches.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use drover_crds::StatefulApp;
use drover_crds::names::label;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::Context;
use super::claims::Claim;
use crate::engine::revisions::{self, UpdateRevision};
use crate::engine::{Error, command, pods};
use crate::rollout::command::Command;
use crate::rollout::pods::{NodeHealth, PodState};
use crate::rollout::strategy;
use crate::rollout::workload::Workload;
use crate::scheduler::quantity;

/// What one pass knows.
#[derive(Debug)]
pub struct Observed {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// The StatefulApp's pods, as cached.
    pub owned: Vec<Arc<Pod>>,
    /// Those pods (the first `observed`), then the creates still in flight.
    pub pods: Vec<PodState>,
    pub observed: usize,
    pub revisions: Vec<Arc<ControllerRevision>>,
    pub stored: Vec<String>,
    pub update: UpdateRevision,
    /// The claims of its claim templates, as cached (a template's claims of every
    /// ordinal, asked for or not).
    pub claims: Vec<Claim>,
    pub claim_objects: Vec<Arc<PersistentVolumeClaim>>,
    pub nodes: HashMap<String, NodeHealth>,
    pub command: Option<Command>,
    pub now: Timestamp,
}

pub async fn observe(ctx: &Context, app: &StatefulApp, uid: &str) -> Result<Observed, Error> {
    let engine = &ctx.engine;
    let name = app.name_any();
    let namespace = app.namespace().unwrap_or_default();
    let now = Timestamp::now();
    let owned = ctx.pods_by_owner.get(&ctx.pods, uid);
    let (pods, observed) = pods::with_in_flight(engine, (&name, uid), &owned, now);
    let in_use: HashSet<String> = pods[..observed]
        .iter()
        .map(|p| p.revision.clone())
        .collect();
    let revisions = revisions::owned(engine, uid);
    let update = revisions::sync(engine, app, &revisions, &in_use).await?;
    let claim_objects: Vec<Arc<PersistentVolumeClaim>> = ctx
        .claims_by_app
        .get(&ctx.claims, &name)
        .into_iter()
        .filter(|c| c.namespace().as_deref() == Some(namespace.as_str()))
        .collect();
    let claims = claim_objects
        .iter()
        .filter_map(|c| claim(app, &name, c))
        .collect();
    Ok(Observed {
        uid: uid.to_string(),
        nodes: pods::node_health(&ctx.nodes, &pods),
        owned,
        pods,
        observed,
        stored: revisions.iter().map(|r| r.name_any()).collect(),
        revisions,
        update,
        claims,
        claim_objects,
        command: command::pending(app),
        now,
        name,
        namespace,
    })
}

/// What the claim plan needs of a claim; `None` for one that is no claim of a current
/// template of this StatefulApp.
fn claim(app: &StatefulApp, name: &str, pvc: &PersistentVolumeClaim) -> Option<Claim> {
    let claim_name = pvc.name_any();
    let (template, ordinal) = app.spec.volume_claim_templates.iter().find_map(|t| {
        let rest = claim_name
            .strip_prefix(&t.metadata.name)?
            .strip_prefix('-')?;
        Some((t.metadata.name.clone(), pods::slot_of(name, rest)?))
    })?;
    let storage = |m: Option<&std::collections::BTreeMap<String, _>>| {
        m.and_then(|m| m.get("storage")).and_then(
            |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| quantity::units(&q.0),
        )
    };
    let spec = pvc.spec.as_ref();
    Some(Claim {
        name: claim_name,
        template,
        ordinal,
        requested: storage(spec.and_then(|s| s.resources.as_ref()?.requests.as_ref())).unwrap_or(0),
        capacity: storage(pvc.status.as_ref().and_then(|s| s.capacity.as_ref())),
        terminating: pvc.metadata.deletion_timestamp.is_some(),
    })
}

impl Observed {
    /// What the strategy decides on (the engine's plain rolling update: commands, pause).
    pub fn strategy_input<'a>(&'a self, app: &'a StatefulApp) -> strategy::Input<'a> {
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

    /// The observed pods, without the creates in flight.
    pub fn observed_pods(&self) -> &[PodState] {
        &self.pods[..self.observed]
    }

    /// The claims' PVC of `name`, as cached.
    pub fn claim_object(&self, name: &str) -> Option<&PersistentVolumeClaim> {
        self.claim_objects
            .iter()
            .find(|c| c.name_any() == name)
            .map(AsRef::as_ref)
    }
}

/// The label that ties claims to their StatefulApp (they may have no owner).
pub fn claim_owner(pvc: &PersistentVolumeClaim) -> Option<&str> {
    pvc.labels().get(label::APP).map(String::as_str)
}
