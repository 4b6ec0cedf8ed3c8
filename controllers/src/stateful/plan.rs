//! The ordinal plan of a StatefulApp (pure): which ordinals get a pod, at which revision,
//! and which pods go — for scaling, for a rolling update and for healing — keeping at most
//! one pod per ordinal at any moment.
//!
//! As a StatefulSet: `OrderedReady` starts ordinals one at a time in order, each once
//! every lower one is ready, and removes the highest first, one at a time; `Parallel` does
//! both at once; a rolling update replaces the highest ordinals first, keeps those below
//! `partition` on the current revision, and takes down at most `maxUnavailable` at once.
//! Unlike a StatefulSet, an outdated pod that is not available (crash-looping, never
//! ready) is replaced at once: it takes nothing away, and waiting for it to become ready
//! is what leaves a StatefulSet's broken rollout stuck (kubernetes/kubernetes#67250).

use std::time::Duration;

use drover_crds::stateful::PodManagementPolicy;
use k8s_openapi::jiff::Timestamp;

use crate::rollout::pods::{self, Phase, PodState};

/// How a new revision reaches the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Ordinals from `partition` up are replaced, highest first, at most `max_unavailable`
    /// pods down at once.
    Rolling {
        partition: u32,
        max_unavailable: u32,
    },
    /// A pod is replaced only when something else deletes it.
    OnDelete,
}

/// What the plan looks at.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The first ordinal.
    pub start: u32,
    pub replicas: u32,
    pub policy: PodManagementPolicy,
    pub update: Update,
    /// The revision of the current template.
    pub update_revision: &'a str,
    /// What the pods ran when the last rollout completed: new pods below the partition
    /// get it (empty: the update revision).
    pub current_revision: &'a str,
    /// Every pod of the StatefulApp, its ordinal in `slot`.
    pub pods: &'a [PodState],
    pub min_ready: Duration,
    pub now: Timestamp,
}

/// A pod to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    pub ordinal: u32,
    pub revision: String,
}

/// Why a pod goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Its ordinal is no longer asked for.
    ScaleIn,
    /// It runs an old revision.
    Update,
    /// It finished (failed or succeeded) and must start again.
    Finished,
}

/// A pod to remove (by name and UID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub name: String,
    pub uid: String,
    pub ordinal: u32,
    pub why: Why,
}

/// Why the plan holds back what the spec asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// OrderedReady: the next ordinal starts once this one is ready.
    NotReady(u32),
    /// An ordinal's old pod is still going; its new one starts once it is gone.
    Terminating(u32),
    /// The rollout has taken down as many pods as `maxUnavailable` allows.
    Unavailable { down: u32, allowed: u32 },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub creates: Vec<Create>,
    pub deletes: Vec<Delete>,
    pub waiting: Vec<Waiting>,
    /// When a ready pod becomes available, which may let the plan go on.
    pub revisit_at: Option<Timestamp>,
}

