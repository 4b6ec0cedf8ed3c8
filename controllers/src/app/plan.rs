//! The replica plan of an App: from the pods that exist (plus the creates still in flight)
//! to the pods to create and delete. Pure — no API and no clock: `now` is an input — so
//! every decision is tested without a cluster.
//!
//! Pods are named `<app>-<slot>`. A new pod takes the lowest slot no pod (of any state)
//! and no in-flight create holds, so a controller that plans again from a view that misses
//! its own recent creates picks the same names and the apiserver refuses the duplicates.
//!
//! Healing (finished pods, pods of lost nodes) is decided here; how many pods start and
//! which go — scaling and moving to a new revision alike — is the rollout engine's step.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::engine::pods::{pod_name, slot_of};
use crate::rollout::pods::{
    MAX_CREATES_PER_PASS, NodeHealth, Phase, PodState, add, available_at, earliest, is_active,
};
use crate::rollout::{self, Member, Method, Why};

#[derive(Debug)]
pub struct Input<'a> {
    /// The App's name: pods are `<app>-<slot>`.
    pub app: &'a str,
    pub replicas: u32,
    /// The revision of the current template: new pods run it, others are replaced.
    pub update_revision: &'a str,
    pub method: Method,
    /// A stable revision exists to start pods of (a canary's rest, the old share of a
    /// rollout that is scaled); without one, such pods run the update revision.
    pub stable: bool,
    /// Pods that may be going away at once for voluntary reasons (rollout, scale-in),
    /// terminating ones included; `None`: no budget.
    pub disruption_budget: Option<u32>,
    /// How long a pod must be ready to count as available.
    pub min_ready: Duration,
    pub pods: &'a [PodState],
    /// Health of the nodes pods are bound to. A node missing here is gone — or not yet
    /// seen by the node watch — and counts as NotReady since the pod was created.
    pub nodes: &'a HashMap<String, NodeHealth>,
    /// Names `<app>-<n>` the apiserver reported as taken by a pod that is not the App's.
    pub taken: &'a HashSet<String>,
    /// How full the nodes are (parts per thousand), for a bin-packed App: among pods
    /// alike, those on the least used node go first. Empty: no preference.
    pub node_fill: &'a HashMap<String, u32>,
    pub now: Timestamp,
    /// How long a node may be NotReady before its pods are replaced elsewhere.
    pub node_lost_grace: Duration,
}

/// Why a pod is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// It finished (Succeeded or Failed, e.g. evicted); it is replaced.
    Finished,
    /// Its node has been NotReady longer than the grace period, or is gone.
    NodeLost { node: String },
    /// More pods run than asked for.
    ScaleDown,
    /// It runs an old revision; a pod of the new one takes its place.
    Outdated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub name: String,
    pub uid: String,
    pub reason: Removal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    pub name: String,
    pub slot: u32,
    /// A pod of the stable revision (a canary's rest), not of the update revision.
    pub stable: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub creates: Vec<Create>,
    pub deletes: Vec<Delete>,
    /// When the plan may change with nothing else happening (a NotReady node's grace
    /// period ending).
    pub revisit_at: Option<Timestamp>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.creates.is_empty() && self.deletes.is_empty()
    }
}

/// When a pod's node counts as lost (NotReady, or gone, past the grace period); `None`
/// while the pod is unbound or its node is Ready.
fn lost_at(input: &Input<'_>, pod: &PodState) -> Option<Timestamp> {
    let node = pod.node.as_ref()?;
    match input
        .nodes
        .get(node)
        .copied()
        .unwrap_or(NodeHealth::NotReadySince(pod.created))
    {
        NodeHealth::NotReadySince(since) => Some(add(since, input.node_lost_grace)),
        NodeHealth::Ready => None,
    }
}

