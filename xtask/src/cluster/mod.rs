//! `cargo xtask up|down`, `cluster status|node-image|fake-nodes`: the kind cluster — a
//! control plane and several workers, each a container running systemd, containerd and a
//! real kubelet — built and run without a registry. Docker is the machine's daemon or
//! Debian's started here; the node image is assembled locally (`node_image`); kind,
//! kubeadm and every image come from the build cache.

pub mod addons;
pub mod docker;
pub mod fake_nodes;
mod guard;
pub mod host;
mod images;
pub mod install;
pub mod kubectl;
pub mod kwok;
mod node_image;
pub mod storage;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::cmd::{Cmd, cmd};
use crate::components;
use crate::image;
use crate::layout::Layout;
use kubectl::{Kubectl, condition_true};

/// The kind cluster's name; its nodes are `drover-control-plane`, `drover-worker`,
/// `drover-worker2`, ...
pub const CLUSTER: &str = "drover";
pub const DEFAULT_WORKERS: usize = 3;
/// The docker network of the nodes (kind's default, `kind`, may be another cluster's).
pub const NETWORK: &str = "drover-kind";
/// Room for 4,096 nodes' /24s (the controller-manager gives one to every node, simulated
/// ones included), clear of kwok's range (`kwok::POD_CIDR`).
pub const POD_SUBNET: &str = "10.112.0.0/12";
pub const SERVICE_SUBNET: &str = "10.97.0.0/16";

const COREFILE: &str = include_str!("../../../cluster/kind/Corefile");
pub const AUDIT_POLICY: &str = include_str!("../../../cluster/kind/audit-policy.yaml");
/// Where the control-plane node keeps the audit policy and log (both bind-mounted from
/// the host, so tests and benchmarks read the log in place).
const NODE_AUDIT_POLICY: &str = "/etc/kubernetes/drover/audit-policy.yaml";
const NODE_AUDIT_DIR: &str = "/var/log/kubernetes/audit";
/// kubeadm's kubelets serve self-signed certificates.
const KUBELET_TLS: &str = "--kubelet-insecure-tls";

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Worker nodes beside the control plane.
    #[arg(long, default_value_t = DEFAULT_WORKERS)]
    pub workers: usize,
    /// Use this node image instead of building one, e.g. `kindest/node:v1.34.0` on a
    /// machine that can pull it. drover's add-on images are loaded into it all the same.
    #[arg(long)]
    pub node_image: Option<String>,
    /// Simulated (kwok) nodes beside the real ones.
    #[arg(long, default_value_t = fake_nodes::DEFAULT_COUNT)]
    pub fake_nodes: usize,
}

/// The node image (and everything it holds), built if need be; returns its reference.
pub fn node_image(layout: &Layout) -> Result<String> {
    host::prepare(layout)?;
    host::ensure_packages()?;
    components::build_all(layout)?;
    docker::ensure(layout)?;
    node_image::ensure(layout)
}

/// `up`: the cluster, drover, and the sample App, ready to use.
pub fn up(layout: &Layout, args: &UpArgs) -> Result<()> {
    let started = Instant::now();
    cluster_up(layout, args)?;
    let kubectl = kubectl(layout)?;

    install::install_drover(layout)?;
    install::apply_sample(&kubectl)?;
    println!(
        "\nready in {}s: a kind cluster of {} nodes, drover, and the sample App `web` (3 pods \
         behind Service web).\n",
        started.elapsed().as_secs(),
        args.workers + 1
    );
    print_exports(layout);
    println!(
        "kubectl get nodes\n\
         kubectl get apps.drover.dev                     # Desired, Ready, Available\n\
         kubectl get pods -l drover.dev/app=web -o wide\n\
         kubectl scale app.drover.dev/web --replicas=5\n\
         kubectl describe app.drover.dev/web             # conditions and events\n\
         kubectl port-forward svc/web 8080:80 & curl http://127.0.0.1:8080/"
    );
    Ok(())
}