pub fn plan(input: &Input<'_>) -> Plan {
    let mut plan = Plan::default();
    let end = input.start.saturating_add(input.replicas);
    let wanted = |ordinal: u32| (input.start..end).contains(&ordinal);
    let ordered = input.policy == PodManagementPolicy::OrderedReady;
    let available = |p: &PodState| {
        let at = pods::available_at(p, input.min_ready, input.now);
        at.is_some_and(|at| at <= input.now)
    };
    for p in input.pods.iter().filter(|p| p.ready && !available(p)) {
        if let Some(at) = pods::available_at(p, input.min_ready, input.now) {
            plan.revisit_at = pods::earliest(plan.revisit_at, at);
        }
    }
    let of = |ordinal: u32| input.pods.iter().filter(move |p| p.slot == ordinal);

    // Finished pods go first: their ordinal starts again once they are gone.
    for p in input.pods.iter().filter(|p| finished(p) && !p.terminating) {
        plan.deletes.push(delete(p, Why::Finished));
    }

    // Scale-in: ordinals no longer asked for, highest first.
    let mut condemned: Vec<&PodState> = input
        .pods
        .iter()
        .filter(|p| !wanted(p.slot) && !finished(p))
        .collect();
    condemned.sort_by_key(|p| std::cmp::Reverse(p.slot));
    if ordered {
        // One at a time: the highest goes once none above it is still going. A pod being
        // deleted may have finished already (the kubelet gives stopped pods a final
        // phase) and still exist: it counts as going all the same.
        let going = input
            .pods
            .iter()
            .filter(|p| !wanted(p.slot) && p.terminating)
            .max_by_key(|p| p.slot);
        if let Some(going) = going {
            plan.waiting.push(Waiting::Terminating(going.slot));
        } else if let Some(highest) = condemned.first() {
            plan.deletes.push(delete(highest, Why::ScaleIn));
        }
    } else {
        for p in condemned.iter().filter(|p| !p.terminating) {
            plan.deletes.push(delete(p, Why::ScaleIn));
        }
    }

    // Ordinals asked for without a pod, lowest first.
    for ordinal in input.start..end {
        let mut here = of(ordinal);
        if let Some(p) = here.next() {
            if p.terminating || finished(p) {
                plan.waiting.push(Waiting::Terminating(ordinal));
                if ordered {
                    break;
                }
            } else if ordered && !p.ready {
                plan.waiting.push(Waiting::NotReady(ordinal));
                break;
            }
            continue;
        }
        plan.creates.push(Create {
            ordinal,
            revision: revision_of(input, ordinal).to_string(),
        });
        if ordered {
            break;
        }
    }

    // As a ReplicaSet's burst: the created pods' events bring the next pass.
    plan.creates.truncate(pods::MAX_CREATES_PER_PASS);

    // The rolling update: outdated pods from the partition up, highest first.
    if let Update::Rolling {
        partition,
        max_unavailable,
    } = input.update
    {
        let outdated = |p: &&PodState| {
            wanted(p.slot)
                && p.slot >= partition
                && !p.terminating
                && !finished(p)
                && !p.is_assumed()
                && p.revision != input.update_revision
        };
        let mut candidates: Vec<&PodState> = input.pods.iter().filter(outdated).collect();
        candidates.sort_by_key(|p| std::cmp::Reverse(p.slot));
        // Down: ordinals asked for whose pod is missing, going or not available.
        let down = (input.start..end)
            .filter(|&o| {
                let mut here = of(o).filter(|p| !p.terminating && !finished(p));
                !here.any(&available)
            })
            .count();
        let down = u32::try_from(down).unwrap_or(u32::MAX);
        let mut allowed = max_unavailable.saturating_sub(down);
        for p in candidates {
            if !available(p) {
                // Already down: replacing it takes nothing away.
                plan.deletes.push(delete(p, Why::Update));
            } else if allowed > 0 {
                allowed -= 1;
                plan.deletes.push(delete(p, Why::Update));
            } else {
                plan.waiting.push(Waiting::Unavailable {
                    down,
                    allowed: max_unavailable,
                });
                break;
            }
        }
    }
    plan
}

/// The revision a new pod of `ordinal` starts at.
fn revision_of<'a>(input: &Input<'a>, ordinal: u32) -> &'a str {
    match input.update {
        Update::Rolling { partition, .. }
            if ordinal < partition && !input.current_revision.is_empty() =>
        {
            input.current_revision
        }
        _ => input.update_revision,
    }
}

fn finished(p: &PodState) -> bool {
    matches!(p.phase, Phase::Succeeded | Phase::Failed)
}

