//! The local cluster is a real, standard cluster: kind nodes — a control plane and
//! workers, each a container with its own kubelet and containerd — and kwok's simulated
//! nodes Ready, Kubernetes 1.34, real containers with logs and exec, pod traffic and
//! Services across nodes by address and DNS name, volumes (node-local ones, and the
//! default class's, which move between nodes, grow online and restore from snapshots),
//! metrics, helm — and no packet of it can leave the machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use drover_e2e::*;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim, Pod, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const POD_READY: Duration = Duration::from_secs(120);

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

#[tokio::test]
async fn every_real_node_is_ready_with_its_own_kubelet_and_containerd() {
    let client = client().await;
    let version = client.apiserver_version().await.unwrap();
    assert!(
        version.git_version.starts_with("v1.34."),
        "apiserver reports {}",
        version.git_version
    );
    let nodes = real_nodes(&client).await;
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
        // The kubelet reports the address the container has now (a node restarted with
        // another address but its old certificates and kubelet flags would not).
        let address = docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &name,
        ]);
        assert_eq!(internal_ip(node), address.trim(), "{name}'s address");
        ips.insert(internal_ip(node));
    }
    assert_eq!(
        ips.len(),
        nodes.len(),
        "every node has its own address: {ips:?}"
    );
    let workers = workers(&client).await;
    assert_eq!(workers.len(), expected - 1, "workers: {workers:?}");
    println!(
        "apiserver {}, {} Ready nodes: {ips:?}",
        version.git_version,
        nodes.len()
    );
}

#[tokio::test]
async fn simulated_nodes_are_ready() {
    let client = client().await;
    let fake: Vec<Node> = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(is_fake)
        .filter(|n| !n.labels().contains_key(POOL_LABEL))
        .collect();
    let expected = std::env::var("DROVER_FAKE_NODES")
        .expect("DROVER_FAKE_NODES is not set: run the suites through `cargo xtask test`");
    assert_eq!(fake.len().to_string(), expected, "simulated node count");
    let not_ready: Vec<String> = fake
        .iter()
        .filter(|n| !is_ready(n))
        .map(|n| n.name_any())
        .collect();
    assert!(
        not_ready.is_empty(),
        "simulated nodes not Ready: {not_ready:?}"
    );
    // No system DaemonSet (kube-proxy, flannel) spends a simulated node's capacity.
    let names: BTreeSet<String> = fake.iter().map(|n| n.name_any()).collect();
    let system_pods: Vec<String> = Api::<Pod>::namespaced(client.clone(), "kube-system")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| names.contains(n))
        })
        .map(|p| p.name_any())
        .collect();
    assert!(
        system_pods.is_empty(),
        "system pods on simulated nodes: {system_pods:?}"
    );
    println!("{} simulated nodes Ready", fake.len());
}

/// A sample pod and its Service; returns the namespace's pod API.
async fn sample_with_service(
    client: &kube::Client,
    ns: &TestNamespace,
    name: &str,
) -> (Api<Pod>, Service) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    pods.create(
        &PostParams::default(),
        &sample_pod(name, "1", &Placement::AnyNode),
    )
    .await
    .unwrap();
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .unwrap();
    let svc = Api::<Service>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    wait_pod_ready(&pods, name, POD_READY).await;
    (pods, svc)
}

#[tokio::test]
async fn sample_pod_runs_with_logs_and_exec() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-pod").await;
    let (pods, _) = sample_with_service(&client, &ns, "web").await;
    let pod = pods.get("web").await.unwrap();
    let ip = pod.status.unwrap().pod_ip.unwrap();
    assert!(within(&ip, POD_RANGE), "pod IP {ip} is in the pod range");

    let logs = kubectl_ok(&["-n", &ns.name, "logs", "web"]);
    assert!(
        logs.contains("sample version 1 (pod web) listening on :8080"),
        "logs: {logs}"
    );

    let body = pod_fetch(&ns.name, "web", "http://127.0.0.1:8080/");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer, json!({"version": "1", "pod": "web"}));
    let id = exec(&ns.name, "web", &["id", "-u"]);
    assert_eq!(
        id.trim(),
        "65534",
        "the container runs as the image's non-root user"
    );
}