/// The cluster alone, from nothing or as it is.
pub fn cluster_up(layout: &Layout, args: &UpArgs) -> Result<()> {
    let started = Instant::now();
    step(started, "host packages and settings");
    host::prepare(layout)?;
    host::ensure_packages()?;
    step(
        started,
        "components (kind, kubeadm, kubelet, images' binaries)",
    );
    components::build_all(layout)?;
    components::link_client_binaries(layout)?;
    step(started, "docker");
    docker::ensure(layout)?;
    // The rule holds before any node exists.
    guard::install()?;
    let image = match &args.node_image {
        Some(image) => image.clone(),
        None => {
            step(started, "node image");
            node_image::ensure(layout)?
        }
    };
    let nodes = node_containers()?;
    if nodes.is_empty() {
        step(started, &format!("kind create cluster ({image})"));
        create(layout, args, &image)?;
    } else {
        let written = fs::read_to_string(layout.state.join("kind-config.yaml"));
        if written.ok().as_deref() != Some(kind_config(layout, args.workers, &image).as_str()) {
            bail!(
                "the kind cluster `{CLUSTER}` was created with another configuration (another \
                 number of workers, another node image): `cargo xtask down` first"
            );
        }
        // After a restart of the machine or of dockerd the node containers may be stopped.
        let stopped: Vec<&str> = nodes
            .iter()
            .filter(|(_, running)| !running)
            .map(|(name, _)| name.as_str())
            .collect();
        if !stopped.is_empty() {
            step(started, &format!("starting {}", stopped.join(", ")));
            docker::docker().arg("start").args(&stopped).run()?;
        }
        // Docker hands the node containers new addresses when it restarts them in
        // another order; the certificates and kubelets keep the old ones, so such a
        // cluster is made anew.
        let recorded = fs::read_to_string(layout.state.join(ADDRESSES)).ok();
        if recorded.as_deref() == Some(node_addresses()?.as_str()) {
            println!("the kind cluster `{CLUSTER}` is up");
            export_kubeconfig(layout)?;
        } else {
            step(
                started,
                "the nodes' addresses changed since they were created: kind create cluster anew",
            );
            kind()?
                .args(["delete", "cluster", "--name", CLUSTER])
                .run()?;
            create(layout, args, &image)?;
        }
    }
    if args.node_image.is_some() {
        // drover's add-ons were preloaded into its own node image only.
        load_images(&images::addon_archives(layout)?)?;
    }
    step(started, "system add-ons and the network rule");
    let kubectl = kubectl(layout)?;
    wait_apiserver(&kubectl, Duration::from_secs(120))?;
    lock_dns(&kubectl)?;
    kubectl.apply(
        "metrics-server",
        &addons::render(layout, "metrics-server.yaml")?.replace("{{KUBELET_TLS}}", KUBELET_TLS),
    )?;
    kwok::install(layout, &kubectl)?;
    kwok::keep_kube_proxy_off(&kubectl)?;
    storage::install(layout, &kubectl)?;
    step(started, "waiting for every node and system pod");
    wait_ready(&kubectl, Duration::from_secs(300))?;
    set_fake_nodes(&kubectl, args.fake_nodes)?;
    step(started, "loading the sample and example images");
    load_images(&image::build_named(layout, &["sample", "etcd"])?)?;
    println!(
        "\nkind cluster `{CLUSTER}` is up in {}s\n",
        started.elapsed().as_secs()
    );
    Ok(())
}

fn step(started: Instant, what: &str) {
    println!("\n==> {what} ({}s)", started.elapsed().as_secs());
}

fn kind() -> Result<Cmd> {
    Ok(cmd(Layout::detect()?.bin("kind")?)
        // kind runs `docker` from PATH: Debian's client first.
        .env(
            "PATH",
            format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default()),
        )
        .env("KIND_EXPERIMENTAL_DOCKER_NETWORK", NETWORK))
}

pub fn kubectl(layout: &Layout) -> Result<Kubectl> {
    Kubectl::new(layout)
}

