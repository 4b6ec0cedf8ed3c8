//! Pending pods from one pass to the next when they arrive faster than they can be
//! bound, or when bin packing lets them wait for more: the last plan of them, and how
//! often each was passed over. A pass binds only as many as the binder can take soon, and
//! (while pods keep arriving) only those the plan puts on a full node; the others stay
//! pending and are placed again with those that arrive meanwhile, so a stream packs about
//! as tightly as a batch.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use super::resources::{Kind, Resources};
use super::{NodeInfo, Placements, PodInfo, Policy, Unschedulable, Weights};
use super::{admits, place_batch, score};

/// Pods placed on top of the last plan may make up this share of it (one in N) before all
/// pending pods are placed together again.
const REPLAN_EVERY: usize = 4;

/// What a pass decided for a pending pod.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Bind it to this node (index) now; it is counted on the node.
    Bind(usize),
    /// Placed, but its binding could not start soon: it stays pending.
    Hold,
    /// Placed on a node the plan leaves part-empty: it stays pending, to be placed again
    /// with the pods that arrive meanwhile.
    Wait,
    /// It fits on no node.
    Unschedulable(Unschedulable),
}

/// The last plan: each placed pod's node.
#[derive(Debug)]
struct Plan<K> {
    nodes: HashMap<K, String>,
    /// Pods pending when all were placed together, and placed on top since.
    size: usize,
    added: usize,
}

/// Pending pods (`K` names one) between passes.
#[derive(Debug)]
pub struct Queue<K> {
    plan: Option<Plan<K>>,
    /// How many younger pods were bound before each.
    overtaken: HashMap<K, usize>,
}

