//! What a pod asks for and what a node offers, as one vector of the resources the
//! scheduler counts.

use std::collections::BTreeMap;
use std::ops::{Add, Sub};

use k8s_openapi::api::core::v1::{Container, Node, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::quantity;

/// CPU in millicores, memory and ephemeral storage in bytes, and a pod count.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resources {
    pub cpu: u64,
    pub memory: u64,
    pub ephemeral: u64,
    pub pods: u64,
}

/// One of the counted resources, for per-resource weights and failure reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Cpu,
    Memory,
    Ephemeral,
    Pods,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Cpu, Kind::Memory, Kind::Ephemeral, Kind::Pods];

    /// As Kubernetes names it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cpu => "cpu",
            Kind::Memory => "memory",
            Kind::Ephemeral => "ephemeral-storage",
            Kind::Pods => "pods",
        }
    }
}

impl Resources {
    pub fn get(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Cpu => self.cpu,
            Kind::Memory => self.memory,
            Kind::Ephemeral => self.ephemeral,
            Kind::Pods => self.pods,
        }
    }

    /// Each resource the larger of the two.
    pub fn max(self, other: Resources) -> Resources {
        Resources {
            cpu: self.cpu.max(other.cpu),
            memory: self.memory.max(other.memory),
            ephemeral: self.ephemeral.max(other.ephemeral),
            pods: self.pods.max(other.pods),
        }
    }

    /// Whether `self` holds at least `need` of every resource.
    pub fn covers(&self, need: &Resources) -> bool {
        Kind::ALL.into_iter().all(|k| need.get(k) <= self.get(k))
    }

    /// The resources of which `self` holds less than `need`.
    pub fn short_of(&self, need: &Resources) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|&k| need.get(k) > self.get(k))
            .collect()
    }

    fn of(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let get = |name: &str, parse: fn(&str) -> Option<u64>| {
            list.and_then(|l| l.get(name))
                .and_then(|q| parse(&q.0))
                .unwrap_or(0)
        };
        Resources {
            cpu: get("cpu", quantity::millicores),
            memory: get("memory", quantity::units),
            ephemeral: get("ephemeral-storage", quantity::units),
            pods: get("pods", quantity::units),
        }
    }
}

impl Add for Resources {
    type Output = Resources;
    fn add(self, o: Resources) -> Resources {
        Resources {
            cpu: self.cpu.saturating_add(o.cpu),
            memory: self.memory.saturating_add(o.memory),
            ephemeral: self.ephemeral.saturating_add(o.ephemeral),
            pods: self.pods.saturating_add(o.pods),
        }
    }
}

impl Sub for Resources {
    type Output = Resources;
    fn sub(self, o: Resources) -> Resources {
        Resources {
            cpu: self.cpu.saturating_sub(o.cpu),
            memory: self.memory.saturating_sub(o.memory),
            ephemeral: self.ephemeral.saturating_sub(o.ephemeral),
            pods: self.pods.saturating_sub(o.pods),
        }
    }
}

/// Stand-ins for a container that requests no CPU or memory, when scoring (as
/// kube-scheduler does), so such pods still count as filling a node.
const SCORE_CPU: u64 = 100;
const SCORE_MEMORY: u64 = 200 << 20;

/// What a pod needs of a node: for fitting, its requests as the kubelet admits it; for
/// scoring, the same with stand-ins for unset CPU and memory requests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Requests {
    pub fit: Resources,
    pub score: Resources,
}

/// A pod's requests: its containers together, or any init container alone if that is
/// more (sidecars — init containers that keep running — add to both), plus overhead,
/// plus one pod.
pub fn pod_requests(spec: &PodSpec) -> Requests {
    let container = |c: &Container, scoring: bool| {
        let mut r = Resources::of(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
        if scoring {
            let set = |name| {
                c.resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .is_some_and(|r| r.contains_key(name))
            };
            if !set("cpu") {
                r.cpu = SCORE_CPU;
            }
            if !set("memory") {
                r.memory = SCORE_MEMORY;
            }
        }
        r
    };
    let total = |scoring: bool| {
        let mut sidecars = Resources::default();
        let mut init_peak = Resources::default();
        for c in spec.init_containers.iter().flatten() {
            let r = container(c, scoring);
            if c.restart_policy.as_deref() == Some("Always") {
                sidecars = sidecars + r;
            } else {
                init_peak = init_peak.max(sidecars + r);
            }
        }
        let running = spec
            .containers
            .iter()
            .fold(sidecars, |sum, c| sum + container(c, scoring));
        let overhead = Resources::of(spec.overhead.as_ref());
        running.max(init_peak)
            + overhead
            + Resources {
                pods: 1,
                ..Resources::default()
            }
    };
    Requests {
        fit: total(false),
        score: total(true),
    }
}

/// What a node offers pods: its allocatable resources.
pub fn allocatable(node: &Node) -> Resources {
    Resources::of(node.status.as_ref().and_then(|s| s.allocatable.as_ref()))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ResourceRequirements;

    use super::*;

    fn container(cpu: Option<&str>, memory: Option<&str>) -> Container {
        let mut requests = BTreeMap::new();
        if let Some(c) = cpu {
            requests.insert("cpu".to_string(), Quantity(c.into()));
        }
        if let Some(m) = memory {
            requests.insert("memory".to_string(), Quantity(m.into()));
        }
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(requests),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn containers_add_up_and_the_largest_init_container_counts_alone() {
        let init = container(Some("2"), Some("1Mi"));
        let mut sidecar = container(Some("100m"), Some("1Mi"));
        sidecar.restart_policy = Some("Always".into());
        let spec = PodSpec {
            containers: vec![
                container(Some("500m"), Some("1Gi")),
                container(Some("250m"), None),
            ],
            init_containers: Some(vec![sidecar, init]),
            ..Default::default()
        };
        let r = pod_requests(&spec);
        // Running: 100m + 500m + 250m = 850m, below the init container's 2 CPU beside
        // the sidecar (2.1); memory: 1Gi + 1Mi for the sidecar.
        assert_eq!(r.fit.cpu, 2100);
        assert_eq!(r.fit.memory, (1 << 30) + (1 << 20));
        assert_eq!(r.fit.pods, 1);
        // Scoring counts the container without a memory request as 200Mi.
        assert_eq!(r.score.memory, (1 << 30) + (1 << 20) + (200 << 20));
        let empty = pod_requests(&PodSpec {
            containers: vec![Container::default()],
            ..Default::default()
        });
        assert_eq!(
            empty.fit,
            Resources {
                pods: 1,
                ..Resources::default()
            }
        );
        assert_eq!((empty.score.cpu, empty.score.memory), (100, 200 << 20));
    }
}
