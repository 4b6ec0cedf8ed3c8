//! A canary rollout's steps: which share of the pods the new revision should have now,
//! and when the steps move on — a weight once the pods are there, a timed pause when its
//! time is up, an open pause when promoted; and the strategy's decision built on them
//! (where the steps stand is kept in `status.canary`). Pure: time and the pods' state
//! are inputs.

use std::time::Duration;

use drover_crds::names::reason;
use drover_crds::{CanaryStatus, CanaryStep};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use super::Method;
use super::command::{Command, Effect};
use super::pods::{available_at, is_active};
use super::strategy::{self, Hold, Input, Routing, held_if_paused};

/// A step, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Percent of replicas on the new revision.
    Weight(u32),
    /// Wait this long, or until promoted.
    Pause(Option<Duration>),
}

impl Step {
    pub fn from_spec(step: &CanaryStep) -> Self {
        match (step.set_weight, &step.pause) {
            (Some(w), _) => Step::Weight(u32::try_from(w).unwrap_or(0).min(100)),
            (None, pause) => Step::Pause(
                pause
                    .as_ref()
                    .and_then(|p| p.duration_seconds)
                    .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0))),
            ),
        }
    }
}

/// Where the steps stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub step: usize,
    pub step_started: Timestamp,
    pub aborted: bool,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub progress: Progress,
    /// Percent of replicas the new revision should have.
    pub weight: u32,
    /// Waiting at an open pause for a promotion.
    pub awaiting_promotion: bool,
    /// A timed pause ends then.
    pub wake_at: Option<Timestamp>,
}

/// Pods of the new revision for a weight: the share of replicas, rounded up.
pub fn updated_for(weight: u32, replicas: u32) -> u32 {
    let share = u64::from(replicas) * u64::from(weight.min(100));
    u32::try_from(share.div_ceil(100)).unwrap_or(replicas)
}

/// The weight the steps before `index` leave the new revision at.
fn weight_before(steps: &[Step], index: usize) -> u32 {
    steps[..index.min(steps.len())]
        .iter()
        .rev()
        .find_map(|s| match s {
            Step::Weight(w) => Some(*w),
            Step::Pause(_) => None,
        })
        .unwrap_or(0)
}

/// Applies `command`, then moves through every step that is done. `reached(weight)`
/// tells whether the pods stand at that weight (the right number of new pods, all
/// available).
pub fn advance(
    steps: &[Step],
    mut progress: Progress,
    command: Option<Command>,
    reached: impl Fn(u32) -> bool,
    now: Timestamp,
) -> Decision {
    match command {
        Some(Command::Abort) => progress.aborted = true,
        Some(Command::PromoteFull) => {
            progress.aborted = false;
            progress.step = steps.len();
            progress.step_started = now;
        }
        Some(Command::Promote) if progress.aborted => progress.aborted = false,
        Some(Command::Promote) => {
            progress.step = (progress.step + 1).min(steps.len());
            progress.step_started = now;
        }
        None => {}
    }
    let mut decision = Decision {
        progress,
        weight: 0,
        awaiting_promotion: false,
        wake_at: None,
    };
    if progress.aborted {
        return decision;
    }
    loop {
        let p = &mut decision.progress;
        let Some(step) = steps.get(p.step) else {
            decision.weight = 100;
            return decision;
        };
        decision.weight = weight_before(steps, p.step);
        let done = match *step {
            Step::Weight(w) => {
                decision.weight = w;
                reached(w)
            }
            Step::Pause(Some(d)) => {
                let end = p.step_started + d;
                decision.wake_at = Some(end).filter(|end| *end > now);
                end <= now
            }
            Step::Pause(None) => {
                decision.awaiting_promotion = true;
                false
            }
        };
        if !done {
            return decision;
        }
        decision.wake_at = None;
        p.step += 1;
        p.step_started = now;
    }
}

