//! One step of a rollout: given the workload's live pods, each either of the update
//! revision or of an older one, how many new pods to start and which pods to remove.
//! Pure; the workload controller turns the step into pod creates and deletes.
//!
//! Scaling mid-rollout is proportional (as with a Deployment's ReplicaSets): pods a
//! scale-up adds and pods a scale-down removes are shared between the update revision and
//! the older ones as the live pods are, so a change of `replicas` neither hastens a
//! rollout onto an unproven revision nor undoes it. The surge stays the rollout's.
//!
//! Invariants (property-tested below, from random states and over random interleavings
//! of template changes, scaling, pod failures and readiness):
//! - never more than `replicas + maxSurge` pods after the step's creates;
//! - removals never take the available pods below `replicas - maxUnavailable` when they
//!   were at or above it, unless `replicas` itself went down;
//! - repeated steps, with pods becoming available, end at `replicas` pods, all updated
//!   (for a split, the asked number updated and the rest stable).

use super::bounds::Bounds;

/// What a step needs of a live pod (running or starting, not terminating).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Of the update revision.
    pub updated: bool,
    /// Ready for at least `minReadySeconds`.
    pub available: bool,
    /// Observed by the controller, so it can be deleted (a pod only just created cannot).
    pub removable: bool,
}

/// How the workload moves between revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Rolling(Bounds),
    /// A paused rollout: each revision keeps its share of the pods, and a change of
    /// `replicas` (or a lost pod) is spread over them in proportion.
    Hold(Bounds),
    /// A canary: `updated` pods of the update revision, the rest of the stable revision,
    /// moving between splits within the bounds.
    Split {
        bounds: Bounds,
        updated: u32,
    },
    /// Blue-green: `updated` pods of the update revision and `stable` of the stable one
    /// side by side, each started or removed regardless of the other (the Service
    /// selects one side at a time).
    Parallel {
        updated: u32,
        stable: u32,
    },
    /// Every old pod goes first; new ones start once none is left, terminating included.
    Recreate,
}

impl Method {
    /// How many pods below `replicas` the method means to have unavailable at most: what
    /// `Available` tolerates. None for Recreate and blue-green, which do not bound it (as
    /// a Deployment's Recreate).
    pub fn max_unavailable(&self) -> u32 {
        match self {
            Method::Rolling(b) | Method::Hold(b) | Method::Split { bounds: b, .. } => {
                b.max_unavailable
            }
            Method::Parallel { .. } | Method::Recreate => 0,
        }
    }
}

/// Why a pod goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// More pods than `replicas` (plus surge) are live, or more of the update revision
    /// than the split asks for.
    Surplus,
    /// It runs an old revision and a new pod takes its place.
    Outdated,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Step {
    /// New pods of the update revision to start.
    pub create: u32,
    /// New pods of the stable revision to start (a split below its stable share).
    pub create_stable: u32,
    /// Indexes into the members, with the reason.
    pub remove: Vec<(usize, Why)>,
}

/// One step. `members` are the live pods, best victims first (the caller's order among
/// equals: unscheduled, not ready, newest, ...); `old_terminating` tells whether pods of
/// old revisions are still shutting down.
pub fn step(replicas: u32, method: Method, members: &[Member], old_terminating: bool) -> Step {
    step_within(replicas, method, members, old_terminating, usize::MAX)
}

