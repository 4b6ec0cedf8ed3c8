//! Placement rules that read the pods already on the nodes: required inter-pod affinity
//! and anti-affinity (the pod's own terms, and those of the pods already placed, which
//! keep matching pods out of their domain), and topology spread constraints. A pod's
//! rules are worked out once per placement over every node's residents
//! ([`Rules::new`]), then asked of each node. Preferred (soft) inter-pod terms are not
//! scored; soft spread constraints are, before the policy's score.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::filter::{self, NodeInfo, PodInfo, Reason};

type Labels = BTreeMap<String, String>;

/// A label selector: every label and every expression must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    labels: Labels,
    exprs: Vec<Expr>,
}

#[derive(Debug, Clone, PartialEq)]
struct Expr {
    key: String,
    op: Op,
    values: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Selector {
    /// The selector, with `matchLabelKeys` (the pod's value of each, required) and
    /// `mismatchLabelKeys` (refused) added as kube-scheduler adds them.
    fn new(
        selector: &LabelSelector,
        own: &Labels,
        match_keys: &[String],
        mismatch_keys: &[String],
    ) -> Result<Selector, String> {
        let mut exprs = vec![];
        for e in selector.match_expressions.iter().flatten() {
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(format!("label selector operator {other:?} is not known")),
            };
            exprs.push(Expr {
                key: e.key.clone(),
                op,
                values: e.values.iter().flatten().cloned().collect(),
            });
        }
        for (keys, op) in [(match_keys, Op::In), (mismatch_keys, Op::NotIn)] {
            for key in keys {
                if let Some(value) = own.get(key) {
                    exprs.push(Expr {
                        key: key.clone(),
                        op,
                        values: BTreeSet::from([value.clone()]),
                    });
                }
            }
        }
        Ok(Selector {
            labels: selector.match_labels.clone().unwrap_or_default(),
            exprs,
        })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.exprs.iter().all(|e| {
                let value = labels.get(&e.key);
                match e.op {
                    Op::In => value.is_some_and(|v| e.values.contains(v)),
                    Op::NotIn => value.is_none_or(|v| !e.values.contains(v)),
                    Op::Exists => value.is_some(),
                    Op::DoesNotExist => value.is_none(),
                }
            })
    }
}

/// A required inter-pod (anti-)affinity term: pods matching `selector` in `namespaces`,
/// within the domain `key` names (nodes with the same value of that label).
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// None (no selector given) matches no pod.
    selector: Option<Selector>,
    namespaces: Namespaces,
    key: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Namespaces {
    All,
    Listed(BTreeSet<String>),
}

impl Term {
    /// The term of a pod in `namespace` with `labels`. A namespace selector with labels
    /// cannot be followed (the scheduler does not watch namespaces): an error says so.
    fn new(term: &PodAffinityTerm, namespace: &str, labels: &Labels) -> Result<Term, String> {
        let listed: BTreeSet<String> = term.namespaces.iter().flatten().cloned().collect();
        let namespaces = match &term.namespace_selector {
            Some(s)
                if s.match_labels.as_ref().is_some_and(|l| !l.is_empty())
                    || s.match_expressions.as_ref().is_some_and(|e| !e.is_empty()) =>
            {
                return Err(format!(
                    "the pod affinity term on {:?} has a namespaceSelector with labels, \
                     which drover-scheduler cannot follow (list the namespaces instead)",
                    term.topology_key
                ));
            }
            Some(_) => Namespaces::All,
            None if listed.is_empty() => Namespaces::Listed(BTreeSet::from([namespace.into()])),
            None => Namespaces::Listed(listed),
        };
        let selector = term
            .label_selector
            .as_ref()
            .map(|s| {
                Selector::new(
                    s,
                    labels,
                    term.match_label_keys.as_deref().unwrap_or_default(),
                    term.mismatch_label_keys.as_deref().unwrap_or_default(),
                )
            })
            .transpose()?;
        Ok(Term {
            selector,
            namespaces,
            key: term.topology_key.clone(),
        })
    }

