//! `cargo xtask kind up|down|status|node-image`: a kind cluster — a control plane and
//! several workers, each a container running systemd, containerd and a real kubelet —
//! built and run without a registry. Docker is the machine's daemon or Debian's started
//! here; the node image is assembled locally (`node_image`); kind, kubeadm and every
//! image come from the build cache.

pub mod docker;
mod guard;
mod images;
mod node_image;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::addons;
use crate::build;
use crate::cluster;
use crate::cmd::{Cmd, cmd};
use crate::image;
use crate::install;
use crate::kubectl::{Kubectl, condition_true};
use crate::layout::Layout;

/// The kind cluster's name; its nodes are `drover-control-plane`, `drover-worker`,
/// `drover-worker2`, ...
pub const CLUSTER: &str = "drover";
pub const DEFAULT_WORKERS: usize = 3;
/// The docker network of the nodes (kind's default, `kind`, may be another cluster's).
pub const NETWORK: &str = "drover-kind";
/// Clear of the host-process cluster's ranges (10.244.0.0/16, 10.96.0.0/16), which the
/// host routes into its sink while that cluster runs.
pub const POD_SUBNET: &str = "10.245.0.0/16";
pub const SERVICE_SUBNET: &str = "10.97.0.0/16";

const COREFILE: &str = include_str!("../../../cluster/kind/Corefile");
/// kubeadm's kubelets serve self-signed certificates.
const KUBELET_TLS: &str = "--kubelet-insecure-tls";

#[derive(Debug, Subcommand)]
pub enum KindAction {
    /// The kind cluster with drover installed and the sample App running.
    Up(UpArgs),
    /// Delete the cluster, its docker network, the network rule and a dockerd started
    /// by `up`.
    Down,
    /// Nodes, system pods and the network rule.
    Status,
    /// Build the node image (and everything it holds) without creating a cluster.
    NodeImage,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Worker nodes beside the control plane.
    #[arg(long, default_value_t = DEFAULT_WORKERS)]
    pub workers: usize,
    /// Use this node image instead of building one, e.g. `kindest/node:v1.34.0` on a
    /// machine that can pull it. drover's add-on images are loaded into it all the same.
    #[arg(long)]
    pub node_image: Option<String>,
}

pub fn run(action: KindAction) -> Result<()> {
    let layout = Layout::detect()?;
    match action {
        KindAction::Up(args) => up(&layout, &args),
        KindAction::Down => down(&layout),
        KindAction::Status => status(&layout),
        KindAction::NodeImage => {
            build::build_all(&layout)?;
            docker::ensure(&layout)?;
            node_image::ensure(&layout).map(drop)
        }
    }
}

/// `up`: the cluster, drover, and the sample App, ready to use.
fn up(layout: &Layout, args: &UpArgs) -> Result<()> {
    let started = Instant::now();
    cluster_up(layout, args)?;
    let kubectl = kubectl(layout)?;

    install::install_drover_on(layout, &layout.kind_kubeconfig(), &load_images)?;
    install::apply_sample(&kubectl)?;
    println!(
        "\nready in {}s: a kind cluster of {} nodes, drover, and the sample App `web`.\n",
        started.elapsed().as_secs(),
        args.workers + 1
    );
    print_exports(layout);
    Ok(())
}

/// The cluster alone, from nothing or as it is.
pub fn cluster_up(layout: &Layout, args: &UpArgs) -> Result<()> {
    let started = Instant::now();
    step(
        started,
        "components (kind, kubeadm, kubelet, images' binaries)",
    );
    build::build_all(layout)?;
    cluster::link_client_binaries(layout)?;
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
        let want = args.workers + 1;
        if nodes.len() != want {
            bail!(
                "the kind cluster `{CLUSTER}` has {} nodes, not {want}: `cargo xtask kind down` \
                 first to change that",
                nodes.len()
            );
        }
        // After a restart of the machine or of dockerd the node containers are stopped.
        let stopped: Vec<&str> = nodes
            .iter()
            .filter(|(_, running)| !running)
            .map(|(name, _)| name.as_str())
            .collect();
        if stopped.is_empty() {
            println!("the kind cluster `{CLUSTER}` is up");
        } else {
            step(started, &format!("starting {}", stopped.join(", ")));
            docker::docker().arg("start").args(&stopped).run()?;
        }
        export_kubeconfig(layout)?;
    }
    if args.node_image.is_some() {
        // drover's add-ons were preloaded into its own node image only.
        load_images(&[images::metrics_server_archive(layout)?])?;
    }
    step(started, "system add-ons and the network rule");
    let kubectl = kubectl(layout)?;
    lock_dns(&kubectl)?;
    kubectl.apply(
        "metrics-server",
        &addons::render_with(layout, "metrics-server.yaml")?
            .replace("{{KUBELET_TLS}}", KUBELET_TLS),
    )?;
    step(started, "waiting for every node and system pod");
    wait_ready(&kubectl, Duration::from_secs(300))?;
    step(started, "loading the sample images");
    load_images(&image::build_named(layout, &["sample"])?)?;
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
    Kubectl::with_kubeconfig(layout, layout.kind_kubeconfig())
}

