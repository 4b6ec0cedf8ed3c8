//! Which nodes a pod may go to, and why the others may not: resources against
//! allocatable (pods bound and assumed counted), nodeSelector, required node affinity,
//! taints, unschedulable and NotReady nodes, host ports. Reasons read as kube-scheduler's.
//! Rules that read the pods on other nodes (inter-pod affinity, topology spread) are in
//! [`super::topology`].

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};

use super::resources::{self, Kind, Requests, Resources};
use super::topology::{Constraints, Resident, Spread, Term};

/// A host port a pod holds on its node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: String,
    /// Empty or `0.0.0.0`: every address.
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    fn conflicts(&self, other: &HostPort) -> bool {
        let any = |ip: &str| ip.is_empty() || ip == "0.0.0.0";
        self.port == other.port
            && self.protocol == other.protocol
            && (any(&self.ip) || any(&other.ip) || self.ip == other.ip)
    }
}

/// What the scheduler knows of a node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    pub allocatable: Resources,
    /// The pods bound or assumed on it.
    pub load: Load,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub ready: bool,
}

/// What the pods on a node take of it together: their requests, for fitting and for
/// scoring, and their host ports; and what the inter-pod rules of others read of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Load {
    pub requested: Requests,
    pub host_ports: Vec<HostPort>,
    pub residents: Vec<Arc<Resident>>,
    /// How many of the residents have anti-affinity terms.
    pub anti_affine: usize,
}

impl Load {
    pub fn add(&mut self, pod: &PodInfo) {
        self.requested.fit = self.requested.fit + pod.requests.fit;
        self.requested.score = self.requested.score + pod.requests.score;
        self.host_ports.extend(pod.host_ports.iter().cloned());
        if let Some(r) = &pod.resident {
            self.anti_affine += usize::from(!r.anti_affinity.is_empty());
            self.residents.push(r.clone());
        }
    }

    pub fn remove(&mut self, pod: &PodInfo) {
        self.requested.fit = self.requested.fit - pod.requests.fit;
        self.requested.score = self.requested.score - pod.requests.score;
        for port in &pod.host_ports {
            if let Some(i) = self.host_ports.iter().position(|p| p == port) {
                self.host_ports.swap_remove(i);
            }
        }
        if let Some(r) = &pod.resident
            && let Some(i) = self.residents.iter().position(|q| Arc::ptr_eq(q, r))
        {
            self.anti_affine -= usize::from(!r.anti_affinity.is_empty());
            self.residents.swap_remove(i);
        }
    }
}

impl NodeInfo {
    /// A node with no pod counted on it yet.
    pub fn from_node(node: &Node) -> NodeInfo {
        let spec = node.spec.as_ref();
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            allocatable: resources::allocatable(node),
            load: Load::default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec.and_then(|s| s.taints.clone()).unwrap_or_default(),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            ready: node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
        }
    }

    /// Counts a pod on the node (bound, or assumed by this scheduler).
    pub fn add(&mut self, pod: &PodInfo) {
        self.load.add(pod);
    }
}

/// What the scheduler needs of a pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodInfo {
    pub requests: Requests,
    /// `spec.priority`: higher is placed first.
    pub priority: i32,
    pub node_selector: BTreeMap<String, String>,
    pub affinity: Option<NodeSelector>,
    pub tolerations: Vec<Toleration>,
    pub host_ports: Vec<HostPort>,
    /// The pod as others see it once placed (its own anti-affinity terms included).
    pub resident: Option<Arc<Resident>>,
    /// Required pod affinity.
    pub affinity_terms: Vec<Term>,
    pub spread: Vec<Spread>,
    /// Why drover-scheduler will not place the pod at all (something it cannot honour).
    pub blocked: Option<String>,
}

impl PodInfo {
    pub fn from_pod(pod: &Pod) -> PodInfo {
        let Some(spec) = pod.spec.as_ref() else {
            return PodInfo::default();
        };
        let (constraints, mut blocked) = match Constraints::of(pod) {
            Ok(c) => (c, None),
            Err(why) => (Constraints::default(), Some(why)),
        };
        if let Some(volume) = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some())
        {
            blocked = Some(format!(
                "volume {:?} needs a PersistentVolumeClaim, and drover-scheduler does not \
                 place pods with claims (leave spec.placement.binPack off for this App)",
                volume.name
            ));
        }
        PodInfo {
            priority: spec.priority.unwrap_or(0),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            affinity: spec
                .affinity
                .as_ref()
                .and_then(|a| a.node_affinity.as_ref())
                .and_then(|n| {
                    n.required_during_scheduling_ignored_during_execution
                        .clone()
                }),
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            resident: Some(Arc::new(Resident {
                anti_affinity: constraints.anti_affinity,
                ..resident(pod)
            })),
            affinity_terms: constraints.affinity,
            spread: constraints.spread,
            blocked,
            ..PodInfo::load_of(pod)
        }
    }

    /// Whether placing the pod reads the pods on the nodes (or it is not placed at all).
    pub fn has_inter_pod_rules(&self) -> bool {
        self.blocked.is_some()
            || !self.affinity_terms.is_empty()
            || !self.spread.is_empty()
            || self
                .resident
                .as_ref()
                .is_some_and(|r| !r.anti_affinity.is_empty())
    }

    /// What a bound pod holds of its node: its requests and host ports only.
    pub fn load_of(pod: &Pod) -> PodInfo {
        let Some(spec) = pod.spec.as_ref() else {
            return PodInfo::default();
        };
        PodInfo {
            requests: resources::pod_requests(spec),
            host_ports: spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .flat_map(|c| c.ports.iter().flatten())
                .filter(|p| p.host_port.is_some_and(|h| h > 0))
                .map(|p| HostPort {
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    ip: p.host_ip.clone().unwrap_or_default(),
                    port: p.host_port.unwrap_or(0),
                })
                .collect(),
            resident: Some(Arc::new(Resident {
                // Terms that do not parse were refused when the pod was placed.
                anti_affinity: Constraints::of(pod)
                    .map(|c| c.anti_affinity)
                    .unwrap_or_default(),
                ..resident(pod)
            })),
            ..PodInfo::default()
        }
    }
}