fn create(layout: &Layout, args: &UpArgs, image: &str) -> Result<()> {
    let dir = layout.state.clone();
    fs::create_dir_all(&dir)?;
    let config = dir.join("kind-config.yaml");
    fs::write(dir.join("audit-policy.yaml"), AUDIT_POLICY)?;
    let audit_log = layout.audit_log();
    fs::create_dir_all(audit_log.parent().context("the audit log's directory")?)?;
    fs::create_dir_all(storage::host_dir(layout))?;
    fs::write(&config, kind_config(layout, args.workers, image))?;
    kind()?
        .args(["create", "cluster", "--name", CLUSTER])
        .arg("--config")
        .arg(&config)
        .arg("--kubeconfig")
        .arg(layout.kubeconfig())
        .args(["--wait", "180s", "--retain"])
        .run_inherit()
        .and_then(|()| fs::write(dir.join(ADDRESSES), node_addresses()?).map_err(Into::into))
        .context(
            "kind create cluster failed; the nodes are kept for a look (`docker logs \
             drover-control-plane`, `docker exec drover-control-plane journalctl`) until \
             `cargo xtask down`",
        )
}

/// The apiserver compacts etcd's history this often (5m by default), and serves watches
/// of these resources from etcd instead of its watch cache: a watch of them resumed from a
/// version older than the last compaction ends with 410 Gone, as on a busy production
/// cluster, so the fault suites meet that error within minutes (drover watches both
/// cluster-wide; they change rarely, so its last version of them soon is old).
const COMPACTION_INTERVAL: &str = "30s";
const UNCACHED_WATCHES: &str = "secrets#0,configmaps#0";

/// kind's cluster configuration: the ranges, the nodes, the apiserver's audit log and flags.
///
/// The nodes resolve through Docker's embedded DNS (127.0.0.11), which knows the node
/// containers' names (kubeadm's endpoint, `drover-control-plane:6443`, is one) and sends
/// any other query from the node's network namespace, where the host's rule drops it. A
/// pod with `dnsPolicy: Default` gets that address too, which in its own namespace is
/// its loopback: no resolver at all.
fn kind_config(layout: &Layout, workers: usize, image: &str) -> String {
    let policy = layout.state.join("audit-policy.yaml");
    let audit_dir = layout.audit_log();
    let audit_dir = audit_dir.parent().unwrap_or(&audit_dir);
    // Every node mounts the volume files' directory: any node mounts any volume.
    let volumes = format!(
        "      - {{hostPath: {}, containerPath: {}}}\n",
        storage::host_dir(layout).display(),
        storage::NODE_DIR
    );
    let mut nodes = format!(
        "  - role: control-plane\n    \
           image: {image}\n    \
           extraMounts:\n      \
             - {{hostPath: {policy}, containerPath: {NODE_AUDIT_POLICY}, readOnly: true}}\n      \
             - {{hostPath: {audit_dir}, containerPath: {NODE_AUDIT_DIR}}}\n{volumes}",
        policy = policy.display(),
        audit_dir = audit_dir.display(),
    );
    for _ in 0..workers {
        nodes.push_str(&format!(
            "  - role: worker\n    image: {image}\n    extraMounts:\n{volumes}"
        ));
    }
    // kind writes kubeadm's v1beta3 for Kubernetes before 1.36, whose flags are a map: the
    // patch merges into it.
    let patch = format!(
        "      kind: ClusterConfiguration\n      \
               apiServer:\n        \
                 extraArgs:\n          \
                   audit-policy-file: {NODE_AUDIT_POLICY}\n          \
                   audit-log-path: {NODE_AUDIT_DIR}/audit.log\n          \
                   audit-log-maxsize: \"200\"\n          \
                   audit-log-maxbackup: \"1\"\n          \
                   etcd-compaction-interval: {COMPACTION_INTERVAL}\n          \
                   watch-cache-sizes: {UNCACHED_WATCHES}\n        \
                 extraVolumes:\n          \
                   - {{name: audit-policy, hostPath: {NODE_AUDIT_POLICY}, mountPath: {NODE_AUDIT_POLICY}, readOnly: true, pathType: File}}\n          \
                   - {{name: audit-log, hostPath: {NODE_AUDIT_DIR}, mountPath: {NODE_AUDIT_DIR}, pathType: DirectoryOrCreate}}\n"
    );
    format!(
        "# Written by `cargo xtask up`.\n\
         kind: Cluster\n\
         apiVersion: kind.x-k8s.io/v1alpha4\n\
         networking:\n  \
           podSubnet: {POD_SUBNET}\n  \
           serviceSubnet: {SERVICE_SUBNET}\n  \
           kubeProxyMode: iptables\n\
         kubeadmConfigPatches:\n  \
           - |\n{patch}\
         nodes:\n{nodes}"
    )
}

