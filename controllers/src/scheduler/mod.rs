//! drover's scheduler: places pending pods that name it on nodes, packing them tightly
//! (bin packing) or spreading them. The placement decision is pure and lives here;
//! filters in [`filter`], scores in [`score`].

pub mod bound;
pub mod filter;
pub mod quantity;
pub mod queue;
pub mod resources;
pub mod run;
pub mod score;
pub mod topology;

use std::cmp::Reverse;
use std::collections::BTreeMap;

pub use filter::{Load, NodeInfo, PodInfo, Reason};
use resources::{Kind, Resources};
pub use score::{Policy, Weights};
use topology::Rules;

/// The scheduler's default name: pods with this `spec.schedulerName` are its.
pub const NAME: &str = "drover-scheduler";

/// Why a pod fits on no node: how many nodes failed for each reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    pub nodes: usize,
    pub reasons: BTreeMap<Reason, usize>,
    /// Why no node was tried: the pod asks for what drover-scheduler cannot honour.
    pub blocked: Option<String>,
}

impl std::fmt::Display for Unschedulable {
    /// As kube-scheduler words it: `0/3 nodes are available: 1 Insufficient cpu, 2
    /// node(s) didn't match Pod's node affinity/selector.`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        parts.sort();
        write!(f, "0/{} nodes are available", self.nodes)?;
        if let Some(why) = &self.blocked {
            return write!(f, ": {why}.");
        }
        if !parts.is_empty() {
            write!(f, ": {}", parts.join(", "))?;
        }
        write!(f, ".")
    }
}

/// The node for `pod`: the best-scoring feasible one, the first by name among equals
/// (soft spread constraints count before the score).
pub fn place(
    pod: &PodInfo,
    nodes: &[NodeInfo],
    policy: Policy,
    weights: &Weights,
) -> Result<usize, Unschedulable> {
    if let Some(why) = &pod.blocked {
        return Err(Unschedulable {
            nodes: nodes.len(),
            reasons: BTreeMap::new(),
            blocked: Some(why.clone()),
        });
    }
    let rules = Rules::new(pod, nodes);
    let mut best: Option<((Reverse<u64>, u64), usize)> = None;
    for (i, node) in nodes.iter().enumerate() {
        if !filter::fits(pod, node) || rules.as_ref().is_some_and(|r| !r.allows(node)) {
            continue;
        }
        let s = (
            Reverse(rules.as_ref().map_or(0, |r| r.penalty(node))),
            score::score(policy, weights, &pod.requests, node),
        );
        if best.is_none_or(|(bs, bi)| s > bs || (s == bs && node.name < nodes[bi].name)) {
            best = Some((s, i));
        }
    }
    best.map(|(_, i)| i)
        .ok_or_else(|| unschedulable(pod, nodes, rules.as_ref()))
}

/// Whether node `n` may take `pod` now, what is on every node counted.
pub fn admits(pod: &PodInfo, nodes: &[NodeInfo], n: usize) -> bool {
    pod.blocked.is_none()
        && filter::fits(pod, &nodes[n])
        && Rules::new(pod, nodes).is_none_or(|r| r.allows(&nodes[n]))
}

/// Why no node takes `pod`.
fn unschedulable(pod: &PodInfo, nodes: &[NodeInfo], rules: Option<&Rules>) -> Unschedulable {
    let mut reasons: BTreeMap<Reason, usize> = BTreeMap::new();
    for node in nodes {
        let mut why = filter::check(pod, node).err().unwrap_or_default();
        why.extend(rules.map(|r| r.check(node)).unwrap_or_default());
        for r in why {
            *reasons.entry(r).or_default() += 1;
        }
    }
    Unschedulable {
        nodes: nodes.len(),
        reasons,
        blocked: None,
    }
}

/// Where each pod of a batch goes (or why nowhere), in the order given.
pub type Placements = Vec<Result<usize, Unschedulable>>;

/// Pods (by index) and where each goes.
type Placed = Vec<(usize, Result<usize, Unschedulable>)>;

/// Places pending pods together, counting each on its node before the next; returns the
/// node of each pod (or why none), in the order given. Higher priorities go first, each
/// on what the ones before left. Spreading places a priority's pods in the order given.
/// Bin packing tries that order too, the larger pods first (first fit decreasing), and
/// filling one node at a time with the pods that best match what it has left (the dot
/// product of a pod's requests with the node's free share of each resource). Each wins on
/// some mixes — the first where varied shapes arrive mixed, the others where the large
/// ones must go first or shapes must be paired — and the one that places the most pods on
/// the fewest nodes is kept (the earlier on a tie).
pub fn place_batch(
    pods: &[PodInfo],
    nodes: &mut [NodeInfo],
    policy: Policy,
    weights: &Weights,
) -> Placements {
    let mut levels: BTreeMap<Reverse<i32>, Vec<usize>> = BTreeMap::new();
    for (i, pod) in pods.iter().enumerate() {
        levels.entry(Reverse(pod.priority)).or_default().push(i);
    }
    let mut placed: Vec<Option<Result<usize, Unschedulable>>> = vec![None; pods.len()];
    for given in levels.into_values() {
        for (i, at) in place_level(&given, pods, nodes, policy, weights) {
            placed[i] = Some(at);
        }
    }
    placed.into_iter().flatten().collect()
}