/// A pod's namespace and labels.
fn resident(pod: &Pod) -> Resident {
    Resident {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        anti_affinity: vec![],
    }
}

/// Why a node cannot take a pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    Insufficient(Kind),
    NotReady,
    Unschedulable,
    Selector,
    Taint { key: String, value: String },
    Ports,
    PodAffinity,
    PodAntiAffinity,
    ExistingAntiAffinity,
    Spread,
    SpreadLabel,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Insufficient(Kind::Pods) => write!(f, "Too many pods"),
            Reason::Insufficient(kind) => write!(f, "Insufficient {}", kind.name()),
            Reason::NotReady => write!(f, "node(s) were not ready"),
            Reason::Unschedulable => write!(f, "node(s) were unschedulable"),
            Reason::Selector => write!(f, "node(s) didn't match Pod's node affinity/selector"),
            Reason::Taint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Reason::Ports => write!(
                f,
                "node(s) didn't have free ports for the requested pod ports"
            ),
            Reason::PodAffinity => write!(f, "node(s) didn't match pod affinity rules"),
            Reason::PodAntiAffinity => write!(f, "node(s) didn't match pod anti-affinity rules"),
            Reason::ExistingAntiAffinity => write!(
                f,
                "node(s) didn't satisfy existing pods anti-affinity rules"
            ),
            Reason::Spread => write!(f, "node(s) didn't match pod topology spread constraints"),
            Reason::SpreadLabel => write!(
                f,
                "node(s) didn't match pod topology spread constraints (missing required label)"
            ),
        }
    }
}

const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Whether `node` may take `pod`: [`check`] without the reasons, the requests first (what
/// most nodes fail on when many are full, and cheap to tell).
pub fn fits(pod: &PodInfo, node: &NodeInfo) -> bool {
    let free = node.allocatable - node.load.requested.fit;
    free.covers(&pod.requests.fit) && check(pod, node).is_ok()
}

/// Whether `node` may take `pod`; if not, every reason why.
pub fn check(pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<Reason>> {
    let mut reasons = vec![];
    if !node.ready {
        reasons.push(Reason::NotReady);
    }
    if node.unschedulable
        && !pod.tolerations.iter().any(|t| {
            tolerates(
                t,
                &Taint {
                    key: UNSCHEDULABLE_TAINT.into(),
                    effect: "NoSchedule".into(),
                    ..Taint::default()
                },
            )
        })
    {
        reasons.push(Reason::Unschedulable);
    }
    if !selects(pod, node) {
        reasons.push(Reason::Selector);
    }
    if let Some(taint) = untolerated(pod, node) {
        reasons.push(Reason::Taint {
            key: taint.key.clone(),
            value: taint.value.clone().unwrap_or_default(),
        });
    }
    let free = node.allocatable - node.load.requested.fit;
    reasons.extend(
        free.short_of(&pod.requests.fit)
            .into_iter()
            .map(Reason::Insufficient),
    );
    if pod
        .host_ports
        .iter()
        .any(|p| node.load.host_ports.iter().any(|q| p.conflicts(q)))
    {
        reasons.push(Reason::Ports);
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

/// The first taint of `node` that keeps `pod` off it.
pub(super) fn untolerated<'a>(pod: &PodInfo, node: &'a NodeInfo) -> Option<&'a Taint> {
    node.taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !pod.tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// The nodeSelector and the required node affinity both hold.
pub(super) fn selects(pod: &PodInfo, node: &NodeInfo) -> bool {
    pod.node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
        && pod.affinity.as_ref().is_none_or(|a| {
            a.node_selector_terms
                .iter()
                .any(|term| term_matches(term, node))
        })
}

/// A term holds when all its requirements do; an empty term selects nothing.
fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let name_fields = BTreeMap::from([("metadata.name".to_string(), node.name.clone())]);
    exprs.iter().all(|r| requirement(r, &node.labels))
        && fields.iter().all(|r| requirement(r, &name_fields))
}

fn requirement(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&r.key);
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                value.and_then(|v| number(v)),
                values.first().and_then(|v| number(v)),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

/// A toleration covers a taint: same effect (or any), and the key and value as its
/// operator says (an empty key with `Exists` covers every taint).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => key.is_empty() || key == taint.key,
        "Equal" => {
            key == taint.key
                && t.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}
