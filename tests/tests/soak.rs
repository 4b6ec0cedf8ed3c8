//! The soak: Apps rolling, canaries and blue-greens promoted, bursts scheduled, all at
//! once and for a long while, while drover's processes and the control plane are broken
//! again and again — the leading controller killed (SIGKILL, two replicas with leader
//! election), the scheduler killed in the middle of bursts, every connection of both cut,
//! the kube-apiserver killed, a leader frozen (SIGSTOP) past its lease while a standby
//! takes over. An independent observer ([`Invariants`]) checks drover's promises at
//! every event throughout; the drivers check that no command is acted on twice, and the
//! audit log that no pod is bound twice and that the frozen leader wrote nothing once
//! its successor had.
//!
//! Bounded: `DROVER_SOAK=full` (`cargo xtask test --soak`) injects the full counts
//! ([`FULL`]); otherwise a quick profile runs, as in CI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use drover_crds::App;
use drover_crds::names::reason;
use drover_e2e::invariants::Invariants;
use drover_e2e::*;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// How many of each fault one run injects.
#[derive(Debug, Clone, Copy)]
struct Profile {
    controller_kills: u32,
    /// Scheduler kills that land while pods of a burst still wait for a node.
    scheduler_kills: u32,
    connections_cut: usize,
    apiserver_restarts: u32,
    partitions: u32,
}

/// The full run (`cargo xtask test --soak`): the counts the fault suite promises.
const FULL: Profile = Profile {
    controller_kills: 100,
    scheduler_kills: 20,
    connections_cut: 300,
    apiserver_restarts: 10,
    partitions: 1,
};

/// What CI runs: every kind of fault, a few times.
const QUICK: Profile = Profile {
    controller_kills: 6,
    scheduler_kills: 2,
    connections_cut: 30,
    apiserver_restarts: 1,
    partitions: 1,
};

fn profile() -> (&'static str, Profile) {
    match std::env::var("DROVER_SOAK").as_deref() {
        Ok("full") => ("full", FULL),
        Ok("quick") | Err(_) => ("quick", QUICK),
        Ok(other) => panic!("DROVER_SOAK={other}: give full or quick"),
    }
}

/// How long a request may keep failing before the test gives up on it: an apiserver
/// restart on this machine takes up to a minute.
const API_OUTAGE: Duration = Duration::from_secs(180);
/// A rollout under faults: the controller may be leaderless for a lease at a time, many
/// times over.
const SOAK_ROLLOUT: Duration = Duration::from_secs(420);

const ROLLING: (&str, i32) = ("rolling", 6);
const ONE_BY_ONE: (&str, i32) = ("onebyone", 3);
const CANARY: (&str, i32) = ("canary", 4);
const BLUE_GREEN: (&str, i32) = ("bluegreen", 3);
const BURST: &str = "burst";
const BURST_LOW: i32 = 4;
const BURST_HIGH: i32 = 24;
/// The canary's pauses, by step index: each waits for one `promote=step`.
const CANARY_PAUSES: [i32; 3] = [1, 3, 5];

/// A small random source for the moments faults land at (its seed is printed).
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("soak: random seed {seed}");
        Self(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

/// Retries `op` until it succeeds (the apiserver may be restarting).
async fn retried<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    wait_until(what, API_OUTAGE, || {
        let attempt = op();
        async move { attempt.await.map_err(|e| e.to_string()) }
    })
    .await
}

