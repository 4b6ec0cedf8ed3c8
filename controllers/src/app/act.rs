//! The act step of an App's pass: the planned pod creates and removals, and the Services
//! and disruption budget brought in line with the spec.

use std::sync::Arc;

use drover_crds::App;
use drover_crds::names::reason;
use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::events::EventType;
use tracing::{debug, info};

use super::observe::Observed;
use super::plan::{Create, Delete, Plan, Removal};
use super::{Context, pod, service};
use crate::engine::revisions::{self, Template};
use crate::engine::{Error, children, pods};
use crate::rollout::strategy::Decision;
use crate::runtime::events::list;

/// What acting left to follow up.
#[derive(Debug, Default)]
pub struct Acted {
    /// A disruption budget refused an eviction: try again soon.
    pub evictions_blocked: bool,
    /// Objects the App asks for whose names another owner's objects hold, each as a
    /// sentence for the status.
    pub conflicts: Vec<String>,
}

pub async fn act(
    ctx: &Context,
    app: &App,
    observed: &Observed,
    decision: &Decision,
    plan: &Plan,
) -> Result<Acted, Error> {
    if !plan.is_empty() {
        debug!(app = %observed.name, namespace = %observed.namespace, creates = plan.creates.len(), deletes = plan.deletes.len(), "plan");
    }
    let pods: Api<Pod> = Api::namespaced(ctx.engine.client.clone(), &observed.namespace);
    let (delete_error, evictions_blocked, kept) =
        delete_pods(ctx, app, &pods, &observed.owned, &plan.deletes).await;
    // The plan made room for its creates with its removals: a pod that was not removed
    // (a budget refused it, the apiserver timed out) still counts, and takes the place of
    // a create, or the surge would be exceeded. The next pass plans again.
    let creates = &plan.creates[..plan.creates.len().saturating_sub(kept)];
    let create_error = match ctx.engine.ledger.create_backoff(&observed.uid) {
        Some(_) => None,
        None => {
            let update = Template {
                name: observed.update.name.clone(),
                template: observed.update.template.clone(),
            };
            // The stable revision's template, as its pods run it.
            let stable = decision
                .stable
                .as_deref()
                .and_then(|name| revisions::template(&observed.revisions, name));
            create_pods(
                ctx,
                app,
                observed,
                (&update, stable.as_ref()),
                &pods,
                creates,
            )
            .await
        }
    };
    let services = service::desired(app, &observed.update.name, &decision.routing);
    let engine = &ctx.engine;
    let mut conflicts =
        children::services(engine, app, &ctx.services, services, service::matches).await?;
    let budget = app.spec.disruption.as_ref();
    conflicts.extend(children::budget(engine, app, &ctx.budgets, budget).await?);
    if let Some(e) = delete_error.or(create_error) {
        return Err(e);
    }
    if plan.creates.is_empty() {
        ctx.engine.ledger.settle(&observed.uid);
    }
    Ok(Acted {
        evictions_blocked,
        conflicts,
    })
}

