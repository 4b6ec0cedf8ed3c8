//! The report step of an App's pass: its status (conditions, counts, where the strategy
//! stands), written conditional on the version read; Events for what changed; the
//! command settled; the rollback the progress deadline asks for; and when to look again.

use drover_crds::App;
use kube::runtime::controller::Action;

use super::Context;
use super::act::Acted;
use super::observe::Observed;
use super::plan::Plan;
use crate::engine::status::{self, EVICTION_RETRY};
use crate::engine::{Error, checks, command, pods};
use crate::rollout::status::{Observation, Stuck, compute, only_counts_moved};
use crate::rollout::strategy::Decision;
use crate::rollout::workload::Workload;

pub async fn report(
    ctx: &Context,
    app: &App,
    observed: &Observed,
    decision: Decision,
    plan: &Plan,
    acted: Acted,
) -> Result<Action, Error> {
    let engine = &ctx.engine;
    let uid = observed.uid.as_str();
    let spec = app.rollout_spec();
    let refusal = engine.ledger.refusal(uid);
    let undeclared = checks::undeclared_ports(&app.spec.ports, &observed.update.template);
    let stuck: Vec<Stuck> = observed.owned.iter().flat_map(|p| pods::stuck(p)).collect();
    let (mut status, available_at) = compute(
        &Observation {
            app: &observed.name,
            generation: app.metadata.generation,
            replicas: app.spec.replicas,
            max_unavailable: decision.method.max_unavailable(),
            update_revision: &observed.update.name,
            revision_number: observed.update.number,
            min_ready: spec.min_ready,
            progress_deadline: spec.progress_deadline,
            paused: spec.paused,
            canary: decision.canary.clone(),
            blue_green: decision.blue_green.clone(),
            hold: decision.hold.clone(),
            pods: observed.observed_pods(),
            stuck: &stuck,
            create_failure: refusal.as_deref(),
            conflicts: &acted.conflicts,
            missing_config: &observed.update.missing,
            undeclared_ports: &undeclared,
            revision_failure: observed.update.failure.as_deref(),
            held_config: &observed.update.held,
            now: observed.now,
        },
        app.status.as_ref(),
    );
    // The command settled this pass is recorded in the same write as its effect.
    status.last_command = command::record(app, &decision.effect)
        .or_else(|| app.status.as_ref().and_then(|s| s.last_command.clone()));
    status::transitions(engine, app, app.status.as_ref(), &status).await;
    if spec.auto_rollback && status::roll_back_if_stalled(engine, app, uid, &status).await? {
        return Ok(Action::await_change());
    }
    let old = app.status.as_ref();
    let counts_only = old.is_some_and(|old| only_counts_moved(old, &status));
    let counts_wait =
        match status::record(engine, app, (old, &status), counts_only, decision.effect).await? {
            Ok(wait) => wait,
            Err(stale) => return Ok(stale),
        };
    ctx.backoff.reset(uid);
    let evictions = acted.evictions_blocked.then_some(EVICTION_RETRY);
    Ok(status::next_pass(
        engine,
        uid,
        observed.now,
        &[plan.revisit_at, available_at, decision.wake_at],
        &[observed.update.revisit, evictions, counts_wait],
    ))
}