fn create(layout: &Layout, args: &UpArgs, image: &str) -> Result<()> {
    let dir = layout.kind_state();
    fs::create_dir_all(&dir)?;
    let config = dir.join("kind-config.yaml");
    fs::write(&config, kind_config(args.workers))?;
    kind()?
        .args(["create", "cluster", "--name", CLUSTER, "--image", image])
        .arg("--config")
        .arg(&config)
        .arg("--kubeconfig")
        .arg(layout.kind_kubeconfig())
        .args(["--wait", "180s", "--retain"])
        .run_inherit()
        .context(
            "kind create cluster failed; the nodes are kept for a look (`docker logs \
             drover-control-plane`, `docker exec drover-control-plane journalctl`) until \
             `cargo xtask kind down`",
        )
}

/// kind's cluster configuration: the ranges and the nodes.
///
/// The nodes resolve through Docker's embedded DNS (127.0.0.11), which knows the node
/// containers' names (kubeadm's endpoint, `drover-control-plane:6443`, is one) and sends
/// any other query from the node's network namespace, where the host's rule drops it. A
/// pod with `dnsPolicy: Default` gets that address too, which in its own namespace is
/// its loopback: no resolver at all.
fn kind_config(workers: usize) -> String {
    let mut nodes = String::from("  - role: control-plane\n");
    for _ in 0..workers {
        nodes.push_str("  - role: worker\n");
    }
    format!(
        "# Written by `cargo xtask kind up`.\n\
         kind: Cluster\n\
         apiVersion: kind.x-k8s.io/v1alpha4\n\
         networking:\n  \
           podSubnet: {POD_SUBNET}\n  \
           serviceSubnet: {SERVICE_SUBNET}\n  \
           kubeProxyMode: iptables\n\
         nodes:\n{nodes}"
    )
}

fn export_kubeconfig(layout: &Layout) -> Result<()> {
    fs::create_dir_all(layout.kind_state())?;
    kind()?
        .args(["export", "kubeconfig", "--name", CLUSTER, "--kubeconfig"])
        .arg(layout.kind_kubeconfig())
        .run()
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
    waiting.extend(guard::problems());
    waiting
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

fn down(layout: &Layout) -> Result<()> {
    if docker::docker().arg("info").succeeds() {
        if !node_containers()?.is_empty() {
            kind()?
                .args(["delete", "cluster", "--name", CLUSTER])
                .arg("--kubeconfig")
                .arg(layout.kind_kubeconfig())
                .run_inherit()?;
        }
        if docker::docker()
            .args(["network", "inspect", NETWORK])
            .succeeds()
        {
            docker::docker().args(["network", "rm", NETWORK]).run()?;
        }
    }
    docker::stop_started(layout)?;
    guard::remove()?;
    let _ = fs::remove_file(layout.kind_kubeconfig());
    println!("the kind cluster is down");
    Ok(())
}

fn status(layout: &Layout) -> Result<()> {
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
        layout.kind_kubeconfig().display(),
        layout.client_bin_dir().display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_config_has_the_nodes_and_ranges() {
        let config = kind_config(3);
        let parsed: serde_yaml::Value = serde_yaml::from_str(&config).unwrap();
        let nodes = parsed["nodes"].as_sequence().unwrap();
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes[0]["role"], "control-plane");
        assert!(nodes[1..].iter().all(|n| n["role"] == "worker"));
        assert_eq!(parsed["networking"]["podSubnet"], POD_SUBNET);
        assert_eq!(parsed["networking"]["serviceSubnet"], SERVICE_SUBNET);
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
