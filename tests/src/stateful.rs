//! Helpers for the StatefulApp suites.

use std::collections::BTreeMap;

use drover_crds::StatefulApp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::{
    Placement, READY_TIMEOUT, app_pods, is_active_pod, is_pod_ready, sample_pod, wait_until_in,
};

/// Merges `spec` into the StatefulApp's spec.
pub async fn patch_stateful(api: &Api<StatefulApp>, name: &str, spec: Value) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": spec})),
    )
    .await
    .unwrap_or_else(|e| panic!("patching StatefulApp {name}: {e}"));
}

/// The StatefulApp's pods by name, terminating ones included.
pub async fn pods_of(client: &Client, ns: &str, name: &str) -> BTreeMap<String, Pod> {
    app_pods(client, ns, name)
        .await
        .into_iter()
        .map(|p| (p.name_any(), p))
        .collect()
}

/// The namespace's claims that are not being deleted, by name.
pub async fn claims_of(client: &Client, ns: &str) -> BTreeMap<String, PersistentVolumeClaim> {
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("listing the claims of {ns}: {e}"))
        .items
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .map(|c| (c.name_any(), c))
        .collect()
}

/// Waits until the StatefulApp's pods are exactly `names`, Running and Ready, on its
/// update revision.
pub async fn wait_updated(
    api: &Api<StatefulApp>,
    client: &Client,
    ns: &str,
    name: &str,
    names: &[&str],
) {
    wait_until_in(
        ns,
        &format!("{names:?} ready on the update revision"),
        READY_TIMEOUT,
        || async {
            let app = api.get(name).await.map_err(|e| e.to_string())?;
            let revision = app.status.map(|s| s.update_revision).unwrap_or_default();
            let pods = pods_of(client, ns, name).await;
            let of = |p: &Pod| {
                p.labels()
                    .get("drover.dev/revision")
                    .cloned()
                    .unwrap_or_default()
            };
            let seen: Vec<String> = pods
                .values()
                .map(|p| format!("{}({}, ready {})", p.name_any(), of(p), is_pod_ready(p)))
                .collect();
            let done = pods.len() == names.len()
                && names.iter().all(|n| {
                    pods.get(*n)
                        .is_some_and(|p| is_active_pod(p) && is_pod_ready(p) && of(p) == revision)
                });
            if done {
                Ok(())
            } else {
                Err(format!("{revision}: {}", seen.join(", ")))
            }
        },
    )
    .await;
}

/// A StatefulApp of the sample image at `version`, `extra` merged into its spec.
pub fn stateful_manifest(name: &str, replicas: i32, version: &str, extra: Value) -> Value {
    let pod = sample_pod(name, version, &Placement::AnyNode);
    let mut spec = serde_json::to_value(pod.spec).unwrap();
    // The sample runs as 65534: the kubelet gives it the claims through its group.
    spec["securityContext"]["fsGroup"] = json!(65534);
    let mut manifest = json!({
        "apiVersion": "drover.dev/v1alpha1",
        "kind": "StatefulApp",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "template": {"metadata": {"labels": {"test": name}}, "spec": spec},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    });
    if let (Some(spec), Some(extra)) = (manifest["spec"].as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    manifest
}

/// A claim template `data` of `size`, mounted at /data.
pub fn with_data(mut manifest: Value, size: &str) -> Value {
    manifest["spec"]["volumeClaimTemplates"] = json!([{
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }]);
    manifest["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "data", "mountPath": "/data"}]);
    manifest
}

pub async fn create_stateful(client: &Client, ns: &str, manifest: Value) -> Api<StatefulApp> {
    let api: Api<StatefulApp> = Api::namespaced(client.clone(), ns);
    let app: StatefulApp = serde_json::from_value(manifest).unwrap();
    api.create(&PostParams::default(), &app).await.unwrap();
    api
}
