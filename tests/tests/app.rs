//! The App controller on the real cluster: replicas behind a Service, scaling with stock
//! kubectl, self-healing (deleted pods, crashed processes, lost nodes), validation,
//! refused pods, deletion, and no overshoot across a controller restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use drover_crds::App;
use drover_e2e::observer::ReplicaObserver;
use drover_e2e::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(180);

async fn active_pods(client: &Client, ns: &str, app: &str) -> Vec<Pod> {
    app_pods(client, ns, app)
        .await
        .into_iter()
        .filter(is_active_pod)
        .collect()
}

/// Waits until the App has exactly `replicas` active pods, all available, and its status
/// says so for the current generation.
async fn wait_converged(client: &Client, ns: &str, name: &str, replicas: i32) -> Vec<Pod> {
    let apps: Api<App> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("App {name} to run {replicas} available pods"),
        CONVERGE,
        || async {
            let app = apps.get(name).await.ok()?;
            let status = app.status.as_ref()?;
            let pods = active_pods(client, ns, name).await;
            let ready = pods.iter().filter(|p| is_pod_ready(p)).count();
            (status.observed_generation == app.metadata.generation
                && status.replicas == replicas
                && status.available_replicas == replicas
                && pods.len() == replicas as usize
                && ready == replicas as usize)
                .then_some(pods)
        },
    )
    .await
}

fn condition(app: &App, type_: &str) -> Option<(String, String, String)> {
    app.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn assert_no_overshoot(report: &observer::Report) {
    assert!(
        report.violations.is_empty(),
        "more pods than asked for:\n{}",
        report.violations.join("\n")
    );
}

#[tokio::test]
async fn an_app_runs_its_replicas_behind_a_service_and_scales_with_kubectl() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-app").await;
    let observer = ReplicaObserver::start(&client, &ns.name, "web").await;
    create_app(
        &client,
        &ns.name,
        app_manifest("web", 3, "1", &Placement::AnyNode),
    )
    .await;

    // Stock kubectl: wait, get with the printer columns, scale.
    kubectl_ok(&[
        "-n",
        &ns.name,
        "wait",
        "--for=condition=Available",
        "app/web",
        "--timeout=120s",
    ]);
    wait_converged(&client, &ns.name, "web", 3).await;
    let table = kubectl_ok(&["-n", &ns.name, "get", "apps.drover.dev", "web"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "DESIRED",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "REVISION",
            "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..6], ["web", "3", "3", "3", "3", "1"], "{table}");

    kubectl_ok(&["-n", &ns.name, "scale", "app/web", "--replicas=5"]);
    wait_converged(&client, &ns.name, "web", 5).await;
    kubectl_ok(&["-n", &ns.name, "scale", "app/web", "--replicas=2"]);
    let pods = wait_converged(&client, &ns.name, "web", 2).await;
    let names: HashSet<String> = pods.iter().map(|p| p.name_any()).collect();
    // The pods scaled away drain before they go; wait until only the two are left.
    let all: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    wait_for(
        "the removed pods to finish terminating",
        CONVERGE,
        || async {
            let left = all
                .list(&ListParams::default().labels("drover.dev/app=web"))
                .await
                .ok()?
                .items;
            (left.len() == 2).then_some(())
        },
    )
    .await;

    // The Service sends requests from the host to both pods.
    let svc = Api::<Service>::namespaced(client.clone(), &ns.name)
        .get("web")
        .await
        .unwrap();
    let ip: IpAddr = svc.spec.unwrap().cluster_ip.unwrap().parse().unwrap();
    let mut answered = HashSet::new();
    for _ in 0..40 {
        let (code, body) = wait_for("the Service to answer", Duration::from_secs(30), || async {
            http_get(ip, 80, "/").ok()
        })
        .await;
        assert_eq!(code, 200);
        let pod = serde_json::from_str::<Value>(&body).unwrap()["pod"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            names.contains(&pod),
            "answer from {pod}, not one of {names:?}"
        );
        answered.insert(pod);
    }
    assert_eq!(answered.len(), 2, "requests reached {answered:?}");

    let report = observer.stop().await;
    assert_no_overshoot(&report);
    assert!(
        report.max_active <= 5,
        "at most 5 pods at once, saw {}",
        report.max_active
    );
}

#[tokio::test]
async fn deleted_pods_and_crashed_processes_are_replaced() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-heal").await;
    let observer = ReplicaObserver::start(&client, &ns.name, "web").await;
    create_app(
        &client,
        &ns.name,
        app_manifest("web", 3, "1", &Placement::AnyNode),
    )
    .await;
    let pods = wait_converged(&client, &ns.name, "web", 3).await;

    // A deleted pod is replaced.
    let victim = pods[0].clone();
    kubectl_ok(&[
        "-n",
        &ns.name,
        "delete",
        "pod",
        &victim.name_any(),
        "--wait=false",
    ]);
    let pods = wait_converged(&client, &ns.name, "web", 3).await;
    assert!(
        pods.iter().all(|p| p.uid() != victim.uid()),
        "the deleted pod still counts"
    );

    // So is one deleted outright (no graceful termination: the only event is its
    // deletion), well before any periodic resync.
    let victim = pods[1].clone();
    let started = Instant::now();
    kubectl_ok(&[
        "-n",
        &ns.name,
        "delete",
        "pod",
        &victim.name_any(),
        "--grace-period=0",
        "--force",
    ]);
    let pods = wait_converged(&client, &ns.name, "web", 3).await;
    assert!(pods.iter().all(|p| p.uid() != victim.uid()));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "replaced after {:?}",
        started.elapsed()
    );

    // A process that exits is restarted and the App returns to full strength.
    let target = pods[0].clone();
    let ip: IpAddr = target
        .status
        .as_ref()
        .unwrap()
        .pod_ip
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    let (code, _) = http_get(ip, 8080, "/crash").unwrap();
    assert_eq!(code, 200);
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    wait_for("the crashed container to restart", CONVERGE, || async {
        let p = pod_api.get(&target.name_any()).await.ok()?;
        let restarts = p.status.as_ref()?.container_statuses.as_ref()?[0].restart_count;
        (restarts >= 1 && is_pod_ready(&p)).then_some(())
    })
    .await;
    wait_converged(&client, &ns.name, "web", 3).await;
    assert_no_overshoot(&observer.stop().await);
}

