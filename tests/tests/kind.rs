//! The kind cluster (`cargo xtask kind up`): real nodes — a control plane and workers,
//! each a container with its own kubelet and containerd — pod traffic and DNS across
//! nodes, volumes of the default StorageClass, the network rule, and drover on it: the
//! pods of a worker that is lost are replaced on the others, and nothing is duplicated
//! when it comes back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use drover_crds::App;
use drover_e2e::*;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const POD_READY: Duration = Duration::from_secs(120);
const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// The chart's `controller.nodeLostGraceSeconds`.
const NODE_LOST_GRACE: Duration = Duration::from_secs(30);

async fn nodes(client: &Client) -> Vec<Node> {
    Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|n| !is_fake(n))
        .collect()
}

/// The worker nodes' names, sorted.
async fn workers(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = nodes(client)
        .await
        .into_iter()
        .filter(|n| !n.labels().contains_key(CONTROL_PLANE_LABEL))
        .map(|n| n.name_any())
        .collect();
    names.sort();
    names
}

fn internal_ip(node: &Node) -> String {
    node.status
        .as_ref()
        .unwrap()
        .addresses
        .as_ref()
        .unwrap()
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .unwrap()
        .address
        .clone()
}

fn docker(args: &[&str]) -> String {
    host_ok("docker", args)
}

#[tokio::test]
async fn every_node_is_a_real_ready_node_with_its_own_kubelet_and_containerd() {
    let client = client().await;
    let nodes = nodes(&client).await;
    let expected: usize = std::env::var("DROVER_KIND_NODES")
        .map(|n| n.parse().unwrap())
        .unwrap_or(4);
    assert_eq!(nodes.len(), expected, "real nodes");
    let mut ips = BTreeSet::new();
    for node in &nodes {
        let name = node.name_any();
        assert!(is_ready(node), "{name} is Ready");
        let info = node.status.as_ref().unwrap().node_info.as_ref().unwrap();
        assert!(
            info.kubelet_version.starts_with("v1.34."),
            "{name}: {info:?}"
        );
        assert!(
            info.container_runtime_version.starts_with("containerd://"),
            "{name}: {}",
            info.container_runtime_version
        );
        assert!(
            node.spec.as_ref().unwrap().provider_id.as_deref()
                == Some(&format!("kind://docker/drover/{name}")),
            "{name} is a kind node container"
        );
        // The node is a running container on this machine, with its own systemd units.
        let state = docker(&["inspect", "-f", "{{.State.Running}}", &name]);
        assert_eq!(state.trim(), "true", "container {name}");
        for unit in ["kubelet", "containerd"] {
            let active = docker(&["exec", &name, "systemctl", "is-active", unit]);
            assert_eq!(active.trim(), "active", "{unit} on {name}");
        }
        ips.insert(internal_ip(node));
    }
    assert_eq!(
        ips.len(),
        nodes.len(),
        "every node has its own address: {ips:?}"
    );
    let workers = workers(&client).await;
    assert_eq!(workers.len(), expected - 1, "workers: {workers:?}");
    println!("{} Ready nodes: {ips:?}", nodes.len());
}

#[tokio::test]
async fn pods_on_two_workers_reach_each_other_directly_and_through_a_service() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-kind-net").await;
    let workers = workers(&client).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    for (name, node) in [("server", &workers[0]), ("client", &workers[1])] {
        pods.create(
            &PostParams::default(),
            &sample_pod(name, "1", &Placement::RealNode(node.clone())),
        )
        .await
        .unwrap();
    }
    let server = wait_pod_ready(&pods, "server", POD_READY).await;
    let client_pod = wait_pod_ready(&pods, "client", POD_READY).await;
    assert_ne!(
        server.spec.as_ref().unwrap().node_name,
        client_pod.spec.as_ref().unwrap().node_name,
        "the two pods are on different nodes"
    );
    let server_ip = server.status.unwrap().pod_ip.unwrap();
    assert!(server_ip.starts_with("10.245."), "pod IP {server_ip}");

    // Pod to pod across nodes, no Service in between.
    let body = pod_fetch(&ns.name, "client", &format!("http://{server_ip}:8080/"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["pod"],
        "server"
    );

    // Through a Service, by its DNS name.
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .unwrap();
    let svc = Api::<Service>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let cluster_ip = svc.spec.unwrap().cluster_ip.unwrap();
    assert!(cluster_ip.starts_with("10.97."), "ClusterIP {cluster_ip}");
    let fqdn = format!("web.{}.svc.cluster.local", ns.name);
    let lookup = exec(&ns.name, "client", &["nslookup", &fqdn]);
    assert!(lookup.contains(&cluster_ip), "nslookup {fqdn}: {lookup}");
    let body = wait_for(
        "the Service to answer by name from the other node",
        Duration::from_secs(30),
        || async {
            let out = kubectl(&[
                "-n",
                &ns.name,
                "exec",
                "client",
                "--",
                "timeout",
                "5",
                "wget",
                "-qO-",
                "http://web/",
            ]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        },
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["pod"],
        "server"
    );
}

#[tokio::test]
async fn a_volume_of_the_default_storage_class_binds_and_keeps_its_data() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-kind-pvc").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns.name);
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
    }))
    .unwrap();
    claims.create(&PostParams::default(), &claim).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let with_volume = |name: &str| -> Pod {
        let mut pod = serde_json::to_value(sample_pod(name, "1", &Placement::AnyNode)).unwrap();
        pod["spec"]["volumes"] =
            json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]);
        pod["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "data", "mountPath": "/data"}]);
        serde_json::from_value(pod).unwrap()
    };
    pods.create(&PostParams::default(), &with_volume("writer"))
        .await
        .unwrap();
    let writer = wait_pod_ready(&pods, "writer", POD_READY).await;
    let claim = claims.get("data").await.unwrap();
    assert_eq!(
        claim.status.unwrap().phase.as_deref(),
        Some("Bound"),
        "the claim bound"
    );
    assert_eq!(
        claim.spec.unwrap().storage_class_name.as_deref(),
        Some("standard"),
        "the default StorageClass"
    );
    exec(&ns.name, "writer", &["sh", "-c", "echo kept > /data/file"]);
    pods.delete("writer", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the writer to be gone", POD_READY, || async {
        pods.get_opt("writer")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    pods.create(&PostParams::default(), &with_volume("reader"))
        .await
        .unwrap();
    let reader = wait_pod_ready(&pods, "reader", POD_READY).await;
    assert_eq!(
        reader.spec.unwrap().node_name,
        writer.spec.unwrap().node_name,
        "a local volume keeps its pods on its node"
    );
    assert_eq!(
        exec(&ns.name, "reader", &["cat", "/data/file"]).trim(),
        "kept"
    );
}

