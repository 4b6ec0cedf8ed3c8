//! drover on real nodes, where only several kubelets can show it: the pods of a worker
//! that is lost are replaced on the others (and nothing is duplicated when it comes
//! back), a StatefulApp's pod on a lost worker is not copied (its condition names pod and
//! node) and comes back as itself, `kubectl drain` honours an App's disruption budget,
//! and a bin-packed App fills few workers where an ordinary one spreads. The tests take turns (`--test-threads=1`):
//! each takes a worker away or needs the workers' room to itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use drover_crds::{App, StatefulApp};
use drover_e2e::*;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const POD_READY: Duration = Duration::from_secs(120);
/// The chart's `controller.nodeLostGraceSeconds`.
const NODE_LOST_GRACE: Duration = Duration::from_secs(30);

/// Stops a node container for the life of the value; started again when dropped, so a
/// failing test leaves the cluster whole.
struct StoppedNode(String);

impl StoppedNode {
    fn stop(name: &str) -> Self {
        docker(&["stop", "--time", "5", name]);
        Self(name.to_string())
    }

    fn start(self) {
        // Drop does it.
    }
}

impl Drop for StoppedNode {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["start", &self.0]).status();
    }
}

/// The nodes drover's own pods run on: a test that takes a node away picks another, to
/// show the App healing rather than the controller failing over (a Deployment's pod on a
/// lost node waits 300 s).
async fn drover_nodes(client: &Client) -> HashSet<String> {
    Api::<Pod>::namespaced(client.clone(), "drover-system")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(node_of)
        .collect()
}

/// Creates App `web` from `manifest` in `ns` and waits until `replicas` pods are ready.
async fn run_app(client: &Client, ns: &str, manifest: Value, replicas: usize) -> Vec<Pod> {
    let app: App = serde_json::from_value(manifest).unwrap();
    Api::<App>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &app)
        .await
        .unwrap();
    wait_for("the App's pods to be ready", POD_READY, || async {
        let pods = app_pods(client, ns, "web").await;
        (serving(&pods) == replicas).then_some(pods)
    })
    .await
}

fn serving(pods: &[Pod]) -> usize {
    pods.iter()
        .filter(|p| is_active_pod(p) && is_pod_ready(p))
        .count()
}

#[tokio::test]
async fn a_lost_workers_pods_are_replaced_on_the_others_and_not_duplicated_when_it_returns() {
    const REPLICAS: usize = 6;
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-lost").await;
    let pods = run_app(
        &client,
        &ns.name,
        app_manifest("web", REPLICAS as i32, "1", &Placement::AnyNode),
        REPLICAS,
    )
    .await;
    let drover_nodes = drover_nodes(&client).await;
    let victim = pods
        .iter()
        .map(node_of)
        .find(|n| !drover_nodes.contains(n))
        .unwrap_or_else(|| {
            panic!("every worker with the App's pods runs drover too: {drover_nodes:?}")
        });
    let lost: HashSet<String> = pods
        .iter()
        .filter(|p| node_of(p) == victim)
        .map(|p| p.uid().unwrap())
        .collect();
    println!(
        "stopping {victim}, which runs {} of {REPLICAS} pods",
        lost.len()
    );

    let stopped = StoppedNode::stop(&victim);
    let nodes: Api<Node> = Api::all(client.clone());
    let not_ready_at = wait_for(
        "the stopped node to turn NotReady",
        Duration::from_secs(120),
        || async { (!is_ready(&nodes.get(&victim).await.unwrap())).then(Instant::now) },
    )
    .await;
    let replaced = wait_for(
        "the lost node's pods to be replaced on the other workers",
        NODE_LOST_GRACE + Duration::from_secs(90),
        || async {
            let pods = app_pods(&client, &ns.name, "web").await;
            let serving: Vec<&Pod> = pods
                .iter()
                .filter(|p| is_active_pod(p) && is_pod_ready(p))
                .collect();
            (serving.len() == REPLICAS && serving.iter().all(|p| node_of(p) != victim))
                .then(Instant::now)
        },
    )
    .await;
    let took = replaced - not_ready_at;
    println!(
        "{} pods of {victim} replaced {}s after it turned NotReady (grace {}s)",
        lost.len(),
        took.as_secs(),
        NODE_LOST_GRACE.as_secs()
    );
    assert!(
        took + Duration::from_secs(3) >= NODE_LOST_GRACE,
        "replaced before the grace period: {took:?}"
    );

    stopped.start();
    wait_for(
        "the node to be Ready again",
        Duration::from_secs(180),
        || async { is_ready(&nodes.get(&victim).await.unwrap()).then_some(()) },
    )
    .await;
    // Its old pods go (their deletion completes once its kubelet confirms it) and
    // nothing is started twice: the App keeps exactly its replicas.
    let pods = wait_for(
        "the returned node's old pods to be gone",
        Duration::from_secs(120),
        || async {
            let pods = app_pods(&client, &ns.name, "web").await;
            pods.iter()
                .all(|p| !lost.contains(&p.uid().unwrap()))
                .then_some(pods)
        },
    )
    .await;
    assert_eq!(
        pods.len(),
        REPLICAS,
        "no pod duplicated: {:?}",
        names(&pods)
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pods = app_pods(&client, &ns.name, "web").await;
    assert_eq!(
        pods.len(),
        REPLICAS,
        "still none duplicated: {:?}",
        names(&pods)
    );
    assert_eq!(serving(&pods), REPLICAS, "all serving");
}

/// The StatefulApp's condition `type_` as (status, message), if it has one.
fn stateful_condition(app: &StatefulApp, type_: &str) -> Option<(String, String)> {
    app.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.message.clone()))
}