fn delete(p: &PodState, why: Why) -> Delete {
    Delete {
        name: p.name.clone(),
        uid: p.uid.clone(),
        ordinal: p.slot,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn now() -> Timestamp {
        Timestamp::from_second(NOW).unwrap()
    }

    fn pod(ordinal: u32, revision: &str, ready: bool) -> PodState {
        PodState {
            name: format!("db-{ordinal}"),
            uid: format!("uid-{ordinal}-{revision}"),
            slot: ordinal,
            revision: revision.into(),
            phase: Phase::Running,
            terminating: false,
            node: Some("worker".into()),
            ready,
            ready_since: ready.then(|| Timestamp::from_second(NOW - 60).unwrap()),
            created: Timestamp::from_second(NOW - 120).unwrap(),
            restarts: 0,
        }
    }

    fn input<'a>(pods: &'a [PodState], replicas: u32, policy: PodManagementPolicy) -> Input<'a> {
        Input {
            start: 0,
            replicas,
            policy,
            update: Update::Rolling {
                partition: 0,
                max_unavailable: 1,
            },
            update_revision: "r2",
            current_revision: "r1",
            pods,
            min_ready: Duration::ZERO,
            now: now(),
        }
    }

    fn created(plan: &Plan) -> Vec<(u32, &str)> {
        plan.creates
            .iter()
            .map(|c| (c.ordinal, c.revision.as_str()))
            .collect()
    }

    fn deleted(plan: &Plan) -> Vec<(u32, Why)> {
        plan.deletes.iter().map(|d| (d.ordinal, d.why)).collect()
    }

    use PodManagementPolicy::{OrderedReady, Parallel};

    #[test]
    fn ordered_ready_starts_one_ordinal_at_a_time_after_the_previous_is_ready() {
        let none: Vec<PodState> = vec![];
        assert_eq!(created(&plan(&input(&none, 3, OrderedReady))), [(0, "r2")]);
        let starting = [pod(0, "r2", false)];
        let p = plan(&input(&starting, 3, OrderedReady));
        assert!(p.creates.is_empty(), "waits for db-0: {p:?}");
        assert_eq!(p.waiting, [Waiting::NotReady(0)]);
        let ready = [pod(0, "r2", true)];
        assert_eq!(created(&plan(&input(&ready, 3, OrderedReady))), [(1, "r2")]);
    }

    #[test]
    fn parallel_starts_every_ordinal_at_once() {
        let starting = [pod(0, "r2", false)];
        assert_eq!(
            created(&plan(&input(&starting, 4, Parallel))),
            [(1, "r2"), (2, "r2"), (3, "r2")]
        );
    }

    #[test]
    fn an_ordinal_whose_pod_is_going_gets_no_second_pod() {
        let mut going = pod(1, "r2", true);
        going.terminating = true;
        for policy in [OrderedReady, Parallel] {
            let pods = [pod(0, "r2", true), going.clone(), pod(2, "r2", true)];
            let p = plan(&input(&pods, 3, policy));
            assert!(
                p.creates.iter().all(|c| c.ordinal != 1),
                "{policy:?}: {p:?}"
            );
            assert!(p.waiting.contains(&Waiting::Terminating(1)));
        }
    }

    #[test]
    fn scale_in_removes_the_highest_first_one_at_a_time_when_ordered() {
        let pods: Vec<PodState> = (0..5).map(|o| pod(o, "r2", true)).collect();
        assert_eq!(
            deleted(&plan(&input(&pods, 2, OrderedReady))),
            [(4, Why::ScaleIn)]
        );
        let mut going = pods.clone();
        going[4].terminating = true;
        let p = plan(&input(&going, 2, OrderedReady));
        assert!(p.deletes.is_empty(), "waits for db-4 to go: {p:?}");
        // Stopped, with its final phase, but not gone yet: still waits.
        going[4].phase = Phase::Succeeded;
        let p = plan(&input(&going, 2, OrderedReady));
        assert!(
            p.deletes.is_empty(),
            "waits for a finished db-4 to go: {p:?}"
        );
        assert_eq!(
            deleted(&plan(&input(&pods, 2, Parallel))),
            [(4, Why::ScaleIn), (3, Why::ScaleIn), (2, Why::ScaleIn)]
        );
    }

    #[test]
    fn a_rolling_update_goes_highest_first_within_max_unavailable() {
        let pods: Vec<PodState> = (0..4).map(|o| pod(o, "r1", true)).collect();
        let p = plan(&input(&pods, 4, OrderedReady));
        assert_eq!(deleted(&p), [(3, Why::Update)]);
        // db-3 is down (replaced, not ready yet): nothing else goes.
        let mut next = pods.clone();
        next[3] = pod(3, "r2", false);
        let p = plan(&input(&next, 4, OrderedReady));
        assert!(p.deletes.is_empty(), "{p:?}");
        assert!(matches!(
            p.waiting[..],
            [
                ..,
                Waiting::Unavailable {
                    down: 1,
                    allowed: 1
                }
            ]
        ));
        // Two at a time with maxUnavailable 2.
        let mut two = input(&pods, 4, Parallel);
        two.update = Update::Rolling {
            partition: 0,
            max_unavailable: 2,
        };
        assert_eq!(deleted(&plan(&two)), [(3, Why::Update), (2, Why::Update)]);
    }

    #[test]
    fn the_partition_keeps_lower_ordinals_on_the_current_revision() {
        let pods: Vec<PodState> = vec![pod(0, "r1", true), pod(2, "r2", true)];
        let mut staged = input(&pods, 3, Parallel);
        staged.update = Update::Rolling {
            partition: 2,
            max_unavailable: 1,
        };
        let p = plan(&staged);
        assert!(p.deletes.is_empty(), "db-0 is below the partition: {p:?}");
        assert_eq!(created(&p), [(1, "r1")], "a new pod below it starts at r1");
    }

    #[test]
    fn a_broken_outdated_pod_is_replaced_at_once() {
        // r1 crash-loops on db-2 (never ready); the user rolls r2 out (a fix or an undo):
        // db-2 goes at once, where a StatefulSet would wait for it to become ready.
        let mut broken = pod(2, "r1", false);
        broken.restarts = 7;
        let pods = vec![pod(0, "r1", true), pod(1, "r1", true), broken];
        let p = plan(&input(&pods, 3, OrderedReady));
        assert_eq!(deleted(&p), [(2, Why::Update)]);
        // The broken pod counts as down: no healthy pod goes beside it.
        assert!(!p.deletes.iter().any(|d| d.ordinal < 2));
    }

    #[test]
    fn on_delete_replaces_only_what_is_deleted() {
        let pods: Vec<PodState> = vec![pod(0, "r1", true), pod(2, "r1", true)];
        let mut manual = input(&pods, 3, Parallel);
        manual.update = Update::OnDelete;
        let p = plan(&manual);
        assert!(p.deletes.is_empty(), "{p:?}");
        assert_eq!(created(&p), [(1, "r2")], "a deleted pod comes back new");
    }

    #[test]
    fn finished_pods_are_removed_and_start_again_once_gone() {
        let mut failed = pod(1, "r2", false);
        failed.phase = Phase::Failed;
        let pods = vec![pod(0, "r2", true), failed];
        let p = plan(&input(&pods, 2, Parallel));
        assert_eq!(deleted(&p), [(1, Why::Finished)]);
        assert!(p.creates.is_empty(), "not while the failed pod exists");
    }

    #[test]
    fn ordinals_start_where_asked() {
        let none: Vec<PodState> = vec![];
        let mut from_five = input(&none, 2, Parallel);
        from_five.start = 5;
        assert_eq!(created(&plan(&from_five)), [(5, "r2"), (6, "r2")]);
        // Pods of ordinals before the start are no longer asked for.
        let pods = [pod(0, "r2", true)];
        let mut moved = input(&pods, 1, Parallel);
        moved.start = 5;
        let p = plan(&moved);
        assert_eq!(deleted(&p), [(0, Why::ScaleIn)]);
        assert_eq!(created(&p), [(5, "r2")]);
    }

    #[test]
    fn a_pod_waiting_out_min_ready_is_looked_at_again_when_available() {
        let mut fresh = pod(0, "r2", true);
        fresh.ready_since = Some(Timestamp::from_second(NOW - 2).unwrap());
        let pods = [fresh];
        let mut i = input(&pods, 2, OrderedReady);
        i.min_ready = Duration::from_secs(10);
        let p = plan(&i);
        assert_eq!(p.revisit_at, Some(Timestamp::from_second(NOW + 8).unwrap()));
    }
}