    fn matches(&self, namespace: &str, labels: &Labels) -> bool {
        let within = match &self.namespaces {
            Namespaces::All => true,
            Namespaces::Listed(names) => names.contains(namespace),
        };
        within && self.selector.as_ref().is_some_and(|s| s.matches(labels))
    }
}

/// A topology spread constraint: matching pods of the pod's namespace spread over the
/// domains of `key`, at most `max_skew` apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    max_skew: u32,
    key: String,
    selector: Option<Selector>,
    /// Fewer eligible domains than this count the least-filled as holding none.
    min_domains: u32,
    /// `DoNotSchedule`; otherwise `ScheduleAnyway`, a preference.
    hard: bool,
    /// Nodes the pod's node selector and affinity refuse are not domains (the default).
    honor_affinity: bool,
    /// Nodes with taints the pod does not tolerate are not domains.
    honor_taints: bool,
}

impl Spread {
    fn new(c: &TopologySpreadConstraint, labels: &Labels) -> Result<Spread, String> {
        let selector = c
            .label_selector
            .as_ref()
            .map(|s| {
                Selector::new(
                    s,
                    labels,
                    c.match_label_keys.as_deref().unwrap_or_default(),
                    &[],
                )
            })
            .transpose()?;
        Ok(Spread {
            max_skew: u32::try_from(c.max_skew.max(1)).unwrap_or(1),
            key: c.topology_key.clone(),
            selector,
            min_domains: c
                .min_domains
                .and_then(|m| u32::try_from(m).ok())
                .unwrap_or(1),
            hard: c.when_unsatisfiable != "ScheduleAnyway",
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        })
    }

    fn selects(&self, labels: &Labels) -> bool {
        self.selector.as_ref().is_some_and(|s| s.matches(labels))
    }

    /// Whether `node` is one of the constraint's domains for `pod`.
    fn counts_on(&self, pod: &PodInfo, node: &NodeInfo) -> bool {
        node.labels.contains_key(&self.key)
            && (!self.honor_affinity || filter::selects(pod, node))
            && (!self.honor_taints || filter::untolerated(pod, node).is_none())
    }
}

/// A pod's inter-pod rules, read from its spec.
#[derive(Debug, Default, PartialEq)]
pub struct Constraints {
    pub affinity: Vec<Term>,
    pub anti_affinity: Vec<Term>,
    pub spread: Vec<Spread>,
}