#[tokio::test]
async fn a_statefulapp_pod_on_a_lost_worker_gets_no_second_copy_and_its_condition_names_it() {
    const REPLICAS: usize = 3;
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-sapp-lost").await;
    // One pod per worker, each with a claim on node-local storage (kind's `standard`).
    let mut manifest = with_data(
        stateful_manifest(
            "db",
            REPLICAS as i32,
            "1",
            json!({"podManagementPolicy": "Parallel"}),
        ),
        "64Mi",
    );
    manifest["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = json!("standard");
    manifest["spec"]["template"]["spec"]["topologySpreadConstraints"] = json!([{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
        "nodeTaintsPolicy": "Honor", "labelSelector": {"matchLabels": {"test": "db"}},
    }]);
    let api = create_stateful(&client, &ns.name, manifest).await;
    // Stock kubectl waits on the StatefulApp's condition (a StatefulSet has none).
    kubectl_ok(&[
        "-n",
        &ns.name,
        "wait",
        "--for=condition=Available",
        "statefulapp/db",
        "--timeout=180s",
    ]);
    let ordinals: Vec<String> = (0..REPLICAS).map(|o| format!("db-{o}")).collect();
    let ordinals: Vec<&str> = ordinals.iter().map(String::as_str).collect();
    wait_updated(&api, &client, &ns.name, "db", &ordinals).await;

    let drover_nodes = drover_nodes(&client).await;
    let pods = pods_of(&client, &ns.name, "db").await;
    let victim_pod = pods
        .values()
        .find(|p| !drover_nodes.contains(&node_of(p)))
        .unwrap_or_else(|| {
            panic!(
                "every worker with a pod of db runs drover too: {:?}",
                names(pods.values())
            )
        });
    let (pod, node) = (victim_pod.name_any(), node_of(victim_pod));
    let uid = victim_pod.uid().unwrap();
    exec(
        &ns.name,
        &pod,
        &["sh", "-c", "echo kept > /data/file && sync"],
    );
    println!("stopping {node}, which runs {pod}");

    let stopped = StoppedNode::stop(&node);
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for(
        "the stopped node to turn NotReady",
        Duration::from_secs(120),
        || async { (!is_ready(&nodes.get(&node).await.unwrap())).then_some(()) },
    )
    .await;
    let message = wait_for(
        "the NodeLost condition",
        NODE_LOST_GRACE + Duration::from_secs(60),
        || async {
            let app = api.get("db").await.ok()?;
            stateful_condition(&app, "NodeLost")
                .filter(|c| c.0 == "True")
                .map(|c| c.1)
        },
    )
    .await;
    println!("NodeLost: {message}");
    assert!(
        message.contains(&format!("pod {pod} is on node {node}")),
        "the condition names the pod and its node: {message}"
    );
    // Past the grace period, and for a while: the ordinal keeps its one pod (the same
    // object, not a second copy), since the lost node may still run it.
    for _ in 0..10 {
        let pods = pods_of(&client, &ns.name, "db").await;
        assert_eq!(pods.len(), REPLICAS, "{:?}", names(pods.values()));
        assert_eq!(
            pods.get(&pod).and_then(|p| p.uid()),
            Some(uid.clone()),
            "{pod} was not replaced"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let app = api.get("db").await.unwrap();
    assert_eq!(
        stateful_condition(&app, "Available")
            .map(|c| c.0)
            .as_deref(),
        Some("True"),
        "one pod lost is within maxUnavailable 1"
    );

    stopped.start();
    wait_for(
        "the node to be Ready again",
        Duration::from_secs(180),
        || async { is_ready(&nodes.get(&node).await.unwrap()).then_some(()) },
    )
    .await;
    wait_updated(&api, &client, &ns.name, "db", &ordinals).await;
    wait_for(
        "the NodeLost condition to clear",
        Duration::from_secs(60),
        || async {
            let app = api.get("db").await.ok()?;
            stateful_condition(&app, "NodeLost").is_none().then_some(())
        },
    )
    .await;
    let pods = pods_of(&client, &ns.name, "db").await;
    assert_eq!(pods.len(), REPLICAS, "{:?}", names(pods.values()));
    assert_eq!(
        pods.get(&pod).and_then(|p| p.uid()),
        Some(uid),
        "{pod} came back as itself"
    );
    assert_eq!(exec(&ns.name, &pod, &["cat", "/data/file"]).trim(), "kept");
}

fn names<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Vec<String> {
    pods.into_iter()
        .map(|p| format!("{}@{}", p.name_any(), node_of(p)))
        .collect()
}

/// Uncordons the node when dropped, so a failing test leaves the cluster whole.
struct Cordoned(String);

impl Drop for Cordoned {
    fn drop(&mut self) {
        let _ = kubectl(&["uncordon", &self.0]);
    }
}

#[tokio::test]
async fn a_drain_honours_the_apps_disruption_budget_and_the_app_heals_elsewhere() {
    const REPLICAS: usize = 6;
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-drain").await;
    let mut manifest = app_manifest("web", REPLICAS as i32, "1", &Placement::AnyNode);
    manifest["spec"]["disruption"] = json!({"maxUnavailable": 1});
    // Two pods on every worker, whatever else runs there: the drained worker has pods for
    // the budget to hold back (tainted and cordoned nodes do not count).
    manifest["spec"]["template"]["spec"]["topologySpreadConstraints"] = json!([{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule", "nodeTaintsPolicy": "Honor",
        "labelSelector": {"matchLabels": {"test": "web"}},
    }]);
    let pods = run_app(&client, &ns.name, manifest, REPLICAS).await;
    let drover_nodes = drover_nodes(&client).await;
    let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in &pods {
        *by_node.entry(node_of(p)).or_default() += 1;
    }
    let (victim, on_victim) = by_node
        .iter()
        .filter(|(node, _)| !drover_nodes.contains(*node))
        .max_by_key(|(_, count)| **count)
        .map(|(node, count)| (node.clone(), *count))
        .unwrap_or_else(|| panic!("every worker with the App's pods runs drover: {by_node:?}"));
    // Two of the App's pods at least, so the budget has something to hold back.
    assert!(on_victim >= 2, "the pods are spread thin: {by_node:?}");
    wait_for("the App's budget", POD_READY, || async {
        let pdb = kubectl(&[
            "-n",
            &ns.name,
            "get",
            "pdb",
            "web",
            "-o",
            "jsonpath={.status.disruptionsAllowed}",
        ]);
        (String::from_utf8_lossy(&pdb.stdout) == "1").then_some(())
    })
    .await;
    println!("draining {victim}, which runs {on_victim} of {REPLICAS} pods");

    let since = std::time::SystemTime::now();
    let _uncordon = Cordoned(victim.clone());
    let drain = {
        let victim = victim.clone();
        std::thread::spawn(move || {
            kubectl(&[
                "drain",
                &victim,
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--timeout=240s",
            ])
        })
    };
    // Never more than the budget's one pod away at once while the drain runs.
    let mut fewest = REPLICAS;
    while !drain.is_finished() {
        fewest = fewest.min(serving(&app_pods(&client, &ns.name, "web").await));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = drain.join().unwrap();
    assert!(
        out.status.success(),
        "kubectl drain: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        fewest + 1 >= REPLICAS,
        "{fewest} of {REPLICAS} pods serving during the drain"
    );
    let pods = wait_for(
        "the App to serve from the other workers",
        POD_READY,
        || async {
            let pods = app_pods(&client, &ns.name, "web").await;
            let active: Vec<&Pod> = pods.iter().filter(|p| is_active_pod(p)).collect();
            (serving(&pods) == REPLICAS && active.iter().all(|p| node_of(p) != victim))
                .then_some(pods)
        },
    )
    .await;
    // The apiserver held evictions back for the budget (429), which kubectl drain retried.
    let refused = audit_records(since, "\"subresource\":\"eviction\"")
        .iter()
        .filter(|r| r["objectRef"]["namespace"] == ns.name.as_str())
        .filter(|r| r["responseStatus"]["code"] == 429)
        .count();
    assert!(refused >= 1, "no eviction was held back by the budget");
    println!(
        "drained with at least {fewest} of {REPLICAS} serving, {refused} evictions held back; \
         now on {:?}",
        names(&pods)
    );
}

/// Millicores of a CPU quantity (`250m`, `2`, `0.5`).
fn millicores(quantity: &str) -> u64 {
    match quantity.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => (quantity.parse::<f64>().unwrap() * 1000.0).round() as u64,
    }
}

/// Each worker's CPU left to requests: allocatable less what its pods ask.
async fn free_cpu(client: &Client) -> BTreeMap<String, u64> {
    let nodes = real_nodes(client).await;
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let workers = workers(client).await;
    let mut free = BTreeMap::new();
    for node in nodes.iter().filter(|n| workers.contains(&n.name_any())) {
        let allocatable = &node.status.as_ref().unwrap().allocatable.as_ref().unwrap()["cpu"].0;
        let used: u64 = pods
            .iter()
            .filter(|p| node_of(p) == node.name_any())
            .filter(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                !matches!(phase, Some("Succeeded" | "Failed"))
            })
            .flat_map(|p| p.spec.as_ref().unwrap().containers.iter())
            .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get("cpu"))
            .map(|q| millicores(&q.0))
            .sum();
        free.insert(
            node.name_any(),
            millicores(allocatable).saturating_sub(used),
        );
    }
    free
}

/// Fewest workers that hold `pods` pods of `request` millicores each.
fn fewest_workers(free: &BTreeMap<String, u64>, pods: u64, request: u64) -> usize {
    let mut room: Vec<u64> = free.values().map(|f| f / request).collect();
    room.sort_unstable_by(|a, b| b.cmp(a));
    let mut placed = 0;
    for (i, r) in room.iter().enumerate() {
        placed += r;
        if placed >= pods {
            return i + 1;
        }
    }
    panic!("{pods} pods of {request}m do not fit in {free:?}");
}

/// How an App asks for its pods to be placed.
enum Placing {
    /// `placement.binPack`: drover's scheduler.
    BinPack,
    /// kube-scheduler with the template's own spread constraint, as a user would write it
    /// (kube-scheduler's default spreading is only a preference).
    Spread,
}

/// Runs `replicas` pods of `request` millicores as App `web` in a namespace of its own;
/// returns how many pods each worker got.
async fn placed(
    client: &Client,
    placing: Placing,
    replicas: usize,
    request: u64,
) -> BTreeMap<String, usize> {
    let ns = TestNamespace::create(client, "e2e-place").await;
    let mut manifest = app_manifest("web", replicas as i32, "1", &Placement::AnyNode);
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": format!("{request}m"), "memory": "16Mi"}});
    match placing {
        Placing::BinPack => manifest["spec"]["placement"] = json!({"binPack": true}),
        Placing::Spread => {
            // Tainted nodes (the control plane, kwok's) are no domains of the spread.
            manifest["spec"]["template"]["spec"]["topologySpreadConstraints"] = json!([{
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "nodeTaintsPolicy": "Honor",
                "labelSelector": {"matchLabels": {"drover.dev/app": "web"}},
            }]);
        }
    }
    let pods = run_app(client, &ns.name, manifest, replicas).await;
    let mut by_node = BTreeMap::new();
    for p in &pods {
        *by_node.entry(node_of(p)).or_default() += 1;
    }
    // Gone before the next placement counts the workers' room.
    kubectl_ok(&[
        "delete",
        "namespace",
        &ns.name,
        "--wait=true",
        "--timeout=120s",
    ]);
    by_node
}

/// Waits until every worker takes pods: no taint (a drain's `unschedulable` taint goes
/// a moment after its uncordon) and not cordoned.
async fn wait_workers_open(client: &Client) {
    let workers = workers(client).await;
    wait_for("every worker to take pods", POD_READY, || async {
        let nodes = real_nodes(client).await;
        nodes
            .iter()
            .filter(|n| workers.contains(&n.name_any()))
            .all(|n| {
                let spec = n.spec.as_ref();
                spec.and_then(|s| s.taints.as_ref())
                    .is_none_or(|t| t.is_empty())
                    && spec.and_then(|s| s.unschedulable) != Some(true)
            })
            .then_some(())
    })
    .await;
}

/// Each worker's taints and cordon, for a failure's message.
async fn worker_states(client: &Client) -> String {
    let workers = workers(client).await;
    real_nodes(client)
        .await
        .iter()
        .filter(|n| workers.contains(&n.name_any()))
        .map(|n| {
            let spec = n.spec.as_ref();
            format!(
                "{} taints {:?} unschedulable {:?}",
                n.name_any(),
                spec.and_then(|s| s.taints.as_ref()),
                spec.and_then(|s| s.unschedulable)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn a_bin_packed_app_fills_few_workers_where_an_ordinary_one_spreads() {
    const REPLICAS: usize = 4;
    let client = client().await;
    wait_workers_open(&client).await;
    let free = free_cpu(&client).await;
    // Requests such that every worker holds exactly three pods: then the fewest workers
    // for four pods are two, whichever a scheduler fills first.
    let (least, most) = (*free.values().min().unwrap(), *free.values().max().unwrap());
    let request = least / 3;
    assert!(
        4 * request > most,
        "the workers' room is too unequal for the test: {free:?}"
    );
    let fewest = fewest_workers(&free, REPLICAS as u64, request);
    assert_eq!(fewest, 2);

    let packed = placed(&client, Placing::BinPack, REPLICAS, request).await;
    println!("bin-packed {REPLICAS} pods of {request}m on {packed:?} (room: {free:?})");
    assert_eq!(
        packed.len(),
        fewest,
        "a bin-packed App takes the fewest workers: {packed:?} with room {free:?}"
    );

    wait_workers_open(&client).await;
    let spread = placed(&client, Placing::Spread, REPLICAS, request).await;
    println!("kube-scheduler placed them on {spread:?}");
    assert_eq!(
        spread.len(),
        free.len().min(REPLICAS),
        "an App spread by hostname takes every worker: {spread:?}; workers now: {}",
        worker_states(&client).await
    );
}

#[test]
fn fewest_workers_counts_whole_pods() {
    let free = BTreeMap::from([
        ("a".to_string(), 1900),
        ("b".to_string(), 1000),
        ("c".to_string(), 600),
    ]);
    assert_eq!(
        millicores("250m") + millicores("0.5") + millicores("2"),
        2750
    );
    assert_eq!(fewest_workers(&free, 3, 600), 1);
    assert_eq!(fewest_workers(&free, 4, 600), 2);
    assert_eq!(fewest_workers(&free, 5, 600), 3);
}
