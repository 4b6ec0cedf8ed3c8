//! The App's blue-green rollout: the new revision (the preview) starts in full beside the
//! active one, which the App's Service keeps selecting; on `drover.dev/promote` (or
//! `autoPromotionSeconds` after every preview pod is available) the Service switches to
//! it at once, and the old pods go `scaleDownDelaySeconds` later. `drover.dev/abort`
//! removes the preview. Kept in `status.blueGreen`.

use std::time::Duration;

use drover_crds::names::reason;
use drover_crds::{App, BlueGreen, BlueGreenStatus, StrategyType};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::Context;
use super::command::{self, Effect};
use super::plan::{PodState, add, available_at, is_active};
use super::revisions::{self, Template, UpdateRevision};
use super::status::Hold;
use crate::rollout::Method;
use crate::rollout::canary::Command;

/// The blue-green decision for this pass.
#[derive(Debug)]
pub struct Decision {
    pub status: BlueGreenStatus,
    pub method: Method,
    /// The active revision, while its pods must be kept at full strength.
    pub stable: Option<Template>,
    pub hold: Option<Hold>,
    pub effect: Effect,
    pub wake_at: Option<Timestamp>,
}

fn secs(s: i32) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

/// What the blue-green strategy asks for now; `None` for another strategy.
pub fn decide(
    ctx: &Context,
    app: &App,
    uid: &str,
    update: &UpdateRevision,
    pods: &[PodState],
    min_ready: Duration,
    now: Timestamp,
) -> Option<Decision> {
    if app.spec.strategy.type_ != StrategyType::BlueGreen {
        return None;
    }
    let spec: BlueGreen = app.spec.strategy.blue_green.clone().unwrap_or_default();
    let replicas = u32::try_from(app.spec.replicas).unwrap_or(0);
    let previous = app.status.as_ref().and_then(|s| s.blue_green.clone());
    let namespace = app.namespace().unwrap_or_default();
    let stored = revisions::owned(ctx, &namespace, uid);
    let exists = |name: &str| stored.iter().any(|r| r.name_any() == name);
    // The active revision: as recorded, else what every pod last ran, else (first
    // rollout) the update revision itself.
    let active = previous
        .as_ref()
        .map(|p| p.active.clone())
        .filter(|a| !a.is_empty() && exists(a))
        .or_else(|| {
            app.status
                .as_ref()
                .map(|s| s.current_revision.clone())
                .filter(|c| !c.is_empty() && exists(c))
        })
        .unwrap_or_else(|| update.name.clone());
    let old = pods
        .iter()
        .filter(|p| is_active(p) && p.revision != update.name)
        .count();
    let old = u32::try_from(old).unwrap_or(u32::MAX);
    let pending = command::pending(ctx, app);

    if active == update.name {
        // Switched (or never previewed): the old pods stay for the delay, then go.
        let switched_at = previous.as_ref().and_then(|p| p.switched_at.clone());
        let until = switched_at
            .as_ref()
            .map(|t| add(t.0, secs(spec.scale_down_delay_seconds)));
        let keep = until.is_some_and(|u| u > now);
        return Some(Decision {
            status: BlueGreenStatus {
                active,
                preview: String::new(),
                preview_ready_at: None,
                switched_at,
                aborted: false,
            },
            method: Method::Parallel {
                updated: replicas,
                stable: if keep { old.min(replicas) } else { 0 },
            },
            stable: None,
            hold: None,
            effect: Effect::Nothing,
            wake_at: until.filter(|_| keep),
        });
    }

    let same_preview = previous.as_ref().filter(|p| p.preview == update.name);
    let mut aborted = same_preview.is_some_and(|p| p.aborted);
    let new = pods
        .iter()
        .filter(|p| is_active(p) && p.revision == update.name)
        .filter(|p| available_at(p, min_ready, now).is_some_and(|at| at <= now))
        .count();
    let ready = !aborted && new >= replicas as usize;
    let ready_at = same_preview
        .and_then(|p| p.preview_ready_at.as_ref().map(|t| t.0))
        .filter(|_| ready)
        .or(ready.then_some(now));
    let auto_at = ready_at
        .zip(spec.auto_promotion_seconds)
        .map(|(at, s)| add(at, secs(s)));
    let mut effect = Effect::Nothing;
    let mut switch = auto_at.is_some_and(|at| at <= now);
    match pending.map(|c| c.0) {
        Some(Command::Abort) => {
            aborted = true;
            switch = false;
            effect = Effect::Acted(
                EventType::Warning,
                reason::ABORTED,
                format!("Preview of revision {} aborted: its pods go", update.name),
            );
        }
        Some(Command::Promote | Command::PromoteFull) if aborted => {
            aborted = false;
            effect = Effect::Acted(
                EventType::Normal,
                reason::PROMOTED,
                format!("Preview of revision {} resumed", update.name),
            );
        }
        Some(Command::Promote | Command::PromoteFull) if ready => switch = true,
        // Promotion waits until every preview pod is available.
        Some(Command::Promote | Command::PromoteFull) => effect = Effect::Deferred,
        None => {}
    }
    if switch {
        if matches!(effect, Effect::Nothing) && pending.is_some() {
            effect = Effect::Acted(
                EventType::Normal,
                reason::PROMOTED,
                format!("Switched the Service to revision {}", update.name),
            );
        }
        return Some(Decision {
            status: BlueGreenStatus {
                active: update.name.clone(),
                preview: String::new(),
                preview_ready_at: None,
                switched_at: Some(Time(now)),
                aborted: false,
            },
            method: Method::Parallel {
                updated: replicas,
                stable: old.min(replicas),
            },
            stable: None,
            hold: None,
            effect,
            wake_at: Some(add(now, secs(spec.scale_down_delay_seconds))),
        });
    }
    let stable = revisions::template(&stored, &active);
    let hold = if aborted {
        Some(Hold::Aborted {
            what: format!(
                "preview aborted: the Service stays on revision {active}; drover.dev/promote resumes the preview"
            ),
        })
    } else if ready {
        Some(Hold::Waiting {
            reason: reason::BLUE_GREEN,
            what: match auto_at {
                Some(at) => format!("preview ready; the Service switches to it at {at}"),
                None => "preview ready; the Service switches to it on drover.dev/promote".into(),
            },
        })
    } else {
        None
    };
    Some(Decision {
        status: BlueGreenStatus {
            active,
            preview: update.name.clone(),
            preview_ready_at: ready_at.map(Time),
            switched_at: previous.and_then(|p| p.switched_at),
            aborted,
        },
        method: Method::Parallel {
            updated: if aborted { 0 } else { replicas },
            stable: replicas,
        },
        stable,
        hold,
        effect,
        wake_at: auto_at.filter(|at| *at > now),
    })
}
