//! Helpers for drover's end-to-end tests. They run against the real cluster named by
//! `KUBECONFIG` (the local cluster of `cargo xtask cluster up`, or any other) and fail
//! loudly when there is none: a test that needs a cluster never skips.

// Test support: a failed expectation is a failed test, so panicking is the point.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod observer;

use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use drover_crds::App;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The label simulated (kwok) nodes carry, as `cargo xtask cluster` creates them.
pub const FAKE_NODE_LABEL: (&str, &str) = ("type", "kwok");
/// The taint that keeps ordinary pods off simulated nodes.
pub const FAKE_NODE_TAINT: (&str, &str) = ("kwok.x-k8s.io/node", "fake");
pub const SAMPLE_IMAGE: &str = "registry.local/drover/sample";

/// A client for the cluster under test; panics with instructions when there is none.
pub async fn client() -> Client {
    if std::env::var_os("KUBECONFIG").is_none() {
        panic!(
            "KUBECONFIG is not set: the end-to-end tests need a cluster. Run `cargo xtask test`, \
             or `cargo xtask cluster up` and the export line it prints."
        );
    }
    let client = Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("cannot build a client from KUBECONFIG: {e}"));
    client
        .apiserver_version()
        .await
        .unwrap_or_else(|e| panic!("the cluster in KUBECONFIG does not answer: {e}"));
    client
}

/// A namespace of one test, deleted (without waiting) when dropped.
#[derive(Debug)]
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{}", unique_suffix());
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"drover.dev/e2e": "true"}},
        }))
        .expect("namespace manifest");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        Self { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{:06x}",
        (nanos ^ std::process::id().rotate_left(16)) & 0xff_ffff
    )
}

/// Runs the `kubectl` on PATH (the cluster's own, when `cargo xtask` runs the tests).
pub fn kubectl(args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"))
}

/// Runs kubectl and returns its stdout; panics with its stderr when it fails.
pub fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl apply -f -` with `yaml` on stdin (or `kubectl <verb> -f -`); returns the
/// output, whether or not it succeeded.
pub fn kubectl_stdin(args: &[&str], yaml: &str) -> Output {
    let mut child = Command::new("kubectl")
        .args(args)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("writing to kubectl");
    child.wait_with_output().expect("kubectl output")
}

/// An App of the sample image that passes the `restricted` Pod Security level.
pub fn app_manifest(
    name: &str,
    replicas: i32,
    version: &str,
    placement: &Placement,
) -> serde_json::Value {
    let pod = sample_pod(name, version, placement);
    let mut spec = serde_json::to_value(pod.spec).expect("pod spec");
    spec["terminationGracePeriodSeconds"] = json!(5);
    json!({
        "apiVersion": "drover.dev/v1alpha1",
        "kind": "App",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "template": {"metadata": {"labels": {"test": name}}, "spec": spec},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    })
}

/// `kubectl exec` in a pod; returns stdout, panics when the command fails.
pub fn exec(namespace: &str, pod: &str, command: &[&str]) -> String {
    let mut args = vec!["-n", namespace, "exec", pod, "--"];
    args.extend_from_slice(command);
    kubectl_ok(&args)
}

/// Fetches a URL from inside a pod of the sample image. Debian's static busybox crashes
/// on `wget -T`, so its `timeout` applet bounds the request instead.
pub fn pod_fetch(namespace: &str, pod: &str, url: &str) -> String {
    exec(namespace, pod, &["timeout", "10", "wget", "-qO-", url])
}

/// Runs a host command and returns its stdout; panics when it fails.
pub fn host_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` every half second until it yields a value; panics after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {}s waiting for {what}",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub fn is_fake(node: &Node) -> bool {
    node.labels().get(FAKE_NODE_LABEL.0).map(String::as_str) == Some(FAKE_NODE_LABEL.1)
}

pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The name of the one node run by a real kubelet.
pub async fn real_node(client: &Client) -> String {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("listing nodes");
    let real: Vec<String> = nodes
        .items
        .iter()
        .filter(|n| !is_fake(n))
        .map(|n| n.name_any())
        .collect();
    assert_eq!(
        real.len(),
        1,
        "expected exactly one real node, found {real:?}"
    );
    real[0].clone()
}

/// Where a test pod should run.
#[derive(Debug, Clone)]
pub enum Placement {
    /// The real node (containers really run).
    RealNode(String),
    /// Wherever the cluster's scheduler puts it (the kind cluster's workers).
    AnyNode,
    /// Any simulated node.
    FakeNode,
    /// The simulated nodes of one [`FakeNodePool`].
    Pool(String),
}