pub fn plan(input: &Input<'_>) -> Plan {
    let mut plan = Plan::default();
    let mut active: Vec<&PodState> = vec![];
    for pod in input.pods {
        if pod.terminating {
            continue;
        }
        if pod.is_assumed() {
            // Known only from our own create: it counts, and nothing can be done to it
            // until the watch delivers it.
            if is_active(pod) {
                active.push(pod);
            }
            continue;
        }
        if matches!(pod.phase, Phase::Succeeded | Phase::Failed) {
            plan.deletes.push(delete(pod, Removal::Finished));
            continue;
        }
        if let (Some(node), Some(lost_at)) = (&pod.node, lost_at(input, pod)) {
            if input.now >= lost_at {
                plan.deletes
                    .push(delete(pod, Removal::NodeLost { node: node.clone() }));
                continue;
            }
            plan.revisit_at = earliest(plan.revisit_at, lost_at);
        }
        active.push(pod);
    }

    // The least useful pods go first (see `victim_order`). Pods not observed yet sort
    // first but cannot be deleted by UID: they use up the removals they would take, so
    // no running pod goes in their place, and go in a later pass if still surplus.
    active.sort_by_key(|p| victim_order(p, input.node_fill));
    let members: Vec<Member> = active
        .iter()
        .map(|p| Member {
            updated: p.revision == input.update_revision,
            available: available_at(p, input.min_ready, input.now)
                .is_some_and(|at| at <= input.now),
            removable: !p.is_assumed(),
        })
        .collect();
    let old_terminating = input
        .pods
        .iter()
        .any(|p| p.terminating && p.revision != input.update_revision);
    // A pod terminating on a lost node may never finish (no kubelet confirms it): it
    // holds no share of the budget, or one lost node would block scale-in for good.
    let going = input
        .pods
        .iter()
        .filter(|p| p.terminating)
        .filter(|p| lost_at(input, p).is_none_or(|at| input.now < at))
        .count();
    let max_removals = input
        .disruption_budget
        .map_or(usize::MAX, |b| (b as usize).saturating_sub(going));
    let mut step = rollout::step_within(
        input.replicas,
        input.method,
        &members,
        old_terminating,
        max_removals,
    );
    if !input.stable {
        step.create += std::mem::take(&mut step.create_stable);
    }
    for (i, why) in step.remove {
        let reason = match why {
            Why::Surplus => Removal::ScaleDown,
            Why::Outdated => Removal::Outdated,
        };
        plan.deletes.push(delete(active[i], reason));
    }
    let creates = ((step.create + step.create_stable) as usize).min(MAX_CREATES_PER_PASS);
    if creates > 0 {
        let occupied: BTreeSet<u32> = input
            .pods
            .iter()
            .map(|p| p.slot)
            .chain(input.taken.iter().filter_map(|n| slot_of(input.app, n)))
            .collect();
        let free = (0u32..).filter(|s| !occupied.contains(s));
        for (i, slot) in free.take(creates).enumerate() {
            plan.creates.push(Create {
                name: pod_name(input.app, slot),
                slot,
                stable: i >= step.create as usize,
            });
        }
    }
    plan
}

fn delete(pod: &PodState, reason: Removal) -> Delete {
    Delete {
        name: pod.name.clone(),
        uid: pod.uid.clone(),
        reason,
    }
}