/// Places the pods `given` (of one priority) by the best of the orders `place_batch`
/// tries; returns each pod's index and where it goes.
fn place_level(
    given: &[usize],
    pods: &[PodInfo],
    nodes: &mut [NodeInfo],
    policy: Policy,
    weights: &Weights,
) -> Placed {
    if policy == Policy::Spread || given.len() < 2 {
        return in_order(given, pods, nodes, policy, weights);
    }
    let total = nodes
        .iter()
        .fold(Resources::default(), |sum, n| sum + n.allocatable);
    let mut larger_first = given.to_vec();
    larger_first.sort_by_cached_key(|&i| Reverse(size(&pods[i], &total, weights)));
    type Candidate<'a> = &'a dyn Fn(&mut [NodeInfo]) -> Placed;
    let candidates: [Candidate; 3] = [
        &|n| in_order(given, pods, n, policy, weights),
        &|n| in_order(&larger_first, pods, n, policy, weights),
        &|n| node_by_node(given, pods, n, weights),
    ];
    // Each tries from the same loads; the best one's loads are kept.
    let before: Vec<Load> = nodes.iter().map(|n| n.load.clone()).collect();
    let mut best: Option<(Placed, Vec<Load>, (usize, usize))> = None;
    for candidate in candidates {
        for (node, load) in nodes.iter_mut().zip(&before) {
            node.load.clone_from(load);
        }
        let placed = candidate(nodes);
        let cost = (
            placed.iter().filter(|(_, at)| at.is_err()).count(),
            nodes_used(nodes),
        );
        if best.as_ref().is_none_or(|(_, _, c)| cost < *c) {
            best = Some((placed, nodes.iter().map(|n| n.load.clone()).collect(), cost));
        }
    }
    let (placed, loads, _) = best.unwrap_or_default();
    for (node, load) in nodes.iter_mut().zip(loads) {
        node.load = load;
    }
    placed
}

/// How many of the nodes hold a pod.
pub fn nodes_used(nodes: &[NodeInfo]) -> usize {
    nodes
        .iter()
        .filter(|n| n.load.requested.fit.pods > 0)
        .count()
}

/// Places the pods in `order`, each on its best node.
fn in_order(
    order: &[usize],
    pods: &[PodInfo],
    nodes: &mut [NodeInfo],
    policy: Policy,
    weights: &Weights,
) -> Placed {
    order
        .iter()
        .map(|&i| {
            let at = place(&pods[i], nodes, policy, weights);
            if let Ok(n) = at {
                nodes[n].add(&pods[i]);
            }
            (i, at)
        })
        .collect()
}

/// Fills one node at a time, the fullest first (then by name), each time with the pod
/// whose requests best match what the node has free (the first given among equals); the
/// pods no node took are tried once more alone, which says why.
fn node_by_node(
    order: &[usize],
    pods: &[PodInfo],
    nodes: &mut [NodeInfo],
    weights: &Weights,
) -> Placed {
    let fill: Vec<u64> = nodes
        .iter()
        .map(|n| score::score(Policy::BinPack, weights, &Default::default(), n))
        .collect();
    let mut by_fill: Vec<usize> = (0..nodes.len()).collect();
    by_fill.sort_by(|&a, &b| {
        fill[b]
            .cmp(&fill[a])
            .then_with(|| nodes[a].name.cmp(&nodes[b].name))
    });
    // Pods whose placement reads the others' go one by one after the rest.
    let (mut left, ruled): (Vec<usize>, Vec<usize>) =
        order.iter().partition(|&&i| !Rules::apply(&pods[i], nodes));
    let mut placed = vec![];
    for n in by_fill {
        loop {
            let mut best: Option<(u128, usize)> = None;
            for (k, &i) in left.iter().enumerate() {
                if !filter::fits(&pods[i], &nodes[n]) {
                    continue;
                }
                let fit = alignment(&pods[i], &nodes[n], weights);
                if best.is_none_or(|(f, _)| fit > f) {
                    best = Some((fit, k));
                }
            }
            let Some((_, k)) = best else { break };
            let i = left.remove(k);
            nodes[n].add(&pods[i]);
            placed.push((i, Ok(n)));
        }
    }
    left.extend(ruled);
    placed.extend(in_order(&left, pods, nodes, Policy::BinPack, weights));
    placed
}

/// How well a pod's requests match what a node has free: the dot product of both as
/// shares of the node's allocatable, weighted.
fn alignment(pod: &PodInfo, node: &NodeInfo, weights: &Weights) -> u128 {
    let free = node.allocatable - node.load.requested.fit;
    Kind::ALL
        .into_iter()
        .filter(|&k| node.allocatable.get(k) > 0)
        .map(|k| {
            let a = u128::from(node.allocatable.get(k));
            let share = |v: u64| u128::from(v) * u128::from(score::MAX) / a;
            u128::from(weights.of(k)) * share(pod.requests.fit.get(k)) * share(free.get(k))
        })
        .sum()
}

/// A pod's size for ordering: its requests as weighted shares of the nodes' total.
fn size(pod: &PodInfo, total: &Resources, weights: &Weights) -> u128 {
    Kind::ALL
        .into_iter()
        .filter(|&k| total.get(k) > 0)
        .map(|k| {
            u128::from(weights.of(k)) * u128::from(pod.requests.fit.get(k)) * u128::from(score::MAX)
                / u128::from(total.get(k))
        })
        .sum()
}

#[cfg(test)]
mod tests;
