//! The drover Helm chart on the real cluster: installed, upgraded (to two replicas with
//! leader election, and back), uninstalled and installed again. One test, in order: it
//! changes the installation the other suites use, so it runs after them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use drover_e2e::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

const NAMESPACE: &str = "drover-system";
const RELEASE: &str = "drover";
const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/drover");

fn helm(args: &[&str]) -> String {
    let out = std::process::Command::new("helm")
        .args(args)
        .output()
        .expect("running helm");
    assert!(
        out.status.success(),
        "helm {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm upgrade` (or `install`) of the release from the chart, waiting for it, with
/// `--set` of each of `values`.
fn release(verb: &str, values: &[&str]) {
    let mut args = vec![
        verb,
        RELEASE,
        CHART,
        "-n",
        NAMESPACE,
        "--wait",
        "--timeout",
        "180s",
    ];
    for value in values {
        args.extend(["--set", value]);
    }
    helm(&args);
}

/// The key of the controller's Secret digests, as the chart keeps it.
fn digest_key() -> String {
    kubectl_ok(&[
        "-n",
        NAMESPACE,
        "get",
        "secret",
        "drover-digest-key",
        "-o",
        "jsonpath={.data.key}",
    ])
}

/// The image tag the running release uses (set by `cargo xtask`).
fn current_tag() -> String {
    let values: Value = serde_json::from_str(&helm(&[
        "get", "values", RELEASE, "-n", NAMESPACE, "-o", "json",
    ]))
    .unwrap();
    values["image"]["tag"]
        .as_str()
        .expect("the release sets image.tag")
        .to_string()
}

async fn controller_pods(client: &kube::Client) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().labels("app.kubernetes.io/name=drover"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// The controller's ServiceAccount.
const ACCOUNT: &str = "system:serviceaccount:drover-system:drover";

/// Whether the controller's ServiceAccount may `verb` `resource` (in `namespace`, or in
/// every namespace with `-A`), as `kubectl auth can-i` answers.
fn can(verb: &str, resource: &str, namespace: &str) -> bool {
    let scope = if namespace == "-A" {
        vec!["-A"]
    } else {
        vec!["-n", namespace]
    };
    let mut args = vec!["auth", "can-i", verb, resource, "--as", ACCOUNT];
    args.extend(scope);
    let out = kubectl(&args);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "kubectl {}: {answer} {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    answer == "yes"
}

/// An App converges under the installed controller.
fn apps_are_reconciled(ns: &str, name: &str) {
    let manifest = app_manifest(name, 2, "1", &Placement::FakeNode);
    let out = kubectl_stdin(&["-n", ns, "apply"], &manifest.to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    kubectl_ok(&[
        "-n",
        ns,
        "wait",
        "--for=condition=Available",
        &format!("app/{name}"),
        "--timeout=120s",
    ]);
}

#[tokio::test]
async fn the_chart_installs_upgrades_and_uninstalls() {
    let client = client().await;
    let workers = workers(&client).await;
    let tag = current_tag();
    let ns = TestNamespace::create(&client, "e2e-chart").await;

    // Installed: the controller runs on a real worker, as the restricted profile allows.
    let pods = controller_pods(&client).await;
    assert_eq!(pods.len(), 1);
    assert!(running(&pods[0]));
    assert!(
        workers.contains(&node_of(&pods[0])),
        "on {} of {workers:?}",
        node_of(&pods[0])
    );
    // The apiserver warns about every existing pod that a restricted label would refuse.
    let check = kubectl(&[
        "label",
        "--dry-run=server",
        "--overwrite",
        "namespace",
        NAMESPACE,
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    assert!(check.status.success());
    let warnings = String::from_utf8_lossy(&check.stderr);
    assert!(
        !warnings.contains("violate"),
        "the controller pod breaks the restricted profile: {warnings}"
    );
    apps_are_reconciled(&ns.name, "before");

    // Least privilege: Secrets are read and copied into snapshots, never updated.
    let rights = kubectl_ok(&["auth", "can-i", "--list", "--as", ACCOUNT, "-n", &ns.name]);
    println!(
        "kubectl auth can-i --list --as {ACCOUNT} -n {}:\n{rights}",
        ns.name
    );
    assert!(can("create", "secrets", &ns.name));
    assert!(!can("update", "secrets", "-A"), "{rights}");
    assert!(!can("patch", "secrets", "-A"), "{rights}");
    assert!(!can("delete", "secrets", "-A"), "{rights}");
    assert!(can("create", "pods", "default"));
    // The key of the Secret digests is made once and kept.
    let key = digest_key();
    assert!(key.len() >= 48, "a digest key: {key:?}");

    // Prometheus metrics on their port; liveness and readiness on the health port.
    let ip: std::net::IpAddr = pods[0]
        .status
        .as_ref()
        .unwrap()
        .pod_ip
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    let (code, metrics) = http_get(ip, 8080, "/metrics").unwrap();
    assert_eq!(code, 200);
    for family in [
        "drover_reconciles_total{controller=\"app\"}",
        "drover_reconcile_duration_seconds_bucket",
        "drover_queue_depth{controller=\"app\"}",
        "drover_active_reconciles{controller=\"app\"}",
        "drover_api_writes_total{controller=\"app\",verb=\"create\",resource=\"pods\"}",
    ] {
        assert!(metrics.contains(family), "/metrics has no {family}");
    }
    assert_eq!(http_get(ip, 8081, "/livez").unwrap().0, 200);
    assert_eq!(http_get(ip, 8081, "/readyz").unwrap().0, 200);
    assert_eq!(http_get(ip, 8081, "/metrics").unwrap().0, 404);
    assert!(metrics_service(&client).await);

    // Upgrade to two replicas with leader election: one leads, the other stands by, and
    // the standby takes over when the leader goes. Metrics move inside the pods.
    release(
        "upgrade",
        &[
            &format!("image.tag={tag}"),
            "controller.replicas=2",
            "metrics.bindAddress=127.0.0.1",
        ],
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let leader = wait_for("a leader", Duration::from_secs(60), || async {
        let lease = leases.get("drover-controller").await.ok()?;
        let holder = lease.spec?.holder_identity?;
        let pods = controller_pods(&client).await;
        (pods.len() == 2 && pods.iter().all(running) && pods.iter().any(|p| p.name_any() == holder))
            .then_some(holder)
    })
    .await;
    apps_are_reconciled(&ns.name, "led");
    assert!(
        !metrics_service(&client).await,
        "a Service for metrics bound to the loopback"
    );
    for pod in controller_pods(&client).await {
        let ip: std::net::IpAddr = pod.status.unwrap().pod_ip.unwrap().parse().unwrap();
        assert_eq!(http_get(ip, 8081, "/readyz").unwrap().0, 200);
        assert!(
            http_get(ip, 8080, "/metrics").is_err(),
            "metrics bound to the loopback answer on the pod's address"
        );
    }
    kubectl_ok(&[
        "-n",
        NAMESPACE,
        "delete",
        "pod",
        &leader,
        "--grace-period=0",
        "--force",
    ]);
    let next = wait_for(
        "another pod to take the lease",
        Duration::from_secs(90),
        || async {
            let holder = leases
                .get("drover-controller")
                .await
                .ok()?
                .spec?
                .holder_identity?;
            (holder != leader).then_some(holder)
        },
    )
    .await;
    println!("leadership moved from {leader} to {next}");
    apps_are_reconciled(&ns.name, "after-failover");

    // One namespace watched: what the controller does to workloads is granted there only.
    release(
        "upgrade",
        &[
            &format!("image.tag={tag}"),
            &format!("controller.watchNamespace={}", ns.name),
        ],
    );
    let rights = kubectl_ok(&["auth", "can-i", "--list", "--as", ACCOUNT, "-n", "default"]);
    println!(
        "watching {} only, kubectl auth can-i --list --as {ACCOUNT} -n default:\n{rights}",
        ns.name
    );
    assert!(can("create", "pods", &ns.name));
    assert!(can("create", "secrets", &ns.name));
    for (verb, resource) in [
        ("create", "pods"),
        ("get", "secrets"),
        ("list", "configmaps"),
        ("create", "controllerrevisions"),
        ("patch", "services"),
        ("update", "apps.drover.dev"),
    ] {
        assert!(
            !can(verb, resource, "default"),
            "{verb} {resource} outside the watched namespace"
        );
    }
    assert!(!can("get", "secrets", "-A"));
    // What stays cluster-wide: reading nodes, and pods for the fill of nodes.
    assert!(can("list", "nodes", "-A"));
    assert!(can("watch", "pods", "-A"));
    assert!(!can("update", "secrets", "-A"));
    apps_are_reconciled(&ns.name, "scoped");
    let key_after = digest_key();
    assert_eq!(key_after, key, "an upgrade keeps the digest key");

    // Back to the defaults.
    release("upgrade", &[&format!("image.tag={tag}")]);
    wait_for("one controller pod", Duration::from_secs(90), || async {
        let pods = controller_pods(&client).await;
        (pods.len() == 1 && running(&pods[0])).then_some(())
    })
    .await;

    // Uninstall: the controller goes, the CRD (and so every App) stays.
    helm(&["uninstall", RELEASE, "-n", NAMESPACE, "--wait"]);
    wait_for("the controller to go", Duration::from_secs(90), || async {
        controller_pods(&client).await.is_empty().then_some(())
    })
    .await;
    kubectl_ok(&["get", "crd", "apps.drover.dev"]);
    kubectl_ok(&["-n", &ns.name, "get", "app/before"]);
    kubectl_ok(&["-n", NAMESPACE, "get", "secret/drover-digest-key"]);

    // And installed again, it takes the existing Apps back.
    release("install", &[&format!("image.tag={tag}")]);
    let key_after = digest_key();
    assert_eq!(
        key_after, key,
        "installed again, the digest key is the one kept"
    );
    kubectl_ok(&["-n", &ns.name, "scale", "app/before", "--replicas=3"]);
    kubectl_ok(&[
        "-n",
        &ns.name,
        "wait",
        "--for=jsonpath={.status.availableReplicas}=3",
        "app/before",
        "--timeout=120s",
    ]);
}

/// Whether the chart's metrics Service exists.
async fn metrics_service(client: &Client) -> bool {
    Api::<Service>::namespaced(client.clone(), NAMESPACE)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .any(|s| s.name_any().ends_with("-metrics"))
}