/// Checked through the rules, routes and configurations themselves; sends nothing off
/// the machine.
#[tokio::test]
async fn no_packet_of_the_kind_cluster_can_leave_the_machine() {
    let guard = host_ok("nft", &["list", "table", "inet", "drover-kind-guard"]);
    assert!(
        guard.contains("iifname \"br-*\" oifname != \"br-*\"") && guard.contains("drop"),
        "forwarding from the docker networks off them is dropped: {guard}"
    );
    let network = docker(&["network", "inspect", "drover-kind", "-f", "{{.Id}}"]);
    let bridge = format!("br-{}", &network.trim()[..12]);
    let link = host_ok("ip", &["link", "show", &bridge]);
    assert!(
        link.contains(&bridge),
        "the nodes' network is bridge {bridge}"
    );

    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-kind-rule").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    pods.create(
        &PostParams::default(),
        &sample_pod("probe", "1", &Placement::AnyNode),
    )
    .await
    .unwrap();
    let probe = wait_pod_ready(&pods, "probe", POD_READY).await;
    let node = Api::<Node>::all(client.clone())
        .get(probe.spec.as_ref().unwrap().node_name.as_ref().unwrap())
        .await
        .unwrap();
    let node_ip = internal_ip(&node);
    let node_net_prefix: String = node_ip.split('.').take(2).collect::<Vec<_>>().join(".");
    let routes = exec(&ns.name, "probe", &["ip", "-4", "route"]);
    assert!(
        !routes.contains("default"),
        "a pod has no default route: {routes}"
    );
    for line in routes.lines() {
        let dst = line.split_whitespace().next().unwrap_or_default();
        assert!(
            dst.starts_with("10.245.")
                || dst.starts_with("10.97.")
                || dst.starts_with(&node_net_prefix),
            "unexpected pod route {line}"
        );
    }
    let resolv = exec(&ns.name, "probe", &["cat", "/etc/resolv.conf"]);
    let servers: Vec<&str> = resolv
        .lines()
        .filter(|l| l.starts_with("nameserver"))
        .collect();
    assert_eq!(servers, vec!["nameserver 10.97.0.10"], "{resolv}");
    let corefile = kubectl_ok(&[
        "-n",
        "kube-system",
        "get",
        "configmap",
        "coredns",
        "-o",
        "jsonpath={.data.Corefile}",
    ]);
    assert!(corefile.contains("kubernetes cluster.local"), "{corefile}");
    assert!(
        corefile
            .lines()
            .all(|l| !l.trim_start().starts_with("forward")),
        "CoreDNS forwards nothing upstream: {corefile}"
    );
    let outside = kubectl(&[
        "-n",
        &ns.name,
        "exec",
        "probe",
        "--",
        "nslookup",
        "example.com",
    ]);
    assert!(
        !outside.status.success(),
        "example.com resolved inside the cluster"
    );
}

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

async fn app_pods(client: &Client, ns: &str, app: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("drover.dev/app={app}")))
        .await
        .unwrap()
        .items
}

fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_lost_workers_pods_are_replaced_on_the_others_and_not_duplicated_when_it_returns() {
    const REPLICAS: usize = 6;
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-kind-lost").await;
    let app: App = serde_json::from_value(app_manifest(
        "web",
        REPLICAS as i32,
        "1",
        &Placement::AnyNode,
    ))
    .unwrap();
    Api::<App>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &app)
        .await
        .unwrap();
    let ready = |pods: &[Pod]| {
        pods.iter()
            .filter(|p| is_active_pod(p) && is_pod_ready(p))
            .count()
    };
    let pods = wait_for("the App's pods to be ready", POD_READY, || async {
        let pods = app_pods(&client, &ns.name, "web").await;
        (ready(&pods) == REPLICAS).then_some(pods)
    })
    .await;
    // A worker with the App's pods but none of drover's own: this shows the App healing,
    // not the controller failing over (a Deployment's pod on a lost node waits 300s).
    let drover_nodes: HashSet<String> = Api::<Pod>::namespaced(client.clone(), "drover-system")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(node_of)
        .collect();
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
    assert_eq!(ready(&pods), REPLICAS, "all serving");
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| format!("{}@{}", p.name_any(), node_of(p)))
        .collect()
}
