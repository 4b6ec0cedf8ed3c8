//! drover's scheduler: places pending pods that name it on nodes, packing them tightly
//! (bin packing) or spreading them. The placement decision is pure and lives here;
//! filters in [`filter`], scores in [`score`].

pub mod bound;
pub mod filter;
pub mod quantity;
pub mod resources;
pub mod run;
pub mod score;

use std::cmp::Reverse;
use std::collections::BTreeMap;

pub use filter::{Load, NodeInfo, PodInfo, Reason};
use resources::{Kind, Resources};
pub use score::{Policy, Weights};

/// The scheduler's default name: pods with this `spec.schedulerName` are its.
pub const NAME: &str = "drover-scheduler";

/// Why a pod fits on no node: how many nodes failed for each reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    pub nodes: usize,
    pub reasons: BTreeMap<Reason, usize>,
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
        if !parts.is_empty() {
            write!(f, ": {}", parts.join(", "))?;
        }
        write!(f, ".")
    }
}

/// The node for `pod`: the best-scoring feasible one, the first by name among equals.
pub fn place(
    pod: &PodInfo,
    nodes: &[NodeInfo],
    policy: Policy,
    weights: &Weights,
) -> Result<usize, Unschedulable> {
    let mut best: Option<(u64, usize)> = None;
    let mut reasons: BTreeMap<Reason, usize> = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        match filter::check(pod, node) {
            Ok(()) => {
                let s = score::score(policy, weights, &pod.requests, node);
                let better =
                    best.is_none_or(|(bs, bi)| s > bs || (s == bs && node.name < nodes[bi].name));
                if better {
                    best = Some((s, i));
                }
            }
            Err(why) => {
                for r in why {
                    *reasons.entry(r).or_default() += 1;
                }
            }
        }
    }
    best.map(|(_, i)| i).ok_or(Unschedulable {
        nodes: nodes.len(),
        reasons,
    })
}

/// Places pending pods together, counting each on its node before the next; returns the
/// node of each pod (or why none), in the order given. Higher priority goes first, then,
/// when bin packing, the larger pods (best fit decreasing: the small ones fill the gaps
/// the large ones leave, where arriving last they would open nodes), then the order given.
pub fn place_batch(
    pods: &[PodInfo],
    nodes: &mut [NodeInfo],
    policy: Policy,
    weights: &Weights,
) -> Vec<Result<usize, Unschedulable>> {
    let mut order: Vec<usize> = (0..pods.len()).collect();
    match policy {
        Policy::BinPack => {
            let total = nodes
                .iter()
                .fold(Resources::default(), |sum, n| sum + n.allocatable);
            order.sort_by_cached_key(|&i| {
                (
                    Reverse(pods[i].priority),
                    Reverse(size(&pods[i], &total, weights)),
                )
            });
        }
        Policy::Spread => order.sort_by_key(|&i| Reverse(pods[i].priority)),
    }
    let mut placed: Vec<Option<Result<usize, Unschedulable>>> = vec![None; pods.len()];
    for i in order {
        let at = place(&pods[i], nodes, policy, weights);
        if let Ok(n) = at {
            nodes[n].add(&pods[i]);
        }
        placed[i] = Some(at);
    }
    placed.into_iter().flatten().collect()
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