fn export_kubeconfig(layout: &Layout) -> Result<()> {
    fs::create_dir_all(&layout.state)?;
    kind()?
        .args(["export", "kubeconfig", "--name", CLUSTER, "--kubeconfig"])
        .arg(layout.kubeconfig())
        .run()
}

/// A kubeconfig of one of the control plane's components (`scheduler`,
/// `controller-manager`: kubeadm's `/etc/kubernetes/<component>.conf`), pointed at the
/// apiserver's address on the host, for a process of drover's running as that component.
pub fn component_kubeconfig(layout: &Layout, component: &str) -> Result<PathBuf> {
    let node = format!("{CLUSTER}-control-plane");
    let text = docker::docker()
        .args(["exec", &node, "cat"])
        .arg(format!("/etc/kubernetes/{component}.conf"))
        .output()?;
    let admin = fs::read_to_string(layout.kubeconfig())
        .context("the kind cluster's kubeconfig: is the cluster up?")?;
    let server_line = |config: &str| {
        config
            .lines()
            .find(|l| l.trim_start().starts_with("server:"))
            .map(str::to_string)
    };
    let (Some(theirs), Some(ours)) = (server_line(&text), server_line(&admin)) else {
        bail!("no server in the {component} kubeconfig or the cluster's");
    };
    let path = layout.state.join(format!("{component}.kubeconfig"));
    fs::write(&path, text.replace(&theirs, &ours))?;
    Ok(path)
}

/// Where `create` records the node containers' addresses.
const ADDRESSES: &str = "node-addresses";

/// Every node container's name and address, one per line, by name.
fn node_addresses() -> Result<String> {
    let names: Vec<String> = node_containers()?.into_iter().map(|(n, _)| n).collect();
    docker::docker()
        .args([
            "inspect",
            "--format",
            "{{.Name}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        ])
        .args(&names)
        .output()
}

/// The node containers of the cluster: `(name, running)`, by name.
fn node_containers() -> Result<Vec<(String, bool)>> {
    let out = docker::docker()
        .args([
            "ps",
            "--all",
            "--filter",
            &format!("label=io.x-k8s.kind.cluster={CLUSTER}"),
            "--format",
            "{{.Names}} {{.State}}",
        ])
        .output()?;
    let mut nodes: Vec<(String, bool)> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(name, state)| (name.to_string(), state == "running"))
        .collect();
    nodes.sort();
    Ok(nodes)
}

/// Loads image archives into every node.
pub fn load_images(archives: &[PathBuf]) -> Result<()> {
    for archive in archives {
        kind()?
            .args(["load", "image-archive", "--name", CLUSTER])
            .arg(archive)
            .run()
            .with_context(|| format!("loading {} into the nodes", archive.display()))?;
    }
    Ok(())
}

/// CoreDNS answers cluster names only: kubeadm's Corefile (which forwards to the node's
/// resolver) is replaced, and CoreDNS restarted with it, once.
fn lock_dns(kubectl: &Kubectl) -> Result<()> {
    let current = kubectl.json(&["-n", "kube-system", "get", "configmap", "coredns"])?;
    if current["data"]["Corefile"].as_str() == Some(COREFILE) {
        return Ok(());
    }
    let manifest = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "coredns", "namespace": "kube-system"},
        "data": {"Corefile": COREFILE},
    });
    kubectl.apply("coredns-corefile", &manifest.to_string())?;
    kubectl
        .cmd()
        .args([
            "-n",
            "kube-system",
            "rollout",
            "restart",
            "deployment/coredns",
        ])
        .run()?;
    Ok(())
}