/// Removes the planned pods, each with its UID as precondition (so a pod re-created
/// under the same name is never removed by mistake). Voluntary removals (scale-in, a
/// rollout) go through the Eviction API, so PodDisruptionBudgets apply; finished pods and
/// pods of lost nodes are deleted. Returns the first failure, whether a budget blocked an
/// eviction, and how many pods that still count (voluntary removals) stay.
async fn delete_pods(
    ctx: &Context,
    app: &App,
    api: &Api<Pod>,
    owned: &[Arc<Pod>],
    deletes: &[Delete],
) -> (Option<Error>, bool, usize) {
    if deletes.is_empty() {
        return (None, false, 0);
    }
    let engine = &ctx.engine;
    let results = join_all(deletes.iter().map(|d| async move {
        let evict = matches!(d.reason, Removal::ScaleDown | Removal::Outdated);
        (d, pods::remove(api, &d.name, &d.uid, evict).await)
    }))
    .await;
    let mut first_error = None;
    let mut blocked = vec![];
    let mut scaled_down = vec![];
    let mut outdated = vec![];
    let mut kept = 0;
    for (d, result) in results {
        let removal = pods::removed(engine, &d.name, result);
        let voluntary = matches!(d.reason, Removal::ScaleDown | Removal::Outdated);
        if voluntary && !matches!(removal, pods::Removed::Done) {
            kept += 1;
        }
        match removal {
            pods::Removed::Done => {}
            pods::Removed::Blocked => {
                blocked.push(d.name.as_str());
                continue;
            }
            pods::Removed::Failed(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        }
        match &d.reason {
            Removal::ScaleDown => scaled_down.push(d.name.as_str()),
            Removal::Outdated => outdated.push(d.name.as_str()),
            Removal::Finished => {
                let why = owned
                    .iter()
                    .find(|p| p.name_any() == d.name)
                    .and_then(|p| p.status.as_ref())
                    .map(|s| {
                        let reason = s
                            .reason
                            .clone()
                            .unwrap_or_else(|| s.phase.clone().unwrap_or_default());
                        match &s.message {
                            Some(m) => format!("{reason}: {m}"),
                            None => reason,
                        }
                    })
                    .unwrap_or_default();
                info!(app = %app.name_any(), pod = %d.name, %why, "replacing a finished pod");
                engine
                    .publish(
                        app,
                        EventType::Warning,
                        reason::POD_FAILED,
                        format!("Pod {} ended ({why}); replacing it", d.name),
                    )
                    .await;
            }
            Removal::NodeLost { node } => {
                info!(app = %app.name_any(), pod = %d.name, %node, "replacing a pod of a lost node");
                let grace = ctx.config.node_lost_grace.as_secs();
                engine
                    .publish(
                        app,
                        EventType::Warning,
                        reason::NODE_LOST,
                        format!(
                            "Node {node} has been NotReady for more than {grace}s; replacing pod {}",
                            d.name
                        ),
                    )
                    .await;
            }
        }
    }
    if !scaled_down.is_empty() {
        engine
            .publish(
                app,
                EventType::Normal,
                reason::SCALING_DOWN,
                format!("Deleted pods {}", list(&scaled_down)),
            )
            .await;
    }
    if !outdated.is_empty() {
        engine
            .publish(
                app,
                EventType::Normal,
                reason::REPLACING,
                format!("Deleted pods {} of an old revision", list(&outdated)),
            )
            .await;
    }
    if !blocked.is_empty() {
        engine
            .publish(
                app,
                EventType::Warning,
                reason::EVICTION_BLOCKED,
                format!(
                    "Cannot evict {} yet: a PodDisruptionBudget allows no more disruptions; retrying",
                    list(&blocked)
                ),
            )
            .await;
    }
    (first_error, !blocked.is_empty(), kept)
}

/// Creates the planned pods (see [`pods::create`]) and says so. Returns a transient
/// failure, if any.
async fn create_pods(
    ctx: &Context,
    app: &App,
    observed: &Observed,
    (update, stable): (&Template, Option<&Template>),
    api: &Api<Pod>,
    creates: &[Create],
) -> Option<Error> {
    let scheduler = &ctx.config.scheduler_name;
    let planned = creates.iter().filter_map(|c| {
        let revision = match (c.stable, stable) {
            (true, Some(stable)) => stable,
            _ => update,
        };
        Some(pods::Planned {
            pod: pod::build(app, &revision.template, c, &revision.name, scheduler)?,
            slot: c.slot,
            revision: &revision.name,
            template: &revision.template,
        })
    });
    let (created, transient) =
        pods::create(&ctx.engine, app, &observed.uid, api, planned.collect()).await;
    if !created.is_empty() {
        let created: Vec<&str> = created.iter().map(String::as_str).collect();
        info!(app = %app.name_any(), pods = %list(&created), "created pods");
        ctx.engine
            .publish(
                app,
                EventType::Normal,
                reason::SCALING_UP,
                format!("Created pods {}", list(&created)),
            )
            .await;
    }
    transient
}