/// A step that removes at most `max_removals` pods (what a disruption budget leaves);
/// new pods start only where the pods actually removed make room.
pub fn step_within(
    replicas: u32,
    method: Method,
    members: &[Member],
    old_terminating: bool,
    max_removals: usize,
) -> Step {
    let mut plan = Planner {
        members: members.to_vec(),
        removed: vec![false; members.len()],
        removals_left: max_removals,
        step: Step::default(),
    };
    let replicas = replicas as usize;
    match method {
        Method::Recreate => {
            plan.trim_updated(replicas);
            let old = plan.live(|m| !m.updated);
            // New pods wait until the old ones removed now are gone, not just asked to go.
            let blocked = old_terminating || !old.is_empty();
            for i in old {
                if members[i].removable {
                    plan.remove(i, Why::Outdated);
                }
            }
            if !blocked {
                plan.step.create = to_u32(replicas.saturating_sub(plan.count(|m| m.updated)));
            }
        }
        Method::Rolling(bounds) => {
            plan.fill(replicas);
            plan.balance(replicas, bounds, replicas);
        }
        Method::Hold(bounds) => {
            let live = plan.count(|_| true);
            let updated = if live == 0 {
                replicas
            } else {
                share(replicas, plan.count(|m| m.updated), live)
            };
            plan.balance(replicas, bounds, updated);
        }
        Method::Split { bounds, updated } => {
            plan.balance(replicas, bounds, (updated as usize).min(replicas));
        }
        Method::Parallel { updated, stable } => {
            let (updated, stable) = (updated as usize, stable as usize);
            for (new, wanted, why) in [
                (true, updated, Why::Surplus),
                (false, stable, Why::Outdated),
            ] {
                let extra = plan.count(|m| m.updated == new).saturating_sub(wanted);
                let order = [
                    plan.live(|m| m.updated == new && !m.available),
                    plan.live(|m| m.updated == new && m.available),
                ]
                .concat();
                plan.remove_first(order, extra, why);
            }
            plan.step.create = to_u32(updated.saturating_sub(plan.count(|m| m.updated)));
            plan.step.create_stable = to_u32(stable.saturating_sub(plan.count(|m| !m.updated)));
        }
    }
    plan.step
}

struct Planner {
    /// The live pods, then the stable pods this step starts (see `fill`).
    members: Vec<Member>,
    removed: Vec<bool>,
    removals_left: usize,
    step: Step,
}

impl Planner {
    /// Members not removed by this step that match, in the caller's order.
    fn live(&self, keep: impl Fn(&Member) -> bool) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| !self.removed[i] && keep(&self.members[i]))
            .collect()
    }

    fn count(&self, keep: impl Fn(&Member) -> bool) -> usize {
        self.live(keep).len()
    }

    fn remove(&mut self, i: usize, why: Why) {
        if self.removals_left == 0 {
            return;
        }
        self.removals_left -= 1;
        self.removed[i] = true;
        self.step.remove.push((i, why));
    }

    /// Removes the first `n` of `candidates`. One that cannot be removed yet still uses
    /// up its place: a pod just created that turns out surplus goes in a later step, and
    /// no running pod goes instead.
    fn remove_first(&mut self, candidates: Vec<usize>, n: usize, why: Why) {
        for i in candidates.into_iter().take(n) {
            if self.members[i].removable {
                self.remove(i, why);
            }
        }
    }

    /// A rolling update below `replicas` (scaled up, or pods lost) starts the missing
    /// pods of each side as the live pods are shared; the stable ones count as live,
    /// starting pods for the rest of the step.
    fn fill(&mut self, replicas: usize) {
        let live = self.count(|_| true);
        let missing = replicas.saturating_sub(live);
        let stable = share(missing, self.count(|m| !m.updated), live);
        self.step.create_stable = to_u32(stable);
        self.members.extend((0..stable).map(|_| Member {
            updated: false,
            available: false,
            removable: false,
        }));
        self.removed.resize(self.members.len(), false);
    }

    /// Moves towards `updated` pods of the update revision and `replicas - updated` old
    /// ones within the bounds.
    fn balance(&mut self, replicas: usize, bounds: Bounds, updated: usize) {
        let max_total = replicas + bounds.max_surge as usize;
        let min_available = replicas.saturating_sub(bounds.max_unavailable as usize);
        let stable = replicas - updated;
        let excess = |p: &Self, new: bool| {
            let (count, wanted) = if new {
                (p.count(|m| m.updated), updated)
            } else {
                (p.count(|m| !m.updated), stable)
            };
            count.saturating_sub(wanted)
        };
        // Above the surge ceiling (replicas went down): each side gives up its share of
        // the surplus, pods that serve nothing first.
        let surplus = self.count(|_| true).saturating_sub(max_total);
        let from_old = share(surplus, self.count(|m| !m.updated), self.count(|_| true));
        for (new, n) in [(false, from_old), (true, surplus - from_old)] {
            let order = [
                self.live(|m| m.updated == new && !m.available),
                self.live(|m| m.updated == new && m.available),
            ]
            .concat();
            self.remove_first(order, n, Why::Surplus);
        }
        // Pods beyond their side's share that serve nothing go, as far as the pods that
        // may yet serve stay above the floor while the other side's starting pods are
        // not counted (a Deployment's rule): a broken old pod goes once a new one serves
        // in its place, a stable pod a scale-up just started is not swapped for a new
        // one before that.
        for (new, why) in [(false, Why::Outdated), (true, Why::Surplus)] {
            let n = excess(self, new);
            let others_starting = self.count(|m| m.updated != new && !m.available);
            let limit = self
                .count(|_| true)
                .saturating_sub(min_available + others_starting);
            let unavailable = self.live(|m| m.updated == new && !m.available);
            self.remove_first(unavailable, n.min(limit), why);
        }
        // Available ones as far as the availability floor allows, old before new.
        // (Unavailable pods not observed yet are left for a later step, and count as
        // going.)
        let pending =
            |p: &Self, new: bool| p.count(|m| m.updated == new && !m.available && !m.removable);
        let spare = self.count(|m| m.available).saturating_sub(min_available);
        let n = excess(self, false).saturating_sub(pending(self, false));
        let old = self.live(|m| !m.updated && m.available);
        self.remove_first(old, n.min(spare), Why::Outdated);
        let spare = self.count(|m| m.available).saturating_sub(min_available);
        let n = excess(self, true).saturating_sub(pending(self, true));
        let new = self.live(|m| m.updated && m.available);
        self.remove_first(new, n.min(spare), Why::Surplus);
        // New pods where a side is short, the update revision first.
        let mut room = max_total.saturating_sub(self.count(|_| true));
        let missing = updated.saturating_sub(self.count(|m| m.updated)).min(room);
        self.step.create = to_u32(missing);
        room -= missing;
        let missing = stable.saturating_sub(self.count(|m| !m.updated)).min(room);
        self.step.create_stable += to_u32(missing);
    }

    /// Updated pods beyond `replicas` are never needed: unavailable ones go first.
    fn trim_updated(&mut self, replicas: usize) {
        let extra = self.count(|m| m.updated).saturating_sub(replicas);
        let order = [
            self.live(|m| m.updated && !m.available),
            self.live(|m| m.updated && m.available),
        ]
        .concat();
        self.remove_first(order, extra, Why::Surplus);
    }
}

