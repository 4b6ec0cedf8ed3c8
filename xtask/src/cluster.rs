//! `cargo xtask cluster up|down|status|logs|fake-nodes`: the local cluster's lifecycle.

use std::fs;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::addons;
use crate::build;
use crate::cmd::cmd;
use crate::components::Component;
use crate::config;
use crate::fake_nodes;
use crate::host;
use crate::image;
use crate::kubectl::{Kubectl, condition_true};
use crate::layout::Layout;
use crate::network::{self, NodeAddress};
use crate::pki;
use crate::process;
use crate::teardown;

pub const DEFAULT_FAKE_NODES: usize = 3;

/// The real node: this host.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub ip: Ipv4Addr,
    pub uplink: String,
}

impl Node {
    fn detect() -> Result<Self> {
        let name = node_name(&fs::read_to_string("/proc/sys/kernel/hostname")?);
        let address = NodeAddress::detect()?;
        Ok(Self {
            name,
            ip: address.ip,
            uplink: address.uplink,
        })
    }
}

/// The node's name: the hostname made a valid DNS-1123 name.
fn node_name(hostname: &str) -> String {
    let name: String = hostname
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(|c| c == '-' || c == '.');
    if name.is_empty() {
        "node".into()
    } else {
        name.to_string()
    }
}

/// Client binaries users put on PATH, linked from the build cache.
const CLIENT_BINARIES: [&str; 3] = ["kubectl", "helm", "etcdctl"];

pub fn up(fake_nodes: usize) -> Result<()> {
    let started = Instant::now();
    let layout = Layout::detect()?;
    if not_ready(&layout).is_empty() {
        println!("the cluster is already up; nothing changed\n");
        let kubectl = Kubectl::new(&layout)?;
        let (fake, _) = fake_nodes::observe(&kubectl)?;
        if fake.len() != fake_nodes {
            println!(
                "note: it has {} simulated nodes; `cargo xtask cluster fake-nodes {fake_nodes}` changes that\n",
                fake.len()
            );
        }
        return print_status(&layout);
    }

    let dead = process::forget_dead(&layout);
    if !dead.is_empty() {
        let names: Vec<&str> = dead.iter().map(|c| c.name()).collect();
        println!(
            "not running since the last `up` (crash or restart): {}; starting them again",
            names.join(", ")
        );
    }
    host::ensure_packages()?;
    build::build_all(&layout)?;
    let archives = image::build_cluster_images(&layout)?;
    host::prepare(&layout)?;
    // The network rule holds before any component starts.
    network::install_guard()?;
    let node = Node::detect()?;
    println!("node {} at {} (uplink {})", node.name, node.ip, node.uplink);
    pki::ensure(&layout, &node.name, node.ip)?;
    config::write_all(&layout, &node)?;
    link_client_binaries(&layout)?;
    teardown::record_foreign_dirs(&layout)?;
    for dir in [
        layout.etcd_data(),
        layout.kubelet_root(),
        layout.pod_logs(),
        layout.cni_ipam_dir(),
    ] {
        fs::create_dir_all(dir)?;
    }
    let kubectl = Kubectl::new(&layout)?;

    ensure_running(&layout, &node, Component::Etcd)?;
    ensure_running(&layout, &node, Component::KubeApiserver)?;
    wait_for(
        &layout,
        "the apiserver to be ready",
        Duration::from_secs(120),
        || Ok(kubectl.apiserver_ready()),
    )?;
    addons::apply_bootstrap(&layout, &kubectl)?;
    ensure_running(&layout, &node, Component::KubeControllerManager)?;
    ensure_running(&layout, &node, Component::KubeScheduler)?;
    ensure_running(&layout, &node, Component::Containerd)?;
    wait_for(
        &layout,
        "containerd to serve",
        Duration::from_secs(60),
        || Ok(image::containerd_running(&layout)),
    )?;
    image::import(&layout, &archives)?;
    ensure_running(&layout, &node, Component::Kubelet)?;
    ensure_running(&layout, &node, Component::KubeProxy)?;
    addons::apply_system(&layout, &kubectl)?;
    ensure_running(&layout, &node, Component::Kwok)?;
    if fake_nodes::observe(&kubectl)?.0.is_empty() {
        fake_nodes::scale(&kubectl, fake_nodes)?;
    }
    wait_for(
        &layout,
        "every node and add-on to be ready",
        Duration::from_secs(300),
        || Ok(not_ready(&layout).is_empty()),
    )?;
    println!("\ncluster is up in {}s\n", started.elapsed().as_secs());
    print_status(&layout)
}