/// The App's manifest for the soak: the sample image, a readiness probe that one slow
/// answer on a loaded machine does not fail, and `strategy`.
fn soak_app(name: &str, replicas: i32, placement: &Placement, strategy: Value) -> Value {
    let mut manifest = app_manifest(name, replicas, "1", placement);
    let probe = &mut manifest["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    probe["timeoutSeconds"] = json!(5);
    probe["failureThreshold"] = json!(3);
    manifest["spec"]["strategy"] = strategy;
    manifest
}

async fn get_app(apps: &Api<App>, name: &str) -> App {
    retried(&format!("reading App {name}"), || apps.get(name)).await
}

/// Merges `patch` into the App, retried.
async fn merge(apps: &Api<App>, name: &str, what: &str, patch: Value) {
    let params = PatchParams::default();
    let patch = Patch::Merge(patch);
    retried(what, || apps.patch(name, &params, &patch)).await;
}

/// Points the App's container at `sample:<version>`.
async fn set_version(apps: &Api<App>, name: &str, version: &str) {
    let app = get_app(apps, name).await;
    let mut containers =
        serde_json::to_value(&app.spec.template.spec.as_ref().unwrap().containers).unwrap();
    containers[0]["image"] = json!(format!("{SAMPLE_IMAGE}:{version}"));
    let patch = json!({"spec": {"template": {"spec": {"containers": containers}}}});
    merge(apps, name, &format!("updating App {name}"), patch).await;
}

async fn set_replicas(apps: &Api<App>, name: &str, replicas: i32) {
    let patch = json!({"spec": {"replicas": replicas}});
    merge(apps, name, &format!("scaling App {name}"), patch).await;
}

async fn command(apps: &Api<App>, name: &str, annotation: &str, value: &str) {
    let patch = json!({"metadata": {"annotations": {annotation: value}}});
    merge(apps, name, &format!("annotating App {name}"), patch).await;
}

/// Waits until the App's status answers its latest spec and `done` holds.
async fn wait_app(apps: &Api<App>, name: &str, what: &str, done: impl Fn(&App) -> bool) -> App {
    wait_until(&format!("App {name}: {what}"), SOAK_ROLLOUT, || async {
        let app = apps.get(name).await.map_err(|e| e.to_string())?;
        let status = app.status.clone().unwrap_or_default();
        let current = status.observed_generation == app.metadata.generation;
        if current && done(&app) {
            Ok(app)
        } else {
            Err(format!("{status:?}"))
        }
    })
    .await
}

fn version(round: u32) -> &'static str {
    ["2", "3", "1"][round as usize % 3]
}

/// What the drivers saw, besides the observer.
#[derive(Debug, Default)]
struct Driven {
    rounds: BTreeMap<&'static str, u32>,
    /// Promote commands given, by App.
    commands: BTreeMap<&'static str, u32>,
    violations: Vec<String>,
}

/// What a driver does between giving an App a new image and seeing it rolled out.
#[derive(Debug, Clone, Copy)]
enum Steps {
    /// Nothing: the rolling update runs by itself.
    None,
    /// The canary's pauses, each promoted.
    CanaryPauses,
    /// The blue-green preview, then the switch.
    BlueGreenSwitch,
}

/// Rolls the App to a new image, round after round, until told to stop, taking its
/// rollout through `steps`.
async fn drive(
    client: Client,
    ns: String,
    (name, replicas): (&'static str, i32),
    steps: Steps,
    stop: Arc<AtomicBool>,
    driven: Arc<Mutex<Driven>>,
) {
    let apps: Api<App> = Api::namespaced(client.clone(), &ns);
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        let v = version(round);
        set_version(&apps, name, v).await;
        match steps {
            Steps::None => {}
            Steps::CanaryPauses => promote_pauses(&apps, name, &driven).await,
            Steps::BlueGreenSwitch => switch(&apps, name, &driven).await,
        }
        let image = format!("{SAMPLE_IMAGE}:{v}");
        wait_rolled_out_within(&client, &ns, name, replicas, &image, SOAK_ROLLOUT).await;
        round += 1;
        *driven.lock().unwrap().rounds.entry(name).or_default() += 1;
    }
}

/// A canary through its three pauses, one `promote=step` each; a pause passed without
/// its promote (a command acted on twice) is a violation.
async fn promote_pauses(apps: &Api<App>, name: &'static str, driven: &Mutex<Driven>) {
    for pause in CANARY_PAUSES {
        let app = wait_app(apps, name, &format!("at canary pause {pause}"), |app| {
            let status = app.status.as_ref().unwrap();
            status
                .canary
                .as_ref()
                .is_some_and(|c| c.revision == status.update_revision && c.step >= pause)
        })
        .await;
        let step = app.status.unwrap().canary.unwrap().step;
        if step != pause {
            driven.lock().unwrap().violations.push(format!(
                "the canary stood at step {step} where pause {pause} waits for a promote \
                 not given yet: a command was acted on twice"
            ));
        }
        command(apps, name, "drover.dev/promote", "step").await;
        *driven.lock().unwrap().commands.entry(name).or_default() += 1;
        wait_app(apps, name, &format!("past canary pause {pause}"), |app| {
            let status = app.status.as_ref().unwrap();
            status
                .canary
                .as_ref()
                .is_none_or(|c| c.revision != status.update_revision || c.step > pause)
        })
        .await;
    }
}

