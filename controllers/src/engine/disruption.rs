//! A workload's PodDisruptionBudget: with `spec.disruption`, a PDB named after the
//! workload selecting its pods, so evictions from anyone (`kubectl drain`, drover's own
//! rollouts and scale-in) share the workload's budget.

use std::collections::BTreeMap;

use drover_crds::Disruption;
use drover_crds::names::label;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use super::{Object, child_meta};

/// The PodDisruptionBudget the workload's `disruption` asks for, or `None` without one.
pub fn build<K: Object>(owner: &K, disruption: Option<&Disruption>) -> Option<PodDisruptionBudget> {
    let disruption = disruption?;
    let name = owner.name_any();
    let selector = BTreeMap::from([(label::APP.to_string(), name.clone())]);
    Some(PodDisruptionBudget {
        metadata: child_meta(owner, &name)?,
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            }),
            max_unavailable: Some(disruption.max_unavailable.clone()),
            // A pod that is not ready serves nothing: evicting it never costs availability.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}

/// Whether the observed PDB already has what `desired` asks for.
pub fn matches(observed: &PodDisruptionBudget, desired: &PodDisruptionBudget) -> bool {
    let fields = |p: &PodDisruptionBudget| {
        p.spec.as_ref().map(|s| {
            (
                s.selector.clone(),
                s.max_unavailable.clone(),
                s.unhealthy_pod_eviction_policy.clone(),
            )
        })
    };
    fields(observed) == fields(desired)
        && observed.labels() == desired.labels()
        && observed.owner_references() == desired.owner_references()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use drover_crds::App;

    use super::*;

    #[test]
    fn the_budget_selects_the_app_and_lets_unready_pods_go() {
        let mut app: App = serde_json::from_value(json!({
            "apiVersion": "drover.dev/v1alpha1", "kind": "App",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
        }))
        .unwrap();
        assert!(build(&app, app.spec.disruption.as_ref()).is_none());
        app.spec.disruption =
            Some(serde_json::from_value(json!({"maxUnavailable": "25%"})).unwrap());
        let pdb = build(&app, app.spec.disruption.as_ref()).unwrap();
        let spec = pdb.spec.clone().unwrap();
        assert_eq!(
            spec.selector.unwrap().match_labels.unwrap()["drover.dev/app"],
            "web"
        );
        assert_eq!(
            serde_json::to_value(&spec.max_unavailable).unwrap(),
            json!("25%")
        );
        assert_eq!(
            spec.unhealthy_pod_eviction_policy.as_deref(),
            Some("AlwaysAllow")
        );
        assert!(matches(&pdb, &pdb));
    }
}