/// What keeps the cluster from being up; empty when every process runs and every node,
/// add-on and the network rule is ready.
fn not_ready(layout: &Layout) -> Vec<String> {
    let mut waiting: Vec<String> = Component::ALL
        .iter()
        .filter(|c| process::running_pid(layout, **c).is_none())
        .map(|c| format!("{} is not running", c.name()))
        .collect();
    if !waiting.is_empty() {
        return waiting;
    }
    let Ok(kubectl) = Kubectl::new(layout) else {
        return vec!["no kubectl".into()];
    };
    let real_ready = kubectl
        .json(&["get", "nodes", "-l", &format!("!{}", fake_nodes::LABEL)])
        .is_ok_and(|nodes| {
            nodes["items"]
                .as_array()
                .is_some_and(|items| items.len() == 1 && condition_true(&items[0], "Ready"))
        });
    if !real_ready {
        waiting.push("the real node is not Ready".into());
    }
    match fake_nodes::observe(&kubectl) {
        Ok((names, ready)) if !names.is_empty() && ready == names.len() => {}
        _ => waiting.push("simulated nodes are not Ready".into()),
    }
    waiting.extend(addons::not_ready(&kubectl));
    waiting.extend(network::guard_problems());
    waiting
}

/// Starts a component unless it is running, then waits for its health endpoint.
fn ensure_running(layout: &Layout, node: &Node, c: Component) -> Result<()> {
    if let Some(pid) = process::running_pid(layout, c) {
        println!("{:<24} already running (pid {pid})", c.name());
        return Ok(());
    }
    let pid = process::start(layout, c, node)?;
    println!("{:<24} started (pid {pid})", c.name());
    if let Some(url) = c.health_url() {
        let what = format!("{} to be healthy", c.name());
        wait_for(layout, &what, Duration::from_secs(120), || Ok(http_ok(url)))?;
    }
    Ok(())
}

/// True when `url` answers 200 (certificates of loopback health ports are self-signed).
fn http_ok(url: &str) -> bool {
    cmd("curl")
        .args(["-sfk", "--max-time", "3", "-o", "/dev/null", url])
        .succeeds()
}