/// What keeps the cluster from being ready; empty when every node is Ready and every
/// system pod ready.
fn not_ready(kubectl: &Kubectl) -> Vec<String> {
    let mut waiting = vec![];
    match kubectl.json(&["get", "nodes"]) {
        Ok(nodes) => {
            for n in nodes["items"].as_array().into_iter().flatten() {
                if !condition_true(n, "Ready") {
                    waiting.push(format!(
                        "node {}",
                        n["metadata"]["name"].as_str().unwrap_or("?")
                    ));
                }
            }
        }
        Err(e) => waiting.push(format!("the apiserver ({e:#})")),
    }
    if let Ok(pods) = kubectl.json(&["get", "pods", "--all-namespaces"]) {
        for p in pods["items"].as_array().into_iter().flatten() {
            let namespace = p["metadata"]["namespace"].as_str().unwrap_or("");
            let system = matches!(namespace, "kube-system" | "local-path-storage");
            if system && p["status"]["phase"] != "Succeeded" && !condition_true(p, "Ready") {
                waiting.push(format!(
                    "pod {namespace}/{}",
                    p["metadata"]["name"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    waiting.extend(addons::not_ready(kubectl));
    waiting.extend(storage::not_ready(kubectl));
    if !kwok::ready(kubectl) {
        waiting.push("deployment kube-system/kwok".into());
    }
    waiting.extend(guard::problems());
    waiting
}

/// Creates or deletes simulated nodes until `count` exist, and waits until they are Ready.
pub fn set_fake_nodes(kubectl: &Kubectl, count: usize) -> Result<()> {
    let started = Instant::now();
    fake_nodes::scale(kubectl, count)?;
    let deadline = started + Duration::from_secs(600);
    loop {
        let (names, ready) = fake_nodes::observe(kubectl)?;
        if names.len() == count && ready == count {
            break;
        }
        if Instant::now() > deadline {
            bail!("{ready} of {count} simulated nodes Ready after 600s: is kwok running?");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    println!(
        "{count} simulated nodes Ready ({}s)",
        started.elapsed().as_secs()
    );
    Ok(())
}

/// Waits for a (re)started apiserver to answer and to authorize the admin: kubeadm's
/// admin is a cluster-admin through RBAC, which an apiserver only just up may not have
/// loaded yet.
fn wait_apiserver(kubectl: &Kubectl, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let authorized = || {
            kubectl
                .cmd()
                .args(["auth", "can-i", "*", "*", "--all-namespaces"])
                .output()
                .is_ok_and(|out| out.trim() == "yes")
        };
        if kubectl.apiserver_ready() && authorized() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the apiserver did not answer and authorize the admin within {}s",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn wait_ready(kubectl: &Kubectl, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_report = Instant::now();
    loop {
        let waiting = not_ready(kubectl);
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "timed out after {}s; not ready: {}",
                timeout.as_secs(),
                waiting.join(", ")
            );
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            last_report = Instant::now();
            println!("waiting for {}", waiting.join(", "));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

pub fn down(layout: &Layout) -> Result<()> {
    if docker::docker().arg("info").succeeds() {
        if !node_containers()?.is_empty() {
            kind()?
                .args(["delete", "cluster", "--name", CLUSTER])
                .arg("--kubeconfig")
                .arg(layout.kubeconfig())
                .run_inherit()?;
        }
        if docker::docker()
            .args(["network", "inspect", NETWORK])
            .succeeds()
        {
            docker::docker().args(["network", "rm", NETWORK]).run()?;
        }
    }
    storage::clean(layout)?;
    docker::stop_started(layout)?;
    guard::remove()?;
    host::restore(layout)?;
    let _ = fs::remove_file(layout.kubeconfig());
    println!("the kind cluster is down");
    Ok(())
}

pub fn status(layout: &Layout) -> Result<()> {
    if !docker::docker().arg("info").succeeds() {
        println!("docker is not running: the kind cluster is down");
        return Ok(());
    }
    let nodes = node_containers()?;
    if nodes.is_empty() {
        println!("the kind cluster `{CLUSTER}` does not exist");
        return Ok(());
    }
    for (name, running) in &nodes {
        println!(
            "container {name:<24} {}",
            if *running { "running" } else { "stopped" }
        );
    }
    let kubectl = kubectl(layout)?;
    if let Ok(out) = kubectl.cmd().args(["get", "nodes", "-o", "wide"]).output() {
        println!("\n{out}");
    }
    let waiting = not_ready(&kubectl);
    if waiting.is_empty() {
        println!("every node and system pod is ready");
    } else {
        println!("not ready: {}", waiting.join(", "));
    }
    let problems = guard::problems();
    let dns = kubectl
        .json(&["-n", "kube-system", "get", "configmap", "coredns"])
        .is_ok_and(|c| c["data"]["Corefile"].as_str() == Some(COREFILE));
    if problems.is_empty() && dns {
        println!(
            "network rule             in place (docker networks' forwarding off the machine \
             dropped, pods routed to cluster ranges only, no resolver outside, CoreDNS \
             forwards nothing)"
        );
    } else {
        let mut all = problems;
        if !dns {
            all.push("CoreDNS's Corefile is not drover's (it may forward outside)".into());
        }
        println!("network rule             BROKEN: {}", all.join("; "));
    }
    println!();
    print_exports(layout);
    Ok(())
}

fn print_exports(layout: &Layout) {
    println!(
        "export KUBECONFIG={} PATH={}:$PATH",
        layout.kubeconfig().display(),
        layout.client_bin_dir().display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_config_has_the_nodes_and_ranges() {
        let layout = Layout::detect().unwrap();
        let config = kind_config(&layout, 3, "drover.local/kind-node:test");
        let parsed: serde_yaml::Value = serde_yaml::from_str(&config).unwrap();
        let nodes = parsed["nodes"].as_sequence().unwrap();
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes[0]["role"], "control-plane");
        assert!(nodes[1..].iter().all(|n| n["role"] == "worker"));
        assert_eq!(parsed["networking"]["podSubnet"], POD_SUBNET);
        assert_eq!(parsed["networking"]["serviceSubnet"], SERVICE_SUBNET);
        assert!(
            nodes
                .iter()
                .all(|n| n["image"] == "drover.local/kind-node:test")
        );
        // The apiserver writes its audit log where the host reads it.
        let mounts = nodes[0]["extraMounts"].as_sequence().unwrap();
        let audit_dir = layout.audit_log().parent().unwrap().to_path_buf();
        assert!(mounts.iter().any(|m| m["containerPath"] == NODE_AUDIT_DIR
            && m["hostPath"].as_str() == audit_dir.to_str()));
        // Every node mounts the volume files from the host.
        let volumes = storage::host_dir(&layout);
        assert!(nodes.iter().all(|n| {
            n["extraMounts"].as_sequence().unwrap().iter().any(|m| {
                m["containerPath"] == storage::NODE_DIR
                    && m["hostPath"].as_str() == volumes.to_str()
            })
        }));
        let patch: serde_yaml::Value =
            serde_yaml::from_str(parsed["kubeadmConfigPatches"][0].as_str().unwrap()).unwrap();
        assert_eq!(patch["kind"], "ClusterConfiguration");
        let flags = &patch["apiServer"]["extraArgs"];
        assert_eq!(flags["audit-policy-file"], NODE_AUDIT_POLICY);
        assert_eq!(flags["etcd-compaction-interval"], COMPACTION_INTERVAL);
        assert_eq!(flags["watch-cache-sizes"], UNCACHED_WATCHES);
        assert_eq!(
            flags["audit-log-path"].as_str(),
            Some(format!("{NODE_AUDIT_DIR}/audit.log").as_str())
        );
    }

    #[test]
    fn corefile_forwards_nowhere() {
        let directives: Vec<&str> = COREFILE
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .collect();
        assert!(directives.iter().all(|l| !l.starts_with("forward")));
        assert!(directives.contains(&"kubernetes cluster.local in-addr.arpa ip6.arpa {"));
    }
}
