//! Rollouts on the real cluster: a rolling update under continuous HTTP load through the
//! App's Service drops no request, and an independent observer holds the surge and
//! availability bounds throughout; Recreate replaces every pod; revisions are recorded as
//! ControllerRevisions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use drover_crds::App;
use drover_e2e::observer::ReplicaObserver;
use drover_e2e::*;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const ROLLOUT: Duration = Duration::from_secs(240);
/// Request loops running side by side against the Service.
const CLIENTS: usize = 4;
/// Pause between one loop's requests: the load stays heavy (hundreds per second) without
/// starving the control plane on a small machine.
const REQUEST_GAP: Duration = Duration::from_millis(2);
/// How long a stopping sample pod keeps serving (failing readiness) before it closes its
/// listener: longer than the cluster takes to drop it from the Service. Every rolling
/// update relies on such a drain; it is the pod's part of zero downtime.
const DRAIN: &str = "6s";

/// What the load saw: requests per version, and every failure.
#[derive(Debug, Default)]
struct Traffic {
    by_version: BTreeMap<String, usize>,
    failures: Vec<String>,
}

impl Traffic {
    fn total(&self) -> usize {
        self.by_version.values().sum::<usize>() + self.failures.len()
    }
}

/// Sends requests to `ip:80` from `CLIENTS` threads until stopped; a fresh connection
/// each time, so every request is balanced anew by kube-proxy.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Traffic>>,
}

impl Load {
    fn start(ip: IpAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..CLIENTS)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut t = Traffic::default();
                    while !stop.load(Ordering::Relaxed) {
                        match http_get(ip, 80, "/") {
                            Ok((200, body)) => {
                                let v: Value = serde_json::from_str(&body).unwrap_or_default();
                                let version = v["version"].as_str().unwrap_or("?").to_string();
                                *t.by_version.entry(version).or_default() += 1;
                            }
                            Ok((code, body)) => t.failures.push(format!("HTTP {code}: {body}")),
                            Err(e) => t.failures.push(e.to_string()),
                        }
                        std::thread::sleep(REQUEST_GAP);
                    }
                    t
                })
            })
            .collect();
        Self { stop, threads }
    }

    fn stop(self) -> Traffic {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Traffic::default();
        for t in self.threads {
            let t = t.join().unwrap();
            for (v, n) in t.by_version {
                *all.by_version.entry(v).or_default() += n;
            }
            all.failures.extend(t.failures);
        }
        all
    }
}

async fn service_ip(client: &Client, ns: &str, name: &str) -> IpAddr {
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap();
    svc.spec.unwrap().cluster_ip.unwrap().parse().unwrap()
}

fn image_of(p: &Pod) -> String {
    p.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

/// Waits until the App runs `replicas` ready pods, all of `image`, with no other pod
/// left (terminating ones included) and a status that says the rollout is complete.
async fn wait_rolled_out(client: &Client, ns: &str, name: &str, replicas: i32, image: &str) {
    let apps: Api<App> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("App {name} to run {replicas} ready pods of {image}"),
        ROLLOUT,
        || async {
            let app = apps.get(name).await.ok()?;
            let status = app.status.as_ref()?;
            let all = pods
                .list(&ListParams::default().labels(&format!("drover.dev/app={name}")))
                .await
                .ok()?
                .items;
            let done = status.observed_generation == app.metadata.generation
                && status.updated_replicas == replicas
                && status.available_replicas == replicas
                && status.current_revision == status.update_revision
                && all.len() == replicas as usize
                && all
                    .iter()
                    .all(|p| is_active_pod(p) && is_pod_ready(p) && image_of(p) == image);
            done.then_some(())
        },
    )
    .await
}

