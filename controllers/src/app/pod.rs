//! The App's pods: built from its template, and read back into what the plan needs.

use std::collections::BTreeMap;

use drover_crds::App;
use drover_crds::names::label;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::plan::Create;
use crate::engine::controller_ref;

/// The pod for a slot: the revision's template, named and labelled by drover (with the
/// revision) and owned by the App (so deleting the App deletes it); with
/// `placement.binPack`, placed by drover's scheduler (named `scheduler`).
pub fn build(
    app: &App,
    template: &PodTemplateSpec,
    create: &Create,
    revision: &str,
    scheduler: &str,
) -> Option<Pod> {
    let name = app.name_any();
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = meta.labels.unwrap_or_default();
    labels.insert(label::APP.into(), name.clone());
    labels.insert(label::SLOT.into(), create.slot.to_string());
    labels.insert(label::REVISION.into(), revision.into());
    labels.insert(label::MANAGED_BY.into(), label::MANAGED_BY_VALUE.into());
    let mut spec = template.spec.clone();
    if app.spec.placement.as_ref().is_some_and(|p| p.bin_pack)
        && let Some(spec) = spec.as_mut()
    {
        spec.scheduler_name = Some(scheduler.into());
    }
    Some(Pod {
        metadata: ObjectMeta {
            name: Some(create.name.clone()),
            namespace: app.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            owner_references: Some(vec![controller_ref(app)?]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::engine::pods;

    fn app() -> App {
        serde_json::from_value(json!({
            "apiVersion": "drover.dev/v1alpha1", "kind": "App",
            "metadata": {"name": "web", "namespace": "ns", "uid": "app-uid"},
            "spec": {"replicas": 2, "template": {
                "metadata": {"labels": {"tier": "front"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            }},
        }))
        .unwrap()
    }

    const SLOT_3: Create = Create {
        name: String::new(),
        slot: 3,
        stable: false,
    };

    #[test]
    fn pods_carry_the_template_drover_labels_and_an_owner() {
        let app = app();
        let create = Create {
            name: "web-3".into(),
            ..SLOT_3
        };
        let pod = build(
            &app,
            &app.spec.template,
            &create,
            "web-abc",
            "drover-scheduler",
        )
        .unwrap();
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels["tier"], "front");
        assert_eq!(labels["drover.dev/app"], "web");
        assert_eq!(labels["drover.dev/slot"], "3");
        assert_eq!(labels["drover.dev/revision"], "web-abc");
        assert_eq!(pod.metadata.annotations.unwrap()["a"], "b");
        assert_eq!(pod.metadata.name.as_deref(), Some("web-3"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ns"));
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("App", "app-uid", Some(true))
        );
        // A foreground deletion of the App waits for its pods.
        assert_eq!(owner.block_owner_deletion, Some(true));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.containers[0].image.as_deref(), Some("i"));
        assert_eq!(
            spec.scheduler_name, None,
            "the cluster's scheduler places it"
        );
    }

    #[test]
    fn an_existing_pod_counts_only_if_the_app_controls_it_and_it_stays() {
        let app = app();
        let mut pod = build(&app, &app.spec.template, &SLOT_3, "web-abc", "s").unwrap();
        pod.metadata.uid = Some("pod-uid".into());
        assert_eq!(
            pods::own_live(&pod, "app-uid"),
            Some(("pod-uid".into(), "web-abc".into()))
        );
        // Another App's (a namesake recreated with a new UID), or going away.
        assert_eq!(pods::own_live(&pod, "other-uid"), None);
        let mut going = pod.clone();
        going.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
        );
        assert_eq!(pods::own_live(&going, "app-uid"), None);
        // Owned, but not as its controller.
        let mut adopted = pod;
        adopted.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        assert_eq!(pods::own_live(&adopted, "app-uid"), None);
    }

    #[test]
    fn bin_packed_apps_name_drovers_scheduler() {
        let mut app = app();
        app.spec.placement = Some(drover_crds::Placement { bin_pack: true });
        let pod = build(&app, &app.spec.template, &SLOT_3, "web-abc", "packer").unwrap();
        assert_eq!(pod.spec.unwrap().scheduler_name.as_deref(), Some("packer"));
    }
}
