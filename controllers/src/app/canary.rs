//! The App's canary: where its steps stand (kept in `status.canary`), the promote and
//! abort commands (see [`super::command`]), the stable revision whose pods make up the
//! rest, and the split to move to now.

use std::time::Duration;

use drover_crds::names::reason;
use drover_crds::{App, CanaryStatus, StrategyType};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use super::Context;
use super::command::{self, Effect};
use super::plan::{PodState, available_at, is_active};
use super::revisions::{self, Template, UpdateRevision};
use super::status::Hold;
use crate::rollout::canary::{self, Command, Progress, Step};
use crate::rollout::{self, Method};

/// The canary's decision for this pass.
#[derive(Debug)]
pub struct Canary {
    pub status: CanaryStatus,
    pub hold: Option<Hold>,
    pub method: Method,
    /// The stable revision, while pods of it are wanted beside the new one.
    pub stable: Option<Template>,
    /// The annotation acted on, to remove once the status holds its effect.
    pub command: Option<(Command, &'static str)>,
    pub wake_at: Option<Timestamp>,
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
    let bounds = rollout::bounds(&app.spec.strategy, replicas);
    let command = command::pending(ctx, app);
    let status = app.status.as_ref();
    let done = |command| Canary {
        status: CanaryStatus {
            revision: update.name.clone(),
            step: i32::try_from(steps.len()).unwrap_or(i32::MAX),
            step_started_at: Some(Time(now)),
            weight: 100,
            aborted: false,
        },
        hold: None,
        method: Method::Rolling(bounds),
        stable: None,
        command,
        wake_at: None,
    };
    // Steps apply when moving from a stable revision the pods ran to a new one; with
    // nothing to fall back on, the canary moves like a rolling update.
    let Some(stable) = revisions::stable(ctx, app, uid, update) else {
        return Some(done(None));
    };
    let stable_name = stable.name.clone();

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
    let at = format!(
        "canary at {}%, step {}",
        decision.weight,
        decision.progress.step + 1
    );
    let hold = if decision.progress.aborted {
        Some(Hold::Aborted {
            what: format!(
                "canary aborted: every pod back on revision {stable_name}; drover.dev/promote=step resumes"
            ),
        })
    } else if decision.awaiting_promotion {
        Some(Hold::Waiting {
            reason: reason::CANARY,
            what: format!("{at} waits for drover.dev/promote"),
        })
    } else {
        decision.wake_at.map(|_| Hold::Waiting {
            reason: reason::CANARY,
            what: format!("{at} pauses"),
        })
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

/// What a command did to the canary, for its Event.
pub fn effect(canary: &Canary) -> Effect {
    let Some((command, _)) = canary.command else {
        return Effect::Nothing;
    };
    match command {
        Command::Abort => Effect::Acted(
            EventType::Warning,
            reason::ABORTED,
            format!(
                "Canary aborted: every pod goes back to revision {}",
                canary.stable.as_ref().map_or("", |s| s.name.as_str())
            ),
        ),
        Command::Promote | Command::PromoteFull => Effect::Acted(
            EventType::Normal,
            reason::PROMOTED,
            format!(
                "Canary promoted to {}% of the pods (step {})",
                canary.status.weight,
                canary.status.step + 1
            ),
        ),
    }
}
