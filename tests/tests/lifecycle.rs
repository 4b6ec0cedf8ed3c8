//! `cargo xtask down` leaves nothing of the cluster on the host, and `up` works again
//! afterwards. Runs last: it takes the cluster away from every other test.
//!
//! The checks read the host directly (processes, mounts, links, nftables, iptables,
//! files) rather than trusting the xtask's own account of what it cleaned.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use drover_e2e::*;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

/// What `up` keeps on the host besides Docker's data (which is a cache).
const STATE_FILES: [&str; 3] = [
    "/var/lib/drover/kind/kubeconfig",
    "/var/lib/drover/kind/dockerd.pid",
    "/var/run/docker.sock",
];
/// Docker's data root when drover starts the daemon: every container's mounts are below.
const DOCKER_ROOT: &str = "/var/cache/drover/docker";
const GUARD_TABLE: &str = "drover-kind-guard";
/// Where `up` records the kernel settings it raised, for `down` to restore.
const HOST_MARKERS: &str = "/var/lib/drover/kind/host";

fn xtask(args: &[&str]) {
    let mut command = match std::env::var_os("DROVER_XTASK") {
        Some(xtask) => Command::new(xtask),
        None => {
            let mut c = Command::new(env!("CARGO"));
            c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .args(["run", "--quiet", "-p", "xtask", "--"]);
            c
        }
    };
    let status = command.args(args).status().expect("running the xtask");
    assert!(status.success(), "cargo xtask {} failed", args.join(" "));
}

/// Whether drover started the Docker daemon (rather than finding one running).
fn drover_runs_docker() -> bool {
    Path::new("/var/lib/drover/kind/dockerd.pid").exists()
}

/// Everything of the cluster still on the host, when drover started Docker itself (so
/// down stops it and everything of Docker's must go too).
fn remains() -> Vec<String> {
    let mut left = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        {
            continue;
        }
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let name = exe
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The node containers (and everything in them), Docker and its helpers.
        if cgroup.contains("/docker/")
            || cgroup.contains("/kubepods")
            || matches!(name.as_str(), "dockerd" | "docker-proxy" | "kind")
            || name.starts_with("containerd-shim")
            || cmdline.contains("/run/docker/")
            || cmdline.contains(DOCKER_ROOT)
        {
            left.push(format!("process {pid}: {cmdline}"));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for point in mounts.lines().filter_map(|l| l.split(' ').nth(4)) {
        if point.starts_with(DOCKER_ROOT) || point.starts_with("/run/docker") {
            left.push(format!("mount {point}"));
        }
    }
    for link in std::fs::read_dir("/sys/class/net").unwrap().flatten() {
        let name = link.file_name().to_string_lossy().into_owned();
        if name.starts_with("br-") || name.starts_with("veth") || name == "docker0" {
            left.push(format!("link {name}"));
        }
    }
    left.extend(rules_left());
    for file in STATE_FILES {
        if Path::new(file).exists() {
            left.push(format!("file {file}"));
        }
    }
    left
}

/// The host's firewall: the guard gone, and nothing of Docker's or Kubernetes'.
fn rules_left() -> Vec<String> {
    let mut left = vec![];
    let tables = host_ok("nft", &["list", "tables"]);
    for t in tables.lines().filter(|t| t.contains(GUARD_TABLE)) {
        left.push(format!("nftables {t}"));
    }
    for save in ["iptables-save", "ip6tables-save"] {
        for line in host_ok(save, &[]).lines() {
            if line.contains("KUBE-") || line.contains("DOCKER") || line.contains("CNI-") {
                left.push(format!("{save}: {line}"));
            }
        }
    }
    left
}

/// The kind cluster's containers and network, asked of a Docker that keeps running.
fn docker_objects_left() -> Vec<String> {
    let mut left: Vec<String> = docker(&[
        "ps",
        "--all",
        "--filter",
        "label=io.x-k8s.kind.cluster=drover",
        "--format",
        "container {{.Names}}",
    ])
    .lines()
    .map(str::to_string)
    .collect();
    if docker(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .any(|n| n == "drover-kind")
    {
        left.push("network drover-kind".into());
    }
    left
}

/// Each node container's name, ID and start time: `up` on a running cluster must not
/// change them.
fn node_containers() -> Vec<String> {
    let names = docker(&[
        "ps",
        "--filter",
        "label=io.x-k8s.kind.cluster=drover",
        "--format",
        "{{.Names}}",
    ]);
    let mut args = vec!["inspect", "-f", "{{.Name}} {{.Id}} {{.State.StartedAt}}"];
    args.extend(names.lines());
    let mut containers: Vec<String> = docker(&args).lines().map(str::to_string).collect();
    containers.sort();
    containers
}

#[tokio::test]
async fn down_leaves_nothing_behind_and_up_works_again() {
    // The cluster is up and running real containers before it is taken down.
    let before_down = client().await;
    assert!(!workers(&before_down).await.is_empty());
    let started_docker = drover_runs_docker();
    if started_docker {
        assert!(
            !remains().is_empty(),
            "a running cluster shows up in the checks"
        );
    }
    assert!(
        !docker_objects_left().is_empty(),
        "a running cluster shows up in docker"
    );

    xtask(&["down"]);
    let mut left = if started_docker {
        remains()
    } else {
        // The machine's own Docker keeps running: only what drover made of it must go.
        let mut left = docker_objects_left();
        left.extend(rules_left());
        left
    };
    // Kernel settings `up` raised are back as they were (their records go with them).
    if let Ok(entries) = std::fs::read_dir(HOST_MARKERS) {
        left.extend(
            entries
                .flatten()
                .map(|e| format!("not restored: {}", e.path().display())),
        );
    }
    assert!(
        left.is_empty(),
        "after down, still on the host:\n{}",
        left.join("\n")
    );

    let fake_nodes = std::env::var("DROVER_FAKE_NODES")
        .expect("DROVER_FAKE_NODES is not set: run the suites through `cargo xtask test`");
    xtask(&["up", "--fake-nodes", &fake_nodes]);
    let client = client().await;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(nodes.iter().all(is_ready), "every node Ready after up");
    let expected: usize = std::env::var("DROVER_KIND_NODES")
        .map(|n| n.parse().unwrap())
        .unwrap_or(4);
    assert_eq!(nodes.iter().filter(|n| !is_fake(n)).count(), expected);
    assert_eq!(
        nodes.iter().filter(|n| is_fake(n)).count().to_string(),
        fake_nodes
    );
    // Running `up` on a running cluster changes nothing: the same containers keep running.
    let before = node_containers();
    assert_eq!(before.len(), expected, "node containers: {before:?}");
    xtask(&["up", "--fake-nodes", &fake_nodes]);
    assert_eq!(node_containers(), before, "a second up replaced a node");
    wait_for(
        "the apiserver after a second up",
        Duration::from_secs(10),
        || async { client.apiserver_version().await.ok() },
    )
    .await;
}