/// Takes a simulated node out of kwok's hands and marks it NotReady; puts it back when
/// dropped.
struct NodeOutage {
    node: String,
}

impl NodeOutage {
    fn start(node: &str) -> Self {
        kubectl_ok(&["annotate", "node", node, "kwok.x-k8s.io/node-"]);
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let patch = json!({"status": {"conditions": [{
            "type": "Ready", "status": "False", "reason": "DroverTestOutage",
            "message": "simulated outage", "lastHeartbeatTime": now, "lastTransitionTime": now,
        }]}});
        kubectl_ok(&[
            "patch",
            "node",
            node,
            "--subresource=status",
            "-p",
            &patch.to_string(),
        ]);
        Self { node: node.into() }
    }
}

impl Drop for NodeOutage {
    fn drop(&mut self) {
        let _ = kubectl(&[
            "annotate",
            "node",
            &self.node,
            "kwok.x-k8s.io/node=fake",
            "--overwrite",
        ]);
    }
}

#[tokio::test]
async fn pods_of_a_lost_node_are_replaced_within_the_grace_period() {
    const GRACE: Duration = Duration::from_secs(30);
    const MARGIN: Duration = Duration::from_secs(20);
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-node").await;
    let pool = FakeNodePool::create(&client, "e2e-outage", 3).await;
    create_app(
        &client,
        &ns.name,
        app_manifest("web", 3, "1", &pool.placement()),
    )
    .await;
    let pods = wait_converged(&client, &ns.name, "web", 3).await;
    let node = pods[0].spec.as_ref().unwrap().node_name.clone().unwrap();
    let on_node: HashSet<String> = pods
        .iter()
        .filter(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(node.as_str()))
        .map(|p| p.uid().unwrap())
        .collect();

    let _outage = NodeOutage::start(&node);
    let started = Instant::now();
    let pods = wait_for(
        "the lost node's pods to be replaced elsewhere",
        GRACE + MARGIN + CONVERGE,
        || async {
            let pods = active_pods(&client, &ns.name, "web").await;
            let moved = pods.len() == 3
                && pods.iter().all(|p| {
                    !on_node.contains(&p.uid().unwrap())
                        && p.spec.as_ref().unwrap().node_name.as_deref() != Some(node.as_str())
                })
                && pods.iter().all(is_pod_ready);
            moved.then_some(pods)
        },
    )
    .await;
    let took = started.elapsed();
    println!(
        "pods of {node} replaced after {}s (grace {}s)",
        took.as_secs(),
        GRACE.as_secs()
    );
    assert!(
        took >= GRACE - Duration::from_secs(2),
        "replaced before the grace period: {took:?}"
    );
    assert!(
        took <= GRACE + MARGIN,
        "replaced after {took:?}, more than grace + margin"
    );
    assert_eq!(pods.len(), 3);
}