/// Polls `ready` until it holds; fails early if a started component died, quoting its log.
fn wait_for(
    layout: &Layout,
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match ready() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if let Some(dead) = Component::ALL.into_iter().find(|c| {
            layout.pid_file(c.name()).exists() && process::running_pid(layout, *c).is_none()
        }) {
            bail!(
                "{} exited while waiting for {what}; last lines of its log:\n{}",
                dead.name(),
                log_tail(layout, dead.name(), 30)
            );
        }
        if Instant::now() > deadline {
            let left = not_ready(layout);
            bail!(
                "timed out after {}s waiting for {what}{}{}; `cargo xtask cluster logs <component>` shows each log",
                timeout.as_secs(),
                last_error
                    .map(|e| format!(" (last error: {e:#})"))
                    .unwrap_or_default(),
                if left.is_empty() {
                    String::new()
                } else {
                    format!("; not ready: {}", left.join(", "))
                }
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn log_tail(layout: &Layout, component: &str, lines: usize) -> String {
    let text = fs::read_to_string(layout.log(component)).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Links the client binaries into the directory users put on PATH.
pub fn link_client_binaries(layout: &Layout) -> Result<()> {
    let dir = layout.client_bin_dir();
    fs::create_dir_all(&dir)?;
    for bin in CLIENT_BINARIES {
        let link = dir.join(bin);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(layout.bin(bin)?, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(())
}

pub fn down() -> Result<()> {
    teardown::run(&Layout::detect()?)
}

pub fn status() -> Result<()> {
    print_status(&Layout::detect()?)
}

fn print_status(layout: &Layout) -> Result<()> {
    let mut running = 0;
    for c in Component::ALL {
        match process::running_pid(layout, c) {
            Some(pid) => {
                running += 1;
                println!("{:<24} running (pid {pid})", c.name());
            }
            None => println!("{:<24} not running", c.name()),
        }
    }
    if running == 0 {
        let left = teardown::leftovers(layout);
        if left.is_empty() {
            println!("\nthe cluster is down");
        } else {
            println!(
                "\nthe cluster is down, but left behind:\n  {}",
                left.join("\n  ")
            );
        }
        return Ok(());
    }
    let kubectl = Kubectl::new(layout)?;
    if !kubectl.apiserver_ready() {
        println!("\nthe apiserver is not ready");
        return Ok(());
    }
    let nodes = kubectl.json(&["get", "nodes"])?;
    let items = nodes["items"].as_array().cloned().unwrap_or_default();
    let fake_label = |n: &serde_json::Value| {
        n["metadata"]["labels"][fake_nodes::LABEL] == fake_nodes::LABEL_VALUE
    };
    println!();
    for n in items.iter().filter(|n| !fake_label(n)) {
        println!(
            "node {:<19} {} ({})",
            n["metadata"]["name"].as_str().unwrap_or("?"),
            if condition_true(n, "Ready") {
                "Ready"
            } else {
                "NotReady"
            },
            n["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .unwrap_or("?")
        );
    }
    let fake: Vec<_> = items.iter().filter(|n| fake_label(n)).collect();
    println!(
        "simulated nodes          {} Ready of {}",
        fake.iter().filter(|n| condition_true(n, "Ready")).count(),
        fake.len()
    );
    let waiting = addons::not_ready(&kubectl);
    if waiting.is_empty() {
        println!("system add-ons           CoreDNS and metrics-server ready");
    } else {
        println!(
            "system add-ons           waiting for {}",
            waiting.join(", ")
        );
    }
    let problems = network::guard_problems();
    if problems.is_empty() {
        println!("network rule             in place (cluster ranges sunk, pod egress dropped)");
    } else {
        println!("network rule             BROKEN: {}", problems.join("; "));
    }
    println!(
        "\nexport KUBECONFIG={} PATH={}:$PATH",
        layout.admin_kubeconfig().display(),
        layout.client_bin_dir().display()
    );
    Ok(())
}

pub fn logs(component: &str, follow: bool, tail: usize) -> Result<()> {
    let layout = Layout::detect()?;
    let Some(c) = Component::from_name(component) else {
        bail!(
            "no component {component:?}; one of: {}",
            Component::ALL.map(|c| c.name()).join(", ")
        );
    };
    let path = layout.log(c.name());
    if !path.exists() {
        bail!("{} has no log yet ({})", c.name(), path.display());
    }
    let mut tail_cmd = cmd("tail").arg("-n").arg(tail.to_string());
    if follow {
        tail_cmd = tail_cmd.arg("-F");
    }
    tail_cmd.arg(&path).run_inherit()
}

pub fn set_fake_nodes(count: usize) -> Result<()> {
    let layout = Layout::detect()?;
    if process::running_pid(&layout, Component::Kwok).is_none() {
        bail!("the cluster is not up: run `cargo xtask cluster up --fake-nodes {count}`");
    }
    let kubectl = Kubectl::new(&layout)?;
    let started = Instant::now();
    fake_nodes::scale(&kubectl, count)?;
    wait_for(
        &layout,
        "the simulated nodes",
        Duration::from_secs(600),
        || {
            let (names, ready) = fake_nodes::observe(&kubectl)?;
            Ok(names.len() == count && ready == count)
        },
    )?;
    println!(
        "{count} simulated nodes Ready ({}s)",
        started.elapsed().as_secs()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::node_name;

    #[test]
    fn node_names_are_valid_dns_names() {
        assert_eq!(node_name("vm\n"), "vm");
        assert_eq!(node_name("CI_Runner.local"), "ci-runner.local");
        assert_eq!(node_name("-_-"), "node");
    }
}
