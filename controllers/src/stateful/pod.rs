//! A StatefulApp's pods: the revision's template with drover's labels, the pod's host
//! name and subdomain (its DNS name through the headless Service), and a volume for each
//! of its claims.

use std::collections::BTreeMap;

use drover_crds::StatefulApp;
use drover_crds::names::label;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::claims::claim_name;
use crate::engine::controller_ref;
use crate::engine::pods::pod_name;

/// The pod of `ordinal` at `revision` (whose template is `template`).
pub fn build(
    app: &StatefulApp,
    template: &PodTemplateSpec,
    ordinal: u32,
    revision: &str,
) -> Option<Pod> {
    let name = app.name_any();
    let pod = pod_name(&name, ordinal);
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = meta.labels.unwrap_or_default();
    labels.insert(label::APP.into(), name.clone());
    labels.insert(label::ORDINAL.into(), ordinal.to_string());
    labels.insert(label::REVISION.into(), revision.into());
    labels.insert(label::MANAGED_BY.into(), label::MANAGED_BY_VALUE.into());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(pod.clone());
    spec.subdomain = Some(name.clone());
    // A claim template's volume replaces a template volume of the same name, as a
    // StatefulSet's does.
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for claim in &app.spec.volume_claim_templates {
        volumes.retain(|v| v.name != claim.metadata.name);
        volumes.push(Volume {
            name: claim.metadata.name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&claim.metadata.name, &name, ordinal),
                read_only: None,
            }),
            ..Volume::default()
        });
    }
    Some(Pod {
        metadata: ObjectMeta {
            name: Some(pod),
            namespace: app.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            owner_references: Some(vec![controller_ref(app)?]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_pod_has_its_ordinals_name_dns_name_and_claims() {
        let app: StatefulApp = serde_json::from_value(json!({
            "apiVersion": "drover.dev/v1alpha1", "kind": "StatefulApp",
            "metadata": {"name": "db", "namespace": "ns", "uid": "u"},
            "spec": {
                "template": {"metadata": {"labels": {"tier": "data"}}, "spec": {
                    "containers": [{"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}],
                    "volumes": [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                }},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}],
            },
        }))
        .unwrap();
        let pod = build(&app, &app.spec.template, 2, "db-r1").unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("db-2"));
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels["drover.dev/ordinal"], "2");
        assert_eq!(labels["drover.dev/app"], "db");
        assert_eq!(labels["drover.dev/revision"], "db-r1");
        assert_eq!(labels["tier"], "data");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("db-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("db"));
        let volumes = spec.volumes.unwrap();
        assert_eq!(
            volumes.len(),
            2,
            "the claim replaces the template's volume of its name"
        );
        let data = volumes.iter().find(|v| v.name == "data").unwrap();
        assert_eq!(
            data.persistent_volume_claim.as_ref().unwrap().claim_name,
            "data-db-2"
        );
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("StatefulApp", Some(true))
        );
    }
}
