//! The report step of a StatefulApp's pass: the status the App's computation gives for
//! its pods, with its claims' sizes and the conditions only a StatefulApp has (claims
//! resized, a pod stranded on a lost node); Events; the command settled; the rollback
//! the progress deadline asks for; and when to look again.

use std::time::Duration;

use drover_crds::names::{condition, reason};
use drover_crds::stateful::ClaimsStatus;
use drover_crds::{StatefulApp, StatefulAppStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;

use super::act::Acted;
use super::observe::Observed;
use super::reconcile::{max_unavailable, wanted};
use super::{Context, claims, plan};
use crate::engine::status::{self, EVICTION_RETRY};
use crate::engine::{Error, checks, command, pods};
use crate::rollout::pods::{NodeHealth, add};
use crate::rollout::status::{Observation, Stuck, compute, condition, only_counts_moved};
use crate::rollout::strategy::Decision;
use crate::rollout::workload::Workload;
use crate::scheduler::quantity;

/// Snapshots being taken, or a restore under way, are looked at again this soon (their
/// progress is not watched).
const DATA_RETRY: Duration = Duration::from_secs(2);

pub async fn report(
    ctx: &Context,
    app: &StatefulApp,
    observed: &Observed,
    decision: Decision,
    (plan, claim_plan): (&plan::Plan, &claims::Plan),
    acted: Acted,
) -> Result<Action, Error> {
    let engine = &ctx.engine;
    let uid = observed.uid.as_str();
    let spec = app.rollout_spec();
    let refusal = engine.ledger.refusal(uid);
    let undeclared = checks::undeclared_ports(&app.spec.ports, &observed.update.template);
    let stuck: Vec<Stuck> = observed.owned.iter().flat_map(|p| pods::stuck(p)).collect();
    let previous = app.status.as_ref().map(StatefulAppStatus::rollout);
    let (mut rollout, available_at) = compute(
        &Observation {
            app: &observed.name,
            generation: app.metadata.generation,
            replicas: app.spec.replicas,
            max_unavailable: max_unavailable(app),
            update_revision: &observed.update.name,
            revision_number: observed.update.number,
            min_ready: spec.min_ready,
            progress_deadline: spec.progress_deadline,
            paused: spec.paused,
            canary: None,
            blue_green: None,
            hold: decision.hold.clone(),
            pods: observed.observed_pods(),
            stuck: &stuck,
            create_failure: refusal.as_deref().or(acted.claim_failure.as_deref()),
            conflicts: &acted.conflicts,
            missing_config: &observed.update.missing,
            undeclared_ports: &undeclared,
            revision_failure: observed.update.failure.as_deref(),
            held_config: &observed.update.held,
            now: observed.now,
        },
        previous.as_ref(),
    );
    rollout.last_command = command::record(app, &decision.effect)
        .or_else(|| previous.as_ref().and_then(|s| s.last_command.clone()));
    let old = previous
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let at = (app.metadata.generation, observed.now);
    let claims = claims_status(app, claim_plan);
    rollout.conditions.extend(claims_condition(
        app,
        observed,
        (claim_plan, &claims),
        &acted,
        old,
        at,
    ));
    rollout.conditions.extend(node_lost(ctx, observed, old, at));
    status::transitions(engine, app, previous.as_ref(), &rollout).await;
    if spec.auto_rollback && status::roll_back_if_stalled(engine, app, uid, &rollout).await? {
        return Ok(Action::await_change());
    }
    let new = StatefulAppStatus::new(rollout, claims);
    let old = app.status.as_ref();
    let counts_only = old.is_some_and(|old| {
        old.claims == new.claims && only_counts_moved(&old.rollout(), &new.rollout())
    });
    let counts_wait =
        match status::record(engine, app, (old, &new), counts_only, decision.effect).await? {
            Ok(wait) => wait,
            Err(stale) => return Ok(stale),
        };
    ctx.backoff.reset(uid);
    let evictions = acted.evictions_blocked.then_some(EVICTION_RETRY);
    let data = acted.data_pending.then_some(DATA_RETRY);
    Ok(status::next_pass(
        engine,
        uid,
        observed.now,
        &[
            plan.revisit_at,
            available_at,
            node_lost_at(ctx, observed),
            decision.wake_at,
        ],
        &[observed.update.revisit, evictions, data, counts_wait],
    ))
}
/// Each claim template's claims: how many exist, how many have the size asked for.
fn claims_status(app: &StatefulApp, claim_plan: &claims::Plan) -> Vec<ClaimsStatus> {
    claim_plan
        .sized
        .iter()
        .map(|(name, total, sized)| ClaimsStatus {
            name: name.clone(),
            requested: app
                .spec
                .volume_claim_templates
                .iter()
                .find(|t| &t.metadata.name == name)
                .map(|t| t.spec.resources.requests.storage.clone())
                .unwrap_or_default(),
            claims: i32::try_from(*total).unwrap_or(i32::MAX),
            resized: i32::try_from(*sized).unwrap_or(i32::MAX),
        })
        .collect()
}

/// `ClaimsResized`, while the StatefulApp has claim templates: True once every claim
/// has its template's size; False while some grow (naming them and what the volume
/// reports), or cannot.
fn claims_condition(
    app: &StatefulApp,
    observed: &Observed,
    (claim_plan, claims): (&claims::Plan, &[ClaimsStatus]),
    acted: &Acted,
    old: &[Condition],
    at: (Option<i64>, Timestamp),
) -> Option<Condition> {
    if app.spec.volume_claim_templates.is_empty() {
        return None;
    }
    let sizes: Vec<String> = claims
        .iter()
        .map(|c| {
            format!(
                "{} of {} claims of {} at {}",
                c.resized, c.claims, c.name, c.requested
            )
        })
        .collect();
    let sizes = sizes.join(", ");
    if !acted.resize_refused.is_empty() || !claim_plan.shrinks.is_empty() {
        let mut why = acted.resize_refused.clone();
        why.extend(
            claim_plan.shrinks.iter().map(|c| {
                format!("{c} is larger than its template asks for; a claim cannot shrink")
            }),
        );
        return Some(condition(
            old,
            at,
            condition::CLAIMS_RESIZED,
            false,
            reason::RESIZE_FAILED,
            format!("{sizes}; {}", why.join("; ")),
        ));
    }
    let size_of = |template: &str| {
        app.spec
            .volume_claim_templates
            .iter()
            .find(|t| t.metadata.name == template)
            .and_then(|t| quantity::units(&t.spec.resources.requests.storage))
    };
    let wanted = wanted(app);
    let growing: Vec<String> = observed
        .claims
        .iter()
        .filter(|c| wanted.contains(&c.ordinal) && !c.terminating)
        .filter(|c| {
            size_of(&c.template).is_some_and(|size| c.capacity.is_some_and(|cap| cap < size))
        })
        .map(|c| {
            // What the claim's own conditions say (Resizing, FileSystemResizePending).
            let pending: Vec<String> = observed
                .claim_object(&c.name)
                .and_then(|p| p.status.as_ref()?.conditions.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|k| k.status == "True")
                .map(|k| k.type_)
                .collect();
            if pending.is_empty() {
                c.name.clone()
            } else {
                format!("{} ({})", c.name, pending.join(", "))
            }
        })
        .collect();
    Some(if growing.is_empty() {
        condition(
            old,
            at,
            condition::CLAIMS_RESIZED,
            true,
            reason::CLAIMS_SIZED,
            sizes,
        )
    } else {
        condition(
            old,
            at,
            condition::CLAIMS_RESIZED,
            false,
            reason::RESIZING,
            format!("{sizes}; growing {}", growing.join(", ")),
        )
    })
}

/// `NodeLost`, while a pod is on a node NotReady past the grace period: the ordinal gets
/// no second pod while that one exists (it may still be running, and writing to its
/// volume).
fn node_lost(
    ctx: &Context,
    observed: &Observed,
    old: &[Condition],
    at: (Option<i64>, Timestamp),
) -> Option<Condition> {
    let grace = ctx.config.node_lost_grace;
    let lost: Vec<String> = observed
        .observed_pods()
        .iter()
        .filter_map(|p| {
            let node = p.node.as_deref()?;
            let since = match observed.nodes.get(node) {
                Some(NodeHealth::NotReadySince(since)) => *since,
                Some(NodeHealth::Ready) => return None,
                None => p.created,
            };
            (add(since, grace) <= observed.now)
                .then(|| format!("pod {} is on node {node}, NotReady since {since}", p.name))
        })
        .collect();
    if lost.is_empty() {
        return None;
    }
    Some(condition(
        old,
        at,
        condition::NODE_LOST,
        true,
        reason::NODE_LOST,
        format!(
            "{}: its ordinal gets no second pod while it exists (it may still run and write to its volumes); once the node is known to be down, delete the Node or force-delete the pod (kubectl delete pod <pod> --force) and the ordinal starts again",
            lost.join("; ")
        ),
    ))
}

/// When a pod's node passes the grace period, for the revisit.
fn node_lost_at(ctx: &Context, observed: &Observed) -> Option<Timestamp> {
    observed
        .observed_pods()
        .iter()
        .filter_map(|p| match observed.nodes.get(p.node.as_deref()?) {
            Some(NodeHealth::NotReadySince(since)) => Some(add(*since, ctx.config.node_lost_grace)),
            _ => None,
        })
        .filter(|at| *at > observed.now)
        .min()
}
