//! Rollouts on the real cluster: a rolling update under continuous HTTP load through the
//! App's Service drops no request, and an independent observer holds the surge and
//! availability bounds throughout; Recreate replaces every pod; revisions are recorded as
//! ControllerRevisions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use drover_crds::App;
use drover_crds::names::annotation;
use drover_e2e::observer::ReplicaObserver;
use drover_e2e::*;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// Request loops running side by side against the Service.
const CLIENTS: usize = 4;
/// Pause between one loop's requests: the load stays heavy (hundreds per second) without
/// starving the control plane on a small machine.
const REQUEST_GAP: Duration = Duration::from_millis(2);
/// How long a stopping sample pod keeps serving (failing readiness) before it closes its
/// listener: longer than the cluster takes to drop it from the Service. Every rolling
/// update relies on such a drain; it is the pod's part of zero downtime. kube-proxy's
/// network programming latency on a 2-core machine running every suite at once was
/// measured at up to 11 s (`kubeproxy_network_programming_duration_seconds`).
const DRAIN: &str = "15s";

/// What the load saw: requests per version, and every failure with when it happened
/// (since the load started).
#[derive(Debug, Default)]
struct Traffic {
    by_version: BTreeMap<String, usize>,
    failures: Vec<(Duration, String)>,
}

impl Traffic {
    fn total(&self) -> usize {
        self.by_version.values().sum::<usize>() + self.failures.len()
    }

    /// The failures grouped by message: count and when the first and last happened.
    fn failure_summary(&self) -> String {
        let mut kinds: BTreeMap<&str, (usize, Duration, Duration)> = BTreeMap::new();
        for (at, message) in &self.failures {
            let k = kinds.entry(message).or_insert((0, *at, *at));
            k.0 += 1;
            k.1 = k.1.min(*at);
            k.2 = k.2.max(*at);
        }
        kinds
            .iter()
            .map(|(m, (n, first, last))| {
                format!(
                    "{n} x {m:?} between {:.1}s and {:.1}s",
                    first.as_secs_f64(),
                    last.as_secs_f64()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Sends requests to `ip:80` from `CLIENTS` threads until stopped; a fresh connection
/// each time, so every request is balanced anew by kube-proxy.
struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Traffic>>,
}

impl Load {
    fn start(ip: IpAddr) -> Self {
        let started = Instant::now();
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
                            Ok((code, body)) => t
                                .failures
                                .push((started.elapsed(), format!("HTTP {code}: {body}"))),
                            Err(e) => t.failures.push((started.elapsed(), e.to_string())),
                        }
                        std::thread::sleep(REQUEST_GAP);
                    }
                    t
                })
            })
            .collect();
        Self {
            started,
            stop,
            threads,
        }
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
        all.failures.sort();
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

/// Rolls the App `web` to `version` with `strategy` while the load runs against its
/// Service and an observer requires `floor` ready pods throughout; asserts that no
/// request failed, that the load was heavy enough to tell and saw both versions, and
/// that the observer's bounds held.
async fn roll_under_load(
    client: &Client,
    ns: &str,
    ip: IpAddr,
    from: &str,
    to: &str,
    strategy: Value,
    floor: usize,
) -> drover_e2e::observer::Report {
    // The Service answers before the load starts: a Service made moments ago may not be in
    // kube-proxy's rules on the probing node yet, and a request then hangs until it times
    // out whatever the rollout does.
    wait_for("the Service to answer", Duration::from_secs(60), || async {
        let answer = tokio::task::spawn_blocking(move || http_get(ip, 80, "/")).await;
        matches!(answer, Ok(Ok((200, _)))).then_some(())
    })
    .await;
    let observer = ReplicaObserver::start(client, ns, "web").await;
    observer.require_ready(floor);
    let load = Load::start(ip);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let update_at = load.started.elapsed();
    set_image(client, ns, "web", to, Some(strategy)).await;
    wait_rolled_out(client, ns, "web", 10, &format!("{SAMPLE_IMAGE}:{to}")).await;
    let done_at = load.started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let traffic = load.stop();
    let report = observer.stop().await;
    eprintln!(
        "{from} -> {to}: {:?}, {} failed, at most {} pods; update at {:.1}s, rolled out at {:.1}s",
        traffic.by_version,
        traffic.failures.len(),
        report.max_active,
        update_at.as_secs_f64(),
        done_at.as_secs_f64()
    );
    assert!(
        traffic.failures.is_empty(),
        "{} of {} requests failed during the rollout {from} -> {to} (update at {:.1}s, rolled \
         out at {:.1}s): {}",
        traffic.failures.len(),
        traffic.total(),
        update_at.as_secs_f64(),
        done_at.as_secs_f64(),
        traffic.failure_summary()
    );
    assert!(
        traffic.total() >= 1000,
        "too little load to tell: {:?}",
        traffic.by_version
    );
    assert!(
        traffic.by_version.get(from).is_some_and(|n| *n > 0)
            && traffic.by_version.get(to).is_some_and(|n| *n > 0),
        "responses did not switch version: {:?}",
        traffic.by_version
    );
    assert!(
        report.violations.is_empty(),
        "rollout bounds broken:\n{}",
        report.violations.join("\n")
    );
    report
}

