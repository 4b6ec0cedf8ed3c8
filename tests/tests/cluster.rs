//! The local cluster is a real, standard cluster: real nodes and simulated ones Ready,
//! Kubernetes 1.34, real containers with logs and exec, Services reachable by ClusterIP
//! and by DNS name, metrics, helm — and no packet of it can leave the machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::Duration;

use drover_e2e::*;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

const POD_READY: Duration = Duration::from_secs(120);

#[tokio::test]
async fn real_node_and_simulated_nodes_are_ready() {
    let client = client().await;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let (fake, real): (Vec<&Node>, Vec<&Node>) = nodes.iter().partition(|n| is_fake(n));
    assert_eq!(real.len(), 1, "one real node");
    assert!(is_ready(real[0]), "the real node is Ready");
    assert!(!fake.is_empty(), "there are simulated nodes");
    let not_ready: Vec<String> = fake
        .iter()
        .filter(|n| !is_ready(n))
        .map(|n| n.name_any())
        .collect();
    assert!(
        not_ready.is_empty(),
        "simulated nodes not Ready: {not_ready:?}"
    );
    if let Ok(expected) = std::env::var("DROVER_FAKE_NODES") {
        assert_eq!(fake.len().to_string(), expected, "simulated node count");
    }
    println!("1 real node and {} simulated nodes Ready", fake.len());
}

#[tokio::test]
async fn apiserver_and_kubelet_are_kubernetes_1_34() {
    let client = client().await;
    let version = client.apiserver_version().await.unwrap();
    assert!(
        version.git_version.starts_with("v1.34."),
        "apiserver reports {}",
        version.git_version
    );
    let node = Api::<Node>::all(client.clone())
        .get(&real_node(&client).await)
        .await
        .unwrap();
    let kubelet = node.status.unwrap().node_info.unwrap().kubelet_version;
    assert!(kubelet.starts_with("v1.34."), "kubelet reports {kubelet}");
    println!("apiserver {}, kubelet {kubelet}", version.git_version);
}

/// A sample pod and its Service on the real node; returns the namespace's pod API.
async fn sample_with_service(
    client: &kube::Client,
    ns: &TestNamespace,
    name: &str,
) -> (Api<Pod>, Service) {
    let node = real_node(client).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    pods.create(
        &PostParams::default(),
        &sample_pod(name, "1", &Placement::RealNode(node)),
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
    assert!(
        ip.starts_with("10.244.0."),
        "pod IP {ip} is on the real node's pod range"
    );

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
async fn service_answers_from_the_host_and_from_a_pod_by_dns_name() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-svc").await;
    let (pods, svc) = sample_with_service(&client, &ns, "web").await;
    let cluster_ip: IpAddr = svc.spec.unwrap().cluster_ip.unwrap().parse().unwrap();
    assert!(
        cluster_ip.to_string().starts_with("10.96."),
        "ClusterIP {cluster_ip}"
    );

    // From the host, through kube-proxy's rules.
    let (code, body) = wait_for(
        "the ClusterIP to answer from the host",
        Duration::from_secs(30),
        || async { http_get(cluster_ip, 80, "/").ok() },
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["version"],
        "1"
    );

    // From another pod, through cluster DNS.
    let node = real_node(&client).await;
    pods.create(
        &PostParams::default(),
        &sample_pod("client", "1", &Placement::RealNode(node)),
    )
    .await
    .unwrap();
    wait_pod_ready(&pods, "client", POD_READY).await;
    let fqdn = format!("web.{}.svc.cluster.local", ns.name);
    let lookup = exec(&ns.name, "client", &["nslookup", &fqdn]);
    assert!(
        lookup.contains(&cluster_ip.to_string()),
        "nslookup {fqdn}: {lookup}"
    );
    let body = pod_fetch(&ns.name, "client", &format!("http://{fqdn}/"));
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["pod"], "web");
    // The short name resolves through the pod's search path too.
    let body = pod_fetch(&ns.name, "client", "http://web/");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["pod"], "web");
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
    let ip = pod.status.unwrap().pod_ip.unwrap();
    assert!(
        ip.starts_with("10.250."),
        "simulated pod IP {ip} is in kwok's range"
    );
}

#[tokio::test]
async fn kubectl_top_node_returns_figures() {
    let client = client().await;
    let node = real_node(&client).await;
    let line = wait_for(
        "kubectl top node to report the real node",
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

/// Checked through the routes, rules and configs themselves; sends nothing off the machine.
#[tokio::test]
async fn no_packet_of_the_cluster_can_leave_the_machine() {
    // Every cluster range goes into the sink on the host, and an address in it that no
    // Service rule rewrites is routed there too.
    for (range, probe) in [
        ("10.96.0.0/16", "10.96.200.200"),
        ("10.244.0.0/16", "10.244.77.1"),
        ("10.250.0.0/15", "10.250.3.4"),
    ] {
        let route = host_ok("ip", &["-4", "route", "show", "exact", range]);
        assert!(route.contains("dev drover-sink"), "{range}: {route}");
        let lookup = host_ok("ip", &["-4", "route", "get", probe]);
        assert!(lookup.contains("dev drover-sink"), "{probe}: {lookup}");
    }
    let sink = host_ok("ip", &["-d", "link", "show", "drover-sink"]);
    assert!(sink.contains("bridge"), "the sink is a bridge: {sink}");
    let ports = host_ok("ip", &["link", "show", "master", "drover-sink"]);
    assert!(ports.trim().is_empty(), "the sink has no ports: {ports}");

    // Forwarding out of the pod bridge is dropped ahead of iptables.
    let guard = host_ok("nft", &["list", "table", "inet", "drover-guard"]);
    // nft spells priority -10 as "filter - 10".
    assert!(
        guard.contains("hook forward priority filter - 10")
            || guard.contains("hook forward priority -10"),
        "{guard}"
    );
    assert!(
        guard.contains("iifname \"drover0\" oifname != \"drover0\""),
        "{guard}"
    );
    assert!(guard.contains("drop"), "{guard}");

    // Pods have routes to cluster ranges and the node only, and cluster DNS only.
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-net").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let node_name = real_node(&client).await;
    let node = Api::<Node>::all(client.clone())
        .get(&node_name)
        .await
        .unwrap();
    let node_ip = node
        .status
        .unwrap()
        .addresses
        .unwrap()
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .unwrap()
        .address;
    pods.create(
        &PostParams::default(),
        &sample_pod("probe", "1", &Placement::RealNode(node_name)),
    )
    .await
    .unwrap();
    wait_pod_ready(&pods, "probe", POD_READY).await;
    let routes = exec(&ns.name, "probe", &["ip", "-4", "route"]);
    assert!(
        !routes.contains("default"),
        "a pod has no default route: {routes}"
    );
    for line in routes.lines() {
        let dst = line.split_whitespace().next().unwrap_or_default();
        assert!(
            dst.starts_with("10.244.") || dst.starts_with("10.96.") || dst == node_ip,
            "unexpected pod route {line}"
        );
    }
    let resolv = exec(&ns.name, "probe", &["cat", "/etc/resolv.conf"]);
    let servers: Vec<&str> = resolv
        .lines()
        .filter(|l| l.starts_with("nameserver"))
        .collect();
    assert_eq!(servers, vec!["nameserver 10.96.0.10"], "{resolv}");
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
        !corefile.contains("forward"),
        "CoreDNS forwards nothing upstream: {corefile}"
    );
    // Names outside the cluster do not resolve (the query stays within CoreDNS).
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