/// A blue-green preview switched by one `promote`; a switch before it is a violation.
async fn switch(apps: &Api<App>, name: &'static str, driven: &Mutex<Driven>) {
    let app = wait_app(apps, name, "previewing the new revision", |app| {
        let status = app.status.as_ref().unwrap();
        status.blue_green.as_ref().is_some_and(|bg| {
            (bg.preview == status.update_revision && bg.preview_ready_at.is_some())
                || bg.active == status.update_revision
        })
    })
    .await;
    let status = app.status.unwrap();
    if status.blue_green.unwrap().active == status.update_revision {
        driven.lock().unwrap().violations.push(format!(
            "the blue-green App switched to {} before it was promoted",
            status.update_revision
        ));
    }
    command(apps, name, "drover.dev/promote", "full").await;
    *driven.lock().unwrap().commands.entry(name).or_default() += 1;
}

/// The faults injected, as counted when they were.
#[derive(Debug, Default)]
struct Injected {
    controller_kills: u32,
    scheduler_kills: u32,
    /// Scheduler kills with pods of the burst still waiting for a node.
    scheduler_kills_mid_burst: u32,
    connections_cut: usize,
    apiserver_restarts: u32,
    partitions: u32,
    /// The longest the controller went without a leader after a kill.
    longest_leaderless: Duration,
}

impl Injected {
    fn reached(&self, p: &Profile) -> bool {
        self.controller_kills >= p.controller_kills
            // Kills that met pods still waiting for a node count; the others come again.
            && self.scheduler_kills_mid_burst >= p.scheduler_kills
            && self.connections_cut >= p.connections_cut
            && self.apiserver_restarts >= p.apiserver_restarts
            && self.partitions >= p.partitions
    }
}

/// Waits for the process that leads `lease` (a kill is always of the leader).
async fn wait_leader(client: &Client, command: &str, lease: &str) -> (String, u32) {
    wait_for(&format!("a {command} to lead"), API_OUTAGE, || async {
        leader(client, command, lease).await
    })
    .await
}

/// Kills the leading controller at a random moment of its leadership; returns how long
/// it had taken a leader to appear, or none when it stepped down before the kill (a cut
/// or a restart may make it) and was spared.
async fn kill_controller(client: &Client, rng: &mut Rng) -> Option<Duration> {
    let waited = Instant::now();
    let (pod, pid) = wait_leader(client, "controller", CONTROLLER_LEASE).await;
    let leaderless = waited.elapsed();
    tokio::time::sleep(rng.millis(0, 5000)).await;
    if leader(client, "controller", CONTROLLER_LEASE).await != Some((pod.clone(), pid)) {
        return None;
    }
    signal(pid, "KILL");
    replace_pod(&pod);
    Some(leaderless)
}

