//! One step of a rollout: given the workload's live pods, each either of the update
//! revision or of an older one, how many new pods to start and which pods to remove.
//! Pure; the workload controller turns the step into pod creates and deletes.
//!
//! Invariants (property-tested below):
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
        members,
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
        Method::Rolling(bounds) => plan.balance(replicas, bounds, replicas),
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

struct Planner<'a> {
    members: &'a [Member],
    removed: Vec<bool>,
    removals_left: usize,
    step: Step,
}

impl Planner<'_> {
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
        // Above the surge ceiling (replicas went down): unavailable pods go first, old
        // before new, then available old ones, then available new ones.
        let surplus = self.count(|_| true).saturating_sub(max_total);
        let order = [
            self.live(|m| !m.available && !m.updated),
            self.live(|m| !m.available && m.updated),
            self.live(|m| m.available && !m.updated),
            self.live(|m| m.available && m.updated),
        ]
        .concat();
        self.remove_first(order, surplus, Why::Surplus);
        // Pods beyond their revision's share that serve nothing go at once; available
        // ones as far as the availability floor allows, old before new.
        let n = excess(self, false);
        let unavailable = self.live(|m| !m.updated && !m.available);
        self.remove_first(unavailable, n, Why::Outdated);
        let n = excess(self, true);
        let unavailable = self.live(|m| m.updated && !m.available);
        self.remove_first(unavailable, n, Why::Surplus);
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
        // New pods where a revision is short, the update revision first.
        let mut room = max_total.saturating_sub(self.count(|_| true));
        let missing = updated.saturating_sub(self.count(|m| m.updated)).min(room);
        self.step.create = to_u32(missing);
        room -= missing;
        let missing = stable.saturating_sub(self.count(|m| !m.updated)).min(room);
        self.step.create_stable = to_u32(missing);
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
    fn old_pods_that_serve_nothing_go_at_once() {
        let broken = Member {
            available: false,
            ..OLD
        };
        let s = step(3, rolling(1, 0), &[OLD, broken, OLD], false);
        assert_eq!(s.remove, [(1, Why::Outdated)]);
        assert_eq!(s.create, 2);
    }

    #[test]
    fn a_rollout_to_pods_that_never_become_ready_keeps_the_old_ones() {
        let pods = [OLD, OLD, OLD, OLD, STARTING];
        for _ in 0..3 {
            assert_eq!(step(4, rolling(1, 0), &pods, false), Step::default());
        }
    }

    #[test]
    fn scaling_down_mid_rollout_drops_unavailable_pods_first() {
        let mut pods = vec![OLD; 6];
        pods.extend([STARTING; 2]);
        let s = step(3, rolling(1, 0), &pods, false);
        // 8 live, at most 4: the two starting pods and two old ones go; of the four old
        // ones left, one may go for a new pod (3 must stay available).
        assert_eq!(removed(&s), [6, 7, 0, 1, 2]);
        assert!(s.remove[..4].iter().all(|(_, why)| *why == Why::Surplus));
        assert_eq!(s.remove[4].1, Why::Outdated);
        assert_eq!(s.create, 1);
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
}