/// Where a test's App runs.
enum On {
    /// Wherever the cluster's scheduler puts it (the real workers).
    AnyNode,
    /// A pool of simulated nodes, made for the test: its name and size.
    Pool(&'static str, usize),
}

/// What every test here starts from: a fresh namespace (with its node pool), and the App
/// `web` of `replicas` pods at image 1 — its manifest changed by `edit` — created and
/// rolled out.
struct Started {
    client: Client,
    /// Before the namespace, so that it goes first, as a test's own would.
    pool: Option<FakeNodePool>,
    ns: TestNamespace,
    apps: Api<App>,
    /// The pods it rolled out with.
    running: Vec<Pod>,
}

async fn start(prefix: &str, on: On, replicas: i32, edit: impl FnOnce(&mut Value)) -> Started {
    let client = client().await;
    let ns = TestNamespace::create(&client, prefix).await;
    let pool = match on {
        On::AnyNode => None,
        On::Pool(name, size) => Some(FakeNodePool::create(&client, name, size).await),
    };
    let placement = pool
        .as_ref()
        .map_or(Placement::AnyNode, FakeNodePool::placement);
    let mut manifest = app_manifest("web", replicas, "1", &placement);
    edit(&mut manifest);
    let app: App = serde_json::from_value(manifest).unwrap();
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    apps.create(&PostParams::default(), &app).await.unwrap();
    let image = format!("{SAMPLE_IMAGE}:1");
    let running = wait_rolled_out(&client, &ns.name, "web", replicas, &image).await;
    Started {
        client,
        pool,
        ns,
        apps,
        running,
    }
}

#[tokio::test]
async fn a_rolling_update_under_load_drops_no_request_and_stays_within_bounds() {
    let Started {
        client,
        ns,
        pool: _pool,
        ..
    } = start("e2e-rollout", On::AnyNode, 10, |manifest| {
        manifest["spec"]["strategy"] =
            json!({"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}});
        manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(30);
        manifest["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "SHUTDOWN_DELAY", "value": DRAIN}]);
    })
    .await;
    let ip = service_ip(&client, &ns.name, "web").await;

    // 1 -> 2 surging 25%, never below 10 ready.
    let surge = json!({"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}});
    let report = roll_under_load(&client, &ns.name, ip, "1", "2", surge, 10).await;
    assert!(report.max_active <= 13, "surged to {}", report.max_active);
    assert!(
        report.max_active > 10,
        "a surge of 25% was allowed but not used"
    );

    // 2 -> 1 with no surge and 25% unavailable: never more than 10 pods, never below 8
    // ready (25% of 10 rounds down to 2).
    let unavailable = json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "25%"}});
    let report = roll_under_load(&client, &ns.name, ip, "2", "1", unavailable, 8).await;
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

    // Blue-green 1 -> 2: the preview runs beside the active pods and answers on its own
    // Service; on promote the App's Service switches at once, old pods go 10 s later.
    let observer = ReplicaObserver::start(&client, &ns.name, "web").await;
    observer.require_ready(10);
    let load = Load::start(ip);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let blue_green = json!({"type": "BlueGreen", "rollingUpdate": null,
        "blueGreen": {"scaleDownDelaySeconds": 10}});
    set_image(&client, &ns.name, "web", "2", Some(blue_green)).await;
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    wait_for("the preview to be ready", ROLLOUT_TIMEOUT, || async {
        let app = apps.get("web").await.ok()?;
        let ready = app
            .status
            .as_ref()?
            .blue_green
            .as_ref()?
            .preview_ready_at
            .is_some();
        (ready && progressing(&app) == Some(("True".into(), "BlueGreen".into()))).then_some(())
    })
    .await;
    let preview = service_ip(&client, &ns.name, "web-preview").await;
    // Ready preview pods reach the new Service's endpoints and kube-proxy's rules a moment
    // later (refused until then); from then on every answer is the new version.
    wait_for("the preview Service to answer", ROLLOUT_TIMEOUT, || async {
        http_get(preview, 80, "/").ok()
    })
    .await;
    for _ in 0..20 {
        let (code, body) = http_get(preview, 80, "/").unwrap();
        assert_eq!(code, 200);
        assert!(
            body.contains("\"version\":\"2\""),
            "the preview serves the new version: {body}"
        );
    }
    kubectl_ok(&[
        "-n",
        &ns.name,
        "annotate",
        "apps.drover.dev",
        "web",
        "drover.dev/promote=full",
    ]);
    wait_rolled_out(&client, &ns.name, "web", 10, &format!("{SAMPLE_IMAGE}:2")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let traffic = load.stop();
    let report = observer.stop().await;
    eprintln!(
        "blue-green 1 -> 2: {:?}, {} failed, at most {} pods",
        traffic.by_version,
        traffic.failures.len(),
        report.max_active
    );
    assert!(
        traffic.failures.is_empty(),
        "{} of {} requests failed during the blue-green switch: {}",
        traffic.failures.len(),
        traffic.total(),
        traffic.failure_summary()
    );
    assert!(
        traffic.by_version.get("1").is_some_and(|n| *n > 0)
            && traffic.by_version.get("2").is_some_and(|n| *n > 0),
        "responses did not switch version: {:?}",
        traffic.by_version
    );
    assert!(
        report.violations.is_empty(),
        "blue-green bounds broken:\n{}",
        report.violations.join("\n")
    );
    assert_eq!(
        report.max_active, 20,
        "the preview ran a full set beside the active one"
    );

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
    let Started {
        client,
        ns,
        pool: _pool,
        ..
    } = start("e2e-recreate", On::Pool("recreate", 2), 4, |manifest| {
        manifest["spec"]["strategy"] = json!({"type": "Recreate"});
    })
    .await;

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
    set_image(
        &client,
        &ns.name,
        "web",
        "2",
        Some(json!({"type": "Recreate"})),
    )
    .await;
    wait_rolled_out(&client, &ns.name, "web", 4, &format!("{SAMPLE_IMAGE}:2")).await;
    stop.store(true, Ordering::Relaxed);
    watcher_task.await.unwrap();
    assert!(
        !seen_mixed.load(Ordering::Relaxed),
        "old and new pods existed at the same time"
    );
}

fn progressing(app: &App) -> Option<(String, String)> {
    app.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

async fn set_paused(apps: &Api<App>, paused: bool) {
    patch_spec(apps, "web", json!({"paused": paused})).await;
}

#[tokio::test]
async fn a_paused_app_holds_template_changes_but_scales_and_resume_rolls_it() {
    let Started {
        client,
        ns,
        apps,
        pool: _pool,
        ..
    } = start("e2e-pause", On::Pool("pause", 2), 4, |_| {}).await;
    let v1 = format!("{SAMPLE_IMAGE}:1");

    set_paused(&apps, true).await;
    set_image(&client, &ns.name, "web", "2", None).await;
    wait_for("the App to report the pause", ROLLOUT_TIMEOUT, || async {
        let app = apps.get("web").await.ok()?;
        let seen = app.status.as_ref()?.observed_generation == app.metadata.generation;
        (seen && progressing(&app) == Some(("Unknown".into(), "Paused".into()))).then_some(())
    })
    .await;
    // Scaling goes on while paused, with the held revision.
    patch_spec(&apps, "web", json!({"replicas": 5})).await;
    let pods = wait_for("the paused App to scale to 5", ROLLOUT_TIMEOUT, || async {
        let pods = Api::<Pod>::namespaced(client.clone(), &ns.name)
            .list(&ListParams::default().labels("drover.dev/app=web"))
            .await
            .ok()?
            .items;
        let ready = pods.iter().filter(|p| is_active_pod(p) && is_pod_ready(p));
        (ready.count() == 5).then_some(pods)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let revisions = Api::<ControllerRevision>::namespaced(client.clone(), &ns.name)
        .list(&ListParams::default().labels("drover.dev/app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(revisions.len(), 1, "no revision is made while paused");
    assert!(
        pods.iter().all(|p| image_of(p) == v1),
        "no pod was replaced while paused"
    );

    set_paused(&apps, false).await;
    wait_rolled_out(&client, &ns.name, "web", 5, &format!("{SAMPLE_IMAGE}:2")).await;
    let app = apps.get("web").await.unwrap();
    assert_eq!(progressing(&app), Some(("True".into(), "Complete".into())));
}

/// Waits until the App `web` runs exactly `old` pods of `sample:1`, all ready, and `new`
/// of the image that does not exist, nothing terminating, and still does 3 s later.
async fn wait_stuck_split(client: &Client, ns: &str, old: usize, new: usize) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let split = || async {
        let all = pods
            .list(&ListParams::default().labels("drover.dev/app=web"))
            .await
            .ok()?
            .items;
        let of = |version: &'static str| {
            all.iter()
                .filter(move |p| image_of(p).ends_with(version))
                .collect::<Vec<_>>()
        };
        let ready_old = of(":1").into_iter().filter(|p| is_pod_ready(p)).count();
        let settled = all.iter().all(is_active_pod) && all.len() == old + new;
        (settled && ready_old == old && of(":does-not-exist").len() == new).then_some(())
    };
    let what = format!("{old} ready pods of sample:1 and {new} of the missing image");
    wait_for(&what, ROLLOUT_TIMEOUT, split).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        split().await.is_some(),
        "the split did not hold: wanted {what}"
    );
}

async fn scale(apps: &Api<App>, replicas: i32) {
    patch_spec(apps, "web", json!({"replicas": replicas})).await;
}

#[tokio::test]
async fn scaling_mid_rollout_is_proportional_and_a_paused_rollout_keeps_its_split() {
    let Started {
        client,
        ns,
        apps,
        pool: _pool,
        ..
    } = start("e2e-proportional", On::AnyNode, 4, |manifest| {
        manifest["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    })
    .await;
    let v1 = format!("{SAMPLE_IMAGE}:1");

    // A rollout that cannot finish: one new pod surges and never becomes ready.
    set_image(&client, &ns.name, "web", "does-not-exist", None).await;
    wait_stuck_split(&client, &ns.name, 4, 1).await;
    // Scaled to 8 (an autoscaler under load): the 3 missing pods are shared 4:1 as the
    // pods are (2 old, 1 new) and the surge stays the rollout's (1 new) — not 4 old and
    // 5 new, which would put the new capacity on the unproven revision.
    scale(&apps, 8).await;
    wait_stuck_split(&client, &ns.name, 6, 3).await;

    // Paused, each revision keeps its share as the App scales: 12 → 8 old and 4 new,
    // then 4 → 3 and 1.
    set_paused(&apps, true).await;
    scale(&apps, 12).await;
    wait_stuck_split(&client, &ns.name, 8, 4).await;
    scale(&apps, 4).await;
    wait_stuck_split(&client, &ns.name, 3, 1).await;

    // Back to the good image and resumed: the rollout ends on it.
    set_image(&client, &ns.name, "web", "1", None).await;
    set_paused(&apps, false).await;
    wait_rolled_out(&client, &ns.name, "web", 4, &v1).await;
}

#[tokio::test]
async fn a_rollout_survives_a_controller_crash_within_its_bounds() {
    const REPLICAS: i32 = 60;
    let Started {
        client,
        ns,
        pool: _pool,
        ..
    } = start(
        "e2e-crash-rollout",
        On::Pool("crashroll", 2),
        REPLICAS,
        |manifest| {
            // A pod counts as available a second after it is ready: the rollout takes a while.
            manifest["spec"]["minReadySeconds"] = json!(1);
            manifest["spec"]["strategy"] =
                json!({"rollingUpdate": {"maxSurge": 5, "maxUnavailable": 0}});
        },
    )
    .await;

    let observer = ReplicaObserver::start(&client, &ns.name, "web").await;
    observer.require_ready(REPLICAS as usize);
    set_image(
        &client,
        &ns.name,
        "web",
        "2",
        Some(json!({"rollingUpdate": {"maxSurge": 5, "maxUnavailable": 0}})),
    )
    .await;
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    let updated_at_kill = wait_for("the rollout to be under way", ROLLOUT_TIMEOUT, || async {
        let app = apps.get("web").await.ok()?;
        let status = app.status?;
        let current = status.observed_generation == app.metadata.generation;
        (current && status.updated_replicas >= 5).then_some(status.updated_replicas)
    })
    .await;
    kill(CONTROLLER);
    assert!(
        updated_at_kill < REPLICAS,
        "the rollout finished before the controller was killed"
    );
    wait_ready(CONTROLLER);
    wait_rolled_out(
        &client,
        &ns.name,
        "web",
        REPLICAS,
        &format!("{SAMPLE_IMAGE}:2"),
    )
    .await;
    let report = observer.stop().await;
    eprintln!(
        "controller killed with {updated_at_kill} of {REPLICAS} pods updated; at most {} pods",
        report.max_active
    );
    assert!(
        report.violations.is_empty(),
        "bounds broken across the crash:\n{}",
        report.violations.join("\n")
    );
    assert!(report.max_active <= REPLICAS as usize + 5);
}

/// Waits until the App runs `new` ready pods of `sample:2` and `old` of `sample:1`, and
/// nothing else; returns the App.
async fn wait_split(client: &Client, ns: &str, new: usize, old: usize) -> App {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let apps: Api<App> = Api::namespaced(client.clone(), ns);
    wait_until_in(
        ns,
        &format!("a split of {new} new and {old} old pods"),
        ROLLOUT_TIMEOUT,
        || async {
            let all = pods
                .list(&ListParams::default().labels("drover.dev/app=web"))
                .await
                .map_err(|e| e.to_string())?
                .items;
            let app = apps.get("web").await.map_err(|e| e.to_string())?;
            let count = |version: &str| {
                all.iter()
                    .filter(|p| image_of(p).ends_with(version) && is_pod_ready(p))
                    .count()
            };
            let settled = all.iter().all(is_active_pod) && all.len() == new + old;
            if settled && count(":2") == new && count(":1") == old {
                return Ok(app);
            }
            Err(format!(
                "{} pods: {} ready new, {} ready old, {} terminating; canary status {:?}; \
                 annotations {:?}",
                all.len(),
                count(":2"),
                count(":1"),
                all.iter().filter(|p| !is_active_pod(p)).count(),
                app.status.as_ref().and_then(|s| s.canary.as_ref()),
                app.metadata.annotations,
            ))
        },
    )
    .await
}

fn annotate(ns: &str, annotation: &str) {
    kubectl_ok(&[
        "-n",
        ns,
        "annotate",
        "apps.drover.dev",
        "web",
        annotation,
        "--overwrite",
    ]);
}

fn canary_step(app: &App) -> (i32, i32, bool) {
    let c = app.status.as_ref().and_then(|s| s.canary.clone()).unwrap();
    (c.step, c.weight, c.aborted)
}

#[tokio::test]
async fn a_canary_follows_its_steps_and_obeys_promote_and_abort() {
    let canary = json!({"type": "Canary", "canary": {"steps": [
        {"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}},
    ]}});
    let Started {
        client,
        ns,
        pool: _pool,
        ..
    } = start("e2e-canary", On::Pool("canary", 2), 10, |manifest| {
        manifest["spec"]["strategy"] = canary.clone();
    })
    .await;

    let observer = ReplicaObserver::start(&client, &ns.name, "web").await;
    observer.require_ready(10);
    set_image(&client, &ns.name, "web", "2", Some(canary)).await;
    // 20%: two new pods, then the open pause holds them there.
    let app = wait_split(&client, &ns.name, 2, 8).await;
    let app = if canary_step(&app).0 == 1 {
        app
    } else {
        wait_for("the canary to reach its pause", ROLLOUT_TIMEOUT, || async {
            let app = Api::<App>::namespaced(client.clone(), &ns.name)
                .get("web")
                .await
                .ok()?;
            (canary_step(&app).0 == 1).then_some(app)
        })
        .await
    };
    assert_eq!(canary_step(&app), (1, 20, false));
    assert_eq!(progressing(&app), Some(("True".into(), "Canary".into())));
    let update = app.status.as_ref().unwrap().update_revision.clone();
    let selector = kubectl_ok(&[
        "-n",
        &ns.name,
        "get",
        "service",
        "web-canary",
        "-o",
        "jsonpath={.spec.selector.drover\\.dev/revision}",
    ]);
    assert_eq!(
        selector, update,
        "the canary Service selects the new revision"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_split(&client, &ns.name, 2, 8).await;

    // Promote: 50%, held by the second pause.
    annotate(&ns.name, "drover.dev/promote=step");
    wait_split(&client, &ns.name, 5, 5).await;
    // Abort: every pod back on the stable revision, reported.
    annotate(&ns.name, "drover.dev/abort=true");
    wait_split(&client, &ns.name, 0, 10).await;
    let app = wait_for("the abort to be reported", ROLLOUT_TIMEOUT, || async {
        let app = Api::<App>::namespaced(client.clone(), &ns.name)
            .get("web")
            .await
            .ok()?;
        (progressing(&app) == Some(("False".into(), "Aborted".into()))).then_some(app)
    })
    .await;
    assert!(canary_step(&app).2);
    // Promote resumes where it stood; promote=full finishes.
    annotate(&ns.name, "drover.dev/promote=step");
    wait_split(&client, &ns.name, 5, 5).await;
    annotate(&ns.name, "drover.dev/promote=full");
    wait_rolled_out(&client, &ns.name, "web", 10, &format!("{SAMPLE_IMAGE}:2")).await;
    let report = observer.stop().await;
    assert!(
        report.violations.is_empty(),
        "canary bounds broken:\n{}",
        report.violations.join("\n")
    );
    let app = Api::<App>::namespaced(client.clone(), &ns.name)
        .get("web")
        .await
        .unwrap();
    assert_eq!(progressing(&app), Some(("True".into(), "Complete".into())));
    // Only the number of the last command settled stays (see `CommandRecord`).
    assert!(
        !app.annotations()
            .keys()
            .any(|k| k.starts_with("drover.dev/") && k != annotation::SETTLED_COMMAND),
        "every command annotation is removed once acted on: {:?}",
        app.annotations()
    );
    let settled = app.annotations()[annotation::SETTLED_COMMAND].clone();
    let last = app.status.as_ref().unwrap().last_command.clone().unwrap();
    assert_eq!(
        settled,
        last.number.to_string(),
        "the last command's removal is recorded"
    );
}

/// Pods of the App `web` right now: (active, terminating).
async fn pod_counts(pods: &Api<Pod>) -> (usize, usize) {
    let all = pods
        .list(&ListParams::default().labels("drover.dev/app=web"))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let terminating = all
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .count();
    (all.iter().filter(|p| is_active_pod(p)).count(), terminating)
}

#[tokio::test]
async fn a_pod_disruption_budget_holds_a_rollout_until_it_allows_evictions() {
    let surge = json!({"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    let Started {
        client,
        ns,
        pool: _pool,
        ..
    } = start("e2e-pdb", On::Pool("pdb", 2), 4, |manifest| {
        manifest["spec"]["strategy"] = surge.clone();
    })
    .await;
    // Someone else's budget: every pod of the running revision must stay.
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    let running = apps
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .current_revision;
    let pdb: k8s_openapi::api::policy::v1::PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "hold"},
        "spec": {"minAvailable": 4, "selector": {"matchLabels": {"drover.dev/revision": running}}},
    }))
    .unwrap();
    let pdbs: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
        Api::namespaced(client.clone(), &ns.name);
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();

    set_image(&client, &ns.name, "web", "2", Some(surge)).await;
    let blocked = wait_for("an eviction to be refused", ROLLOUT_TIMEOUT, || async {
        let e = kubectl_ok(&[
            "-n",
            &ns.name,
            "get",
            "events",
            "--field-selector",
            "reason=EvictionBlocked",
            "-o",
            "custom-columns=MESSAGE:.message",
            "--no-headers",
        ]);
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert!(blocked.contains("PodDisruptionBudget"), "{blocked}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let all = pods
        .list(&ListParams::default().labels("drover.dev/app=web"))
        .await
        .unwrap()
        .items;
    let old = all
        .iter()
        .filter(|p| image_of(p).ends_with(":1") && is_active_pod(p))
        .count();
    assert_eq!(old, 4, "no old pod went while the budget refused");

    pdbs.delete("hold", &Default::default()).await.unwrap();
    wait_rolled_out(&client, &ns.name, "web", 4, &format!("{SAMPLE_IMAGE}:2")).await;
}

#[tokio::test]
async fn the_disruption_budget_is_kept_for_evictions_and_paces_scale_in() {
    let Started {
        client,
        ns,
        apps,
        running,
        pool: _pool,
    } = start("e2e-budget", On::AnyNode, 4, |manifest| {
        manifest["spec"]["disruption"] = json!({"maxUnavailable": 1});
    })
    .await;

    let pdbs: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
        Api::namespaced(client.clone(), &ns.name);
    let pdb = wait_for(
        "the App's PodDisruptionBudget to allow one disruption",
        ROLLOUT_TIMEOUT,
        || async {
            let pdb = pdbs.get("web").await.ok()?;
            (pdb.status.as_ref()?.disruptions_allowed == 1).then_some(pdb)
        },
    )
    .await;
    let spec = pdb.spec.unwrap();
    assert_eq!(
        spec.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert_eq!(
        spec.selector.unwrap().match_labels.unwrap()["drover.dev/app"],
        "web"
    );

    // Two evictions at once (as a drain would), through kubectl, which does not retry a
    // refusal: the budget lets one through.
    let evict = |pod: &Pod| {
        let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": pod.name_any(), "namespace": ns.name}});
        let path = std::env::temp_dir().join(format!("eviction-{}.json", pod.name_any()));
        std::fs::write(&path, body.to_string()).unwrap();
        let url = format!(
            "/api/v1/namespaces/{}/pods/{}/eviction",
            ns.name,
            pod.name_any()
        );
        kubectl(&["create", "--raw", &url, "-f", path.to_str().unwrap()])
    };
    let first = evict(&running[0]);
    assert!(
        first.status.success(),
        "the first eviction is allowed: {first:?}"
    );
    let second = evict(&running[1]);
    assert!(
        !second.status.success()
            && String::from_utf8_lossy(&second.stderr).contains("disruption budget"),
        "the second is refused: {second:?}"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    wait_rolled_out(&client, &ns.name, "web", 4, &format!("{SAMPLE_IMAGE}:1")).await;

    // Scale-in goes one pod at a time: never two going away together.
    patch_spec(&apps, "web", json!({"replicas": 1})).await;
    let most_going = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    wait_for("the scale-in to 1 pod", ROLLOUT_TIMEOUT, || {
        let pods = pods.clone();
        let most_going = most_going.clone();
        async move {
            let (active, going) = pod_counts(&pods).await;
            most_going.fetch_max(going, Ordering::Relaxed);
            (active == 1 && going == 0).then_some(())
        }
    })
    .await;
    assert_eq!(
        most_going.load(Ordering::Relaxed),
        1,
        "pods went away one at a time"
    );
}