/// The label that marks the nodes of a [`FakeNodePool`].
pub const POOL_LABEL: &str = "drover.dev/e2e-pool";

/// Simulated nodes of one test, so that what it does to nodes (capacity, outages) does not
/// reach other tests. Deleted when dropped.
#[derive(Debug)]
pub struct FakeNodePool {
    pub name: String,
    pub nodes: Vec<String>,
}

impl FakeNodePool {
    /// `count` simulated nodes of 32 CPUs, 256Gi and 110 pods each, Ready when this
    /// returns.
    pub async fn create(client: &Client, prefix: &str, count: usize) -> Self {
        Self::create_sized(client, prefix, count, "32", "256Gi").await
    }

    /// `count` simulated nodes of `cpu` CPUs, `memory` and 110 pods each.
    pub async fn create_sized(
        client: &Client,
        prefix: &str,
        count: usize,
        cpu: &str,
        memory: &str,
    ) -> Self {
        let name = format!("{prefix}-{}", unique_suffix());
        let nodes: Vec<String> = (0..count).map(|i| format!("{name}-{i}")).collect();
        let api: Api<Node> = Api::all(client.clone());
        for node in &nodes {
            let resources = json!({"cpu": cpu, "memory": memory, "pods": "110"});
            let manifest: Node = serde_json::from_value(json!({
                "metadata": {
                    "name": node,
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                    "labels": {FAKE_NODE_LABEL.0: FAKE_NODE_LABEL.1, POOL_LABEL: name, "kubernetes.io/hostname": node},
                },
                "spec": {"taints": [{"key": FAKE_NODE_TAINT.0, "value": FAKE_NODE_TAINT.1, "effect": "NoSchedule"}]},
                "status": {"allocatable": resources, "capacity": resources},
            }))
            .expect("node manifest");
            api.create(&PostParams::default(), &manifest)
                .await
                .unwrap_or_else(|e| panic!("creating node {node}: {e}"));
        }
        let pool = Self { name, nodes };
        wait_for(
            &format!("the nodes of pool {}", pool.name),
            Duration::from_secs(120),
            || async {
                let list = api
                    .list(&ListParams::default().labels(&format!("{POOL_LABEL}={}", pool.name)))
                    .await
                    .ok()?;
                (list.items.len() == count && list.items.iter().all(is_ready)).then_some(())
            },
        )
        .await;
        pool
    }

    pub fn placement(&self) -> Placement {
        Placement::Pool(self.name.clone())
    }
}

impl Drop for FakeNodePool {
    fn drop(&mut self) {
        let mut args = vec!["delete", "node", "--wait=false"];
        args.extend(self.nodes.iter().map(String::as_str));
        let _ = kubectl(&args);
    }
}

/// A pod of the sample image that passes the `restricted` Pod Security level.
pub fn sample_pod(name: &str, version: &str, placement: &Placement) -> Pod {
    let mut spec = json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 5,
        "containers": [{
            "name": "sample",
            "image": format!("{SAMPLE_IMAGE}:{version}"),
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
            },
        }],
    });
    match placement {
        Placement::RealNode(node) => {
            spec["nodeSelector"] = json!({"kubernetes.io/hostname": node});
        }
        Placement::AnyNode => {}
        Placement::FakeNode | Placement::Pool(_) => {
            spec["nodeSelector"] = match placement {
                Placement::Pool(pool) => json!({POOL_LABEL: pool}),
                _ => json!({FAKE_NODE_LABEL.0: FAKE_NODE_LABEL.1}),
            };
            spec["tolerations"] = json!([{
                "key": FAKE_NODE_TAINT.0, "operator": "Equal", "value": FAKE_NODE_TAINT.1,
                "effect": "NoSchedule",
            }]);
        }
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": spec,
    }))
    .expect("pod manifest")
}

/// Whether a pod counts toward its workload: not terminating, not finished.
pub fn is_active_pod(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    p.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded") | Some("Failed"))
}

/// Whether a pod's Ready condition is True.
pub fn is_pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until a pod is Running and Ready; returns it.
pub async fn wait_pod_ready(pods: &Api<Pod>, name: &str, timeout: Duration) -> Pod {
    wait_for(&format!("pod {name} to be Ready"), timeout, || async {
        let pod = pods.get(name).await.ok()?;
        let status = pod.status.as_ref()?;
        let ready = status
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        (status.phase.as_deref() == Some("Running") && ready).then_some(pod)
    })
    .await
}

/// A plain HTTP/1.0 GET; returns the status code and body.
pub fn http_get(ip: IpAddr, port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream =
        TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {head:?}")))?;
    Ok((code, body.to_string()))
}

/// How long a rollout of the suites may take.
pub const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(240);

