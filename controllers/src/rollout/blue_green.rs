//! A blue-green rollout: the new revision (the preview) starts in full beside the active
//! one, which the main Service keeps selecting; on `drover.dev/promote` (or
//! `autoPromotionSeconds` after every preview pod is available) the Service switches to
//! it at once, and the old pods go `scaleDownDelaySeconds` later. `drover.dev/abort`
//! removes the preview. Where it stands is kept in `status.blueGreen`. Pure.

use drover_crds::names::reason;
use drover_crds::{BlueGreen, BlueGreenStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;

use super::Method;
use super::command::{Command, Effect};
use super::pods::{add, available_at, is_active};
use super::strategy::{Decision, Hold, Input, Routing};
use super::workload::seconds;

pub fn decide(input: &Input<'_>, spec: &BlueGreen) -> Decision {
    let update = input.update;
    let previous = input.recorded.blue_green;
    // The active revision: as recorded, else what every pod last ran, else (first
    // rollout) the update revision itself.
    let active = previous
        .map(|p| p.active.as_str())
        .filter(|a| !a.is_empty() && input.is_stored(a))
        .or_else(|| {
            Some(input.recorded.current_revision).filter(|c| !c.is_empty() && input.is_stored(c))
        })
        .unwrap_or(update);
    let sides = Sides {
        input,
        spec,
        old: u32::try_from(
            input
                .pods
                .iter()
                .filter(|p| is_active(p) && p.revision != update)
                .count(),
        )
        .unwrap_or(u32::MAX),
    };
    if active == update {
        sides.switched(
            previous.and_then(|p| p.switched_at.clone()),
            Effect::Nothing,
        )
    } else {
        sides.previewing(active)
    }
}

/// What every phase of the decision reads.
struct Sides<'a> {
    input: &'a Input<'a>,
    spec: &'a BlueGreen,
    /// Live pods of revisions other than the update revision.
    old: u32,
}

impl Sides<'_> {
    fn routing(&self, active: &str) -> Routing {
        Routing {
            active: Some(active.to_string()),
            preview_service: self.spec.preview_service,
            ..Routing::default()
        }
    }

    /// The Service selects the update revision since `switched_at`: the old pods stay
    /// for the scale-down delay, then go.
    fn switched(&self, switched_at: Option<Time>, effect: Effect) -> Decision {
        let (update, now) = (self.input.update, self.input.now);
        let replicas = self.input.spec.replicas;
        let until = switched_at
            .as_ref()
            .map(|t| add(t.0, seconds(self.spec.scale_down_delay_seconds)));
        let keep = until.is_some_and(|u| u > now);
        Decision {
            method: Method::Parallel {
                updated: replicas,
                stable: if keep { self.old.min(replicas) } else { 0 },
            },
            stable: None,
            hold: None,
            canary: None,
            routing: self.routing(update),
            blue_green: Some(BlueGreenStatus {
                active: update.to_string(),
                preview: String::new(),
                preview_ready_at: None,
                switched_at,
                aborted: false,
            }),
            effect,
            wake_at: until.filter(|_| keep),
        }
    }

    /// The update revision runs as the preview beside `active` until promoted (or
    /// automatically promoted), or aborted.
    fn previewing(&self, active: &str) -> Decision {
        let (input, spec) = (self.input, self.spec);
        let (update, now, replicas) = (input.update, input.now, input.spec.replicas);
        let same_preview = input.recorded.blue_green.filter(|p| p.preview == update);
        let mut aborted = same_preview.is_some_and(|p| p.aborted);
        let new = input
            .pods
            .iter()
            .filter(|p| is_active(p) && p.revision == update)
            .filter(|p| available_at(p, input.spec.min_ready, now).is_some_and(|at| at <= now))
            .count();
        let ready = !aborted && new >= replicas as usize;
        let ready_at = same_preview
            .and_then(|p| p.preview_ready_at.as_ref().map(|t| t.0))
            .filter(|_| ready)
            .or(ready.then_some(now));
        let auto_at = ready_at
            .zip(spec.auto_promotion_seconds)
            .map(|(at, s)| add(at, seconds(s)));
        let mut effect = Effect::Nothing;
        let mut switch = auto_at.is_some_and(|at| at <= now);
        match input.command {
            Some(Command::Abort) => {
                aborted = true;
                switch = false;
                effect = Effect::Acted(
                    EventType::Warning,
                    reason::ABORTED,
                    format!("Preview of revision {update} aborted: its pods go"),
                );
            }
            Some(Command::Promote | Command::PromoteFull) if aborted => {
                aborted = false;
                effect = Effect::Acted(
                    EventType::Normal,
                    reason::PROMOTED,
                    format!("Preview of revision {update} resumed"),
                );
            }
            Some(Command::Promote | Command::PromoteFull) if ready => switch = true,
            // Promotion waits until every preview pod is available.
            Some(Command::Promote | Command::PromoteFull) => effect = Effect::Deferred,
            None => {}
        }
        if switch {
            if matches!(effect, Effect::Nothing) && input.command.is_some() {
                effect = Effect::Acted(
                    EventType::Normal,
                    reason::PROMOTED,
                    format!("Switched the Service to revision {update}"),
                );
            }
            // Every old pod stays for the delay, counted from now.
            return self.switched(Some(Time(now)), effect);
        }
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
                    None => {
                        "preview ready; the Service switches to it on drover.dev/promote".into()
                    }
                },
            })
        } else {
            None
        };
        Decision {
            method: Method::Parallel {
                updated: if aborted { 0 } else { replicas },
                stable: replicas,
            },
            stable: Some(active.to_string()),
            hold,
            canary: None,
            routing: self.routing(active),
            blue_green: Some(BlueGreenStatus {
                active: active.to_string(),
                preview: update.to_string(),
                preview_ready_at: ready_at.map(Time),
                switched_at: input
                    .recorded
                    .blue_green
                    .and_then(|p| p.switched_at.clone()),
                aborted,
            }),
            effect,
            wake_at: auto_at.filter(|at| *at > now),
        }
    }
}

