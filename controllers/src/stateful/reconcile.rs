//! One pass over a StatefulApp, as the App's: observe (caches) → strategy (the engine's,
//! for commands and pause) → plans (ordinals and claims, pure) → act (claims, pods,
//! Services, budget) → report (status, Events, when to look again).

use std::ops::Range;
use std::sync::Arc;

use drover_crds::StatefulApp;
use drover_crds::names::{annotation, reason};
use drover_crds::stateful::UpdateStrategyType;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::claims::{self, Template};
use super::plan::{self, Update, Why};
use super::snapshots::{self, Restore};
use super::{CONTROLLER, Context, act, observe, report, volumes};
use crate::engine::{Error, pass};
use crate::rollout::disruption_budget;
use crate::rollout::strategy::{self, Hold};
use crate::rollout::workload::{Workload, count};
use crate::scheduler::quantity;

pub async fn reconcile(
    guard: Arc<DeserializeGuard<StatefulApp>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let _timer = ctx.engine.metrics.reconcile(CONTROLLER);
    ctx.synced.secondary().await;
    ctx.queue.done(&ObjectRef::from_obj(guard.as_ref()));
    let (app, uid) = match pass::begin(&ctx.engine, guard.as_ref()).await? {
        Ok(go_on) => go_on,
        Err(done) => return Ok(done),
    };

    let observed = observe::observe(&ctx, app, &uid).await?;
    let mut decision = strategy::decide(&observed.strategy_input(app));
    let spec = &app.spec;
    let wanted = wanted(app);
    let (start, replicas) = (wanted.start, count(spec.replicas));
    let update = update(app);
    let mut plan = plan::plan(&plan::Input {
        start,
        replicas,
        policy: spec.pod_management_policy,
        update,
        update_revision: &observed.update.name,
        current_revision: app.recorded().current_revision,
        pods: &observed.pods,
        min_ready: app.rollout_spec().min_ready,
        now: observed.now,
    });
    let templates: Vec<Template> = spec
        .volume_claim_templates
        .iter()
        .map(|t| Template {
            name: &t.metadata.name,
            size: quantity::units(&t.spec.resources.requests.storage).unwrap_or(0),
        })
        .collect();
    let with_pod: Vec<u32> = observed.pods.iter().map(|p| p.slot).collect();
    let mut claim_plan = claims::plan(&claims::Input {
        app: &observed.name,
        templates: &templates,
        wanted,
        with_pod: &with_pod,
        claims: &observed.claims,
        when_scaled: retention(app).when_scaled,
    });
    if decision.hold.is_none() {
        decision.hold = held(app, &observed, update);
    }
    if let Some(conflict) = ctx.rivals.younger(app) {
        // An App of its name came first: nothing is started or changed.
        let acted = act::Acted {
            conflicts: vec![conflict],
            ..act::Acted::default()
        };
        let plans = (&plan, &claim_plan);
        return report::report(&ctx, app, &observed, decision, plans, acted).await;
    }
    let data = data_plan(&ctx, app, &observed, &mut plan, &mut claim_plan).await?;
    let acted = act::act(&ctx, app, &observed, &plan, &claim_plan, &data).await?;
    report::report(&ctx, app, &observed, decision, (&plan, &claim_plan), acted).await
}

/// What the pass does with the claims' snapshots: those to take before outdated pods go
/// (which wait for them), and each ordinal's restore step.
#[derive(Debug, Default)]
pub struct DataPlan {
    pub takes: Vec<(String, String)>,
    /// Snapshots older than the pods they would stand for, to take again.
    pub stale: Vec<String>,
    /// Pods held back until their snapshots are ready.
    pub held: usize,
    /// What the snapshotter says of snapshots that failed.
    pub failed: Vec<String>,
    /// With `drover.dev/restore-data`: the revision restored to and each ordinal's step.
    pub restore: Option<(String, Vec<(u32, Restore)>)>,
}

