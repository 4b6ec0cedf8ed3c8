//! The pods of a workload as the rollout engine sees them: plain data read from the pod
//! store (or an in-flight create), and what counts as active and available.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// What the rollout engine needs to know of one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodState {
    pub name: String,
    /// Empty for a pod this controller created but has not observed yet.
    pub uid: String,
    pub slot: u32,
    /// The revision it runs (its `drover.dev/revision` label; empty if it has none).
    pub revision: String,
    pub phase: Phase,
    /// Being deleted (has a deletion timestamp).
    pub terminating: bool,
    /// The node it is bound to.
    pub node: Option<String>,
    pub ready: bool,
    /// When it last became ready.
    pub ready_since: Option<Timestamp>,
    pub created: Timestamp,
    pub restarts: i32,
}

impl PodState {
    /// Created by this controller and not observed yet: it exists, but cannot be deleted
    /// by UID until the watch delivers it.
    pub fn is_assumed(&self) -> bool {
        self.uid.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Pending,
    Unknown,
    Running,
    Succeeded,
    Failed,
}

/// The most pods one pass creates, as kube-controller-manager's ReplicaSet controller
/// (its `burstReplicas`): a pass's memory and requests stay bounded however many replicas
/// are asked for. The created pods' watch events bring the next pass, which creates more.
pub const MAX_CREATES_PER_PASS: usize = 500;

/// What the plans need to know of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeHealth {
    Ready,
    /// Not Ready (False or Unknown) since this time.
    NotReadySince(Timestamp),
}

/// Whether a pod counts toward `replicas`: alive, not terminating, not finished.
pub fn is_active(p: &PodState) -> bool {
    !p.terminating && !matches!(p.phase, Phase::Succeeded | Phase::Failed)
}

/// When a ready pod becomes available (ready for `min_ready`); `None` if it is not ready.
pub fn available_at(p: &PodState, min_ready: Duration, now: Timestamp) -> Option<Timestamp> {
    p.ready
        .then(|| add(p.ready_since.unwrap_or(now), min_ready))
}

pub fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

pub fn earliest(a: Option<Timestamp>, b: Timestamp) -> Option<Timestamp> {
    Some(a.map_or(b, |a| a.min(b)))
}