#[tokio::test]
async fn pods_on_two_workers_reach_each_other_directly_and_through_a_service() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-net").await;
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
        node_of(&server),
        node_of(&client_pod),
        "the two pods are on different nodes"
    );
    let server_ip = server.status.unwrap().pod_ip.unwrap();
    assert!(within(&server_ip, POD_RANGE), "pod IP {server_ip}");

    // Pod to pod across nodes, no Service in between.
    let body = pod_fetch(&ns.name, "client", &format!("http://{server_ip}:8080/"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["pod"],
        "server"
    );

    // Through a Service: by its ClusterIP from a node, by its DNS names from a pod.
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .unwrap();
    let svc = Api::<Service>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let cluster_ip: IpAddr = svc.spec.unwrap().cluster_ip.unwrap().parse().unwrap();
    assert!(
        within(&cluster_ip.to_string(), SERVICE_RANGE),
        "ClusterIP {cluster_ip}"
    );
    let (code, body) = wait_for(
        "the ClusterIP to answer from a node",
        Duration::from_secs(30),
        || async { http_get(cluster_ip, 80, "/").ok() },
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["pod"],
        "server"
    );
    let fqdn = format!("web.{}.svc.cluster.local", ns.name);
    let lookup = exec(&ns.name, "client", &["nslookup", &fqdn]);
    assert!(
        lookup.contains(&cluster_ip.to_string()),
        "nslookup {fqdn}: {lookup}"
    );
    for url in [format!("http://{fqdn}/"), "http://web/".to_string()] {
        let body = wait_for(
            &format!("{url} to answer from the other node's pod"),
            Duration::from_secs(30),
            || async {
                let out = kubectl(&[
                    "-n", &ns.name, "exec", "client", "--", "timeout", "5", "wget", "-qO-", &url,
                ]);
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            },
        )
        .await;
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["pod"],
            "server",
            "{url}"
        );
    }
}

#[tokio::test]
async fn pod_on_a_simulated_node_reaches_running() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-kwok").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    pods.create(
        &PostParams::default(),
        &sample_pod("sim", "1", &Placement::FakeNode),
    )
    .await
    .unwrap();
    let pod = wait_pod_ready(&pods, "sim", POD_READY).await;
    let node = pod.spec.unwrap().node_name.unwrap();
    assert!(node.starts_with("kwok-node-"), "placed on {node}");
    // kwok takes it from the range the controller-manager gave the node, as a CNI would.
    let range = Api::<Node>::all(client.clone())
        .get(&node)
        .await
        .unwrap()
        .spec
        .unwrap()
        .pod_cidr
        .unwrap();
    let ip = pod.status.unwrap().pod_ip.unwrap();
    assert!(within(&range, POD_RANGE), "{node}'s range {range}");
    assert!(
        within(&ip, &range),
        "simulated pod IP {ip} is in {node}'s range {range}"
    );
}

#[tokio::test]
async fn kubectl_top_node_returns_figures() {
    let client = client().await;
    let node = workers(&client).await.remove(0);
    let line = wait_for(
        "kubectl top node to report a worker",
        Duration::from_secs(180),
        || {
            let node = node.clone();
            async move {
                let out = kubectl(&["top", "node", &node, "--no-headers"]);
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                (out.status.success() && text.starts_with(&node)).then_some(text)
            }
        },
    )
    .await;
    // NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "{line}");
    let cpu: u64 = fields[1].trim_end_matches('m').parse().unwrap();
    let mem: u64 = fields[3].trim_end_matches("Mi").parse().unwrap();
    assert!(cpu > 0 && mem > 0, "figures: {line}");
    println!("kubectl top node: {}", line.trim());
}

#[tokio::test]
async fn helm_installs_and_uninstalls_a_chart() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-helm").await;
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/smoke");
    let out = std::process::Command::new("helm")
        .args([
            "install",
            "smoke",
            chart,
            "-n",
            &ns.name,
            "--wait",
            "--timeout",
            "60s",
        ])
        .output()
        .expect("running helm");
    assert!(
        out.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns.name)
        .get("smoke-smoke")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["greeting"], "hello from helm");
    let out = std::process::Command::new("helm")
        .args(["uninstall", "smoke", "-n", &ns.name, "--wait"])
        .output()
        .expect("running helm");
    assert!(
        out.status.success(),
        "helm uninstall: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), &ns.name)
            .get_opt("smoke-smoke")
            .await
            .unwrap()
            .is_none()
    );
}