#[tokio::test]
async fn invalid_apps_are_rejected_with_the_field_named() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-invalid").await;
    let base = app_manifest("web", 1, "1", &Placement::FakeNode);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "negative replicas",
            json!({"spec": {"replicas": -1}}),
            "spec.replicas must be 0 or more",
        ),
        (
            "duplicate port names",
            json!({"spec": {"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]}}),
            "spec.ports: every port needs its own name",
        ),
        (
            "no containers",
            json!({"spec": {"template": {"spec": {"containers": []}}}}),
            "spec.template.spec.containers must list at least one container",
        ),
        (
            "restartPolicy Never",
            json!({"spec": {"template": {"spec": {"restartPolicy": "Never"}}}}),
            "spec.template.spec.restartPolicy must be Always",
        ),
        (
            "port 0",
            json!({"spec": {"ports": [{"name": "http", "port": 0}]}}),
            "spec.ports[].port must be between 1 and 65535",
        ),
        (
            "negative minReadySeconds",
            json!({"spec": {"minReadySeconds": -1}}),
            "spec.minReadySeconds must be 0 or more",
        ),
        (
            "reserved labels",
            json!({"spec": {"template": {"metadata": {"labels": {"drover.dev/app": "x"}}}}}),
            "spec.template.metadata.labels must not set drover.dev/ labels",
        ),
        (
            "rolling update bounds that cannot move",
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}}),
            "maxSurge and maxUnavailable may not both be 0",
        ),
        (
            "a malformed surge",
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "lots"}}}}),
            "spec.strategy.rollingUpdate.maxSurge must be a number of pods",
        ),
        (
            "a name starting with a digit",
            json!({"metadata": {"name": "1web"}}),
            "metadata.name must be a DNS label",
        ),
    ];
    for (what, change, message) in cases {
        let mut manifest = base.clone();
        merge(&mut manifest, change);
        let out = kubectl_stdin(&["-n", &ns.name, "apply"], &manifest.to_string());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: accepted");
        assert!(
            stderr.contains(message),
            "{what}: the error does not say {message:?}:\n{stderr}"
        );
    }
    let out = kubectl_stdin(&["-n", &ns.name, "apply"], &base.to_string());
    assert!(
        out.status.success(),
        "the valid App: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Merges `change` into `target` (objects key by key; anything else replaces).
fn merge(target: &mut Value, change: Value) {
    match (target, change) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, v) in c {
                merge(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, c) => *t = c,
    }
}

#[tokio::test]
async fn a_refused_pod_is_reported_in_a_condition_and_an_event() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-psa").await;
    kubectl_ok(&[
        "label",
        "namespace",
        &ns.name,
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    // Runs as the image's user but says nothing of privilege escalation, capabilities or
    // seccomp: the restricted level refuses it.
    let manifest = json!({
        "apiVersion": "drover.dev/v1alpha1", "kind": "App", "metadata": {"name": "loose"},
        "spec": {"replicas": 2, "template": {"spec": {
            "containers": [{"name": "app", "image": "registry.local/drover/sample:1"}],
        }}},
    });
    create_app(&client, &ns.name, manifest).await;
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    let (status, reason, message) = wait_for("the ReplicaFailure condition", CONVERGE, || async {
        let app = apps.get("loose").await.ok()?;
        condition(&app, "ReplicaFailure").filter(|c| c.0 == "True")
    })
    .await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "FailedCreate"));
    assert!(
        message.contains("violates PodSecurity \"restricted"),
        "{message}"
    );
    let app = apps.get("loose").await.unwrap();
    assert_eq!(condition(&app, "Available").unwrap().0, "False");
    let events = kubectl_ok(&[
        "-n",
        &ns.name,
        "get",
        "events",
        "--field-selector",
        "reason=FailedCreate,type=Warning",
        "-o",
        "jsonpath={range .items[*]}{.involvedObject.kind}/{.involvedObject.name}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events.contains("App/loose: Creating pod loose-"),
        "{events}"
    );
    assert!(events.contains("violates PodSecurity"), "{events}");
    assert!(active_pods(&client, &ns.name, "loose").await.is_empty());
}

