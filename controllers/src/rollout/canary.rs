//! A canary rollout's steps: which share of the pods the new revision should have now,
//! and when the steps move on — a weight once the pods are there, a timed pause when its
//! time is up, an open pause when promoted. Pure: time and the pods' state are inputs.

use std::time::Duration;

use drover_crds::CanaryStep;
use k8s_openapi::jiff::Timestamp;

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

/// What a user asked for with an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Past the current step (or, after an abort, resume from it).
    Promote,
    /// Straight to every pod.
    PromoteFull,
    /// Every pod back on the stable revision.
    Abort,
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
