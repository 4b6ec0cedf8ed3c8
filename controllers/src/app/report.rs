//! The report step of an App's pass: its status (conditions, counts, where the strategy
//! stands), written conditional on the version read; Events for what changed; the
//! command settled; the rollback the progress deadline asks for; and when to look again.

use std::time::Duration;

use drover_crds::names::{condition, reason};
use drover_crds::{App, AppStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::debug;

use super::act::Acted;
use super::observe::Observed;
use super::plan::Plan;
use super::{Context, checks};
use crate::engine::{Error, command, pods, undo};
use crate::rollout::status::{self, Observation, Stuck};
use crate::rollout::strategy::Decision;
use crate::rollout::workload::Workload;

/// Without anything happening, look again this often (drift check).
const RESYNC: Duration = Duration::from_secs(300);
/// An App whose cached version predates drover's own last write is looked at again this
/// soon, if the write's watch event has not woken it first.
pub const STALE_RETRY: Duration = Duration::from_secs(1);
/// While only its counts move (pods starting, becoming ready), an App's status is
/// written at most this often; any other change is written at once. Under a burst of pod
/// events this keeps the controller's writes (and the passes their watch events cause)
/// for the pods, not for every intermediate count.
const COUNTS_INTERVAL: Duration = Duration::from_secs(1);
/// An eviction a disruption budget refused is tried again this soon.
const EVICTION_RETRY: Duration = Duration::from_secs(5);

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
    let (mut status, available_at) = status::compute(
        &Observation {
            app: &observed.name,
            generation: app.metadata.generation,
            replicas: app.spec.replicas,
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
    transitions(ctx, app, app.status.as_ref(), &status).await;
    if spec.auto_rollback
        && let Some(stalled) = status
            .conditions
            .iter()
            .find(|c| c.reason == reason::PROGRESS_DEADLINE_EXCEEDED)
        && !status.current_revision.is_empty()
        && status.current_revision != status.update_revision
    {
        let why = format!("automatically, {}", stalled.message);
        undo::to_revision(engine, app, uid, &status.current_revision, &why).await?;
        return Ok(Action::await_change());
    }
    // The version the App is at after this pass's own writes.
    let mut version = app.resource_version();
    let changed = app.status.as_ref() != Some(&status);
    let counts_wait = app
        .status
        .as_ref()
        .filter(|old| changed && status::only_counts_moved(old, &status))
        .and_then(|_| engine.ledger.status_wait(uid, COUNTS_INTERVAL));
    if changed && counts_wait.is_none() {
        match write_status(ctx, app, observed, &status).await? {
            Some(written) => version = Some(written),
            None => return Ok(Action::requeue(STALE_RETRY)),
        }
    }
    command::settle(engine, app, version, decision.effect).await?;

    ctx.backoff.reset(uid);
    let now = observed.now;
    let revisit = [plan.revisit_at, available_at].into_iter().flatten().min();
    let mut wait = revisit.map_or(RESYNC, |at| until(now, at).min(RESYNC));
    if let Some(backoff) = engine.ledger.create_backoff(uid) {
        wait = wait.min(backoff);
    }
    if let Some(expiry) = engine.ledger.next_expiry(uid) {
        wait = wait.min(expiry + Duration::from_secs(1));
    }
    if let Some(revisit) = observed.update.revisit {
        wait = wait.min(revisit);
    }
    if acted.evictions_blocked {
        wait = wait.min(EVICTION_RETRY);
    }
    if let Some(at) = decision.wake_at {
        wait = wait.min(until(now, at));
    }
    if let Some(counts) = counts_wait {
        wait = wait.min(counts);
    }
    Ok(Action::requeue(wait))
}

/// Writes the status, conditional on the version read: a status computed from an App
/// that changed meanwhile (or from a leader's outdated view) is not written. Returns
/// the App's version after the write, or `None` when it was not written.
async fn write_status(
    ctx: &Context,
    app: &App,
    observed: &Observed,
    status: &AppStatus,
) -> Result<Option<String>, Error> {
    let engine = &ctx.engine;
    let api: Api<App> = Api::namespaced(engine.client.clone(), &observed.namespace);
    let patch = json!({
        "apiVersion": App::api_version(&()),
        "kind": App::kind(&()),
        "metadata": {"resourceVersion": app.resource_version()},
        "status": status,
    });
    match api
        .patch_status(
            &observed.name,
            &PatchParams::apply(engine.field_manager).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(written) => {
            engine.ledger.wrote(
                &observed.uid,
                app.resource_version(),
                written.resource_version(),
            );
            engine.ledger.status_written(&observed.uid);
            engine.wrote("patch_status", App::PLURAL);
            Ok(Some(written.resource_version().unwrap_or_default()))
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            debug!(app = %observed.name, "the App changed since it was read; its status waits for the next pass");
            Ok(None)
        }
        Err(source) => Err(Error::StatusPatch {
            kind: App::KIND,
            name: observed.name.clone(),
            source,
        }),
    }
}

fn until(now: Timestamp, at: Timestamp) -> Duration {
    // A second of slack so the state has changed when the App is looked at again.
    Duration::try_from(at.duration_since(now)).unwrap_or_default() + Duration::from_secs(1)
}

/// Events for conditions that changed: the App became (un)available, stalled, or started
/// crash-looping.
async fn transitions(ctx: &Context, app: &App, old: Option<&AppStatus>, new: &AppStatus) {
    let engine = &ctx.engine;
    let get = |s: Option<&AppStatus>, t: &str| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == t))
            .map(|c| (c.status.clone(), c.message.clone()))
    };
    let was = get(old, condition::AVAILABLE).map(|c| c.0);
    if let Some((status, message)) = get(Some(new), condition::AVAILABLE)
        && was.as_deref() != Some(status.as_str())
        && (was.is_some() || status == "True")
    {
        let (kind, reason) = if status == "True" {
            (EventType::Normal, reason::AVAILABLE)
        } else {
            (EventType::Warning, reason::UNAVAILABLE)
        };
        engine.publish(app, kind, reason, message).await;
    }
    if let Some((status, message)) = get(Some(new), condition::PROGRESSING)
        && status == "False"
        && get(old, condition::PROGRESSING).is_none_or(|c| c.0 == "True")
    {
        engine
            .publish(
                app,
                EventType::Warning,
                reason::PROGRESS_DEADLINE_EXCEEDED,
                message,
            )
            .await;
    }
    for (type_, reason) in [
        (condition::NAME_CONFLICT, reason::NAME_TAKEN),
        (condition::CONFIG_MISSING, reason::CONFIG_NOT_FOUND),
        (condition::PORT_UNDECLARED, reason::TARGET_PORT_NOT_FOUND),
        (condition::REVISION_FAILURE, reason::REVISION_NOT_STORED),
    ] {
        if let Some((_, message)) = get(Some(new), type_)
            && get(old, type_).is_none_or(|c| c.1 != message)
        {
            engine
                .publish(app, EventType::Warning, reason, message)
                .await;
        }
    }
    let was_healthy = get(old, condition::HEALTHY).is_none_or(|c| c.0 == "True");
    if let Some(healthy) = new
        .conditions
        .iter()
        .find(|c| c.type_ == condition::HEALTHY)
        && healthy.status == "False"
        && was_healthy
    {
        let (reason, message) = (healthy.reason.as_str(), healthy.message.clone());
        engine
            .publish(app, EventType::Warning, reason, message)
            .await;
    }
}
