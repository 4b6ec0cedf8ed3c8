//! Config belongs to revisions, on the real cluster: editing a mounted ConfigMap rolls the
//! App (a burst of edits makes one rollout), each revision's pods read an immutable
//! snapshot of the config it was made with, and `drover.dev/undo` brings back an earlier
//! revision's image and its file contents — read over HTTP from `/config/` of every pod.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use drover_crds::App;
use drover_e2e::*;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const APP: &str = "web";
const CONFIG: &str = "settings";

/// What every pod serves at `/config/greeting`, with the pod names.
fn greetings(pods: &[Pod]) -> BTreeMap<String, Vec<String>> {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in pods {
        let ip: IpAddr = pod
            .status
            .as_ref()
            .unwrap()
            .pod_ip
            .as_ref()
            .unwrap()
            .parse()
            .unwrap();
        let (code, body) = http_get(ip, 8080, "/config/greeting").unwrap();
        assert_eq!(code, 200, "{}: {body}", pod.name_any());
        seen.entry(body).or_default().push(pod.name_any());
    }
    seen
}

/// Waits until the App has rolled out `image` and every pod serves `greeting`.
async fn wait_serving(client: &Client, ns: &str, image: &str, greeting: &str) {
    let image = format!("{SAMPLE_IMAGE}:{image}");
    wait_for(
        &format!("every pod of {image} to serve the greeting {greeting:?}"),
        ROLLOUT_TIMEOUT,
        || async {
            let pods = wait_rolled_out(client, ns, APP, 3, &image).await;
            let seen = greetings(&pods);
            (seen.len() == 1 && seen.contains_key(greeting)).then_some(())
        },
    )
    .await
}

async fn set_greeting(client: &Client, ns: &str, greeting: &str) {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .patch(
            CONFIG,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"greeting": greeting}})),
        )
        .await
        .unwrap();
}

async fn revision_numbers(client: &Client, ns: &str) -> Vec<i64> {
    let mut numbers: Vec<i64> = Api::<ControllerRevision>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("drover.dev/app={APP}")))
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.revision)
        .collect();
    numbers.sort_unstable();
    numbers
}

fn undo(ns: &str, to: &str) {
    kubectl_ok(&[
        "-n",
        ns,
        "annotate",
        "apps.drover.dev",
        APP,
        &format!("drover.dev/undo={to}"),
        "--overwrite",
    ]);
}

fn events(ns: &str, reason: &str) -> String {
    kubectl_ok(&[
        "-n",
        ns,
        "get",
        "events",
        "--field-selector",
        &format!("reason={reason}"),
        "-o",
        "custom-columns=TYPE:.type,MESSAGE:.message",
        "--no-headers",
    ])
}

#[tokio::test]
async fn undo_restores_the_image_and_the_config_and_config_edits_roll_the_app() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-undo").await;
    let configs: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let config: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": CONFIG},
        "data": {"greeting": "one"},
    }))
    .unwrap();
    configs
        .create(&PostParams::default(), &config)
        .await
        .unwrap();
    let node = real_node(&client).await;
    let mut manifest = app_manifest(APP, 3, "1", &Placement::RealNode(node));
    let spec = &mut manifest["spec"]["template"]["spec"];
    spec["volumes"] = json!([{"name": "config", "configMap": {"name": CONFIG}}]);
    spec["containers"][0]["volumeMounts"] = json!([{"name": "config", "mountPath": "/config"}]);
    let app: App = serde_json::from_value(manifest).unwrap();
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    apps.create(&PostParams::default(), &app).await.unwrap();
    wait_serving(&client, &ns.name, "1", "one").await;

    // The revision's snapshot is an immutable copy, owned by the revision.
    let snapshots = configs
        .list(&ListParams::default().labels(&format!("drover.dev/app={APP}")))
        .await
        .unwrap()
        .items;
    assert_eq!(snapshots.len(), 1, "one snapshot per revision and source");
    assert_eq!(snapshots[0].immutable, Some(true));
    assert_eq!(snapshots[0].data.as_ref().unwrap()["greeting"], "one");
    assert_eq!(
        snapshots[0].owner_references()[0].kind,
        "ControllerRevision"
    );

    // Editing the ConfigMap alone rolls the App; three quick edits make one rollout.
    for greeting in ["two-a", "two-b", "two"] {
        set_greeting(&client, &ns.name, greeting).await;
    }
    wait_serving(&client, &ns.name, "1", "two").await;
    assert_eq!(revision_numbers(&client, &ns.name).await, [1, 2]);

    // New contents and a new image within moments of each other: one revision.
    set_greeting(&client, &ns.name, "three").await;
    let mut containers = serde_json::to_value(
        &apps
            .get(APP)
            .await
            .unwrap()
            .spec
            .template
            .spec
            .unwrap()
            .containers,
    )
    .unwrap();
    containers[0]["image"] = json!(format!("{SAMPLE_IMAGE}:2"));
    apps.patch(
        APP,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": containers}}}})),
    )
    .await
    .unwrap();
    wait_serving(&client, &ns.name, "2", "three").await;
    assert_eq!(revision_numbers(&client, &ns.name).await, [1, 2, 3]);

    // Undo: the previous revision's image and file contents, and the ConfigMap itself
    // holds them again.
    undo(&ns.name, "previous");
    wait_serving(&client, &ns.name, "1", "two").await;
    let source = configs.get(CONFIG).await.unwrap();
    assert_eq!(source.data.unwrap()["greeting"], "two");
    let app = apps.get(APP).await.unwrap();
    assert!(
        !app.annotations().contains_key("drover.dev/undo"),
        "the annotation is removed once acted on"
    );
    assert_eq!(app.status.unwrap().revision, Some(4));
    assert_eq!(revision_numbers(&client, &ns.name).await, [1, 3, 4]);
    let rolled_back = events(&ns.name, "RolledBack");
    assert!(
        rolled_back.contains("ConfigMap settings"),
        "the event names the restored config: {rolled_back}"
    );

    // Undo to a revision by number: the very first one.
    undo(&ns.name, "1");
    wait_serving(&client, &ns.name, "1", "one").await;
    assert_eq!(
        configs.get(CONFIG).await.unwrap().data.unwrap()["greeting"],
        "one"
    );

    // A revision that does not exist: a Warning naming the ones that do, nothing changes.
    undo(&ns.name, "42");
    let failed = wait_for("an UndoFailed event", ROLLOUT_TIMEOUT, || async {
        let e = events(&ns.name, "UndoFailed");
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert!(
        failed.contains("Warning") && failed.contains("3, 4, 5"),
        "{failed}"
    );
    wait_serving(&client, &ns.name, "1", "one").await;
}
