//! Config belongs to revisions, on the real cluster: editing a mounted ConfigMap rolls the
//! App (a burst of edits makes one rollout), each revision's pods read an immutable
//! snapshot of the config it was made with, and `drover.dev/undo` brings back an earlier
//! revision's image and its file contents — read over HTTP from `/config/` of every pod.
//! A rollout that stalls misses its progress deadline and, if asked to, rolls back. The
//! `kubectl drover` plugin follows, lists and steers rollouts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use drover_crds::App;
use drover_crds::names::annotation;
use drover_e2e::*;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const APP: &str = "web";
const CONFIG: &str = "settings";
const SECRET: &str = "creds";

/// What every pod serves at `/config/<file>`, with the pod names.
fn served(pods: &[Pod], file: &str) -> BTreeMap<String, Vec<String>> {
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
        let (code, body) = http_get(ip, 8080, &format!("/config/{file}")).unwrap();
        assert_eq!(code, 200, "{}: {body}", pod.name_any());
        seen.entry(body).or_default().push(pod.name_any());
    }
    seen
}

/// Waits until the App has rolled out `image` and every pod serves `greeting` (and, when
/// given, the Secret's `password`).
async fn wait_serving_with(
    client: &Client,
    ns: &str,
    image: &str,
    greeting: &str,
    password: Option<&str>,
) {
    let image = format!("{SAMPLE_IMAGE}:{image}");
    wait_for(
        &format!(
            "every pod of {image} to serve the greeting {greeting:?} and password {password:?}"
        ),
        ROLLOUT_TIMEOUT,
        || async {
            let pods = wait_rolled_out(client, ns, APP, 3, &image).await;
            let one = |file: &str, want: &str| {
                let seen = served(&pods, file);
                seen.len() == 1 && seen.contains_key(want)
            };
            (one("greeting", greeting) && password.is_none_or(|p| one("password", p))).then_some(())
        },
    )
    .await
}

async fn wait_serving(client: &Client, ns: &str, image: &str, greeting: &str) {
    wait_serving_with(client, ns, image, greeting, None).await;
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

async fn set_password(client: &Client, ns: &str, password: &str) {
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            SECRET,
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": password}})),
        )
        .await
        .unwrap();
}

/// The App's condition `type_`, if present: (reason, message).
async fn condition(apps: &Api<App>, type_: &str) -> Option<(String, String)> {
    let app = apps.get(APP).await.ok()?;
    let c = app
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)?;
    Some((c.reason, c.message))
}