async fn set_image_and_strategy(
    client: &Client,
    ns: &str,
    name: &str,
    version: &str,
    strategy: Value,
) {
    let apps: Api<App> = Api::namespaced(client.clone(), ns);
    let app = apps.get(name).await.unwrap();
    let mut containers =
        serde_json::to_value(&app.spec.template.spec.as_ref().unwrap().containers).unwrap();
    containers[0]["image"] = json!(format!("{SAMPLE_IMAGE}:{version}"));
    let patch =
        json!({"spec": {"strategy": strategy, "template": {"spec": {"containers": containers}}}});
    apps.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

fn assert_clean(report: &drover_e2e::observer::Report) {
    assert!(
        report.violations.is_empty(),
        "rollout bounds broken:\n{}",
        report.violations.join("\n")
    );
}

#[tokio::test]
async fn a_rolling_update_under_load_drops_no_request_and_stays_within_bounds() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-rollout").await;
    let node = real_node(&client).await;
    let mut manifest = app_manifest("web", 10, "1", &Placement::RealNode(node));
    manifest["spec"]["strategy"] =
        json!({"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}});
    manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(15);
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "SHUTDOWN_DELAY", "value": DRAIN}]);
    let app: App = serde_json::from_value(manifest).unwrap();
    Api::<App>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &app)
        .await
        .unwrap();
    wait_rolled_out(&client, &ns.name, "web", 10, &format!("{SAMPLE_IMAGE}:1")).await;
    let ip = service_ip(&client, &ns.name, "web").await;

    // 1 -> 2 surging 25%, never below 10 ready.
    let observer = ReplicaObserver::start(&client, &ns.name, "web").await;
    observer.require_ready(10);
    let load = Load::start(ip);
    tokio::time::sleep(Duration::from_secs(2)).await;
    set_image_and_strategy(
        &client,
        &ns.name,
        "web",
        "2",
        json!({"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}),
    )
    .await;
    wait_rolled_out(&client, &ns.name, "web", 10, &format!("{SAMPLE_IMAGE}:2")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let traffic = load.stop();
    let report = observer.stop().await;
    eprintln!("1 -> 2: {traffic:?}, at most {} pods", report.max_active);
    assert!(
        traffic.failures.is_empty(),
        "failed requests during the rollout: {:?}",
        traffic.failures
    );
    assert!(
        traffic.total() >= 1000,
        "too little load to tell: {traffic:?}"
    );
    assert!(
        traffic.by_version.get("1").is_some_and(|n| *n > 0)
            && traffic.by_version.get("2").is_some_and(|n| *n > 0),
        "responses did not switch version: {traffic:?}"
    );
    assert_clean(&report);
    assert!(report.max_active <= 13, "surged to {}", report.max_active);
    assert!(
        report.max_active > 10,
        "a surge of 25% was allowed but not used"
    );

    // 2 -> 1 with no surge and 25% unavailable: never more than 10 pods, never below 8
    // ready (25% of 10 rounds down to 2).
    let observer = ReplicaObserver::start(&client, &ns.name, "web").await;
    observer.require_ready(8);
    let load = Load::start(ip);
    tokio::time::sleep(Duration::from_secs(2)).await;
    set_image_and_strategy(
        &client,
        &ns.name,
        "web",
        "1",
        json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "25%"}}),
    )
    .await;
    wait_rolled_out(&client, &ns.name, "web", 10, &format!("{SAMPLE_IMAGE}:1")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let traffic = load.stop();
    let report = observer.stop().await;
    eprintln!("2 -> 1: {traffic:?}, at most {} pods", report.max_active);
    assert!(
        traffic.failures.is_empty(),
        "failed requests during the rollout back: {:?}",
        traffic.failures
    );
    assert!(
        traffic.total() >= 1000,
        "too little load to tell: {traffic:?}"
    );
    assert!(
        traffic.by_version.get("1").is_some_and(|n| *n > 0)
            && traffic.by_version.get("2").is_some_and(|n| *n > 0),
        "responses did not switch version: {traffic:?}"
    );
    assert_clean(&report);
    assert!(
        report.max_active <= 10,
        "surged to {} with maxSurge 0",
        report.max_active
    );

    // Both templates are revisions; going back to the first moved it to the top.
    let revisions = Api::<ControllerRevision>::namespaced(client.clone(), &ns.name)
        .list(&ListParams::default().labels("drover.dev/app=web"))
        .await
        .unwrap()
        .items;
    let mut numbers: Vec<(i64, String)> = revisions
        .iter()
        .map(|r| (r.revision, r.name_any()))
        .collect();
    numbers.sort();
    assert_eq!(numbers.len(), 2, "{numbers:?}");
    let app = Api::<App>::namespaced(client.clone(), &ns.name)
        .get("web")
        .await
        .unwrap();
    let status = app.status.unwrap();
    assert_eq!(numbers[1].1, status.update_revision, "{numbers:?}");
    assert_eq!((numbers[0].0, numbers[1].0), (2, 3), "{numbers:?}");
    assert_eq!(status.revision, Some(3));
    let table = kubectl_ok(&["-n", &ns.name, "get", "apps.drover.dev", "web"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
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
}

#[tokio::test]
async fn recreate_removes_every_old_pod_before_starting_new_ones() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-recreate").await;
    let pool = FakeNodePool::create(&client, "recreate", 2).await;
    let mut manifest = app_manifest("web", 4, "1", &pool.placement());
    manifest["spec"]["strategy"] = json!({"type": "Recreate"});
    let app: App = serde_json::from_value(manifest).unwrap();
    Api::<App>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &app)
        .await
        .unwrap();
    wait_rolled_out(&client, &ns.name, "web", 4, &format!("{SAMPLE_IMAGE}:1")).await;

    // Watch every pod event: no pod of the new image may exist while an old one does.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let watch_pods = pods.clone();
    let seen_mixed = Arc::new(AtomicBool::new(false));
    let mixed = seen_mixed.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let watcher_task = tokio::spawn(async move {
        while !stopped.load(Ordering::Relaxed) {
            let all = watch_pods
                .list(&ListParams::default().labels("drover.dev/app=web"))
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            let old = all.iter().any(|p| {
                image_of(p).ends_with(":1")
                    && !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded") | Some("Failed")
                    )
            });
            let new = all.iter().any(|p| image_of(p).ends_with(":2"));
            if old && new {
                mixed.store(true, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    set_image_and_strategy(&client, &ns.name, "web", "2", json!({"type": "Recreate"})).await;
    wait_rolled_out(&client, &ns.name, "web", 4, &format!("{SAMPLE_IMAGE}:2")).await;
    stop.store(true, Ordering::Relaxed);
    watcher_task.await.unwrap();
    assert!(
        !seen_mixed.load(Ordering::Relaxed),
        "old and new pods existed at the same time"
    );
}