/// Scales the burst App up and kills the scheduler while it places the new pods; returns
/// whether pods were still waiting for a node when it died.
async fn burst_and_kill_scheduler(client: &Client, ns: &str, rng: &mut Rng) -> bool {
    let apps: Api<App> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    set_replicas(&apps, BURST, BURST_LOW).await;
    wait_until("the burst to settle low", SOAK_ROLLOUT, || async {
        let active = app_pods_now(&pods, BURST).await?;
        let bound = active.iter().filter(|p| bound(p)).count();
        (active.len() <= BURST_LOW as usize && bound == active.len())
            .then_some(())
            .ok_or(format!("{} active, {bound} bound", active.len()))
    })
    .await;
    let (pod, pid) = wait_leader(client, "scheduler", SCHEDULER_LEASE).await;
    set_replicas(&apps, BURST, BURST_HIGH + rng.below(8) as i32).await;
    // The kill lands once the burst's first pods wait for a node, a little later at
    // random (drover's scheduler binds a pod within milliseconds of its creation).
    let asked = Instant::now();
    while !app_pods_now(&pods, BURST)
        .await
        .is_ok_and(|active| active.iter().any(|p| !bound(p)))
    {
        assert!(
            asked.elapsed() < API_OUTAGE,
            "no pod of the burst waited for a node"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(rng.millis(0, 150)).await;
    signal(pid, "KILL");
    replace_pod(&pod);
    // Mid-burst: pods still waited when it died, for its successor to place.
    app_pods_now(&pods, BURST)
        .await
        .is_ok_and(|active| active.iter().any(|p| !bound(p)))
}

fn bound(p: &Pod) -> bool {
    p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
}

async fn app_pods_now(pods: &Api<Pod>, app: &str) -> Result<Vec<Pod>, String> {
    Ok(pods
        .list(&ListParams::default().labels(&format!("drover.dev/app={app}")))
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .filter(is_active_pod)
        .collect())
}

/// The longest a controller may stay frozen: under the chart's liveness probe's 20 s.
const FREEZE_LIMIT: Duration = Duration::from_secs(18);

/// Freezes the leading controller (SIGSTOP) past its lease while the standby takes over,
/// then wakes it; returns the writes the frozen leader made after its successor's first.
async fn partition_leader(client: &Client) -> Vec<String> {
    wait_for("two controllers running", API_OUTAGE, || async {
        (drover_processes("controller").len() == 2).then_some(())
    })
    .await;
    let (old, pid) = wait_leader(client, "controller", CONTROLLER_LEASE).await;
    let old_ip = process_ip(pid);
    let since = SystemTime::now();
    signal(pid, "STOP");
    let stopped = std::time::Instant::now();
    // The successor, by its process: a replica whose pod was force-deleted may still run
    // until its kubelet stops it, and may lead meanwhile.
    let (new, new_pid) = wait_for("the standby to take the lease", API_OUTAGE, || async {
        leader(client, "controller", CONTROLLER_LEASE)
            .await
            .filter(|(holder, _)| *holder != old)
    })
    .await;
    let new_ip = process_ip(new_pid);
    // The successor works a while before the frozen leader wakes — but the frozen one
    // wakes before its kubelet would restart it for failing its liveness probe (three
    // failures 10 s apart: 20 s at the earliest), or there would be no one to wake.
    let work = Duration::from_secs(5).min(FREEZE_LIMIT.saturating_sub(stopped.elapsed()));
    tokio::time::sleep(work).await;
    signal(pid, "CONT");
    tokio::time::sleep(Duration::from_secs(15)).await;

    // Addresses are reused: only records of this freeze count, ordered by when they
    // were written.
    let from = Timestamp::try_from(since).unwrap();
    let at = |r: &Value| {
        r["stageTimestamp"]
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok())
    };
    let writes = |ip: &str| {
        let mut records: Vec<(Timestamp, Value)> = audit_records(since, ip)
            .into_iter()
            .filter(|r| {
                r["sourceIPs"]
                    .as_array()
                    .is_some_and(|s| s.contains(&json!(ip)))
            })
            .filter_map(|r| Some((at(&r)?, r)))
            .filter(|(t, _)| *t >= from)
            .collect();
        records.sort_by_key(|(t, _)| *t);
        records
    };
    let successor = writes(&new_ip);
    let (first_new, last_new) = match (successor.first(), successor.last()) {
        (Some((first, _)), Some((last, _))) => (*first, *last),
        _ => panic!("the new leader's writes in the audit log"),
    };
    // While the successor leads, the old leader must not write; a refused renewal of the
    // lease is how it learns. (Once the successor is gone and the lease lapsed, any
    // process may lead again.)
    let late: Vec<String> = writes(&old_ip)
        .into_iter()
        .filter(|(t, _)| *t > first_new && *t <= last_new)
        .map(|(_, r)| r)
        .filter(|r| {
            let refused = r["responseStatus"]["code"].as_i64().unwrap_or(0) >= 400;
            !(refused && r["objectRef"]["resource"] == "leases")
        })
        .map(|r| {
            format!(
                "the frozen leader {old} wrote after its successor {new}: {} {}/{} {} -> {}",
                r["verb"],
                r["objectRef"]["resource"],
                r["objectRef"]["name"],
                r["stageTimestamp"],
                r["responseStatus"]["code"]
            )
        })
        .collect();
    eprintln!(
        "soak: partition: {old} frozen, {new} took over (writes {first_new} to {last_new}), {} \
         late writes",
        late.len()
    );
    // It woke to a lost lease and stopped; a fresh pod replaces it.
    replace_pod(&old);
    late
}

/// The most a counter reached in each process, summed: watch errors of drover's
/// components (category `watch`, and `watch_expired` for a 410 Gone), scraped from their
/// metrics while they live (a killed process's last few seconds go uncounted).
#[derive(Debug, Default)]
struct WatchErrors(Mutex<BTreeMap<(String, String), u64>>);

impl WatchErrors {
    async fn scrape(&self, client: &Client) {
        let pods: Api<Pod> = Api::namespaced(client.clone(), "drover-system");
        let Ok(list) = pods.list(&ListParams::default()).await else {
            return;
        };
        for pod in list.items {
            let name = pod.name_any();
            let path = format!("/api/v1/namespaces/drover-system/pods/{name}:8080/proxy/metrics");
            let request = http::Request::get(path).body(vec![]).unwrap();
            let Ok(text) = client.request_text(request).await else {
                continue;
            };
            let mut seen = self.0.lock().unwrap();
            for line in text.lines() {
                if !line.starts_with("drover_reconcile_errors_total{") {
                    continue;
                }
                for category in ["watch", "watch_expired"] {
                    if line.contains(&format!("category=\"{category}\"")) {
                        let value = line
                            .rsplit(' ')
                            .next()
                            .and_then(|v| v.parse::<f64>().ok())
                            .unwrap_or(0.0) as u64;
                        let entry = seen.entry((name.clone(), category.into())).or_default();
                        *entry = (*entry).max(value);
                    }
                }
            }
        }
    }

    fn total(&self, category: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|((_, c), _)| c == category)
            .map(|(_, v)| v)
            .sum()
    }
}