/// Fits the plans to the claims' snapshots: with `beforeUpdate`, an outdated pod goes
/// only once its claims' snapshots are ready; while a restore is under way, it replaces
/// the pods and claims of the ordinals it restores, and the rollout waits.
async fn data_plan(
    ctx: &Context,
    app: &StatefulApp,
    observed: &observe::Observed,
    plan: &mut plan::Plan,
    claim_plan: &mut claims::Plan,
) -> Result<DataPlan, Error> {
    let templates: Vec<&str> = app
        .spec
        .volume_claim_templates
        .iter()
        .map(|t| t.metadata.name.as_str())
        .collect();
    let annotations = app.annotations();
    let restoring = annotations
        .get(annotation::RESTORE_DATA)
        .is_some_and(|v| v == "true")
        && !annotations.contains_key(annotation::UNDO);
    let before = app
        .spec
        .volume_snapshots
        .as_ref()
        .is_some_and(|v| v.before_update);
    let mut data = DataPlan::default();
    if templates.is_empty() || !(restoring || before) {
        return Ok(data);
    }
    let snapshots = volumes::observe(ctx, observed).await?;
    let name = observed.name.as_str();
    if restoring {
        let revision = observed.update.name.clone();
        let steps: Vec<(u32, Restore)> = wanted(app)
            .map(|ordinal| {
                let claims: Vec<snapshots::Claim> = observed
                    .claims
                    .iter()
                    .filter(|c| c.ordinal == ordinal)
                    .map(|c| snapshots::Claim {
                        name: c.name.clone(),
                        restored_from: observed
                            .claim_object(&c.name)
                            .and_then(|p| p.spec.as_ref()?.data_source.as_ref())
                            .filter(|d| d.kind == "VolumeSnapshot")
                            .map(|d| d.name.clone()),
                        terminating: c.terminating,
                    })
                    .collect();
                let pod = observed
                    .observed_pods()
                    .iter()
                    .find(|p| p.slot == ordinal)
                    .map(|p| p.terminating);
                let at = snapshots::Ordinal {
                    ordinal,
                    pod,
                    claims: &claims,
                };
                (
                    ordinal,
                    snapshots::restore(name, &templates, &revision, &at, &snapshots),
                )
            })
            .collect();
        let replacing = snapshots::replacing(&steps, name, &templates);
        claim_plan
            .creates
            .retain(|(t, o)| !replacing.contains(&claims::claim_name(t, name, *o)));
        let busy = |ordinal: u32| {
            steps.iter().any(|(o, step)| {
                *o == ordinal && !matches!(step, Restore::Done | Restore::NoSnapshot(_))
            })
        };
        plan.creates.retain(|c| !busy(c.ordinal));
        // The rollout waits for the restore (which replaces the pods it restores).
        plan.deletes.retain(|d| d.why != Why::Update);
        data.restore = Some((revision, steps));
        return Ok(data);
    }
    let mut held = vec![];
    for d in plan.deletes.iter().filter(|d| d.why == Why::Update) {
        let Some(pod) = observed.pods.iter().find(|p| p.name == d.name) else {
            continue;
        };
        let at = (d.ordinal, pod.revision.as_str(), pod.created);
        let b = snapshots::before_update(name, &templates, at, &snapshots);
        if b.wait {
            held.push(d.name.clone());
        }
        data.takes.extend(b.takes);
        data.failed.extend(b.failed);
        data.stale.extend(b.stale);
    }
    data.held = held.len();
    plan.deletes.retain(|d| !held.contains(&d.name));
    Ok(data)
}

/// How a new revision reaches the pods. Paused, none does: every ordinal keeps (or, new,
/// gets) the current revision.
fn update(app: &StatefulApp) -> Update {
    let strategy = &app.spec.update_strategy;
    if app.spec.paused {
        return Update::Rolling {
            partition: u32::MAX,
            max_unavailable: 1,
        };
    }
    match strategy.type_ {
        UpdateStrategyType::OnDelete => Update::OnDelete,
        UpdateStrategyType::RollingUpdate => Update::Rolling {
            partition: strategy
                .rolling_update
                .as_ref()
                .map_or(0, |r| count(r.partition)),
            max_unavailable: max_unavailable(app),
        },
    }
}

/// How many pods a rolling update takes down at once (`OnDelete`: none of its own).
pub fn max_unavailable(app: &StatefulApp) -> u32 {
    let strategy = &app.spec.update_strategy;
    match strategy.type_ {
        UpdateStrategyType::OnDelete => 0,
        UpdateStrategyType::RollingUpdate => {
            let rolling = strategy.rolling_update.clone().unwrap_or_default();
            disruption_budget(&rolling.max_unavailable(), count(app.spec.replicas))
        }
    }
}

/// The ordinals the spec asks for.
pub fn wanted(app: &StatefulApp) -> Range<u32> {
    let start = app.spec.ordinals.as_ref().map_or(0, |o| count(o.start));
    start..start.saturating_add(count(app.spec.replicas))
}

/// The retention policy, defaults filled in.
pub fn retention(app: &StatefulApp) -> drover_crds::stateful::RetentionPolicy {
    app.spec
        .persistent_volume_claim_retention_policy
        .clone()
        .unwrap_or_default()
}

/// A rollout the spec holds on purpose, once it has gone as far as it may: the ordinals
/// below the partition, or the pods `OnDelete` waits to see deleted. No progress
/// deadline runs meanwhile.
fn held(app: &StatefulApp, observed: &observe::Observed, update: Update) -> Option<Hold> {
    let revision = &observed.update.name;
    let outdated: Vec<u32> = observed
        .observed_pods()
        .iter()
        .filter(|p| !p.terminating && &p.revision != revision)
        .map(|p| p.slot)
        .collect();
    if outdated.is_empty() || app.spec.paused {
        return None;
    }
    match update {
        Update::Rolling { partition, .. } if outdated.iter().all(|&o| o < partition) => {
            Some(Hold::Waiting {
                reason: reason::PARTITIONED,
                what: format!(
                    "ordinals below the partition ({partition}) stay on their revision; lower spec.updateStrategy.rollingUpdate.partition to go on"
                ),
            })
        }
        Update::OnDelete => Some(Hold::Waiting {
            reason: reason::ON_DELETE,
            what: format!(
                "updateStrategy OnDelete: {} pods of an old revision are replaced as they are deleted",
                outdated.len()
            ),
        }),
        Update::Rolling { .. } => None,
    }
}