/// The image of a pod's first container.
pub fn image_of(p: &Pod) -> String {
    p.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

/// Waits until the App runs `replicas` ready pods, all of `image` and of its update
/// revision, with no other pod left (terminating ones included) and a status that says
/// the rollout is complete. Returns the pods.
pub async fn wait_rolled_out(
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
    image: &str,
) -> Vec<Pod> {
    let apps: Api<App> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("App {name} to run {replicas} ready pods of {image}"),
        ROLLOUT_TIMEOUT,
        || async {
            let app = apps.get(name).await.ok()?;
            let status = app.status.as_ref()?;
            let all = pods
                .list(&ListParams::default().labels(&format!("drover.dev/app={name}")))
                .await
                .ok()?
                .items;
            let done = status.observed_generation == app.metadata.generation
                && !status.update_revision.is_empty()
                && status.updated_replicas == replicas
                && status.available_replicas == replicas
                && status.current_revision == status.update_revision
                && all.len() == replicas as usize
                && all.iter().all(|p| {
                    is_active_pod(p)
                        && is_pod_ready(p)
                        && image_of(p) == image
                        && p.labels().get("drover.dev/revision") == Some(&status.update_revision)
                });
            done.then_some(all)
        },
    )
    .await
}

/// drover's Deployments in `drover-system`, each selecting its pods by
/// `app.kubernetes.io/name=<deployment>`.
pub const CONTROLLER: &str = "drover";
pub const SCHEDULER: &str = "drover-scheduler";

/// Kills a pod of one of drover's Deployments outright (no graceful shutdown), as a crash
/// would.
pub fn kill(deployment: &str) {
    let pods: Vec<String> = kubectl_ok(&[
        "-n",
        "drover-system",
        "get",
        "pods",
        "-l",
        &format!("app.kubernetes.io/name={deployment}"),
        "-o",
        "name",
    ])
    .lines()
    .map(str::to_string)
    .collect();
    assert!(!pods.is_empty(), "{deployment} runs");
    kubectl_ok(&[
        "-n",
        "drover-system",
        "delete",
        "--grace-period=0",
        "--force",
        &pods[0],
    ]);
}

/// Waits until one of drover's Deployments is ready again.
pub fn wait_ready(deployment: &str) {
    kubectl_ok(&[
        "-n",
        "drover-system",
        "rollout",
        "status",
        &format!("deployment/{deployment}"),
        "--timeout=120s",
    ]);
}

/// Merges `spec` into the App's spec (`kubectl patch --type merge`).
pub async fn patch_spec(apps: &Api<App>, name: &str, spec: serde_json::Value) {
    apps.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
    .unwrap_or_else(|e| panic!("patching App {name}: {e}"));
}

/// Patches the App's first container to `sample:<version>`, and its strategy too when
/// `strategy` is given (a JSON merge patch of `spec.strategy`).
pub async fn set_image(
    client: &Client,
    ns: &str,
    name: &str,
    version: &str,
    strategy: Option<serde_json::Value>,
) {
    let apps: Api<App> = Api::namespaced(client.clone(), ns);
    let app = apps.get(name).await.expect("the App");
    let mut containers = serde_json::to_value(
        &app.spec
            .template
            .spec
            .as_ref()
            .expect("a pod spec")
            .containers,
    )
    .expect("containers");
    containers[0]["image"] = json!(format!("{SAMPLE_IMAGE}:{version}"));
    let mut patch = json!({"spec": {"template": {"spec": {"containers": containers}}}});
    if let Some(strategy) = strategy {
        patch["spec"]["strategy"] = strategy;
    }
    apps.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patching the App");
}

/// The apiserver's audit records written since `since` whose line contains `needle`
/// (a cheap filter before parsing), from the log `DROVER_AUDIT_LOG` names and the files
/// it was rotated into.
pub fn audit_records(since: std::time::SystemTime, needle: &str) -> Vec<serde_json::Value> {
    let log = std::env::var_os("DROVER_AUDIT_LOG")
        .map(std::path::PathBuf::from)
        .expect("DROVER_AUDIT_LOG is not set: run the suites through `cargo xtask test`");
    let dir = log.parent().expect("the audit log's directory");
    let mut records = vec![];
    for entry in std::fs::read_dir(dir).expect("the audit log's directory") {
        let entry = entry.expect("a directory entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let recent = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since);
        if !(name.starts_with("audit") && name.ends_with(".log") && recent) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).expect("reading the audit log");
        records.extend(
            text.lines()
                .filter(|l| l.contains(needle))
                .filter_map(|l| serde_json::from_str(l).ok()),
        );
    }
    records
}
