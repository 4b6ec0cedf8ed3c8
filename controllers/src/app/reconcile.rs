//! One pass over an App, as five steps: observe (caches) → strategy (pure) → plan (pure)
//! → act (pods, Services, budget) → report (status, Events, when to look again).

use std::sync::Arc;

use drover_crds::App;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::{CONTROLLER, Context, act, observe, plan, report};
use crate::engine::{Error, pass};
use crate::rollout::strategy;

pub async fn reconcile(
    guard: Arc<DeserializeGuard<App>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    // Timed from the start: a pass waiting for the caches counts as under way (and, held
    // long enough, as stuck).
    let _timer = ctx.engine.metrics.reconcile(CONTROLLER);
    ctx.synced().await;
    ctx.queue.done(&ObjectRef::from_obj(guard.as_ref()));
    let (app, uid) = match pass::begin(&ctx.engine, guard.as_ref()).await? {
        Ok(go_on) => go_on,
        Err(done) => return Ok(done),
    };

    let observed = observe::observe(&ctx, app, &uid).await?;
    let decision = strategy::decide(&observed.strategy_input(app));
    let plan = plan::plan(&observed.plan_input(app, &ctx.config, &decision));
    let acted = match ctx.rivals.younger(app) {
        // A StatefulApp of its name came first: nothing is started or changed.
        Some(conflict) => act::Acted {
            conflicts: vec![conflict],
            ..act::Acted::default()
        },
        None => act::act(&ctx, app, &observed, &decision, &plan).await?,
    };
    report::report(&ctx, app, &observed, decision, &plan, acted).await
}