#[tokio::test]
async fn deleting_an_app_removes_its_pods_and_service() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-delete").await;
    create_app(
        &client,
        &ns.name,
        app_manifest("web", 2, "1", &Placement::FakeNode),
    )
    .await;
    wait_converged(&client, &ns.name, "web", 2).await;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    assert!(
        services.get_opt("web").await.unwrap().is_some(),
        "the App's Service exists"
    );
    kubectl_ok(&["-n", &ns.name, "delete", "app/web"]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    wait_for("the App's pods and Service to go", CONVERGE, || async {
        let left = pods
            .list(&ListParams::default().labels("drover.dev/app=web"))
            .await
            .ok()?
            .items;
        let svc = services.get_opt("web").await.ok()?;
        (left.is_empty() && svc.is_none()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn removing_the_ports_removes_the_service() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-ports").await;
    create_app(
        &client,
        &ns.name,
        app_manifest("web", 1, "1", &Placement::FakeNode),
    )
    .await;
    wait_converged(&client, &ns.name, "web", 1).await;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    assert!(services.get_opt("web").await.unwrap().is_some());
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    patch_spec(&apps, "web", json!({"ports": null})).await;
    wait_for("the Service to go", CONVERGE, || async {
        services.get_opt("web").await.ok()?.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn crash_looping_containers_are_reported() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-crash").await;
    let mut manifest = app_manifest("loop", 1, "1", &Placement::AnyNode);
    manifest["spec"]["template"]["spec"]["containers"][0]["command"] =
        json!(["sh", "-c", "exit 3"]);
    create_app(&client, &ns.name, manifest).await;
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    let (_, reason, message) =
        wait_for("the Healthy condition to turn False", CONVERGE, || async {
            let app = apps.get("loop").await.ok()?;
            condition(&app, "Healthy").filter(|c| c.0 == "False")
        })
        .await;
    assert_eq!(reason, "CrashLoopBackOff");
    assert!(
        message.starts_with("container sample of pod loop-0 is crash-looping ("),
        "{message}"
    );
    assert!(message.contains("exit code 3"), "{message}");
    let events = kubectl_ok(&[
        "-n",
        &ns.name,
        "get",
        "events",
        "--field-selector",
        "reason=CrashLoopBackOff,involvedObject.kind=App",
        "-o",
        "name",
    ]);
    assert!(
        !events.trim().is_empty(),
        "a CrashLoopBackOff event on the App"
    );
}

#[tokio::test]
async fn a_horizontal_pod_autoscaler_scales_an_app() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-hpa").await;
    create_app(
        &client,
        &ns.name,
        app_manifest("web", 1, "1", &Placement::FakeNode),
    )
    .await;
    wait_converged(&client, &ns.name, "web", 1).await;
    // min 3: the HPA raises the App to 3 through the scale subresource.
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "drover.dev/v1alpha1", "kind": "App", "name": "web"},
            "minReplicas": 3, "maxReplicas": 4,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}],
        },
    }))
    .unwrap();
    Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &hpa)
        .await
        .unwrap();
    wait_converged(&client, &ns.name, "web", 3).await;
    let scale = kubectl_ok(&[
        "-n",
        &ns.name,
        "get",
        "--raw",
        &format!(
            "/apis/drover.dev/v1alpha1/namespaces/{}/apps/web/scale",
            ns.name
        ),
    ]);
    let scale: Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "drover.dev/app=web");
}

#[tokio::test]
async fn never_more_pods_than_asked_across_a_controller_restart_while_scaling() {
    // Enough that the scale-up is still going when the controller dies (the three nodes
    // of the pool hold 330 pods).
    const TARGET: i32 = 300;
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-restart").await;
    let pool = FakeNodePool::create(&client, "e2e-burst", 3).await;
    create_app(
        &client,
        &ns.name,
        app_manifest("burst", 2, "1", &pool.placement()),
    )
    .await;
    wait_converged(&client, &ns.name, "burst", 2).await;
    let observer = ReplicaObserver::start(&client, &ns.name, "burst").await;

    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    patch_spec(&apps, "burst", json!({"replicas": TARGET})).await;
    let at_kill = wait_for("the scale-up to be under way", CONVERGE, || async {
        let n = active_pods(&client, &ns.name, "burst").await.len();
        (n >= 10).then_some(n)
    })
    .await;
    kill(CONTROLLER);
    let after_kill = active_pods(&client, &ns.name, "burst").await.len();
    println!(
        "controller killed with {at_kill} pods up ({after_kill} once the kill returned), on the way to {TARGET}"
    );
    assert!(
        after_kill < TARGET as usize,
        "the scale-up finished before the controller was killed"
    );
    wait_ready(CONTROLLER);

    let pods = wait_converged(&client, &ns.name, "burst", TARGET).await;
    let report = observer.stop().await;
    assert_no_overshoot(&report);
    assert!(
        report.max_active <= TARGET as usize,
        "saw {} pods at once",
        report.max_active
    );
    assert!(
        report.names_seen.len() >= TARGET as usize,
        "the observer saw {} pods",
        report.names_seen.len()
    );
    // Every pod the observer ever saw is one of the target's: none was created twice.
    let names: HashSet<String> = pods.iter().map(|p| p.name_any()).collect();
    let extra: Vec<&String> = report
        .names_seen
        .iter()
        .filter(|n| !names.contains(*n))
        .collect();
    assert!(
        extra.is_empty(),
        "pods created beyond the {TARGET}: {extra:?}"
    );
}
