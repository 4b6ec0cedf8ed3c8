//! One pass over an App, as five steps: observe (caches) → strategy (pure) → plan (pure)
//! → act (pods, Services, budget) → report (status, Events, when to look again).

use std::sync::Arc;

use drover_crds::App;
use drover_crds::names::reason;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use tracing::{debug, warn};

use super::{CONTROLLER, Context, act, observe, plan, report};
use crate::engine::status::STALE_RETRY;
use crate::engine::{Error, undo};
use crate::rollout::strategy;
use crate::rollout::workload::Workload;

pub async fn reconcile(
    guard: Arc<DeserializeGuard<App>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    // Timed from the start: a pass waiting for the caches counts as under way (and, held
    // long enough, as stuck).
    let _timer = ctx.engine.metrics.reconcile(CONTROLLER);
    ctx.synced().await;
    ctx.queue.done(&ObjectRef::from_obj(guard.as_ref()));
    let app = guard.0.as_ref().map_err(|invalid| Error::InvalidSpec {
        kind: App::KIND,
        name: invalid.metadata.name.clone().unwrap_or_default(),
        reason: invalid.error.clone(),
    })?;
    let uid = app.uid().ok_or_else(|| Error::MissingUid {
        kind: App::KIND,
        name: app.name_any(),
    })?;
    if app.metadata.deletion_timestamp.is_some() {
        // Pods and the Service go with the App through their owner references.
        ctx.engine.forget(&uid);
        return Ok(Action::await_change());
    }
    if ctx
        .engine
        .ledger
        .is_stale(&uid, app.resource_version().as_deref())
    {
        // drover's own last write to this App has not reached the cache yet; the watch
        // event of that write wakes the App again.
        debug!(app = %app.name_any(), "waiting for the App cache to show drover's own write");
        return Ok(Action::requeue(STALE_RETRY));
    }
    match undo::apply(&ctx.engine, app, &uid).await {
        Ok(true) => return Ok(Action::await_change()),
        Ok(false) => {}
        // The undo is tried again by the next pass; this one still keeps the pods.
        Err(error) => {
            warn!(app = %app.name_any(), %error, "undo failed");
            ctx.engine
                .publish(
                    app,
                    EventType::Warning,
                    reason::UNDO_FAILED,
                    error.to_string(),
                )
                .await;
        }
    }

    let observed = observe::observe(&ctx, app, &uid).await?;
    let decision = strategy::decide(&observed.strategy_input(app));
    let plan = plan::plan(&observed.plan_input(app, &ctx.config, &decision));
    let acted = act::act(&ctx, app, &observed, &decision, &plan).await?;
    report::report(&ctx, app, &observed, decision, &plan, acted).await
}