impl<K> Default for Queue<K> {
    fn default() -> Self {
        Queue {
            plan: None,
            overtaken: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> Queue<K> {
    /// One pass over the pending pods (`keys` and `pods`, oldest first) on `nodes`, which
    /// count what is bound and being bound: places them, then picks up to `room` of them
    /// to bind now, in [`bind_order`], and counts those on their nodes. A pod that
    /// `may_wait` is bound only if the plan fills its node ([`FULL`]).
    ///
    /// The last plan stands for the pods it placed, and those new since are placed on top
    /// of it; once these make up a quarter of it, or a pass finds none new (the stream
    /// has paused), all are placed together again. Capacity that appears meanwhile waits
    /// for that; a planned node that no longer takes its pod (taken by others, tainted,
    /// gone) drops the plan at once.
    pub fn pass(
        &mut self,
        keys: &[K],
        pods: &[PodInfo],
        nodes: &mut [NodeInfo],
        room: usize,
        may_wait: &[bool],
        (policy, weights): (Policy, &Weights),
    ) -> Vec<Decision> {
        let at = self.place(keys, pods, nodes, (policy, weights));
        let pending: HashSet<&K> = keys.iter().collect();
        self.overtaken.retain(|k, _| pending.contains(k));
        let overtaken: Vec<usize> = keys
            .iter()
            .map(|k| self.overtaken.get(k).copied().unwrap_or(0))
            .collect();
        let fullness = planned_fullness(&at, pods, nodes);
        let order = order_by_fullness(&at, &fullness, &overtaken);
        let targets: Vec<Option<usize>> = at.iter().map(|a| a.as_ref().ok().copied()).collect();
        let mut decisions: Vec<Decision> = at
            .into_iter()
            .map(|a| a.map_or_else(Decision::Unschedulable, |_| Decision::Hold))
            .collect();
        let mut binding = 0;
        for i in order {
            if binding == room {
                break;
            }
            let Some(n) = targets[i] else { continue };
            if may_wait[i] && overtaken[i] < MAX_OVERTAKEN && fullness[&n] < FULL {
                decisions[i] = Decision::Wait;
                continue;
            }
            binding += 1;
            if !admits(&pods[i], nodes, n) {
                // Room the plan counted on went to a pod bound by someone else: the pod
                // waits for a new plan.
                self.plan = None;
                continue;
            }
            nodes[n].add(&pods[i]);
            decisions[i] = Decision::Bind(n);
        }
        // Pods held back count the younger ones bound before them.
        let mut younger = 0;
        for (key, decision) in keys.iter().zip(&decisions).rev() {
            match decision {
                Decision::Bind(_) => younger += 1,
                Decision::Hold | Decision::Wait if younger > 0 => {
                    *self.overtaken.entry(key.clone()).or_default() += younger;
                }
                _ => {}
            }
        }
        decisions
    }

    /// Where each pending pod goes (see [`Queue::pass`]); `nodes` come back with the
    /// loads they had.
    fn place(
        &mut self,
        keys: &[K],
        pods: &[PodInfo],
        nodes: &mut [NodeInfo],
        (policy, weights): (Policy, &Weights),
    ) -> Placements {
        let loads: Vec<_> = nodes.iter().map(|n| n.load.clone()).collect();
        let (size, added, placed): (usize, usize, Placements) = match self.on_plan(keys, nodes) {
            // The last plan stands: the pods new since go on top of it.
            Some((known, new)) => {
                for (i, at) in known.iter().enumerate() {
                    if let Some(n) = *at {
                        nodes[n].add(&pods[i]);
                    }
                }
                let fresh: Vec<PodInfo> = new.iter().map(|&i| pods[i].clone()).collect();
                let mut placed: Vec<Option<Result<usize, Unschedulable>>> =
                    known.into_iter().map(|at| at.map(Ok)).collect();
                for (&i, at) in new.iter().zip(place_batch(&fresh, nodes, policy, weights)) {
                    placed[i] = Some(at);
                }
                let (size, added) = self.plan.as_ref().map_or((0, 0), |p| (p.size, p.added));
                (
                    size,
                    added + new.len(),
                    placed.into_iter().flatten().collect(),
                )
            }
            None => (pods.len(), 0, place_batch(pods, nodes, policy, weights)),
        };
        self.plan = Some(Plan {
            nodes: keys
                .iter()
                .zip(&placed)
                .filter_map(|(k, at)| Some((k.clone(), nodes[*at.as_ref().ok()?].name.clone())))
                .collect(),
            size,
            added,
        });
        for (node, load) in nodes.iter_mut().zip(loads) {
            node.load = load;
        }
        placed
    }

    /// When the last plan stands for these pods: the node it gives each (None: new since)
    /// and which are new.
    fn on_plan(&self, keys: &[K], nodes: &[NodeInfo]) -> Option<(Vec<Option<usize>>, Vec<usize>)> {
        let plan = self.plan.as_ref()?;
        let index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let known: Vec<Option<usize>> = keys
            .iter()
            .map(|k| match plan.nodes.get(k) {
                Some(name) => index.get(name.as_str()).map(|&i| Some(i)),
                None => Some(None),
            })
            .collect::<Option<_>>()?;
        let new: Vec<usize> = (0..known.len()).filter(|&i| known[i].is_none()).collect();
        let unchanged = new.is_empty() && plan.added == 0;
        let few = !new.is_empty() && (plan.added + new.len()) * REPLAN_EVERY < plan.size;
        (unchanged || few).then_some((known, new))
    }
}

/// How far a pod may be passed over: by this many younger pods bound before it.
pub const MAX_OVERTAKEN: usize = 256;

/// A node the plan fills to this share (in millionths) of its fullest resource is full:
/// pods that may wait are bound to it at once.
pub const FULL: u64 = 990_000;

/// The order in which to bind placed pods (`at`, pods given oldest first) when the binder
/// cannot take them all at once. Pods of the nodes the plan fills fullest go first (full
/// in their fullest resource), node by node in the order of each node's oldest pod; pods
/// the plan puts on a node it leaves part-empty wait, to be placed again together with
/// those arriving meanwhile — so a stream that outruns the binder packs about as tightly
/// as a batch. A pod already passed over by `MAX_OVERTAKEN` younger ones goes before
/// these, oldest first. Unplaced pods are left out.
pub fn bind_order(
    at: &Placements,
    pods: &[PodInfo],
    nodes: &[NodeInfo],
    overtaken: &[usize],
) -> Vec<usize> {
    order_by_fullness(at, &planned_fullness(at, pods, nodes), overtaken)
}

/// [`bind_order`] given how full the plan leaves each node ([`planned_fullness`]).
fn order_by_fullness(
    at: &Placements,
    fullness: &HashMap<usize, u64>,
    overtaken: &[usize],
) -> Vec<usize> {
    let mut oldest: HashMap<usize, usize> = HashMap::new();
    for (i, a) in at.iter().enumerate() {
        if let Ok(n) = a {
            oldest.entry(*n).or_insert(i);
        }
    }
    let mut order: Vec<usize> = (0..at.len()).filter(|&i| at[i].is_ok()).collect();
    order.sort_by_key(|&i| {
        let n = at[i].as_ref().map_or(0, |n| *n);
        if overtaken.get(i).is_some_and(|&o| o >= MAX_OVERTAKEN) {
            (false, Reverse(0), 0, i)
        } else {
            (true, Reverse(fullness[&n]), oldest[&n], i)
        }
    });
    order
}

/// How full the plan `at` leaves each node it puts pods on: the share of its fullest
/// resource, in millionths.
fn planned_fullness(at: &Placements, pods: &[PodInfo], nodes: &[NodeInfo]) -> HashMap<usize, u64> {
    let mut planned: HashMap<usize, Resources> = HashMap::new();
    for (i, a) in at.iter().enumerate() {
        if let Ok(n) = a {
            let r = planned.entry(*n).or_insert(nodes[*n].load.requested.fit);
            *r = *r + pods[i].requests.fit;
        }
    }
    planned
        .into_iter()
        .map(|(n, r)| (n, dominant_share(&r, &nodes[n].allocatable)))
        .collect()
}

/// The share of `allocatable` that `used` takes of the resource it takes most of, in
/// millionths.
fn dominant_share(used: &Resources, allocatable: &Resources) -> u64 {
    Kind::ALL
        .into_iter()
        .filter(|&k| allocatable.get(k) > 0)
        .map(|k| {
            let share =
                u128::from(used.get(k)) * u128::from(score::MAX) / u128::from(allocatable.get(k));
            u64::try_from(share).unwrap_or(u64::MAX)
        })
        .max()
        .unwrap_or(0)
}