/// A claim of `size` in `class` (the default class when `None`), created.
async fn claim(claims: &Api<PersistentVolumeClaim>, name: &str, size: &str, class: Option<&str>) {
    let mut spec =
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}});
    if let Some(class) = class {
        spec["storageClassName"] = json!(class);
    }
    let claim: PersistentVolumeClaim =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    claims.create(&PostParams::default(), &claim).await.unwrap();
}

/// A pod of the sample image with `claim` mounted at /data.
fn pod_with_claim(name: &str, claim: &str, placement: &Placement) -> Pod {
    let mut pod = serde_json::to_value(sample_pod(name, "1", placement)).unwrap();
    pod["spec"]["volumes"] =
        json!([{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]);
    pod["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
    // The sample runs as 65534: the kubelet gives it the volume through its group, as
    // any non-root pod gets a new file system (whose root is root's).
    pod["spec"]["securityContext"]["fsGroup"] = json!(65534);
    serde_json::from_value(pod).unwrap()
}

/// Starts a pod of the sample image with `claim` at /data and waits until it is ready.
async fn start_with_claim(pods: &Api<Pod>, name: &str, claim: &str, placement: &Placement) -> Pod {
    pods.create(
        &PostParams::default(),
        &pod_with_claim(name, claim, placement),
    )
    .await
    .unwrap();
    wait_pod_ready(pods, name, POD_READY).await
}

async fn delete_pod_and_wait(pods: &Api<Pod>, name: &str) {
    pods.delete(name, &DeleteParams::default()).await.unwrap();
    wait_for(&format!("pod {name} to be gone"), POD_READY, || async {
        pods.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_node_local_volume_binds_and_keeps_its_data_on_its_node() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-pvc").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns.name);
    claim(&claims, "data", "16Mi", Some("standard")).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let writer = start_with_claim(&pods, "writer", "data", &Placement::AnyNode).await;
    let bound = claims.get("data").await.unwrap();
    assert_eq!(
        bound.status.unwrap().phase.as_deref(),
        Some("Bound"),
        "the claim bound"
    );
    exec(&ns.name, "writer", &["sh", "-c", "echo kept > /data/file"]);
    delete_pod_and_wait(&pods, "writer").await;
    let reader = start_with_claim(&pods, "reader", "data", &Placement::AnyNode).await;
    assert_eq!(
        node_of(&reader),
        node_of(&writer),
        "a local volume keeps its pods on its node"
    );
    assert_eq!(
        exec(&ns.name, "reader", &["cat", "/data/file"]).trim(),
        "kept"
    );
}

/// The default class is drover's CSI driver: a volume written on one worker is read on
/// another, as with network storage.
#[tokio::test]
async fn a_volume_of_the_default_class_keeps_its_data_from_one_node_to_another() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-csi").await;
    let workers = workers(&client).await;
    assert!(workers.len() >= 2, "two workers are needed: {workers:?}");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns.name);
    claim(&claims, "data", "1Gi", None).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let on = |node: &String| Placement::RealNode(node.clone());
    start_with_claim(&pods, "writer", "data", &on(&workers[0])).await;
    let bound = claims.get("data").await.unwrap();
    assert_eq!(
        bound.spec.as_ref().unwrap().storage_class_name.as_deref(),
        Some("drover-csi"),
        "the default StorageClass"
    );
    let volume = bound.spec.unwrap().volume_name.unwrap();
    let pv: Value =
        serde_json::from_str(&kubectl_ok(&["get", "pv", &volume, "-o", "json"])).unwrap();
    assert_eq!(pv["spec"]["csi"]["driver"], "loop.csi.drover.dev");
    assert_eq!(pv["spec"]["csi"]["fsType"], "xfs");
    exec(
        &ns.name,
        "writer",
        &["sh", "-c", "echo kept > /data/file && sync"],
    );
    let mounts = exec(&ns.name, "writer", &["cat", "/proc/mounts"]);
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(" /data xfs ") && l.starts_with("/dev/loop")),
        "/data is XFS on a loop device: {mounts}"
    );
    delete_pod_and_wait(&pods, "writer").await;
    let reader = start_with_claim(&pods, "reader", "data", &on(&workers[1])).await;
    assert_eq!(node_of(&reader), workers[1]);
    assert_eq!(
        exec(&ns.name, "reader", &["cat", "/data/file"]).trim(),
        "kept"
    );
}