#[tokio::test]
async fn undo_returns_to_the_revisions_image_and_config_snapshots_and_config_edits_roll_the_app() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-undo").await;
    let configs: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let config: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": CONFIG},
        "data": {"greeting": "one"},
    }))
    .unwrap();
    configs
        .create(&PostParams::default(), &config)
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": SECRET},
        "stringData": {"password": "s1"},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let mut manifest = app_manifest(APP, 3, "1", &Placement::AnyNode);
    let spec = &mut manifest["spec"]["template"]["spec"];
    spec["volumes"] = json!([{"name": "config", "projected": {"sources": [
        {"configMap": {"name": CONFIG}},
        {"secret": {"name": SECRET}},
    ]}}]);
    spec["containers"][0]["volumeMounts"] = json!([{"name": "config", "mountPath": "/config"}]);
    let app: App = serde_json::from_value(manifest).unwrap();
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    apps.create(&PostParams::default(), &app).await.unwrap();
    wait_serving_with(&client, &ns.name, "1", "one", Some("s1")).await;

    // The revision's snapshots are immutable copies, owned by the revision.
    let ours = ListParams::default().labels(&format!("drover.dev/app={APP}"));
    let snapshots = configs.list(&ours).await.unwrap().items;
    assert_eq!(snapshots.len(), 1, "one snapshot per revision and source");
    assert_eq!(snapshots[0].immutable, Some(true));
    assert_eq!(snapshots[0].data.as_ref().unwrap()["greeting"], "one");
    assert_eq!(
        snapshots[0].owner_references()[0].kind,
        "ControllerRevision"
    );
    let secret_snapshots = secrets.list(&ours).await.unwrap().items;
    assert_eq!(secret_snapshots.len(), 1, "{secret_snapshots:?}");
    assert_eq!(secret_snapshots[0].immutable, Some(true));
    // The revision stores the Secret's digest keyed, not as the plain SHA-256 of its
    // contents (which whoever may view the App could test guesses against).
    let revisions = Api::<ControllerRevision>::namespaced(client.clone(), &ns.name)
        .list(&ours)
        .await
        .unwrap()
        .items;
    let stored = serde_json::to_string(&revisions[0].data).unwrap();
    let plain = {
        use sha2::Digest;
        let contents = json!({"type": "Opaque", "data": secret_snapshots[0].data});
        let hash = sha2::Sha256::digest(contents.to_string().as_bytes());
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert!(stored.contains("\"Secret\""), "{stored}");
    assert!(
        !stored.contains(&plain),
        "a plain digest of the Secret: {stored}"
    );

    // Editing the ConfigMap alone rolls the App; three quick edits make one rollout.
    for greeting in ["two-a", "two-b", "two"] {
        set_greeting(&client, &ns.name, greeting).await;
    }
    wait_serving(&client, &ns.name, "1", "two").await;
    assert_eq!(revision_numbers(&client, &ns.name).await, [1, 2]);

    // New contents, a rotated Secret and a new image within moments: one revision.
    set_greeting(&client, &ns.name, "three").await;
    set_password(&client, &ns.name, "s3").await;
    set_image(&client, &ns.name, APP, "2", None).await;
    wait_serving_with(&client, &ns.name, "2", "three", Some("s3")).await;
    assert_eq!(revision_numbers(&client, &ns.name).await, [1, 2, 3]);
    let rotated = secrets.get(SECRET).await.unwrap().resource_version();

    // Undo: the previous revision's image, and its pods read its snapshots again; the
    // sources are not written (the Secret another team rotated stays rotated).
    undo(&ns.name, "previous");
    wait_serving_with(&client, &ns.name, "1", "two", Some("s1")).await;
    let source = configs.get(CONFIG).await.unwrap();
    assert_eq!(source.data.unwrap()["greeting"], "three");
    assert_eq!(
        secrets.get(SECRET).await.unwrap().resource_version(),
        rotated
    );
    let app = apps.get(APP).await.unwrap();
    assert!(
        !app.annotations().contains_key("drover.dev/undo"),
        "the annotation is removed once acted on"
    );
    assert_eq!(app.status.unwrap().revision, Some(4));
    assert_eq!(revision_numbers(&client, &ns.name).await, [1, 3, 4]);
    let rolled_back = events(&ns.name, "RolledBack");
    assert!(
        rolled_back.contains("snapshots of ConfigMap settings, Secret creds"),
        "the event names the config the pods run from snapshots: {rolled_back}"
    );
    let (reason, message) = condition(&apps, "ConfigPinned")
        .await
        .expect("ConfigPinned");
    assert_eq!(reason, "RolledBack");
    assert!(
        message.contains("ConfigMap \"settings\"") && message.contains("Secret \"creds\""),
        "{message}"
    );

    // Undo to a revision by number: the very first one.
    undo(&ns.name, "1");
    wait_serving_with(&client, &ns.name, "1", "one", Some("s1")).await;
    assert_eq!(
        configs.get(CONFIG).await.unwrap().data.unwrap()["greeting"],
        "three"
    );

    // Editing the ConfigMap rolls out what it holds; the Secret, untouched since the
    // undo, stays on revision 1's snapshot (copied for the new revision).
    set_greeting(&client, &ns.name, "four").await;
    wait_serving_with(&client, &ns.name, "1", "four", Some("s1")).await;
    assert_eq!(revision_numbers(&client, &ns.name).await, [3, 4, 5, 6]);
    let (_, message) = wait_for(
        "ConfigPinned to name the Secret only",
        ROLLOUT_TIMEOUT,
        || async {
            condition(&apps, "ConfigPinned")
                .await
                .filter(|(_, m)| !m.contains("ConfigMap"))
        },
    )
    .await;
    assert!(message.contains("Secret \"creds\""), "{message}");

    // Asked to, an undo also writes the ConfigMaps back — never the Secret.
    patch_spec(&apps, APP, json!({"undo": {"restoreConfigMaps": true}})).await;
    undo(&ns.name, "previous");
    wait_serving_with(&client, &ns.name, "1", "one", Some("s1")).await;
    assert_eq!(
        configs.get(CONFIG).await.unwrap().data.unwrap()["greeting"],
        "one"
    );
    assert_eq!(
        secrets.get(SECRET).await.unwrap().resource_version(),
        rotated
    );
    // (A later RolledBack event joins the first one's series: its note is not kept.)
    let (_, message) = condition(&apps, "ConfigPinned")
        .await
        .expect("ConfigPinned");
    assert!(
        message.contains("Secret \"creds\"") && !message.contains("ConfigMap"),
        "the restored ConfigMap holds what runs; the Secret does not: {message}"
    );

    // A revision that does not exist: a Warning naming the ones that do, nothing changes.
    undo(&ns.name, "42");
    let failed = wait_for("an UndoFailed event", ROLLOUT_TIMEOUT, || async {
        let e = events(&ns.name, "UndoFailed");
        (!e.is_empty()).then_some(e)
    })
    .await;
    let numbers: Vec<String> = revision_numbers(&client, &ns.name)
        .await
        .iter()
        .map(i64::to_string)
        .collect();
    assert!(
        failed.contains("Warning") && failed.contains(&numbers.join(", ")),
        "{failed}"
    );
    wait_serving_with(&client, &ns.name, "1", "one", Some("s1")).await;
}

