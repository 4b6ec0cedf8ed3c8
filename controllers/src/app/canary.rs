//! The App's canary: where its steps stand (kept in `status.canary`), the commands users
//! give with `kubectl annotate` (`drover.dev/promote=step|full`, `drover.dev/abort`), the
//! stable revision whose pods make up the rest, and the split to move to now.

use std::time::Duration;

use drover_crds::names::{annotation, reason};
use drover_crds::{App, CanaryStatus, StrategyType};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;

use super::error::Error;
use super::plan::{PodState, available_at, is_active};
use super::revisions::{self, UpdateRevision};
use super::status::CanaryHold;
use super::{CONTROLLER, Context};
use crate::rollout::canary::{self, Command, Progress, Step};
use crate::rollout::{Bounds, Method};

/// A revision's name and the template its pods are built from.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub template: PodTemplateSpec,
}

/// The canary's decision for this pass.
#[derive(Debug)]
pub struct Canary {
    pub status: CanaryStatus,
    pub hold: CanaryHold,
    pub method: Method,
    /// The stable revision, while pods of it are wanted beside the new one.
    pub stable: Option<Template>,
    /// The annotation acted on, to remove once the status holds its effect.
    pub command: Option<(Command, &'static str)>,
    pub wake_at: Option<Timestamp>,
}

/// A command found in the App's annotations.
enum Found {
    /// Not acted on yet (or unreadable, reported by [`settle_command`]).
    New(Result<(Command, &'static str), String>),
    /// Acted on; its removal may not have reached the store (or failed).
    Acted(&'static str),
}

fn find_command(ctx: &Context, app: &App) -> Option<Found> {
    let annotations = app.annotations();
    let uid = app.uid().unwrap_or_default();
    let mut acted = lock(&ctx.acted);
    acted.retain(|(u, key)| *u != uid || annotations.contains_key(*key));
    if let Some(key) = [annotation::ABORT, annotation::PROMOTE]
        .into_iter()
        .find(|key| acted.contains(&(uid.clone(), *key)))
    {
        return Some(Found::Acted(key));
    }
    if annotations.contains_key(annotation::ABORT) {
        return Some(Found::New(Ok((Command::Abort, annotation::ABORT))));
    }
    let value = annotations.get(annotation::PROMOTE)?;
    Some(Found::New(match value.trim() {
        "" | "step" => Ok((Command::Promote, annotation::PROMOTE)),
        "full" => Ok((Command::PromoteFull, annotation::PROMOTE)),
        other => Err(format!(
            "annotation {}={other:?}: set it to `step` (past the current step) or `full` (every pod)",
            annotation::PROMOTE
        )),
    }))
}

/// What the canary asks for now; `None` when the App's strategy is not Canary.
pub fn decide(
    ctx: &Context,
    app: &App,
    uid: &str,
    update: &UpdateRevision,
    pods: &[PodState],
    min_ready: Duration,
    now: Timestamp,
) -> Option<Canary> {
    if app.spec.strategy.type_ != StrategyType::Canary {
        return None;
    }
    let spec = app.spec.strategy.canary.as_ref()?;
    let steps: Vec<Step> = spec.steps.iter().map(Step::from_spec).collect();
    let replicas = u32::try_from(app.spec.replicas).unwrap_or(0);
    let bounds = Bounds::resolve(
        &app.spec.strategy.rolling_update.clone().unwrap_or_default(),
        replicas,
    );
    let command = match find_command(ctx, app) {
        Some(Found::New(Ok(command))) => Some(command),
        _ => None,
    };
    let status = app.status.as_ref();
    let done = |command| Canary {
        status: CanaryStatus {
            revision: update.name.clone(),
            step: i32::try_from(steps.len()).unwrap_or(i32::MAX),
            step_started_at: Some(Time(now)),
            weight: 100,
            aborted: false,
        },
        hold: CanaryHold::Moving,
        method: Method::Rolling(bounds),
        stable: None,
        command,
        wake_at: None,
    };
    // Steps apply when moving from a stable revision the pods ran to a new one.
    let stable_name = status
        .map(|s| s.current_revision.clone())
        .filter(|c| !c.is_empty() && *c != update.name);
    let Some(stable_name) = stable_name else {
        return Some(done(None));
    };
    let namespace = app.namespace().unwrap_or_default();
    let stable = revisions::owned(ctx, &namespace, uid)
        .into_iter()
        .find(|r| r.name_any() == stable_name)
        .and_then(|r| revisions::stored_parts(&r))
        .map(|(template, pinned)| Template {
            name: stable_name.clone(),
            template: revisions::pinned_template(&template, &pinned),
        });
    let Some(stable) = stable else {
        // Nothing to fall back on: move like a rolling update.
        return Some(done(None));
    };

    let progress = match status.and_then(|s| s.canary.as_ref()) {
        Some(c) if c.revision == update.name => Progress {
            step: usize::try_from(c.step).unwrap_or(0),
            step_started: c.step_started_at.as_ref().map_or(now, |t| t.0),
            aborted: c.aborted,
        },
        _ => Progress {
            step: 0,
            step_started: now,
            aborted: false,
        },
    };
    let reached = |weight: u32| {
        let target = canary::updated_for(weight, replicas) as usize;
        let new: Vec<&PodState> = pods
            .iter()
            .filter(|p| is_active(p) && p.revision == update.name)
            .collect();
        let available = new
            .iter()
            .filter(|p| available_at(p, min_ready, now).is_some_and(|at| at <= now))
            .count();
        new.len() == target && available == target
    };
    let decision = canary::advance(&steps, progress, command.map(|c| c.0), reached, now);
    let hold = if decision.awaiting_promotion {
        CanaryHold::AwaitingPromotion
    } else if decision.wake_at.is_some() {
        CanaryHold::Pausing
    } else {
        CanaryHold::Moving
    };
    Some(Canary {
        status: CanaryStatus {
            revision: update.name.clone(),
            step: i32::try_from(decision.progress.step).unwrap_or(i32::MAX),
            step_started_at: Some(Time(decision.progress.step_started)),
            weight: i32::try_from(decision.weight).unwrap_or(100),
            aborted: decision.progress.aborted,
        },
        hold,
        method: Method::Split {
            bounds,
            updated: canary::updated_for(decision.weight, replicas),
        },
        stable: Some(stable),
        command,
        wake_at: decision.wake_at,
    })
}

/// Acts on the canary annotations once the status holds their effect: an Event says what
/// happened (or why nothing could), and the annotation goes.
pub async fn settle_command(
    ctx: &Context,
    app: &App,
    canary: Option<&Canary>,
) -> Result<(), Error> {
    let key = match find_command(ctx, app) {
        None => return Ok(()),
        Some(Found::Acted(key)) => key,
        Some(Found::New(parsed)) => {
            let (key, kind, reason, note) = describe(parsed, canary);
            ctx.publish(app, kind, reason, note).await;
            lock(&ctx.acted).insert((app.uid().unwrap_or_default(), key));
            key
        }
    };
    let patch = json!({"metadata": {"annotations": {key: null}}});
    let api: Api<App> = Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    api.patch(
        &app.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|source| Error::Annotation {
        name: app.name_any(),
        key,
        source,
    })?;
    ctx.metrics.write(CONTROLLER, "patch", "apps");
    Ok(())
}

/// The Event for a command: (annotation, type, reason, note).
fn describe(
    parsed: Result<(Command, &'static str), String>,
    canary: Option<&Canary>,
) -> (&'static str, EventType, &'static str, String) {
    let (command, key) = match parsed {
        Ok(found) => found,
        Err(message) => {
            return (
                annotation::PROMOTE,
                EventType::Warning,
                reason::PROMOTED,
                message,
            );
        }
    };
    let Some(c) = canary.filter(|c| c.command.is_some()) else {
        return (
            key,
            EventType::Warning,
            reason::PROMOTED,
            format!("annotation {key}: no canary rollout is in progress; nothing to do"),
        );
    };
    match command {
        Command::Abort => (
            key,
            EventType::Warning,
            reason::ABORTED,
            format!(
                "Canary aborted: every pod goes back to revision {}",
                c.stable.as_ref().map_or("", |s| s.name.as_str())
            ),
        ),
        Command::Promote | Command::PromoteFull => (
            key,
            EventType::Normal,
            reason::PROMOTED,
            format!(
                "Canary promoted to {}% of the pods (step {})",
                c.status.weight,
                c.status.step + 1
            ),
        ),
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