/// Sort key for scale-down: smaller goes first. Unscheduled before scheduled, pending
/// before running, not ready before ready, then those on the least used node (bin-packed
/// Apps: so that node empties), recently ready, often restarted, newer, and higher slots
/// first (so slots stay low).
fn victim_order(p: &PodState, node_fill: &HashMap<String, u32>) -> impl Ord {
    (
        p.node.is_some(),
        match p.phase {
            Phase::Pending => 0,
            Phase::Unknown => 1,
            _ => 2,
        },
        p.ready,
        p.node.as_ref().and_then(|n| node_fill.get(n)).copied(),
        std::cmp::Reverse(p.ready_since),
        std::cmp::Reverse(p.restarts),
        std::cmp::Reverse(p.created),
        std::cmp::Reverse(p.slot),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn pod(slot: u32) -> PodState {
        PodState {
            name: pod_name("web", slot),
            uid: format!("uid-{slot}"),
            slot,
            revision: "web-r1".into(),
            phase: Phase::Running,
            terminating: false,
            node: Some("n1".into()),
            ready: true,
            ready_since: Some(t(0)),
            created: t(0),
            restarts: 0,
        }
    }

    fn nodes() -> HashMap<String, NodeHealth> {
        HashMap::from([
            ("n1".to_string(), NodeHealth::Ready),
            ("n2".to_string(), NodeHealth::Ready),
        ])
    }

    const ROLLING: Method = Method::Rolling(rollout::Bounds {
        max_surge: 1,
        max_unavailable: 0,
    });

    static NO_NAMES: std::sync::LazyLock<HashSet<String>> = std::sync::LazyLock::new(HashSet::new);
    static NO_FILL: std::sync::LazyLock<HashMap<String, u32>> =
        std::sync::LazyLock::new(HashMap::new);

    /// The plan's input in tests: a rolling update to `web-r1` at t=100; tests override
    /// fields with `..input(..)`.
    fn input<'a>(
        replicas: u32,
        pods: &'a [PodState],
        nodes: &'a HashMap<String, NodeHealth>,
    ) -> Input<'a> {
        Input {
            app: "web",
            replicas,
            update_revision: "web-r1",
            method: ROLLING,
            stable: true,
            disruption_budget: None,
            min_ready: Duration::ZERO,
            pods,
            nodes,
            taken: &NO_NAMES,
            node_fill: &NO_FILL,
            now: t(100),
            node_lost_grace: Duration::from_secs(30),
        }
    }

    fn run(replicas: u32, pods: &[PodState], nodes: &HashMap<String, NodeHealth>) -> Plan {
        plan(&input(replicas, pods, nodes))
    }

    fn names(creates: &[Create]) -> Vec<&str> {
        creates.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn creates_the_lowest_free_slots() {
        let p = run(4, &[pod(1), pod(3)], &nodes());
        assert_eq!(names(&p.creates), ["web-0", "web-2"]);
        assert!(p.deletes.is_empty());
    }

    #[test]
    fn a_pass_creates_at_most_its_cap() {
        let nodes = nodes();
        let p = run(100_000, &[], &nodes);
        assert_eq!(p.creates.len(), MAX_CREATES_PER_PASS);
        assert_eq!(p.creates.last().unwrap().name, "web-499");
        // The next pass, which sees those, creates the next ones.
        let pods = apply(&[], &p);
        let next = run(100_000, &pods, &nodes);
        assert_eq!(next.creates.len(), MAX_CREATES_PER_PASS);
        assert_eq!(next.creates[0].name, "web-500");
    }

    #[test]
    fn nothing_to_do_at_the_right_count() {
        assert!(run(2, &[pod(0), pod(1)], &nodes()).is_empty());
    }

    #[test]
    fn terminating_pods_hold_their_slot_but_do_not_count() {
        let mut old = pod(0);
        old.terminating = true;
        let p = run(1, &[old], &nodes());
        assert_eq!(names(&p.creates), ["web-1"]);
    }

    #[test]
    fn finished_pods_are_deleted_and_replaced() {
        let mut evicted = pod(0);
        evicted.phase = Phase::Failed;
        let p = run(1, &[evicted], &nodes());
        assert_eq!(
            p.deletes,
            [Delete {
                name: "web-0".into(),
                uid: "uid-0".into(),
                reason: Removal::Finished
            }]
        );
        assert_eq!(names(&p.creates), ["web-1"]);
    }

    #[test]
    fn pods_on_a_lost_node_are_replaced_after_the_grace_period() {
        let mut on_n2 = pod(1);
        on_n2.node = Some("n2".into());
        let mut nodes = nodes();
        nodes.insert("n2".into(), NodeHealth::NotReadySince(t(80)));
        let p = run(2, &[pod(0), on_n2.clone()], &nodes);
        assert!(p.is_empty(), "within the grace period nothing moves");
        assert_eq!(p.revisit_at, Some(t(110)));

        nodes.insert("n2".into(), NodeHealth::NotReadySince(t(60)));
        let p = run(2, &[pod(0), on_n2], &nodes);
        assert_eq!(p.deletes[0].reason, Removal::NodeLost { node: "n2".into() });
        assert_eq!(names(&p.creates), ["web-2"]);
    }

    #[test]
    fn pods_on_an_unknown_node_are_replaced_once_the_grace_period_passed() {
        let mut orphan = pod(0);
        orphan.node = Some("gone".into());
        let p = run(1, &[orphan.clone()], &nodes());
        assert_eq!(
            p.deletes[0].reason,
            Removal::NodeLost {
                node: "gone".into()
            }
        );
        assert_eq!(p.creates.len(), 1);
        // A node the watch has not delivered yet does not cost a fresh pod its place.
        orphan.created = t(90);
        assert!(run(1, &[orphan], &nodes()).is_empty());
    }

    #[test]
    fn scale_down_picks_unscheduled_then_not_ready_then_newest() {
        let mut unscheduled = pod(5);
        unscheduled.node = None;
        unscheduled.phase = Phase::Pending;
        unscheduled.ready = false;
        let mut not_ready = pod(4);
        not_ready.ready = false;
        let mut newer = pod(2);
        newer.created = t(50);
        newer.ready_since = Some(t(50));
        let pods = [pod(0), pod(1), newer, pod(3), not_ready, unscheduled];
        let p = run(3, &pods, &nodes());
        let victims: Vec<&str> = p.deletes.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(victims, ["web-5", "web-4", "web-2"]);
        assert!(p.deletes.iter().all(|d| d.reason == Removal::ScaleDown));
    }

    #[test]
    fn a_bin_packed_scale_down_empties_the_least_used_node_first() {
        // web-0 and web-1 (older) on n1, filled 30 % in all; web-2 and web-3 (newer) on
        // n2, filled 60 %: without fills the newer pods go, with them n1 empties.
        let mut pods = vec![pod(0), pod(1), pod(2), pod(3)];
        for p in &mut pods[2..] {
            p.node = Some("n2".into());
            p.created = t(50);
            p.ready_since = Some(t(50));
        }
        let victims = |pods: &[PodState], fill: &HashMap<String, u32>| -> Vec<String> {
            let p = plan(&Input {
                node_fill: fill,
                ..input(2, pods, &nodes())
            });
            p.deletes.into_iter().map(|d| d.name).collect()
        };
        assert_eq!(victims(&pods, &HashMap::new()), ["web-3", "web-2"]);
        let fill = HashMap::from([("n1".to_string(), 300), ("n2".to_string(), 600)]);
        assert_eq!(victims(&pods, &fill), ["web-1", "web-0"]);
        // Health still comes first: a not-ready pod on the fuller node goes before.
        pods[3].ready = false;
        assert_eq!(victims(&pods, &fill), ["web-3", "web-1"]);
    }

    #[test]
    fn assumed_pods_count_and_are_never_deleted() {
        let mut assumed = pod(1);
        assumed.uid = String::new();
        assumed.node = None;
        assumed.phase = Phase::Pending;
        // It counts: nothing is created in its place.
        assert!(run(2, &[pod(0), assumed.clone()], &nodes()).is_empty());
        // It cannot be deleted yet, and no running pod goes in its place.
        let p = run(1, &[pod(0), assumed.clone()], &nodes());
        assert!(p.is_empty(), "{p:?}");
        let p = run(0, &[pod(0), assumed], &nodes());
        assert_eq!(p.deletes.len(), 1);
        assert_eq!(p.deletes[0].name, "web-0");
    }

    #[test]
    fn names_taken_by_foreign_pods_are_skipped() {
        let taken = HashSet::from(["web-0".to_string()]);
        let p = plan(&Input {
            taken: &taken,
            now: t(0),
            ..input(1, &[], &nodes())
        });
        assert_eq!(names(&p.creates), ["web-1"]);
    }

    #[test]
    fn old_revisions_are_replaced_through_the_rollout_step() {
        let mut old = [pod(0), pod(1)];
        for p in &mut old {
            p.revision = "web-r0".into();
        }
        // One pod may surge: a new one starts first.
        let p = run(2, &old, &nodes());
        assert_eq!(names(&p.creates), ["web-2"]);
        assert!(p.deletes.is_empty());
        // Once it is available, an old pod goes for it.
        let pods = [old[0].clone(), old[1].clone(), pod(2)];
        let p = run(2, &pods, &nodes());
        assert_eq!(p.deletes.len(), 1);
        assert_eq!(p.deletes[0].reason, Removal::Outdated);
        assert_eq!(names(&p.creates), ["web-3"]);
    }

    #[test]
    fn paused_keeps_each_revision_and_scales_them_in_proportion() {
        // 1 of 4 pods on the update revision when the rollout was paused.
        let mut pods = vec![pod(0), pod(1), pod(2), pod(3)];
        for p in &mut pods[1..] {
            p.revision = "web-r0".into();
        }
        let held = Method::Hold(rollout::Bounds {
            max_surge: 2,
            max_unavailable: 1,
        });
        let paused = |replicas, pods: &[PodState], stable| {
            plan(&Input {
                method: held,
                stable,
                ..input(replicas, pods, &nodes())
            })
        };
        assert!(paused(4, &pods, true).is_empty(), "no pod is replaced");
        // Doubled: 1 more new pod, 3 more old ones.
        let up = paused(8, &pods, true);
        assert!(up.deletes.is_empty());
        assert_eq!(up.creates.iter().filter(|c| !c.stable).count(), 1);
        assert_eq!(up.creates.iter().filter(|c| c.stable).count(), 3);
        // With no stable revision to start pods of, the update revision takes them all.
        let up = paused(8, &pods, false);
        assert!(up.creates.iter().all(|c| !c.stable) && up.creates.len() == 4);
        // Halved: 2 pods go, both old (1 of 2 pods stays new).
        let down = paused(2, &pods, true);
        assert_eq!(down.deletes.len(), 2);
        assert!(down.deletes.iter().all(|d| d.name != "web-0"));
    }

    #[test]
    fn a_disruption_budget_paces_scale_in() {
        let within = |budget, pods: &[PodState]| {
            plan(&Input {
                disruption_budget: Some(budget),
                ..input(1, pods, &nodes())
            })
        };
        let pods = [pod(0), pod(1), pod(2), pod(3)];
        assert_eq!(within(1, &pods).deletes.len(), 1);
        assert_eq!(within(2, &pods).deletes.len(), 2);
        // One still going: the budget is spent until it is gone.
        let mut going = pod(4);
        going.terminating = true;
        let pods = [pod(0), pod(1), pod(2), going.clone()];
        assert!(within(1, &pods).deletes.is_empty());
        // Unless it is stuck on a lost node: that one may never finish.
        going.node = Some("gone".into());
        let pods = [pod(0), pod(1), pod(2), going];
        assert_eq!(within(1, &pods).deletes.len(), 1);
    }

    #[test]
    fn slots_parse_only_for_this_app() {
        assert_eq!(slot_of("web", "web-12"), Some(12));
        assert_eq!(slot_of("web", "web-api-1"), None);
        assert_eq!(slot_of("web", "webx-1"), None);
    }

    fn arb_pod() -> impl Strategy<Value = PodState> {
        (
            0u32..40,
            prop_oneof![
                Just(Phase::Pending),
                Just(Phase::Running),
                Just(Phase::Unknown),
                Just(Phase::Succeeded),
                Just(Phase::Failed)
            ],
            any::<bool>(),
            prop::option::of(prop_oneof![
                Just("n1"),
                Just("n2"),
                Just("n3"),
                Just("gone")
            ]),
            any::<bool>(),
            any::<bool>(),
            0i64..200,
        )
            .prop_map(
                |(slot, phase, terminating, node, ready, assumed, age)| PodState {
                    name: pod_name("web", slot),
                    uid: if assumed {
                        String::new()
                    } else {
                        format!("uid-{slot}")
                    },
                    slot,
                    revision: "web-r1".into(),
                    phase,
                    terminating,
                    node: node.map(str::to_string),
                    ready,
                    ready_since: ready.then(|| t(age)),
                    created: t(age),
                    restarts: (age % 7) as i32,
                },
            )
    }

    /// Observed worlds: pods with unique slots (names are unique in a namespace), nodes of
    /// every health.
    fn arb_world() -> impl Strategy<Value = (u32, Vec<PodState>, HashMap<String, NodeHealth>)> {
        (
            0u32..25,
            prop::collection::vec(arb_pod(), 0..30),
            prop::sample::select(vec![0i64, 60, 95]),
        )
            .prop_map(|(replicas, pods, n3_since)| {
                let mut seen = HashSet::new();
                let pods = pods.into_iter().filter(|p| seen.insert(p.slot)).collect();
                let mut nodes = nodes();
                nodes.insert("n3".into(), NodeHealth::NotReadySince(t(n3_since)));
                (replicas, pods, nodes)
            })
    }

    /// The world after the plan's writes land: creates appear as pending pods, deletes as
    /// terminating ones.
    fn apply(pods: &[PodState], p: &Plan) -> Vec<PodState> {
        let mut next: Vec<PodState> = pods
            .iter()
            .map(|pod| {
                let mut pod = pod.clone();
                if p.deletes.iter().any(|d| d.name == pod.name) {
                    pod.terminating = true;
                }
                pod
            })
            .collect();
        for c in &p.creates {
            next.push(PodState {
                name: c.name.clone(),
                uid: format!("new-{}", c.slot),
                slot: c.slot,
                revision: "web-r1".into(),
                phase: Phase::Pending,
                terminating: false,
                node: None,
                ready: false,
                ready_since: None,
                created: t(100),
                restarts: 0,
            });
        }
        next
    }

    fn countable(pods: &[PodState], nodes: &HashMap<String, NodeHealth>) -> usize {
        pods.iter()
            .filter(|p| is_active(p))
            .filter(|p| {
                p.is_assumed()
                    || match p.node.as_deref() {
                        None => true,
                        Some(n) => match nodes
                            .get(n)
                            .copied()
                            .unwrap_or(NodeHealth::NotReadySince(p.created))
                        {
                            NodeHealth::Ready => true,
                            NodeHealth::NotReadySince(s) => {
                                t(100) < add(s, Duration::from_secs(30))
                            }
                        },
                    }
            })
            .count()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn never_overshoots_and_never_undershoots((replicas, pods, nodes) in arb_world()) {
            let p = run(replicas, &pods, &nodes);
            let before = countable(&pods, &nodes);
            let after = countable(&apply(&pods, &p), &nodes);
            if before <= replicas as usize {
                prop_assert_eq!(after, replicas as usize, "creates bring the count to replicas");
            } else {
                prop_assert!(after >= replicas as usize, "scale-down stops at replicas");
                prop_assert!(p.creates.is_empty(), "no create while above replicas");
            }
        }

        #[test]
        fn new_names_are_fresh_and_deletes_target_observed_pods((replicas, pods, nodes) in arb_world()) {
            let p = run(replicas, &pods, &nodes);
            let existing: HashSet<&str> = pods.iter().map(|p| p.name.as_str()).collect();
            let mut fresh = HashSet::new();
            for c in &p.creates {
                prop_assert!(!existing.contains(c.name.as_str()), "{} exists", c.name);
                prop_assert!(fresh.insert(c.name.clone()), "{} twice", c.name);
            }
            for d in &p.deletes {
                prop_assert!(!d.uid.is_empty(), "delete of an unobserved pod");
                let pod = pods.iter().find(|p| p.name == d.name).unwrap();
                prop_assert!(!pod.terminating, "delete of a terminating pod");
            }
        }

        #[test]
        fn converges_in_one_pass((replicas, pods, nodes) in arb_world()) {
            let first = run(replicas, &pods, &nodes);
            let second = run(replicas, &apply(&pods, &first), &nodes);
            // Assumed pods above replicas wait to be observed; everything else settles.
            let assumed_surplus = pods.iter().any(|p| p.is_assumed() && is_active(p));
            if !assumed_surplus {
                prop_assert!(second.is_empty(), "second pass wants {:?}", second);
            } else {
                prop_assert!(second.creates.is_empty());
            }
        }

        #[test]
        fn planning_from_a_stale_view_repeats_the_same_names((replicas, pods, nodes) in arb_world()) {
            // A controller that plans again before its creates are observed proposes the
            // very names it already created: the apiserver refuses them as duplicates.
            let first = run(replicas, &pods, &nodes);
            let again = run(replicas, &pods, &nodes);
            prop_assert_eq!(first, again);
        }
    }
}