impl Constraints {
    /// The pod's required inter-pod terms and spread constraints; an error names one that
    /// drover-scheduler cannot follow.
    pub fn of(pod: &Pod) -> Result<Constraints, String> {
        let Some(spec) = pod.spec.as_ref() else {
            return Ok(Constraints::default());
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS);
        let terms = |terms: Option<&Vec<PodAffinityTerm>>| -> Result<Vec<Term>, String> {
            terms
                .into_iter()
                .flatten()
                .map(|t| Term::new(t, namespace, labels))
                .collect()
        };
        let affinity = spec.affinity.as_ref();
        Ok(Constraints {
            affinity: terms(
                affinity
                    .and_then(|a| a.pod_affinity.as_ref())
                    .and_then(|a| {
                        a.required_during_scheduling_ignored_during_execution
                            .as_ref()
                    }),
            )?,
            anti_affinity: terms(
                affinity
                    .and_then(|a| a.pod_anti_affinity.as_ref())
                    .and_then(|a| {
                        a.required_during_scheduling_ignored_during_execution
                            .as_ref()
                    }),
            )?,
            spread: spec
                .topology_spread_constraints
                .iter()
                .flatten()
                .map(|c| Spread::new(c, labels))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// What a pod on a node shows the placement of others: its namespace and labels (matched
/// by their terms and constraints) and its own anti-affinity terms (which keep pods they
/// match out of its domain).
#[derive(Debug, Default, PartialEq)]
pub struct Resident {
    pub namespace: String,
    pub labels: Labels,
    pub anti_affinity: Vec<Term>,
}

/// A pod's rules against the pods on every node, worked out for one placement.
#[derive(Debug)]
pub struct Rules<'a> {
    pod: &'a PodInfo,
    /// For each of the pod's anti-affinity terms, the domains holding a pod it matches.
    shunned: Vec<HashSet<String>>,
    /// For each affinity term, the domains holding a pod it matches; None when no pod
    /// matches any term and the pod matches them all itself: the first of its group goes
    /// wherever the topology keys are.
    sought: Option<Vec<HashSet<String>>>,
    /// Domains (key and value) whose pods' anti-affinity match this pod.
    forbidden: HashSet<(String, String)>,
    /// For each spread constraint, the matching pods in each eligible domain.
    spread: Vec<Domains>,
}

#[derive(Debug, Default)]
struct Domains {
    counts: HashMap<String, u32>,
    /// The fewest in any domain (none when there are fewer domains than required).
    least: u32,
    /// 1 when the pod matches its own selector: placing it adds one.
    itself: u32,
}

static NO_LABELS: Labels = BTreeMap::new();

impl<'a> Rules<'a> {
    /// Whether placing `pod` reads the pods on the nodes at all.
    pub fn apply(pod: &PodInfo, nodes: &[NodeInfo]) -> bool {
        pod.has_inter_pod_rules() || nodes.iter().any(|n| n.load.anti_affine > 0)
    }

    /// The pod's rules on `nodes` as loaded; None when it has none and no pod on them has
    /// anti-affinity terms.
    pub fn new(pod: &'a PodInfo, nodes: &[NodeInfo]) -> Option<Rules<'a>> {
        if !Rules::apply(pod, nodes) {
            return None;
        }
        let (namespace, labels) = pod
            .resident
            .as_ref()
            .map_or(("", &NO_LABELS), |r| (r.namespace.as_str(), &r.labels));
        let anti = pod.resident.as_ref().map_or(&[][..], |r| &r.anti_affinity);
        let mut shunned = vec![HashSet::new(); anti.len()];
        let mut sought = vec![HashSet::<String>::new(); pod.affinity_terms.len()];
        let mut forbidden = HashSet::new();
        let mut spread: Vec<Domains> = pod
            .spread
            .iter()
            .map(|c| Domains {
                itself: u32::from(c.selects(labels)),
                ..Domains::default()
            })
            .collect();
        for node in nodes {
            let domain = |key: &str| node.labels.get(key);
            let eligible: Vec<Option<&String>> = pod
                .spread
                .iter()
                .map(|c| domain(&c.key).filter(|_| c.counts_on(pod, node)))
                .collect();
            for (d, value) in spread.iter_mut().zip(&eligible) {
                if let Some(v) = value {
                    d.counts.entry((*v).clone()).or_insert(0);
                }
            }
            for r in &node.load.residents {
                for (t, found) in anti.iter().zip(&mut shunned) {
                    if let Some(v) = domain(&t.key).filter(|_| t.matches(&r.namespace, &r.labels)) {
                        found.insert(v.clone());
                    }
                }
                for (t, found) in pod.affinity_terms.iter().zip(&mut sought) {
                    if let Some(v) = domain(&t.key).filter(|_| t.matches(&r.namespace, &r.labels)) {
                        found.insert(v.clone());
                    }
                }
                for t in &r.anti_affinity {
                    if let Some(v) = domain(&t.key).filter(|_| t.matches(namespace, labels)) {
                        forbidden.insert((t.key.clone(), v.clone()));
                    }
                }
                for ((c, d), value) in pod.spread.iter().zip(&mut spread).zip(&eligible) {
                    if let Some(v) = value
                        && r.namespace == namespace
                        && c.selects(&r.labels)
                        && let Some(n) = d.counts.get_mut(*v)
                    {
                        *n += 1;
                    }
                }
            }
        }
        for (c, d) in pod.spread.iter().zip(&mut spread) {
            let domains = u32::try_from(d.counts.len()).unwrap_or(u32::MAX);
            d.least = if domains < c.min_domains {
                0
            } else {
                d.counts.values().copied().min().unwrap_or(0)
            };
        }
        let first_of_group = sought.iter().all(HashSet::is_empty)
            && pod
                .affinity_terms
                .iter()
                .all(|t| t.matches(namespace, labels));
        Some(Rules {
            pod,
            shunned,
            sought: (!first_of_group).then_some(sought),
            forbidden,
            spread,
        })
    }

    /// Whether `node` may take the pod by these rules.
    pub fn allows(&self, node: &NodeInfo) -> bool {
        self.check(node).is_empty()
    }

    /// Why `node` may not take the pod by these rules (nothing when it may).
    pub fn check(&self, node: &NodeInfo) -> Vec<Reason> {
        let mut reasons = vec![];
        let domain = |key: &str| node.labels.get(key);
        let affine = match &self.sought {
            None => self
                .pod
                .affinity_terms
                .iter()
                .all(|t| domain(&t.key).is_some()),
            Some(sought) => self
                .pod
                .affinity_terms
                .iter()
                .zip(sought)
                .all(|(t, found)| domain(&t.key).is_some_and(|v| found.contains(v))),
        };
        if !affine {
            reasons.push(Reason::PodAffinity);
        }
        let anti = self
            .pod
            .resident
            .as_ref()
            .map_or(&[][..], |r| &r.anti_affinity);
        if anti
            .iter()
            .zip(&self.shunned)
            .any(|(t, found)| domain(&t.key).is_some_and(|v| found.contains(v)))
        {
            reasons.push(Reason::PodAntiAffinity);
        }
        if self.forbidden.iter().any(|(k, v)| domain(k) == Some(v)) {
            reasons.push(Reason::ExistingAntiAffinity);
        }
        for (c, d) in self
            .pod
            .spread
            .iter()
            .zip(&self.spread)
            .filter(|(c, _)| c.hard)
        {
            match domain(&c.key) {
                None => reasons.push(Reason::SpreadLabel),
                Some(v) => {
                    let here = d.counts.get(v).copied().unwrap_or(0);
                    if (here + d.itself).saturating_sub(d.least) > c.max_skew {
                        reasons.push(Reason::Spread);
                    }
                }
            }
        }
        reasons.dedup();
        reasons
    }

    /// How much placing the pod on `node` goes against its soft spread constraints: the
    /// matching pods already in the node's domains (less is better).
    pub fn penalty(&self, node: &NodeInfo) -> u64 {
        self.pod
            .spread
            .iter()
            .zip(&self.spread)
            .filter(|(c, _)| !c.hard)
            .map(|(c, d)| {
                node.labels.get(&c.key).map_or(u64::from(u32::MAX), |v| {
                    u64::from(d.counts.get(v).copied().unwrap_or(0))
                })
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::resources::Resources;
    use super::super::{Load, Placements, Policy, Weights, place_batch};
    use super::*;

    fn node(name: &str, zone: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            allocatable: Resources {
                cpu: 4000,
                memory: 8 << 30,
                ephemeral: 0,
                pods: 110,
            },
            labels: BTreeMap::from([
                ("kubernetes.io/hostname".into(), name.into()),
                ("zone".into(), zone.into()),
            ]),
            ready: true,
            ..NodeInfo::default()
        }
    }

    fn nodes() -> Vec<NodeInfo> {
        vec![node("a", "z1"), node("b", "z1"), node("c", "z2")]
    }

    /// A pod of `namespace` labelled `app`, requesting 100m, with `spec` merged in.
    fn pod(namespace: &str, app: &str, spec: Value) -> PodInfo {
        let mut spec_json = json!({"containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": "100m"}}}]});
        if let (Some(base), Value::Object(more)) = (spec_json.as_object_mut(), spec) {
            base.extend(more);
        }
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": namespace, "labels": {"app": app}},
            "spec": spec_json,
        }))
        .unwrap();
        PodInfo::from_pod(&pod)
    }

    fn anti(app: &str, key: &str) -> Value {
        json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}}})
    }

    fn spread(key: &str, max_skew: i32, when: &str, extra: Value) -> Value {
        let mut c = json!({"maxSkew": max_skew, "topologyKey": key,
            "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}});
        if let (Some(c), Value::Object(more)) = (c.as_object_mut(), extra) {
            c.extend(more);
        }
        json!({"topologySpreadConstraints": [c]})
    }

    fn place(pods: &[PodInfo], nodes: &mut [NodeInfo]) -> Placements {
        place_batch(pods, nodes, Policy::BinPack, &Weights::default())
    }

    fn count<T: PartialEq>(at: &[T], x: &T) -> usize {
        at.iter().filter(|a| *a == x).count()
    }

    #[test]
    fn anti_affinity_puts_one_per_host_and_says_why_the_next_fits_nowhere() {
        let pods = vec![pod("ns", "web", anti("web", "kubernetes.io/hostname")); 4];
        let mut nodes = nodes();
        let at = place(&pods, &mut nodes);
        let hosts: BTreeSet<usize> = at.iter().filter_map(|a| a.clone().ok()).collect();
        assert_eq!(hosts.len(), 3, "{at:?}");
        let why = at
            .iter()
            .find_map(|a| a.clone().err())
            .expect("the fourth fits nowhere");
        assert_eq!(why.reasons.get(&Reason::PodAntiAffinity), Some(&3));
        assert!(
            why.to_string()
                .contains("3 node(s) didn't match pod anti-affinity rules"),
            "{why}"
        );
    }

    #[test]
    fn a_placed_pods_anti_affinity_keeps_the_pods_it_matches_out_of_its_zone() {
        let mut nodes = nodes();
        nodes[0].add(&pod("ns", "cache", anti("db", "zone")));
        // Bin packing alone would put the db pod next to the cache on a.
        let at = place(&[pod("ns", "db", json!({}))], &mut nodes);
        assert_eq!(at, [Ok(2)]);
        // Another namespace is not matched by the term (its namespaces default to its own).
        let mut nodes = self::nodes();
        nodes[0].add(&pod("ns", "cache", anti("db", "zone")));
        assert_eq!(place(&[pod("other", "db", json!({}))], &mut nodes), [Ok(0)]);
    }

    #[test]
    fn the_anti_affine_pod_leaves_its_node_and_its_rules_go_with_it() {
        let mut nodes = nodes();
        let cache = pod("ns", "cache", anti("db", "zone"));
        nodes[0].add(&cache);
        assert_eq!(nodes[0].load.anti_affine, 1);
        nodes[0].load.remove(&cache);
        assert_eq!(nodes[0].load, Load::default());
        assert_eq!(place(&[pod("ns", "db", json!({}))], &mut nodes), [Ok(0)]);
    }

    #[test]
    fn pod_affinity_follows_the_pods_it_names_and_the_first_of_a_group_goes_anywhere() {
        let near = |app: &str| {
            json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "kubernetes.io/hostname"}]}}})
        };
        let mut nodes = nodes();
        nodes[2].add(&pod("ns", "cache", json!({})));
        assert_eq!(
            place(&[pod("ns", "web", near("cache"))], &mut nodes),
            [Ok(2)]
        );
        // No cache pod anywhere, and the pod is no cache itself: nowhere.
        let mut empty = self::nodes();
        let at = place(&[pod("ns", "web", near("cache"))], &mut empty);
        let why = at[0].clone().unwrap_err();
        assert_eq!(why.reasons.get(&Reason::PodAffinity), Some(&3), "{why}");
        // A pod its own term matches starts the group; the next ones follow it.
        let pods = vec![pod("ns", "web", near("web")); 3];
        let at = place(&pods, &mut self::nodes());
        assert_eq!(count(&at, &at[0]), 3, "{at:?}");
    }

    #[test]
    fn a_hard_spread_constraint_overrides_bin_packing() {
        let pods = vec![pod("ns", "web", spread("zone", 1, "DoNotSchedule", json!({}))); 4];
        let mut nodes = nodes();
        let at = place(&pods, &mut nodes);
        let zone2 = count(&at, &Ok(2));
        assert_eq!(zone2, 2, "two in each zone: {at:?}");
        // Pods of other apps, or of another namespace, do not count.
        let mut nodes = self::nodes();
        for _ in 0..3 {
            nodes[0].add(&pod("ns", "api", json!({})));
            nodes[0].add(&pod("other", "web", json!({})));
        }
        let at = place(&pods[..2], &mut nodes);
        assert_eq!(count(&at, &Ok(2)), 1, "{at:?}");
    }

    #[test]
    fn min_domains_counts_missing_domains_as_empty() {
        let c = spread("zone", 1, "DoNotSchedule", json!({"minDomains": 3}));
        let pods = vec![pod("ns", "web", c); 3];
        let at = place(&pods, &mut nodes());
        // Two zones exist; each may hold one before the skew to the missing third is 2.
        assert_eq!(count(&at, &Ok(2)), 1, "{at:?}");
        let why = at[2].clone().unwrap_err();
        assert_eq!(why.reasons.get(&Reason::Spread), Some(&3), "{why}");
    }

    #[test]
    fn a_node_without_the_topology_label_is_no_place_for_a_hard_constraint() {
        let mut nodes = vec![node("a", "z1")];
        nodes[0].labels.remove("zone");
        let c = spread("zone", 1, "DoNotSchedule", json!({}));
        let why = place(&[pod("ns", "web", c)], &mut nodes)[0]
            .clone()
            .unwrap_err();
        assert!(
            why.to_string().contains("(missing required label)"),
            "{why}"
        );
    }

    #[test]
    fn a_soft_spread_constraint_comes_before_the_score() {
        let c = spread("kubernetes.io/hostname", 1, "ScheduleAnyway", json!({}));
        let pods = vec![pod("ns", "web", c); 3];
        let at = place(&pods, &mut nodes());
        let hosts: BTreeSet<usize> = at.iter().filter_map(|a| a.clone().ok()).collect();
        assert_eq!(hosts.len(), 3, "{at:?}");
        // Soft: with one node only, all still go there.
        let at = place(&pods, &mut [node("a", "z1")]);
        assert_eq!(at, [Ok(0), Ok(0), Ok(0)]);
    }

    #[test]
    fn match_label_keys_narrow_the_selector_to_the_pods_own_values() {
        let c = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
            "matchLabelKeys": ["app"]}]});
        let mut nodes = nodes();
        // Three pods of another app in z1 do not count against web.
        for _ in 0..3 {
            nodes[0].add(&pod("ns", "api", json!({})));
        }
        let at = place(&[pod("ns", "web", c)], &mut nodes);
        assert_eq!(at, [Ok(0)], "bin packing decides among equals");
    }

    #[test]
    fn what_drover_scheduler_cannot_honour_is_refused_with_the_reason() {
        let claim =
            json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}]});
        let why = place(&[pod("ns", "web", claim)], &mut nodes())[0]
            .clone()
            .unwrap_err();
        assert!(why.to_string().contains("volume \"data\""), "{why}");
        let labelled = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {}, "topologyKey": "zone", "namespaceSelector": {"matchLabels": {"team": "a"}}}]}}});
        let why = place(&[pod("ns", "web", labelled)], &mut nodes())[0]
            .clone()
            .unwrap_err();
        assert!(why.to_string().contains("namespaceSelector"), "{why}");
        // An empty namespaceSelector means every namespace.
        let everywhere = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone", "namespaceSelector": {}}]}}});
        let mut nodes = nodes();
        nodes[2].add(&pod("other", "db", json!({})));
        assert_eq!(place(&[pod("ns", "web", everywhere)], &mut nodes), [Ok(0)]);
    }

    #[test]
    fn a_bind_is_checked_against_what_was_bound_since_the_plan() {
        let web = pod("ns", "web", anti("web", "kubernetes.io/hostname"));
        let mut nodes = nodes();
        assert!(super::super::admits(&web, &nodes, 0));
        nodes[0].add(&web);
        assert!(!super::super::admits(&web, &nodes, 0));
        assert!(super::super::admits(&web, &nodes, 1));
    }
}