#[tokio::test]
async fn a_stalled_rollout_misses_its_deadline_and_rolls_back_when_asked_to() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-deadline").await;
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    // Both miss the deadline; only "web" goes back on its own.
    for (name, auto_rollback) in [(APP, true), ("stuck", false)] {
        let mut manifest = app_manifest(name, 3, "1", &Placement::AnyNode);
        manifest["spec"]["progressDeadlineSeconds"] = json!(10);
        manifest["spec"]["autoRollback"] = json!(auto_rollback);
        let app: App = serde_json::from_value(manifest).unwrap();
        apps.create(&PostParams::default(), &app).await.unwrap();
    }
    let good = format!("{SAMPLE_IMAGE}:1");
    for name in [APP, "stuck"] {
        wait_rolled_out(&client, &ns.name, name, 3, &good).await;
    }
    let observer = drover_e2e::observer::ReplicaObserver::start(&client, &ns.name, APP).await;
    observer.require_ready(3);
    for name in [APP, "stuck"] {
        set_image(&client, &ns.name, name, "does-not-exist", None).await;
    }

    // Without autoRollback: Progressing=False, ProgressDeadlineExceeded, and it stays so.
    let message = wait_for(
        "the stuck App to report its missed deadline",
        ROLLOUT_TIMEOUT,
        || async {
            let app = apps.get("stuck").await.ok()?;
            let c = app
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Progressing")?;
            (c.status == "False" && c.reason == "ProgressDeadlineExceeded").then_some(c.message)
        },
    )
    .await;
    assert!(
        message.contains("no progress for 10s"),
        "the condition says why: {message}"
    );

    // With autoRollback: back to the last good template, Available throughout.
    let pods = wait_rolled_out(&client, &ns.name, APP, 3, &good).await;
    assert!(pods.iter().all(|p| image_of(p) == good));
    let report = observer.stop().await;
    assert!(
        report.violations.is_empty(),
        "the App was not available throughout:\n{}",
        report.violations.join("\n")
    );
    let app = apps.get(APP).await.unwrap();
    assert_eq!(
        app.spec.template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some(good.as_str()),
        "the spec holds the good template again"
    );
    let stalled = events(&ns.name, "ProgressDeadlineExceeded");
    assert!(
        stalled.contains("Warning")
            && stalled.contains("revision web-")
            && stalled.contains("revision stuck-"),
        "a Warning for each App: {stalled}"
    );
    let rolled_back = events(&ns.name, "RolledBack");
    assert!(
        rolled_back.contains("automatically") && rolled_back.contains("no progress for 10s"),
        "{rolled_back}"
    );
    let stuck = apps.get("stuck").await.unwrap();
    assert!(
        stuck.spec.template.spec.unwrap().containers[0]
            .image
            .as_deref()
            .is_some_and(|i| i.ends_with("does-not-exist")),
        "without autoRollback the spec is left alone"
    );
}

/// Runs `kubectl drover rollout ...` (the plugin, found on PATH by kubectl).
fn drover(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["drover", "rollout", "-n", ns];
    all.extend_from_slice(args);
    kubectl_ok(&all)
}

#[tokio::test]
async fn the_kubectl_plugin_follows_lists_and_steers_rollouts() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-plugin").await;
    let pool = FakeNodePool::create(&client, "plugin", 2).await;
    let app: App = serde_json::from_value(app_manifest(APP, 3, "1", &pool.placement())).unwrap();
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    apps.create(&PostParams::default(), &app).await.unwrap();
    let status = drover(&ns.name, &["status", APP, "--timeout", "240"]);
    assert!(status.contains("successfully rolled out"), "{status}");

    set_image(&client, &ns.name, APP, "2", None).await;
    let status = drover(&ns.name, &["status", APP, "--timeout", "240"]);
    assert!(status.ends_with("successfully rolled out\n"), "{status}");
    let history = drover(&ns.name, &["history", APP]);
    let rows: Vec<&str> = history.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{history}");
    assert!(
        rows[0].starts_with("1 ") && rows[0].contains("sample:1"),
        "{history}"
    );
    assert!(
        rows[1].starts_with("2 ") && rows[1].contains("current") && rows[1].contains("sample:2"),
        "{history}"
    );
    let one = drover(&ns.name, &["history", APP, "--revision", "1"]);
    assert!(one.contains("sample:1"), "{one}");

    drover(&ns.name, &["pause", APP]);
    assert!(apps.get(APP).await.unwrap().spec.paused);
    drover(&ns.name, &["resume", APP]);
    assert!(!apps.get(APP).await.unwrap().spec.paused);

    drover(&ns.name, &["undo", APP]);
    wait_rolled_out(&client, &ns.name, APP, 3, &format!("{SAMPLE_IMAGE}:1")).await;
    drover(&ns.name, &["restart", APP]);
    drover(&ns.name, &["status", APP, "--timeout", "240"]);
    let app = apps.get(APP).await.unwrap();
    assert!(
        app.spec
            .template
            .metadata
            .and_then(|m| m.annotations)
            .is_some_and(|a| a.contains_key(annotation::RESTARTED_AT)),
        "restart stamps the template"
    );
    assert_eq!(revision_numbers(&client, &ns.name).await, [2, 3, 4]);
    // A promote with no canary in progress is answered, not ignored.
    drover(&ns.name, &["promote", APP]);
    let answer = wait_for("a reply to the promote", ROLLOUT_TIMEOUT, || async {
        let e = events(&ns.name, "Promoted");
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert!(
        answer.contains("no canary or blue-green rollout"),
        "{answer}"
    );
}