/// `part / whole` of `n`, rounded to the nearest pod (0 when `whole` is 0).
fn share(n: usize, part: usize, whole: usize) -> usize {
    if whole == 0 {
        return 0;
    }
    (n * part + whole / 2) / whole
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const OLD: Member = Member {
        updated: false,
        available: true,
        removable: true,
    };
    const NEW: Member = Member {
        updated: true,
        available: true,
        removable: true,
    };
    const STARTING: Member = Member {
        updated: true,
        available: false,
        removable: true,
    };

    fn rolling(max_surge: u32, max_unavailable: u32) -> Method {
        Method::Rolling(Bounds {
            max_surge,
            max_unavailable,
        })
    }

    fn removed(s: &Step) -> Vec<usize> {
        s.remove.iter().map(|(i, _)| *i).collect()
    }

    #[test]
    fn surges_first_when_no_pod_may_be_unavailable() {
        let pods = [OLD; 4];
        let s = step(4, rolling(1, 0), &pods, false);
        assert_eq!(
            s,
            Step {
                create: 1,
                ..Step::default()
            }
        );
        // The new pod is not available yet: nothing moves.
        let pods = [OLD, OLD, OLD, OLD, STARTING];
        assert_eq!(step(4, rolling(1, 0), &pods, false), Step::default());
        // Once it is, one old pod goes, and the next new one waits for the room.
        let pods = [OLD, OLD, OLD, OLD, NEW];
        let s = step(4, rolling(1, 0), &pods, false);
        assert_eq!(s.remove, [(0, Why::Outdated)]);
        assert_eq!(s.create, 1);
    }

    #[test]
    fn removes_first_when_no_pod_may_surge() {
        let s = step(4, rolling(0, 2), &[OLD; 4], false);
        assert_eq!(removed(&s), [0, 1]);
        assert_eq!(s.create, 2);
    }

    #[test]
    fn old_pods_that_serve_nothing_go_once_the_floor_allows() {
        let broken = Member {
            available: false,
            ..OLD
        };
        // No pod may be unavailable: the broken pod stays until a new one serves.
        let s = step(3, rolling(1, 0), &[OLD, broken, OLD], false);
        assert_eq!((s.create, s.remove.len()), (1, 0));
        let s = step(3, rolling(1, 0), &[OLD, broken, OLD, NEW], false);
        assert_eq!(s.remove, [(1, Why::Outdated)]);
        assert_eq!(s.create, 1);
        // One may: it goes at once.
        let s = step(3, rolling(0, 1), &[OLD, broken, OLD], false);
        assert_eq!(s.remove, [(1, Why::Outdated)]);
        assert_eq!(s.create, 1);
    }

    #[test]
    fn a_rollout_to_pods_that_never_become_ready_keeps_the_old_ones() {
        let pods = [OLD, OLD, OLD, OLD, STARTING];
        for _ in 0..3 {
            assert_eq!(step(4, rolling(1, 0), &pods, false), Step::default());
        }
    }

    #[test]
    fn scaling_down_mid_rollout_takes_from_each_revision_in_proportion() {
        let mut pods = vec![OLD; 6];
        pods.extend([STARTING; 2]);
        let s = step(3, rolling(1, 0), &pods, false);
        // 8 live, at most 4: 3 old pods and 1 new go (6:2), each side's pods that serve
        // nothing first; the 3 old pods left are the availability floor.
        assert_eq!(removed(&s), [0, 1, 2, 6]);
        assert!(s.remove.iter().all(|(_, why)| *why == Why::Surplus));
        assert_eq!((s.create, s.create_stable), (0, 0));
    }

    #[test]
    fn scaling_up_mid_rollout_adds_to_each_revision_in_proportion() {
        // Half-way from 4 replicas, scaled to 8 (surge 2, 2 may be unavailable): the 4
        // pods missing are shared 2:2, and the surge goes to the rollout.
        let s = step(8, rolling(2, 2), &[OLD, OLD, NEW, NEW], false);
        assert_eq!((s.create_stable, s.create), (2, 4));
        assert!(
            s.remove.is_empty(),
            "no old pod goes while no new one can serve"
        );
        // The new stable pods are not swapped for new ones before those serve.
        let stable_starting = Member {
            updated: false,
            ..STARTING
        };
        let mut pods = vec![OLD, OLD, NEW, NEW, stable_starting, stable_starting];
        pods.extend([STARTING; 4]);
        assert_eq!(step(8, rolling(2, 2), &pods, false), Step::default());
    }

    #[test]
    fn a_paused_rollout_holds_its_split_and_scales_it_in_proportion() {
        let hold = Method::Hold(Bounds {
            max_surge: 1,
            max_unavailable: 1,
        });
        let pods = [OLD, OLD, OLD, NEW];
        assert_eq!(step(4, hold, &pods, false), Step::default());
        let s = step(8, hold, &pods, false);
        assert_eq!((s.create, s.create_stable, s.remove.len()), (1, 3, 0));
        assert_eq!(removed(&step(2, hold, &pods, false)), [0, 1]);
        // A lost old pod comes back as an old one.
        let s = step(4, hold, &[OLD, OLD, NEW], false);
        assert_eq!((s.create, s.create_stable), (0, 1));
    }

    #[test]
    fn steady_state_scales_like_a_replica_count() {
        let s = step(2, rolling(1, 0), &[NEW; 4], false);
        assert_eq!(removed(&s), [0, 1]);
        assert_eq!(step(5, rolling(1, 0), &[NEW; 2], false).create, 3);
    }

    #[test]
    fn a_split_moves_to_its_share_and_back_within_the_bounds() {
        let split = |updated| Method::Split {
            bounds: Bounds {
                max_surge: 1,
                max_unavailable: 0,
            },
            updated,
        };
        // 2 of 4 on the update revision: surge one new pod first.
        let s = step(4, split(2), &[OLD; 4], false);
        assert_eq!((s.create, s.create_stable, s.remove.len()), (1, 0, 0));
        let s = step(4, split(2), &[OLD, OLD, OLD, OLD, NEW], false);
        assert_eq!(s.remove, [(0, Why::Outdated)]);
        assert_eq!(s.create, 1);
        // At the split nothing moves.
        assert_eq!(
            step(4, split(2), &[OLD, OLD, NEW, NEW], false),
            Step::default()
        );
        // Back to 0 (an abort): a stable pod starts before a new one goes.
        let s = step(4, split(0), &[OLD, OLD, NEW, NEW], false);
        assert_eq!((s.create, s.create_stable, s.remove.len()), (0, 1, 0));
        let stable_ready = Member {
            updated: false,
            ..NEW
        };
        let s = step(4, split(0), &[OLD, OLD, NEW, NEW, stable_ready], false);
        assert_eq!(s.remove, [(2, Why::Surplus)]);
        assert_eq!(s.create_stable, 1);
    }

    #[test]
    fn recreate_starts_new_pods_once_the_old_are_gone() {
        let s = step(3, Method::Recreate, &[OLD; 3], false);
        assert_eq!(removed(&s), [0, 1, 2]);
        assert_eq!(s.create, 0);
        assert_eq!(step(3, Method::Recreate, &[], true), Step::default());
        assert_eq!(step(3, Method::Recreate, &[], false).create, 3);
    }

    #[test]
    fn pods_not_yet_observed_are_never_removed() {
        let unseen = Member {
            removable: false,
            ..OLD
        };
        let s = step(1, Method::Recreate, &[unseen, OLD], false);
        assert_eq!(removed(&s), [1]);
        assert_eq!(s.create, 0, "an old pod is left, so nothing new starts");
    }

    fn arb_member() -> impl Strategy<Value = Member> {
        (any::<bool>(), any::<bool>(), prop::bool::weighted(0.9)).prop_map(
            |(updated, available, removable)| Member {
                updated,
                available,
                removable,
            },
        )
    }

    fn arb_bounds() -> impl Strategy<Value = Bounds> {
        (0u32..4, 0u32..4).prop_map(|(s, u)| Bounds {
            max_surge: s,
            max_unavailable: if s == 0 && u == 0 { 1 } else { u },
        })
    }

    fn arb_method() -> impl Strategy<Value = Method> {
        prop_oneof![
            arb_bounds().prop_map(Method::Rolling),
            Just(Method::Recreate),
            (arb_bounds(), 0u32..14)
                .prop_map(|(bounds, updated)| Method::Split { bounds, updated }),
            (0u32..14, 0u32..14).prop_map(|(updated, stable)| Method::Parallel { updated, stable }),
        ]
    }

    /// How many pods of the update revision and of the stable one a method ends with.
    fn wanted(method: Method, replicas: u32) -> (u32, u32) {
        match method {
            Method::Split { updated, .. } => {
                (updated.min(replicas), replicas - updated.min(replicas))
            }
            Method::Parallel { updated, stable } => (updated, stable),
            _ => (replicas, 0),
        }
    }

    /// The pods after a step: removed ones gone, created ones starting.
    fn after(members: &[Member], s: &Step) -> Vec<Member> {
        let gone: Vec<usize> = removed(s);
        let mut next: Vec<Member> = members
            .iter()
            .enumerate()
            .filter(|(i, _)| !gone.contains(i))
            .map(|(_, m)| *m)
            .collect();
        next.extend((0..s.create).map(|_| STARTING));
        next.extend((0..s.create_stable).map(|_| Member {
            updated: false,
            ..STARTING
        }));
        next
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn stays_within_the_bounds(
            replicas in 0u32..12,
            method in arb_method(),
            members in prop::collection::vec(arb_member(), 0..20),
        ) {
            let s = step(replicas, method, &members, false);
            let next = after(&members, &s);
            for &(i, _) in &s.remove {
                prop_assert!(members[i].removable, "removed a pod not yet observed");
            }
            let mut seen = s.remove.iter().map(|(i, _)| *i).collect::<Vec<_>>();
            seen.dedup();
            prop_assert_eq!(seen.len(), s.remove.len(), "a pod removed twice");
            if let Method::Rolling(b) | Method::Split { bounds: b, .. } = method {
                let max_total = (replicas + b.max_surge) as usize;
                let created = s.create + s.create_stable;
                prop_assert!(created == 0 || next.len() <= max_total, "surged past {}", max_total);
                let min_available = replicas.saturating_sub(b.max_unavailable) as usize;
                let available = |ms: &[Member]| ms.iter().filter(|m| m.available).count();
                if members.len() <= max_total && available(&members) >= min_available {
                    prop_assert!(
                        available(&next) >= min_available,
                        "availability fell to {} (floor {})", available(&next), min_available
                    );
                }
            } else if method == Method::Recreate {
                let old_left = next.iter().any(|m| !m.updated);
                prop_assert!(s.create == 0 || !old_left, "new pods beside old ones");
            }
            // Pods just created that turn out surplus stay until observed; nothing else
            // keeps a revision above its share.
            let (updated, stable) = wanted(method, replicas);
            let unseen = |new: bool| {
                members.iter().filter(|m| m.updated == new && !m.removable).count()
            };
            let count = |new: bool| next.iter().filter(|m| m.updated == new).count();
            // (A split moving down keeps new pods while the availability floor needs them.)
            let most = if matches!(method, Method::Parallel { .. }) { updated } else { replicas };
            prop_assert!(
                count(true) <= most as usize + unseen(true),
                "more updated pods than wanted"
            );
            if let Method::Parallel { .. } = method {
                prop_assert!(count(false) <= stable as usize + unseen(false), "too many stable pods");
            }
        }

        #[test]
        fn a_removal_cap_holds_and_keeps_the_bounds(
            replicas in 0u32..12,
            method in arb_method(),
            members in prop::collection::vec(arb_member(), 0..20),
            cap in 0usize..4,
        ) {
            let s = step_within(replicas, method, &members, false, cap);
            prop_assert!(s.remove.len() <= cap);
            if let Method::Rolling(b) | Method::Split { bounds: b, .. } = method {
                let next = after(&members, &s);
                let max_total = (replicas + b.max_surge) as usize;
                let created = s.create + s.create_stable;
                prop_assert!(created == 0 || next.len() <= max_total, "surged past {}", max_total);
            }
        }

        #[test]
        fn converges_to_the_wanted_split(
            replicas in 0u32..12,
            method in arb_method(),
            members in prop::collection::vec(arb_member(), 0..20),
            flaky in prop::collection::vec(any::<bool>(), 64),
        ) {
            let mut pods: Vec<Member> = members.into_iter().map(|m| Member { removable: true, ..m }).collect();
            for round in 0..64 {
                let s = step(replicas, method, &pods, false);
                pods = after(&pods, &s);
                // Time passes: starting pods become available (some a round later).
                for (i, p) in pods.iter_mut().enumerate() {
                    if !p.available && (flaky[(round + i) % 64] || round > 40) {
                        p.available = true;
                    }
                }
            }
            let (updated, stable) = wanted(method, replicas);
            prop_assert_eq!(pods.len(), (updated + stable) as usize);
            prop_assert!(pods.iter().all(|m| m.available));
            prop_assert_eq!(pods.iter().filter(|m| m.updated).count(), updated as usize);
            prop_assert_eq!(step(replicas, method, &pods, false), Step::default());
        }
    }

    /// Interleavings: a workload model driven by random events — template changes and
    /// reverts, scaling, pauses, canary weights, pods failing, becoming ready and being
    /// observed — with the controller stepping in between, checked at every step.
    mod interleaving {
        use drover_crds::RollingUpdate;
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        use proptest::prelude::*;

        use super::super::*;
        use crate::rollout::canary::updated_for;

        #[derive(Debug, Clone, Copy)]
        struct Pod {
            revision: u32,
            available: bool,
            observed: bool,
        }

        #[derive(Debug, Clone, Copy)]
        enum Kind {
            Rolling,
            Recreate,
            Canary,
        }

        #[derive(Debug, Clone, Copy)]
        enum Event {
            /// The controller steps, removing at most `cap` pods (a disruption budget).
            Step {
                cap: usize,
            },
            /// The watch delivers every pod created so far.
            Observe,
            Ready(usize),
            /// Every pod becomes available (what many single `Ready`s do to a large
            /// workload).
            ReadyAll,
            Unready(usize),
            Lost(usize),
            Scale(u32),
            /// A new template, or back to the stable revision.
            Template {
                revert: bool,
            },
            Pause(bool),
            Weight(u32),
        }

        /// Events for a workload of up to about `scale` replicas.
        fn arb_event(scale: u32) -> impl Strategy<Value = Event> {
            prop_oneof![
                6 => prop_oneof![Just(1usize), Just(2), Just(usize::MAX)]
                    .prop_map(|cap| Event::Step { cap }),
                3 => Just(Event::Observe),
                5 => any::<usize>().prop_map(Event::Ready),
                1 => Just(Event::ReadyAll),
                1 => any::<usize>().prop_map(Event::Unready),
                1 => any::<usize>().prop_map(Event::Lost),
                2 => (0..scale + scale / 3).prop_map(Event::Scale),
                1 => any::<bool>().prop_map(|revert| Event::Template { revert }),
                1 => any::<bool>().prop_map(Event::Pause),
                1 => (0u32..=100).prop_map(Event::Weight),
            ]
        }

        struct World {
            kind: Kind,
            surge: u32,
            unavailable: u32,
            replicas: u32,
            paused: bool,
            weight: u32,
            /// The revision new pods run, and the one every pod ran when the last
            /// rollout completed (what stable pods run).
            update: u32,
            current: u32,
            next_revision: u32,
            pods: Vec<Pod>,
        }

        impl World {
            fn bounds(&self) -> Bounds {
                let percent = |p: u32| Some(IntOrString::String(format!("{p}%")));
                Bounds::resolve(
                    &RollingUpdate {
                        max_surge: percent(self.surge),
                        max_unavailable: percent(self.unavailable),
                    },
                    self.replicas,
                )
            }

            /// As the App picks it: a canary with nothing stable to fall back on moves
            /// like a rolling update.
            fn method(&self) -> Method {
                let bounds = self.bounds();
                match self.kind {
                    _ if self.paused => Method::Hold(bounds),
                    Kind::Recreate => Method::Recreate,
                    Kind::Canary if self.current != self.update => Method::Split {
                        bounds,
                        updated: updated_for(self.weight, self.replicas),
                    },
                    Kind::Rolling | Kind::Canary => Method::Rolling(bounds),
                }
            }

            fn members(&self) -> Vec<Member> {
                self.pods
                    .iter()
                    .map(|p| Member {
                        updated: p.revision == self.update,
                        available: p.available,
                        removable: p.observed,
                    })
                    .collect()
            }

            fn pod(&mut self, i: usize) -> Option<&mut Pod> {
                let n = self.pods.len();
                (n > 0).then(|| &mut self.pods[i % n])
            }

            /// One step, its writes landed; checks the invariants.
            fn step(&mut self, cap: usize) -> Result<Step, TestCaseError> {
                let method = self.method();
                let members = self.members();
                let s = step_within(self.replicas, method, &members, false, cap);
                prop_assert!(s.remove.len() <= cap, "past the removal cap");
                let mut seen = vec![false; members.len()];
                for &(i, _) in &s.remove {
                    prop_assert!(members[i].removable, "removed a pod not yet observed");
                    prop_assert!(!std::mem::replace(&mut seen[i], true), "removed twice");
                }
                let live = members.len();
                let available = |ps: &[Pod]| ps.iter().filter(|p| p.available).count();
                let available_before = available(&self.pods);
                let updated_before = members.iter().filter(|m| m.updated).count();
                let old_before = live - updated_before;
                self.pods = self
                    .pods
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !seen[*i])
                    .map(|(_, p)| *p)
                    .collect();
                // Pods of the stable revision; with none distinct from the update
                // revision, the App starts update pods instead.
                let stable = if self.current == self.update {
                    self.update
                } else {
                    self.current
                };
                for (n, revision) in [(s.create, self.update), (s.create_stable, stable)] {
                    self.pods.extend((0..n).map(|_| Pod {
                        revision,
                        available: false,
                        observed: false,
                    }));
                }
                let r = self.replicas as usize;
                if let Method::Rolling(b) | Method::Split { bounds: b, .. } | Method::Hold(b) =
                    method
                {
                    let max_total = r + b.max_surge as usize;
                    let min_available = r.saturating_sub(b.max_unavailable as usize);
                    if s.create + s.create_stable > 0 {
                        prop_assert!(self.pods.len() <= max_total, "surged past {max_total}");
                    }
                    if live <= max_total && available_before >= min_available {
                        prop_assert!(
                            available(&self.pods) >= min_available,
                            "availability fell below {min_available}"
                        );
                    }
                }
                // Proportional scaling: what a scale-up adds is shared as the pods are.
                if live > 0 && live < r {
                    let exact =
                        |part: usize, of: usize| (r - live) as f64 * part as f64 / of as f64;
                    if let Method::Rolling(_) = method {
                        let off = f64::from(s.create_stable) - exact(old_before, live);
                        prop_assert!(
                            off.abs() <= 1.0,
                            "{s:?} is not proportional to {old_before}/{live}"
                        );
                    }
                    if let Method::Hold(_) = method {
                        let added = f64::from(s.create);
                        prop_assert!((added - exact(updated_before, live)).abs() <= 1.0);
                        prop_assert!(s.remove.is_empty());
                    }
                }
                if matches!(method, Method::Hold(_)) && live == r {
                    prop_assert_eq!(&s, &Step::default(), "a paused rollout replaced pods");
                }
                if self.pods.len() == r && self.pods.iter().all(|p| p.revision == self.update) {
                    self.current = self.update;
                }
                Ok(s)
            }

            fn apply(&mut self, event: Event) -> Result<(), TestCaseError> {
                match event {
                    Event::Step { cap } => {
                        self.step(cap)?;
                    }
                    Event::Observe => self.pods.iter_mut().for_each(|p| p.observed = true),
                    Event::Ready(i) => {
                        if let Some(p) = self.pod(i) {
                            p.available = true;
                        }
                    }
                    Event::ReadyAll => self.pods.iter_mut().for_each(|p| p.available = true),
                    Event::Unready(i) => {
                        if let Some(p) = self.pod(i) {
                            p.available = false;
                        }
                    }
                    Event::Lost(i) => {
                        if !self.pods.is_empty() {
                            let n = self.pods.len();
                            self.pods.remove(i % n);
                        }
                    }
                    Event::Scale(r) => self.replicas = r,
                    Event::Template { revert: true } => self.update = self.current,
                    Event::Template { revert: false } => {
                        self.update = self.next_revision;
                        self.next_revision += 1;
                    }
                    Event::Pause(p) => self.paused = p,
                    Event::Weight(w) => self.weight = w,
                }
                Ok(())
            }
        }

        /// Runs `events` on a world of `replicas` pods of one revision, then resumes,
        /// promotes and lets every pod start: the rollout must complete.
        fn run(
            kind: Kind,
            (surge, unavailable): (u32, u32),
            replicas: u32,
            events: Vec<Event>,
        ) -> Result<(), TestCaseError> {
            let mut world = World {
                kind,
                surge,
                unavailable,
                replicas,
                paused: false,
                weight: 20,
                update: 0,
                current: 0,
                next_revision: 1,
                pods: (0..replicas)
                    .map(|_| Pod {
                        revision: 0,
                        available: true,
                        observed: true,
                    })
                    .collect(),
            };
            for event in events {
                world.apply(event)?;
            }
            // Resumed and promoted, with pods starting and being observed, the
            // rollout completes.
            // (A rollout that may replace one pod at a time takes a round per pod.)
            world.paused = false;
            world.weight = 100;
            for _ in 0..64 + world.replicas {
                world.apply(Event::Observe)?;
                // Nothing left to do with every pod observed and available: done.
                let settled = world.pods.iter().all(|p| p.available);
                if world.step(usize::MAX)? == Step::default() && settled {
                    break;
                }
                world.pods.iter_mut().for_each(|p| p.available = true);
            }
            world.apply(Event::Observe)?;
            prop_assert_eq!(world.pods.len(), world.replicas as usize);
            prop_assert!(
                world
                    .pods
                    .iter()
                    .all(|p| p.revision == world.update && p.available)
            );
            prop_assert_eq!(world.step(usize::MAX)?, Step::default());
            Ok(())
        }

        fn arb_kind() -> impl Strategy<Value = Kind> {
            prop_oneof![
                Just(Kind::Rolling),
                Just(Kind::Recreate),
                Just(Kind::Canary)
            ]
        }

        fn arb_percent() -> impl Strategy<Value = u32> {
            prop_oneof![Just(0u32), Just(25), Just(50)]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn every_step_keeps_the_invariants_and_the_rollout_converges(
                kind in arb_kind(),
                surge in arb_percent(),
                unavailable in arb_percent(),
                replicas in 0u32..12,
                events in prop::collection::vec(arb_event(12), 0..80),
            ) {
                run(kind, (surge, unavailable), replicas, events)?;
            }
        }

        proptest! {
            // Each case moves thousands of pods: fewer cases.
            #![proptest_config(ProptestConfig::with_cases(24))]

            // (Bounds of at least 10%: one pod at a time would take 10,000 rounds.)
            #[test]
            fn large_workloads_keep_the_invariants_and_converge(
                kind in arb_kind(),
                surge in prop_oneof![Just(10u32), Just(25), Just(50)],
                unavailable in prop_oneof![Just(0u32), Just(10), Just(25)],
                replicas in 1000u32..=10_000,
                events in prop::collection::vec(arb_event(10_000), 0..40),
            ) {
                run(kind, (surge, unavailable), replicas, events)?;
            }
        }
    }
}
