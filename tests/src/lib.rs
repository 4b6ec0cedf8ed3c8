//! Helpers for drover's end-to-end tests. They run against the kind cluster named by
//! `KUBECONFIG` (that of `cargo xtask up`) and fail loudly when there is none: a test
//! that needs a cluster never skips.

// Test support: a failed expectation is a failed test, so panicking is the point.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod inject;
pub mod invariants;
pub mod observer;
pub mod stateful;

pub use inject::*;
pub use stateful::*;

use std::cell::RefCell;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use drover_crds::App;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The label simulated (kwok) nodes carry, as `cargo xtask up` creates them.
pub const FAKE_NODE_LABEL: (&str, &str) = ("type", "kwok");
/// The taint that keeps ordinary pods off simulated nodes.
pub const FAKE_NODE_TAINT: (&str, &str) = ("kwok.x-k8s.io/node", "fake");
pub const SAMPLE_IMAGE: &str = "registry.local/drover/sample";
/// The cluster's pod and Service ranges, as `cargo xtask up` sets them.
pub const POD_RANGE: &str = "10.112.0.0/12";
pub const SERVICE_RANGE: &str = "10.97.0.0/16";

/// Whether an IPv4 address or network (`a.b.c.d`, `a.b.c.d/len`) lies inside `range`.
pub fn within(net: &str, range: &str) -> bool {
    fn parse(net: &str) -> Option<(u32, u32)> {
        let (addr, len) = net.split_once('/').unwrap_or((net, "32"));
        Some((
            addr.parse::<std::net::Ipv4Addr>().ok()?.into(),
            len.parse().ok()?,
        ))
    }
    let (Some((addr, len)), Some((base, base_len))) = (parse(net), parse(range)) else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - base_len).unwrap_or(0);
    len >= base_len && addr & mask == base & mask
}

/// A client for the cluster under test; panics with instructions when there is none.
pub async fn client() -> Client {
    if std::env::var_os("KUBECONFIG").is_none() {
        panic!(
            "KUBECONFIG is not set: the end-to-end tests need a cluster. Run `cargo xtask test`, \
             or `cargo xtask up` and the export line it prints."
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

/// Creates the App `manifest` (JSON, as [`app_manifest`] gives) in `ns`.
pub async fn create_app(client: &Client, ns: &str, manifest: serde_json::Value) -> App {
    let app: App = serde_json::from_value(manifest).expect("an App manifest");
    Api::<App>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &app)
        .await
        .unwrap_or_else(|e| panic!("creating an App in {ns}: {e}"))
}

/// The Warning events about an App, as (reason, message).
pub fn app_warnings(ns: &str, app: &str) -> Vec<(String, String)> {
    kubectl_ok(&[
        "-n",
        ns,
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.kind=App,involvedObject.name={app},type=Warning"),
        "-o",
        "jsonpath={range .items[*]}{.reason}{\"\\t\"}{.message}{\"\\n\"}{end}",
    ])
    .lines()
    .filter_map(|l| l.split_once('\t'))
    .map(|(r, m)| (r.to_string(), m.to_string()))
    .collect()
}

/// The holder of one of drover's leases in `drover-system` (none when released).
pub async fn lease_holder(client: &Client, lease: &str) -> Option<String> {
    Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), "drover-system")
        .get(lease)
        .await
        .ok()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
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
    wait_until(what, timeout, || {
        let pending = check();
        async move { pending.await.ok_or_else(String::new) }
    })
    .await
}

/// Like [`wait_for`], but `check` says what it saw when it is not done yet, and the
/// last of those goes into the panic: a timeout then shows where things got stuck.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    poll(what, timeout, check, None).await
}

/// Like [`wait_until`], and a timeout also shows the namespace's latest Events (what the
/// controller created and deleted, what the scheduler and kubelets said).
pub async fn wait_until_in<T, F, Fut>(ns: &str, what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    poll(what, timeout, check, Some(ns)).await
}