#[tokio::test]
async fn a_volume_grows_online_without_restarting_its_pod() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-grow").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns.name);
    claim(&claims, "data", "1Gi", None).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let before = start_with_claim(&pods, "app", "data", &Placement::AnyNode).await;
    let small = data_size_mib(&ns.name, "app");
    assert!((900..=1024).contains(&small), "a 1Gi volume: {small} MiB");
    exec(&ns.name, "app", &["sh", "-c", "echo kept > /data/file"]);
    claims
        .patch(
            "data",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}})),
        )
        .await
        .unwrap();
    wait_for(
        "the claim's capacity to be 2Gi",
        Duration::from_secs(180),
        || async {
            let c = claims.get("data").await.unwrap();
            let capacity = c.status?.capacity?.get("storage")?.0.clone();
            (capacity == "2Gi").then_some(())
        },
    )
    .await;
    let grown = wait_for(
        "the file system to grow",
        Duration::from_secs(60),
        || async {
            let size = data_size_mib(&ns.name, "app");
            (size > 1900).then_some(size)
        },
    )
    .await;
    let after = pods.get("app").await.unwrap();
    assert_eq!(after.uid(), before.uid(), "the same pod");
    let restarts: i32 = after
        .status
        .unwrap()
        .container_statuses
        .unwrap()
        .iter()
        .map(|c| c.restart_count)
        .sum();
    assert_eq!(restarts, 0, "no container restarted");
    assert_eq!(exec(&ns.name, "app", &["cat", "/data/file"]).trim(), "kept");
    println!("the file system at /data grew from {small} to {grown} MiB in place");
}

#[tokio::test]
async fn a_snapshot_restores_a_volume_as_it_was() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-snap").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns.name);
    claim(&claims, "data", "1Gi", None).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    start_with_claim(&pods, "app", "data", &Placement::AnyNode).await;
    exec(&ns.name, "app", &["sh", "-c", "echo before > /data/file"]);
    let snapshot = format!(
        "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {{name: before, namespace: {}}}\n\
         spec: {{volumeSnapshotClassName: drover-csi, source: {{persistentVolumeClaimName: data}}}}\n",
        ns.name
    );
    let out = kubectl_stdin(&["apply"], &snapshot);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "the snapshot to be ready to use",
        Duration::from_secs(120),
        || async {
            let ready = kubectl_ok(&[
                "-n",
                &ns.name,
                "get",
                "volumesnapshot",
                "before",
                "-o",
                "jsonpath={.status.readyToUse}",
            ]);
            (ready == "true").then_some(())
        },
    )
    .await;
    // Written after the snapshot: the restored volume must not have it.
    exec(&ns.name, "app", &["sh", "-c", "echo after > /data/file"]);
    let restored: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "restored"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "before"},
        },
    }))
    .unwrap();
    claims
        .create(&PostParams::default(), &restored)
        .await
        .unwrap();
    start_with_claim(&pods, "reader", "restored", &Placement::AnyNode).await;
    assert_eq!(
        exec(&ns.name, "reader", &["cat", "/data/file"]).trim(),
        "before"
    );
    assert_eq!(
        exec(&ns.name, "app", &["cat", "/data/file"]).trim(),
        "after"
    );
}

/// Checked through the rules, routes and configurations themselves; sends nothing off
/// the machine.
#[tokio::test]
async fn no_packet_of_the_cluster_can_leave_the_machine() {
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
    let ns = TestNamespace::create(&client, "e2e-rule").await;
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
    // The nodes' docker network: a /16 at most.
    let node_net = format!("{node_ip}/16");
    let routes = exec(&ns.name, "probe", &["ip", "-4", "route"]);
    assert!(
        !routes.contains("default"),
        "a pod has no default route: {routes}"
    );
    for line in routes.lines() {
        let dst = line.split_whitespace().next().unwrap_or_default();
        assert!(
            within(dst, POD_RANGE) || within(dst, SERVICE_RANGE) || within(dst, &node_net),
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
