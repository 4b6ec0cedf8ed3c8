//! The strategy step of a pass: from the workload's spec, what its status recorded, its
//! pods and the pending command to one [`Decision`] — how pods move (the step method),
//! which revision is stable, whether the rollout is held on purpose, what the status
//! records of the strategy, what became of the command, which Services route where, and
//! when to look again. The one place that tells the strategies apart.

use drover_crds::{BlueGreenStatus, CanaryStatus, StrategyType};
use k8s_openapi::jiff::Timestamp;

use super::command::{Command, Effect};
use super::pods::PodState;
use super::workload::{Recorded, Spec};
use super::{Bounds, Method, blue_green, canary, revision};

/// Everything the strategy decides on; plain data.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub spec: Spec<'a>,
    pub recorded: Recorded<'a>,
    /// The update revision: what the template (and its config) is now.
    pub update: &'a str,
    /// Names of the workload's stored revisions.
    pub stored: &'a [String],
    /// Observed pods and in-flight creates.
    pub pods: &'a [PodState],
    pub command: Option<Command>,
    pub now: Timestamp,
}

impl Input<'_> {
    pub fn bounds(&self) -> Bounds {
        Bounds::resolve(
            &self
                .spec
                .strategy
                .rolling_update
                .clone()
                .unwrap_or_default(),
            self.spec.replicas,
        )
    }

    pub fn is_stored(&self, name: &str) -> bool {
        self.stored.iter().any(|s| s == name)
    }
}

/// A rollout held on purpose by its strategy: no progress deadline runs meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// At a pause or waiting for a promotion: `Progressing` stays True with this reason,
    /// the message saying what it waits for.
    Waiting { reason: &'static str, what: String },
    /// Aborted: `Progressing` turns False.
    Aborted { what: String },
}

/// Where the Services send traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// The only revision the main Service selects (blue-green's active side); `None`:
    /// every revision.
    pub active: Option<String>,
    /// A `<name>-canary` Service selects the update revision.
    pub canary_service: bool,
    /// A `<name>-preview` Service selects the update revision.
    pub preview_service: bool,
}

/// The strategy's decision for one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub method: Method,
    /// The stable revision, while pods of it are wanted beside the update revision.
    pub stable: Option<String>,
    pub hold: Option<Hold>,
    pub canary: Option<CanaryStatus>,
    pub blue_green: Option<BlueGreenStatus>,
    /// What became of the pending command.
    pub effect: Effect,
    pub routing: Routing,
    /// Look again then (a timed pause ends, an automatic promotion, a scale-down delay).
    pub wake_at: Option<Timestamp>,
}

pub fn decide(input: &Input<'_>) -> Decision {
    let stable = revision::stable(input.recorded.current_revision, input.update, input.stored);
    let strategy = input.spec.strategy;
    match strategy.type_ {
        StrategyType::RollingUpdate => plain(input, Method::Rolling(input.bounds()), stable),
        StrategyType::Recreate => plain(input, Method::Recreate, stable),
        StrategyType::Canary => match &strategy.canary {
            Some(spec) => canary::decide(input, spec, stable),
            // Rejected by the CRD; moves like a rolling update if it gets through.
            None => plain(input, Method::Rolling(input.bounds()), stable),
        },
        StrategyType::BlueGreen => {
            blue_green::decide(input, &strategy.blue_green.clone().unwrap_or_default())
        }
    }
}

/// A strategy without steps: it moves by `method`, and holds each revision's share while
/// paused.
fn plain(input: &Input<'_>, method: Method, stable: Option<String>) -> Decision {
    Decision {
        method: held_if_paused(input, method),
        stable,
        hold: None,
        canary: None,
        blue_green: None,
        effect: Effect::Nothing,
        routing: Routing::default(),
        wake_at: None,
    }
}

/// A paused rollout holds each revision's share of the pods.
pub(super) fn held_if_paused(input: &Input<'_>, method: Method) -> Method {
    if input.spec.paused {
        Method::Hold(input.bounds())
    } else {
        method
    }
}

#[cfg(test)]
pub(crate) mod fixture {
    //! Plain data for the strategies' tests.

    use std::time::Duration;

    use drover_crds::Strategy;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::jiff::Timestamp;

    use super::super::pods::{Phase, PodState};
    use super::super::workload::Spec;

    pub fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    pub fn strategy(json: serde_json::Value) -> Strategy {
        serde_json::from_value(json).unwrap()
    }

    pub fn spec<'a>(
        template: &'a PodTemplateSpec,
        strategy: &'a Strategy,
        replicas: u32,
    ) -> Spec<'a> {
        Spec {
            template,
            strategy,
            replicas,
            paused: false,
            min_ready: Duration::ZERO,
            progress_deadline: Duration::from_secs(600),
            history_limit: 10,
            auto_rollback: false,
            restore_config_maps: false,
        }
    }

    /// `n` ready pods of `revision`, from slot `first` on, ready since `t(0)`.
    pub fn pods(revision: &str, first: u32, n: u32) -> Vec<PodState> {
        (first..first + n)
            .map(|slot| PodState {
                name: format!("web-{slot}"),
                uid: format!("u{slot}"),
                slot,
                revision: revision.into(),
                phase: Phase::Running,
                terminating: false,
                node: Some("n".into()),
                ready: true,
                ready_since: Some(t(0)),
                created: t(0),
                restarts: 0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::fixture::*;
    use super::*;
    use crate::rollout::workload::Recorded;

    #[test]
    fn a_rolling_update_moves_from_the_stored_current_revision() {
        let template = Default::default();
        let strategy = strategy(json!({"type": "RollingUpdate"}));
        let stored = ["web-a".to_string(), "web-b".to_string()];
        let pods = pods("web-a", 0, 3);
        let input = Input {
            spec: spec(&template, &strategy, 3),
            recorded: Recorded {
                current_revision: "web-a",
                update_revision: "web-a",
                ..Recorded::default()
            },
            update: "web-b",
            stored: &stored,
            pods: &pods,
            command: None,
            now: t(10),
        };
        let d = decide(&input);
        assert_eq!(d.method, Method::Rolling(input.bounds()));
        assert_eq!(d.stable.as_deref(), Some("web-a"));
        assert_eq!((d.hold, d.canary, d.blue_green), (None, None, None));
        assert_eq!(d.routing, Routing::default());
        // Pruned, or the same as the update revision: nothing stable to start pods of.
        assert_eq!(
            decide(&Input {
                stored: &stored[1..],
                ..input
            })
            .stable,
            None
        );
        assert_eq!(
            decide(&Input {
                update: "web-a",
                ..input
            })
            .stable,
            None
        );
        // Paused: each revision keeps its share.
        let mut paused = input;
        paused.spec.paused = true;
        assert_eq!(decide(&paused).method, Method::Hold(input.bounds()));
        // A command with nothing to act on has no effect (its annotation is reported).
        let promoted = Input {
            command: Some(Command::Promote),
            ..input
        };
        assert_eq!(decide(&promoted).effect, Effect::Nothing);
    }

    #[test]
    fn recreate_replaces_all_at_once() {
        let template = Default::default();
        let strategy = strategy(json!({"type": "Recreate"}));
        let input = Input {
            spec: spec(&template, &strategy, 2),
            recorded: Recorded::default(),
            update: "web-b",
            stored: &[],
            pods: &[],
            command: None,
            now: t(0),
        };
        assert_eq!(decide(&input).method, Method::Recreate);
    }
}