async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F, ns: Option<&str>) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut seen = String::new();
    loop {
        match check().await {
            Ok(v) => return v,
            Err(now) if !now.is_empty() => seen = now,
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            let seen = if seen.is_empty() {
                String::new()
            } else {
                format!("; last seen: {seen}")
            };
            let events = ns.map(recent_events).unwrap_or_default();
            panic!(
                "timed out after {}s waiting for {what}{seen}{events}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The namespace's 30 latest Events, oldest first, for a timeout's message.
fn recent_events(ns: &str) -> String {
    let out = kubectl(&[
        "-n",
        ns,
        "get",
        "events",
        "--sort-by=.lastTimestamp",
        "-o",
        "custom-columns=TIME:.lastTimestamp,TYPE:.type,REASON:.reason,OBJECT:.involvedObject.name,COUNT:.count,MESSAGE:.message",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(30)..];
    format!("\nlatest events in {ns}:\n{}", tail.join("\n"))
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

/// The nodes run by a real kubelet (the kind cluster's containers), not kwok.
pub async fn real_nodes(client: &Client) -> Vec<Node> {
    Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("listing nodes")
        .items
        .into_iter()
        .filter(|n| !is_fake(n))
        .collect()
}

/// The label of the control plane's node, which ordinary pods do not go to (tainted).
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// The real worker nodes' names, sorted.
pub async fn workers(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = real_nodes(client)
        .await
        .into_iter()
        .filter(|n| !n.labels().contains_key(CONTROL_PLANE_LABEL))
        .map(|n| n.name_any())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "the cluster has no real worker node");
    names
}

/// The node a pod is bound to ("" while pending).
pub fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

/// Runs the `docker` of this machine (the kind nodes' daemon) and returns its stdout.
pub fn docker(args: &[&str]) -> String {
    host_ok("docker", args)
}

/// Where a test pod should run.
#[derive(Debug, Clone)]
pub enum Placement {
    /// This real node (containers really run).
    RealNode(String),
    /// Wherever the cluster's scheduler puts it: a real worker (simulated nodes are
    /// tainted).
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

/// How long a StatefulApp's pods may take to be ready (claims are provisioned first).
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// The size of the file system at /data in a pod, in MiB (`df -m`).
pub fn data_size_mib(namespace: &str, pod: &str) -> u64 {
    let df = exec(namespace, pod, &["df", "-m", "/data"]);
    df.lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("df -m /data printed {df}"))
}

/// Whether a pod counts toward its workload: not terminating, not finished.
/// Every pod of an App (by its `drover.dev/app` label), terminating ones included.
pub async fn app_pods(client: &Client, ns: &str, app: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("drover.dev/app={app}")))
        .await
        .unwrap_or_else(|e| panic!("listing the pods of App {app}: {e}"))
        .items
}

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

/// The node whose network namespace the tests' HTTP requests leave from. The host has
/// no route into the cluster's ranges (`up` leaves the host's networking alone); every
/// node has, to pods directly and to Services through kube-proxy's rules.
pub const PROBE_NODE: &str = "drover-control-plane";

/// Reads `ip port path` lines and answers each with `<exit status> <response in hex>`:
/// a fresh connection per request (so kube-proxy balances each anew), 10 s at most.
const RELAY_SCRIPT: &str = r#"
while read -r ip port path; do
  out=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$2" "$0" >&3 && cat <&3' "$ip" "$port" "$path" 2>&1 | od -An -v -tx1 | tr -d ' \n'; exit "${PIPESTATUS[0]}")
  echo "$? $out"
done
"#;

/// A shell on [`PROBE_NODE`] that makes HTTP requests for this thread: one `docker exec`
/// per thread rather than per request keeps load tests light.
struct Relay {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Relay {
    fn start() -> std::io::Result<Self> {
        let mut child = Command::new("docker")
            .args(["exec", "-i", PROBE_NODE, "bash", "-c", RELAY_SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let input = child.stdin.take().expect("piped stdin");
        let output = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(Self {
            child,
            input,
            output,
        })
    }

    /// The raw response, or what the request failed with; `Err` when the relay broke.
    fn get(
        &mut self,
        ip: IpAddr,
        port: u16,
        path: &str,
    ) -> std::io::Result<Result<Vec<u8>, String>> {
        writeln!(self.input, "{ip} {port} {path}")?;
        self.input.flush()?;
        let mut line = String::new();
        if self.output.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other(format!(
                "the HTTP relay on {PROBE_NODE} exited"
            )));
        }
        let (status, hex) = line.trim_end().split_once(' ').unwrap_or((line.trim(), ""));
        let bytes = decode_hex(hex)
            .ok_or_else(|| std::io::Error::other(format!("relay answered {line:?}")))?;
        Ok(match status {
            "0" => Ok(bytes),
            "124" => Err(format!("{ip}:{port}{path}: timed out after 10s")),
            _ => Err(format!(
                "{ip}:{port}{path}: {}",
                String::from_utf8_lossy(&bytes).trim()
            )),
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

thread_local! {
    static RELAY: RefCell<Option<Relay>> = const { RefCell::new(None) };
}

/// A plain HTTP/1.0 GET from inside the cluster (see [`PROBE_NODE`]); returns the status
/// code and body.
pub fn http_get(ip: IpAddr, port: u16, path: &str) -> std::io::Result<(u16, String)> {
    assert!(!path.contains(char::is_whitespace), "path {path:?}");
    let response = RELAY.with(|cell| {
        let mut relay = cell.borrow_mut();
        if relay.is_none() {
            *relay = Some(Relay::start()?);
        }
        let result = relay.as_mut().expect("started").get(ip, port, path);
        if result.is_err() {
            *relay = None;
        }
        result
    })?;
    let response = String::from_utf8_lossy(&response.map_err(std::io::Error::other)?).into_owned();
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
    wait_rolled_out_within(client, ns, name, replicas, image, ROLLOUT_TIMEOUT).await
}

/// [`wait_rolled_out`], waiting up to `timeout`.
pub async fn wait_rolled_out_within(
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
    image: &str,
    timeout: Duration,
) -> Vec<Pod> {
    let apps: Api<App> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_until_in(
        ns,
        &format!("App {name} to run {replicas} ready pods of {image}"),
        timeout,
        || async {
            let app = apps.get(name).await.map_err(|e| e.to_string())?;
            let status = app.status.clone().unwrap_or_default();
            let all = pods
                .list(&ListParams::default().labels(&format!("drover.dev/app={name}")))
                .await
                .map_err(|e| e.to_string())?
                .items;
            let done_pod = |p: &Pod| {
                is_active_pod(p)
                    && is_pod_ready(p)
                    && image_of(p) == image
                    && p.labels().get("drover.dev/revision") == Some(&status.update_revision)
            };
            let done = status.observed_generation == app.metadata.generation
                && !status.update_revision.is_empty()
                && status.updated_replicas == replicas
                && status.available_replicas == replicas
                && status.current_revision == status.update_revision
                && all.len() == replicas as usize
                && all.iter().all(done_pod);
            if done {
                return Ok(all);
            }
            Err(format!(
                "generation {:?} observed {:?}; status updated {} available {} revision {} -> {}; \
                 {} pods, {} of them ready and current, {} terminating",
                app.metadata.generation,
                status.observed_generation,
                status.updated_replicas,
                status.available_replicas,
                status.current_revision,
                status.update_revision,
                all.len(),
                all.iter().filter(|p| done_pod(p)).count(),
                all.iter().filter(|p| !is_active_pod(p)).count(),
            ))
        },
    )
    .await
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

#[cfg(test)]
mod tests {
    use super::{decode_hex, within};

    #[test]
    fn within_compares_networks() {
        assert!(within("10.112.3.4", "10.112.0.0/12"));
        assert!(within("10.127.0.0/24", "10.112.0.0/12"));
        assert!(!within("10.128.0.1", "10.112.0.0/12"));
        assert!(!within("10.112.0.0/8", "10.112.0.0/12"));
        assert!(!within("default", "10.112.0.0/12"));
        assert!(within("1.2.3.4", "0.0.0.0/0"));
    }

    #[test]
    fn hex_decodes_pairs_and_refuses_odd_input() {
        assert_eq!(decode_hex("48540a"), Some(b"HT\n".to_vec()));
        assert_eq!(decode_hex(""), Some(vec![]));
        assert_eq!(decode_hex("4"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
