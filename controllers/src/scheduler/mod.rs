//! drover's scheduler: places pending pods that name it on nodes, packing them tightly
//! (bin packing) or spreading them. The placement decision is pure and lives here;
//! filters in [`filter`], scores in [`score`].

pub mod filter;
pub mod quantity;
pub mod resources;
pub mod run;
pub mod score;

use std::collections::BTreeMap;

pub use filter::{NodeInfo, PodInfo, Reason};
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

#[cfg(test)]
mod tests;