/// The canary's decision: the split to move to now, with `stable` (the revision a
/// rollout moves away from) making up the rest. Without a stable revision there is
/// nothing to fall back on and the canary moves like a rolling update.
pub fn decide(
    input: &Input<'_>,
    spec: &drover_crds::Canary,
    stable: Option<String>,
) -> strategy::Decision {
    let steps: Vec<Step> = spec.steps.iter().map(Step::from_spec).collect();
    let replicas = input.spec.replicas;
    let bounds = input.bounds();
    let (update, now) = (input.update, input.now);
    let routing = Routing {
        canary_service: spec.service,
        ..Routing::default()
    };
    let Some(stable) = stable else {
        return strategy::Decision {
            method: held_if_paused(input, Method::Rolling(bounds)),
            stable: None,
            hold: None,
            canary: Some(CanaryStatus {
                revision: update.to_string(),
                step: i32::try_from(steps.len()).unwrap_or(i32::MAX),
                step_started_at: Some(Time(now)),
                weight: 100,
                aborted: false,
            }),
            blue_green: None,
            effect: Effect::Nothing,
            routing,
            wake_at: None,
        };
    };
    let progress = match input.recorded.canary {
        Some(c) if c.revision == update => Progress {
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
    let min_ready = input.spec.min_ready;
    let reached = |weight: u32| {
        let target = updated_for(weight, replicas) as usize;
        let new: Vec<_> = input
            .pods
            .iter()
            .filter(|p| is_active(p) && p.revision == update)
            .collect();
        let available = new
            .iter()
            .filter(|p| available_at(p, min_ready, now).is_some_and(|at| at <= now))
            .count();
        new.len() == target && available == target
    };
    let decision = advance(&steps, progress, input.command, reached, now);
    let at = format!(
        "canary at {}%, step {}",
        decision.weight,
        decision.progress.step + 1
    );
    let hold = if decision.progress.aborted {
        Some(Hold::Aborted {
            what: format!(
                "canary aborted: every pod back on revision {stable}; drover.dev/promote=step resumes"
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
    let status = CanaryStatus {
        revision: update.to_string(),
        step: i32::try_from(decision.progress.step).unwrap_or(i32::MAX),
        step_started_at: Some(Time(decision.progress.step_started)),
        weight: i32::try_from(decision.weight).unwrap_or(100),
        aborted: decision.progress.aborted,
    };
    let effect = match input.command {
        None => Effect::Nothing,
        Some(Command::Abort) => Effect::Acted(
            EventType::Warning,
            reason::ABORTED,
            format!("Canary aborted: every pod goes back to revision {stable}"),
        ),
        Some(Command::Promote | Command::PromoteFull) => Effect::Acted(
            EventType::Normal,
            reason::PROMOTED,
            format!(
                "Canary promoted to {}% of the pods (step {})",
                status.weight,
                status.step + 1
            ),
        ),
    };
    strategy::Decision {
        method: held_if_paused(
            input,
            Method::Split {
                bounds,
                updated: updated_for(decision.weight, replicas),
            },
        ),
        stable: Some(stable),
        hold,
        canary: Some(status),
        blue_green: None,
        effect,
        routing,
        wake_at: decision.wake_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    const STEPS: [Step; 4] = [
        Step::Weight(20),
        Step::Pause(None),
        Step::Weight(50),
        Step::Pause(Some(Duration::from_secs(30))),
    ];

    fn start() -> Progress {
        Progress {
            step: 0,
            step_started: t(0),
            aborted: false,
        }
    }

    #[test]
    fn weights_round_up() {
        assert_eq!(updated_for(20, 10), 2);
        assert_eq!(updated_for(25, 10), 3);
        assert_eq!(updated_for(0, 10), 0);
        assert_eq!(updated_for(100, 7), 7);
        assert_eq!(updated_for(1, 0), 0);
    }

    #[test]
    fn walks_the_steps() {
        // The first weight holds until the pods are there.
        let d = advance(&STEPS, start(), None, |_| false, t(1));
        assert_eq!((d.weight, d.progress.step), (20, 0));
        // Then the open pause waits for a promotion, at the same weight.
        let d = advance(&STEPS, start(), None, |w| w == 20, t(2));
        assert_eq!(
            (d.weight, d.progress.step, d.awaiting_promotion),
            (20, 1, true)
        );
        assert_eq!(d.progress.step_started, t(2));
        let d = advance(
            &STEPS,
            d.progress,
            Some(Command::Promote),
            |w| w == 20,
            t(5),
        );
        assert_eq!(
            (d.weight, d.progress.step, d.awaiting_promotion),
            (50, 2, false)
        );
        // At 50%, the timed pause runs 30 s from when it began.
        let d = advance(&STEPS, d.progress, None, |w| w <= 50, t(6));
        assert_eq!((d.weight, d.progress.step), (50, 3));
        assert_eq!(d.wake_at, Some(t(36)));
        let d = advance(&STEPS, d.progress, None, |w| w <= 50, t(36));
        assert_eq!((d.weight, d.progress.step), (100, 4));
        assert_eq!(d.wake_at, None);
    }

    #[test]
    fn promote_full_skips_every_step_and_abort_goes_back() {
        let d = advance(&STEPS, start(), Some(Command::PromoteFull), |_| false, t(1));
        assert_eq!((d.weight, d.progress.step), (100, 4));
        let d = advance(&STEPS, start(), Some(Command::Abort), |_| true, t(1));
        assert_eq!((d.weight, d.progress.aborted), (0, true));
        // It stays aborted...
        let d = advance(&STEPS, d.progress, None, |_| true, t(2));
        assert_eq!(d.weight, 0);
        // ...until promoted, which resumes where it stood.
        let d = advance(&STEPS, d.progress, Some(Command::Promote), |_| false, t(3));
        assert_eq!(
            (d.weight, d.progress.step, d.progress.aborted),
            (20, 0, false)
        );
    }

    #[test]
    fn a_pause_first_holds_the_new_revision_at_zero() {
        let steps = [Step::Pause(None), Step::Weight(100)];
        let d = advance(&steps, start(), None, |_| true, t(1));
        assert_eq!((d.weight, d.awaiting_promotion), (0, true));
    }
}

#[cfg(test)]
mod decision_tests {
    use drover_crds::names::reason;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use serde_json::json;

    use super::super::pods::PodState;
    use super::super::strategy::fixture::*;
    use super::super::strategy::{Input, decide};
    use super::*;
    use crate::rollout::workload::Recorded;

    fn canary() -> drover_crds::Strategy {
        strategy(
            json!({"type": "Canary", "canary": {"service": true, "steps": [
                {"setWeight": 20}, {"pause": {}}, {"setWeight": 60},
            ]}}),
        )
    }

    fn input<'a>(
        template: &'a PodTemplateSpec,
        strategy: &'a drover_crds::Strategy,
        stored: &'a [String],
        pods: &'a [PodState],
        status: Option<&'a CanaryStatus>,
    ) -> Input<'a> {
        Input {
            spec: spec(template, strategy, 10),
            recorded: Recorded {
                current_revision: "web-a",
                update_revision: "web-b",
                canary: status,
                blue_green: None,
                last_command: None,
            },
            update: "web-b",
            stored,
            pods,
            command: None,
            now: t(50),
        }
    }

    #[test]
    fn the_first_step_splits_off_its_share() {
        let (template, strategy) = (PodTemplateSpec::default(), canary());
        let stored = ["web-a".to_string(), "web-b".to_string()];
        let pods = pods("web-a", 0, 10);
        let d = decide(&input(&template, &strategy, &stored, &pods, None));
        let Method::Split { updated, .. } = d.method else {
            panic!("a canary splits: {:?}", d.method);
        };
        assert_eq!(updated, 2);
        assert_eq!(d.stable.as_deref(), Some("web-a"));
        assert!(d.routing.canary_service && d.routing.active.is_none());
        let status = d.canary.unwrap();
        assert_eq!((status.step, status.weight, status.aborted), (0, 20, false));
        assert_eq!(d.hold, None, "moving to the first weight holds nothing");
    }

    #[test]
    fn an_open_pause_waits_for_promote_and_a_promotion_moves_on() {
        let (template, strategy) = (PodTemplateSpec::default(), canary());
        let stored = ["web-a".to_string(), "web-b".to_string()];
        let mut pods = pods("web-a", 0, 8);
        pods.extend(super::super::strategy::fixture::pods("web-b", 8, 2));
        let d = decide(&input(&template, &strategy, &stored, &pods, None));
        assert!(
            matches!(&d.hold, Some(Hold::Waiting { reason: r, what }) if *r == reason::CANARY && what.contains("waits for drover.dev/promote"))
        );
        let status = d.canary.unwrap();
        assert_eq!((status.step, status.weight), (1, 20));
        let promoted = decide(&Input {
            command: Some(Command::Promote),
            ..input(&template, &strategy, &stored, &pods, Some(&status))
        });
        let Method::Split { updated, .. } = promoted.method else {
            panic!("still a split");
        };
        assert_eq!(updated, 6);
        assert!(matches!(
            &promoted.effect,
            Effect::Acted(EventType::Normal, r, note) if *r == reason::PROMOTED && note.contains("60%")
        ));
    }

    #[test]
    fn a_stale_status_of_another_revision_starts_over() {
        let (template, strategy) = (PodTemplateSpec::default(), canary());
        let stored = ["web-a".to_string(), "web-b".to_string()];
        let pods = pods("web-a", 0, 10);
        let old = CanaryStatus {
            revision: "web-x".into(),
            step: 3,
            step_started_at: None,
            weight: 100,
            aborted: true,
        };
        let d = decide(&input(&template, &strategy, &stored, &pods, Some(&old)));
        let status = d.canary.unwrap();
        assert_eq!((status.step, status.weight, status.aborted), (0, 20, false));
    }

    #[test]
    fn an_abort_sends_every_pod_back_and_says_where() {
        let (template, strategy) = (PodTemplateSpec::default(), canary());
        let stored = ["web-a".to_string(), "web-b".to_string()];
        let pods = pods("web-a", 0, 10);
        let d = decide(&Input {
            command: Some(Command::Abort),
            ..input(&template, &strategy, &stored, &pods, None)
        });
        let Method::Split { updated, .. } = d.method else {
            panic!("still a split");
        };
        assert_eq!(updated, 0);
        assert!(matches!(d.hold, Some(Hold::Aborted { ref what }) if what.contains("web-a")));
        assert!(matches!(
            &d.effect,
            Effect::Acted(EventType::Warning, r, note) if *r == reason::ABORTED && note.contains("web-a")
        ));
    }

    #[test]
    fn without_a_stable_revision_it_moves_like_a_rolling_update() {
        let (template, strategy) = (PodTemplateSpec::default(), canary());
        let stored = ["web-b".to_string()];
        let d = decide(&Input {
            recorded: Recorded::default(),
            ..input(&template, &strategy, &stored, &[], None)
        });
        assert!(matches!(d.method, Method::Rolling(_)));
        assert_eq!(d.stable, None);
        let status = d.canary.unwrap();
        assert_eq!((status.step, status.weight), (3, 100));
    }

    #[test]
    fn paused_holds_the_split() {
        let (template, strategy) = (PodTemplateSpec::default(), canary());
        let stored = ["web-a".to_string(), "web-b".to_string()];
        let pods = pods("web-a", 0, 10);
        let mut paused = input(&template, &strategy, &stored, &pods, None);
        paused.spec.paused = true;
        assert!(matches!(decide(&paused).method, Method::Hold(_)));
    }
}
