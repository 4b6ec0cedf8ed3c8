//! How good a feasible node is for a pod: bin packing (the fuller the node after the pod,
//! the better — fewer, fuller nodes) or spreading (the emptier, the better), each a
//! weighted average over the resources; ties go to the node whose name sorts first, so
//! the same cluster and pods always give the same placement.

use super::filter::NodeInfo;
use super::resources::{Kind, Requests};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    BinPack,
    Spread,
}

/// Per-resource weights of the score (kube-scheduler's default: CPU and memory, 1 each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    pub cpu: u32,
    pub memory: u32,
    pub ephemeral: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            cpu: 1,
            memory: 1,
            ephemeral: 0,
        }
    }
}

impl Weights {
    pub fn of(&self, kind: Kind) -> u64 {
        u64::from(match kind {
            Kind::Cpu => self.cpu,
            Kind::Memory => self.memory,
            Kind::Ephemeral => self.ephemeral,
            Kind::Pods => 0,
        })
    }
}

/// The highest score.
pub const MAX: u64 = 1_000_000;

/// The node's score for the pod, 0..=MAX.
pub fn score(policy: Policy, weights: &Weights, pod: &Requests, node: &NodeInfo) -> u64 {
    let mut total = 0;
    let mut weight_sum = 0;
    for kind in Kind::ALL {
        let w = weights.of(kind);
        let capacity = node.allocatable.get(kind);
        if w == 0 || capacity == 0 {
            continue;
        }
        let used = (node.load.requested.score.get(kind) + pod.score.get(kind)).min(capacity);
        let fill = u128::from(used) * u128::from(MAX) / u128::from(capacity);
        let fill = u64::try_from(fill).unwrap_or(MAX);
        total += w * match policy {
            Policy::BinPack => fill,
            Policy::Spread => MAX - fill,
        };
        weight_sum += w;
    }
    total.checked_div(weight_sum).unwrap_or(0)
}