#[cfg(test)]
mod tests {
    use drover_crds::names::reason;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    use super::super::strategy::fixture::*;
    use super::super::strategy::{Hold, Input, decide};
    use super::*;
    use crate::rollout::workload::Recorded;

    const STORED: [&str; 2] = ["web-a", "web-b"];

    fn stored() -> Vec<String> {
        STORED.iter().map(|s| s.to_string()).collect()
    }

    fn recorded<'a>(bg: Option<&'a BlueGreenStatus>) -> Recorded<'a> {
        Recorded {
            current_revision: "web-a",
            update_revision: "web-b",
            canary: None,
            blue_green: bg,
            last_command: None,
        }
    }

    fn input<'a>(
        template: &'a PodTemplateSpec,
        strategy: &'a drover_crds::Strategy,
        stored: &'a [String],
        pods: &'a [crate::rollout::pods::PodState],
        bg: Option<&'a BlueGreenStatus>,
    ) -> Input<'a> {
        Input {
            spec: spec(template, strategy, 3),
            recorded: recorded(bg),
            update: "web-b",
            stored,
            pods,
            command: None,
            now: t(100),
        }
    }

    #[test]
    fn the_preview_starts_in_full_beside_the_active_side() {
        let (template, strategy) = (
            PodTemplateSpec::default(),
            strategy(json!({"type": "BlueGreen"})),
        );
        let stored = stored();
        let pods = pods("web-a", 0, 3);
        let d = decide(&input(&template, &strategy, &stored, &pods, None));
        assert_eq!(
            d.method,
            Method::Parallel {
                updated: 3,
                stable: 3
            }
        );
        assert_eq!(d.stable.as_deref(), Some("web-a"));
        assert_eq!(d.routing.active.as_deref(), Some("web-a"));
        assert!(d.routing.preview_service && !d.routing.canary_service);
        let status = d.blue_green.unwrap();
        assert_eq!(
            (status.active.as_str(), status.preview.as_str()),
            ("web-a", "web-b")
        );
        assert_eq!(status.preview_ready_at, None);
        assert_eq!(d.hold, None, "the preview is still starting");
    }

    #[test]
    fn a_ready_preview_waits_for_promotion_then_switches() {
        let (template, strategy) = (
            PodTemplateSpec::default(),
            strategy(json!({"type": "BlueGreen", "blueGreen": {"scaleDownDelaySeconds": 30}})),
        );
        let stored = stored();
        let mut pods = pods("web-a", 0, 3);
        pods.extend(super::super::strategy::fixture::pods("web-b", 3, 3));
        let waiting = decide(&input(&template, &strategy, &stored, &pods, None));
        assert!(
            matches!(&waiting.hold, Some(Hold::Waiting { reason: r, what }) if *r == reason::BLUE_GREEN && what.contains("drover.dev/promote"))
        );
        let status = waiting.blue_green.clone().unwrap();
        assert_eq!(status.preview_ready_at, Some(Time(t(100))));
        // Promoted: the Service switches at once; the old side stays for the delay.
        let promote = Input {
            command: Some(Command::Promote),
            ..input(&template, &strategy, &stored, &pods, Some(&status))
        };
        let d = decide(&promote);
        assert_eq!(d.routing.active.as_deref(), Some("web-b"));
        assert_eq!(
            d.blue_green.as_ref().unwrap().switched_at,
            Some(Time(t(100)))
        );
        assert_eq!(
            d.method,
            Method::Parallel {
                updated: 3,
                stable: 3
            }
        );
        assert_eq!(d.wake_at, Some(t(130)));
        assert!(
            matches!(d.effect, Effect::Acted(EventType::Normal, r, _) if r == reason::PROMOTED)
        );
        // A later pass from the switched status: the old pods go once the delay is over.
        let switched = d.blue_green.unwrap();
        let later = |now| Input {
            now,
            ..input(&template, &strategy, &stored, &pods, Some(&switched))
        };
        let during = decide(&later(t(110)));
        assert_eq!(
            during.method,
            Method::Parallel {
                updated: 3,
                stable: 3
            }
        );
        assert_eq!(during.stable, None);
        let after = decide(&later(t(131)));
        assert_eq!(
            after.method,
            Method::Parallel {
                updated: 3,
                stable: 0
            }
        );
        assert_eq!(after.wake_at, None);
    }

    #[test]
    fn a_promotion_before_the_preview_is_ready_is_deferred() {
        let (template, strategy) = (
            PodTemplateSpec::default(),
            strategy(json!({"type": "BlueGreen"})),
        );
        let stored = stored();
        let mut pods = pods("web-a", 0, 3);
        pods.extend(super::super::strategy::fixture::pods("web-b", 3, 2));
        let d = decide(&Input {
            command: Some(Command::PromoteFull),
            ..input(&template, &strategy, &stored, &pods, None)
        });
        assert_eq!(d.effect, Effect::Deferred);
        assert_eq!(d.routing.active.as_deref(), Some("web-a"));
    }

    #[test]
    fn auto_promotion_switches_after_its_delay() {
        let (template, strategy) = (
            PodTemplateSpec::default(),
            strategy(json!({"type": "BlueGreen", "blueGreen": {"autoPromotionSeconds": 20}})),
        );
        let stored = stored();
        let mut pods = pods("web-a", 0, 3);
        pods.extend(super::super::strategy::fixture::pods("web-b", 3, 3));
        let first = decide(&input(&template, &strategy, &stored, &pods, None));
        assert_eq!(first.wake_at, Some(t(120)));
        let status = first.blue_green.unwrap();
        let d = decide(&Input {
            now: t(120),
            ..input(&template, &strategy, &stored, &pods, Some(&status))
        });
        assert_eq!(d.routing.active.as_deref(), Some("web-b"));
        assert_eq!(d.effect, Effect::Nothing, "no command, no command Event");
    }

    #[test]
    fn an_abort_removes_the_preview_until_promoted_again() {
        let (template, strategy) = (
            PodTemplateSpec::default(),
            strategy(json!({"type": "BlueGreen"})),
        );
        let stored = stored();
        let pods = pods("web-a", 0, 3);
        let d = decide(&Input {
            command: Some(Command::Abort),
            ..input(&template, &strategy, &stored, &pods, None)
        });
        assert_eq!(
            d.method,
            Method::Parallel {
                updated: 0,
                stable: 3
            }
        );
        assert!(matches!(d.hold, Some(Hold::Aborted { .. })));
        assert!(
            matches!(d.effect, Effect::Acted(EventType::Warning, r, _) if r == reason::ABORTED)
        );
        let aborted = d.blue_green.unwrap();
        assert!(aborted.aborted);
        let still = decide(&input(&template, &strategy, &stored, &pods, Some(&aborted)));
        assert_eq!(
            still.method,
            Method::Parallel {
                updated: 0,
                stable: 3
            }
        );
        let resumed = decide(&Input {
            command: Some(Command::Promote),
            ..input(&template, &strategy, &stored, &pods, Some(&aborted))
        });
        assert_eq!(
            resumed.method,
            Method::Parallel {
                updated: 3,
                stable: 3
            }
        );
        assert!(!resumed.blue_green.unwrap().aborted);
    }

    #[test]
    fn the_first_rollout_has_no_other_side() {
        let (template, strategy) = (
            PodTemplateSpec::default(),
            strategy(json!({"type": "BlueGreen"})),
        );
        let d = decide(&Input {
            recorded: Recorded::default(),
            ..input(&template, &strategy, &[], &[], None)
        });
        assert_eq!(d.routing.active.as_deref(), Some("web-b"));
        assert_eq!(
            d.method,
            Method::Parallel {
                updated: 3,
                stable: 0
            }
        );
        // A paused blue-green App still sizes each side (pausing holds no split).
        let mut paused = input(&template, &strategy, &[], &[], None);
        paused.spec.paused = true;
        paused.recorded = Recorded::default();
        assert_eq!(decide(&paused).method, d.method);
    }
}