/// Pods bound twice in `ns` by the audit log: two successful bindings of one name with
/// no creation of it in between.
fn bound_twice(since: SystemTime, ns: &str) -> (usize, Vec<String>) {
    let mut records: Vec<Value> = audit_records(since, ns)
        .into_iter()
        .filter(|r| {
            r["objectRef"]["namespace"] == ns
                && r["objectRef"]["resource"] == "pods"
                && r["verb"] == "create"
                && r["responseStatus"]["code"]
                    .as_i64()
                    .is_some_and(|c| c < 300)
        })
        .collect();
    records.sort_by_key(|r| r["stageTimestamp"].as_str().unwrap_or_default().to_string());
    let mut is_bound: BTreeMap<String, bool> = BTreeMap::new();
    let mut bindings = 0;
    let mut twice = vec![];
    for r in records {
        let name = r["objectRef"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if r["objectRef"]["subresource"] == "binding" {
            bindings += 1;
            if is_bound.insert(name.clone(), true) == Some(true) {
                twice.push(format!(
                    "pod {ns}/{name} bound twice ({})",
                    r["stageTimestamp"]
                ));
            }
        } else {
            is_bound.insert(name, false);
        }
    }
    (bindings, twice)
}

/// Promoted Events about an App, counting each Event's repeats.
fn promoted_events(ns: &str, app: &str) -> u32 {
    let out = kubectl_ok(&["-n", ns, "get", "events.events.k8s.io", "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["regarding"]["name"] == app && e["reason"] == reason::PROMOTED)
        .map(|e| {
            e["series"]["count"]
                .as_u64()
                .or(e["deprecatedCount"].as_u64().filter(|c| *c > 0))
                .unwrap_or(1) as u32
        })
        .sum()
}

/// Puts drover's controller back to one replica when the soak ends, however it ends.
struct TwoControllers;

impl TwoControllers {
    fn start() -> Self {
        scale_component(CONTROLLER, 2);
        Self
    }
}

impl Drop for TwoControllers {
    fn drop(&mut self) {
        let _ = kubectl(&[
            "-n",
            "drover-system",
            "scale",
            &format!("deployment/{CONTROLLER}"),
            "--replicas=1",
        ]);
    }
}

#[tokio::test]
async fn drover_keeps_its_promises_through_a_storm_of_faults() {
    let (name, profile) = profile();
    eprintln!("soak: {name} profile {profile:?}");
    let started = Instant::now();
    let since = SystemTime::now();
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-soak").await;
    let pool = FakeNodePool::create(&client, "soak", 3).await;
    let _controllers = TwoControllers::start();
    wait_ready(SCHEDULER);

    let rolling =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 1}});
    let one_by_one =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    let canary = json!({"type": "Canary", "canary": {"steps": [
        {"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}},
        {"setWeight": 75}, {"pause": {}},
    ]}});
    let blue_green = json!({"type": "BlueGreen", "blueGreen": {"scaleDownDelaySeconds": 3}});
    let mut burst = soak_app(
        BURST,
        BURST_LOW,
        &pool.placement(),
        json!({"type": "RollingUpdate"}),
    );
    burst["spec"]["template"]["spec"]["schedulerName"] = json!(SCHEDULER);
    burst["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "500m", "memory": "256Mi"}});
    // The Apps whose availability is checked run on the real workers: kwok, finishing a
    // deleted pod by name, at times deletes the new pod of a reused name instead (seen in
    // the audit log, a ready pod gone without a deletion by drover), which a kubelet,
    // deleting with the pod's UID, never does. The burst, whose count alone matters,
    // runs on simulated nodes.
    let manifests = [
        soak_app(ROLLING.0, ROLLING.1, &Placement::AnyNode, rolling),
        soak_app(ONE_BY_ONE.0, ONE_BY_ONE.1, &Placement::AnyNode, one_by_one),
        soak_app(CANARY.0, CANARY.1, &Placement::AnyNode, canary),
        soak_app(BLUE_GREEN.0, BLUE_GREEN.1, &Placement::AnyNode, blue_green),
        burst,
    ];
    for manifest in manifests {
        create_app(&client, &ns.name, manifest).await;
    }
    let first = format!("{SAMPLE_IMAGE}:1");
    for (app, replicas) in [ROLLING, ONE_BY_ONE, CANARY, BLUE_GREEN, (BURST, BURST_LOW)] {
        wait_rolled_out(&client, &ns.name, app, replicas, &first).await;
    }

    let observer = Invariants::start(&client, &ns.name).await;
    // Availability during rollouts: `replicas - maxUnavailable` ready at all times (a
    // canary and a blue-green keep every replica).
    observer.require_ready(ROLLING.0, ROLLING.1 as usize - 1);
    for (app, replicas) in [ONE_BY_ONE, CANARY, BLUE_GREEN] {
        observer.require_ready(app, replicas as usize);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let driven = Arc::new(Mutex::new(Driven::default()));
    let mut drivers = vec![
        tokio::spawn(drive(
            client.clone(),
            ns.name.clone(),
            ROLLING,
            Steps::None,
            stop.clone(),
            driven.clone(),
        )),
        tokio::spawn(drive(
            client.clone(),
            ns.name.clone(),
            ONE_BY_ONE,
            Steps::None,
            stop.clone(),
            driven.clone(),
        )),
        tokio::spawn(drive(
            client.clone(),
            ns.name.clone(),
            CANARY,
            Steps::CanaryPauses,
            stop.clone(),
            driven.clone(),
        )),
        tokio::spawn(drive(
            client.clone(),
            ns.name.clone(),
            BLUE_GREEN,
            Steps::BlueGreenSwitch,
            stop.clone(),
            driven.clone(),
        )),
    ];
    let watch_errors = Arc::new(WatchErrors::default());
    let scrapes = Arc::new(AtomicU32::new(0));
    let scraper = {
        let (client, watch_errors, scrapes, stop) = (
            client.clone(),
            watch_errors.clone(),
            scrapes.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                watch_errors.scrape(&client).await;
                scrapes.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        })
    };

    // The faults, spread evenly over as many rounds as the most frequent one needs.
    let mut rng = Rng::seeded();
    let mut injected = Injected::default();
    let mut late_writes = vec![];
    let rounds = profile.controller_kills.max(1);
    let due = |count: u32, round: u32| (round + 1) * count / rounds > round * count / rounds;
    let mut round = 0;
    while !injected.reached(&profile) {
        let cut = cut_connections("controller") + cut_connections("scheduler");
        injected.connections_cut += cut;
        if injected.controller_kills < profile.controller_kills
            && let Some(leaderless) = kill_controller(&client, &mut rng).await
        {
            injected.longest_leaderless = injected.longest_leaderless.max(leaderless);
            injected.controller_kills += 1;
        }
        let short = round >= rounds && injected.scheduler_kills_mid_burst < profile.scheduler_kills;
        if due(profile.scheduler_kills, round) || short {
            if burst_and_kill_scheduler(&client, &ns.name, &mut rng).await {
                injected.scheduler_kills_mid_burst += 1;
            }
            injected.scheduler_kills += 1;
        }
        if due(profile.apiserver_restarts, round) {
            tokio::time::sleep(rng.millis(0, 3000)).await;
            tokio::task::spawn_blocking(restart_apiserver)
                .await
                .unwrap();
            injected.apiserver_restarts += 1;
        }
        // Early, so that the freeze meets a busy cluster in every profile.
        if round == 2.min(rounds / 2) && injected.partitions < profile.partitions {
            late_writes.extend(partition_leader(&client).await);
            injected.partitions += 1;
        }
        // Past the planned rounds only what is still short is repeated.
        if round >= rounds && injected.partitions < profile.partitions {
            late_writes.extend(partition_leader(&client).await);
            injected.partitions += 1;
        }
        let found = observer.violations();
        assert!(
            found.is_empty(),
            "violations after {round} rounds:\n{}",
            found.join("\n")
        );
        // A driver ends before it is told to only by failing: its panic is shown now.
        if let Some(ended) = drivers.iter().position(|d| d.is_finished()) {
            drivers
                .swap_remove(ended)
                .await
                .expect("a driver of the soak failed");
            panic!("a driver of the soak ended before the faults did");
        }
        round += 1;
        if round % 10 == 0 {
            eprintln!(
                "soak: {}s, round {round}: {injected:?}",
                started.elapsed().as_secs()
            );
        }
    }

    // Calm: every driver finishes its round, the burst is placed whole.
    stop.store(true, Ordering::Relaxed);
    for driver in drivers {
        driver.await.expect("a driver of the soak failed");
    }
    scraper.await.unwrap();
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    let burst_replicas = get_app(&apps, BURST).await.spec.replicas;
    wait_rolled_out(&client, &ns.name, BURST, burst_replicas, &first).await;
    let report = observer.stop().await;

    let driven = Arc::try_unwrap(driven).unwrap().into_inner().unwrap();
    let mut violations = report.violations.clone();
    violations.extend(driven.violations.iter().cloned());
    violations.extend(late_writes);
    for (app, given) in &driven.commands {
        let events = promoted_events(&ns.name, app);
        if events > *given {
            violations.push(format!(
                "App {app}: {events} Promoted events for {given} promote commands"
            ));
        }
    }
    let (bindings, twice) = bound_twice(since, &ns.name);
    violations.extend(twice);

    eprintln!(
        "soak: {name} profile done in {}s\n  injected: {injected:?}\n  drover's watch errors \
         (from {} scrapes): {} cut or failed, {} expired (410 Gone)\n  driven: rounds {:?}, \
         promote commands {:?}\n  observer: {} invariant checks, its own watch errors {:?}, \
         {} pods seen bound, running pods removed from outside drover {:?}; audit: \
         {bindings} bindings\n  violations: {}",
        started.elapsed().as_secs(),
        scrapes.load(Ordering::Relaxed),
        watch_errors.total("watch"),
        watch_errors.total("watch_expired"),
        driven.rounds,
        driven.commands,
        report.checks,
        report.watch_errors,
        report.pods_bound,
        report.involuntary,
        violations.len(),
    );
    assert!(
        violations.is_empty(),
        "{} violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
    assert!(
        injected.reached(&profile),
        "{injected:?} short of {profile:?}"
    );
    // A 410 needs a watch resumed from a version compacted away (30 s on the test
    // cluster): a short run may not live to see one; the full one must.
    let expired = watch_errors.total("watch_expired");
    assert!(
        expired > 0 || name != "full",
        "no watch of drover's ended with 410 Gone over the full run"
    );
    assert!(
        injected.scheduler_kills_mid_burst > 0,
        "no scheduler kill landed while a burst waited for nodes: {injected:?}"
    );
    assert!(
        bindings > 0 && report.checks > 0,
        "the audit log and the observer saw the soak"
    );
    drop(pool);
}
