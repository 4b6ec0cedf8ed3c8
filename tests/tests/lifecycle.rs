//! `cargo xtask cluster down` leaves nothing of the cluster on the host, and `up` works
//! again afterwards. Runs last: it takes the cluster away from every other test.
//!
//! The checks read the host directly (processes, mounts, routes, links, iptables, nftables,
//! cgroups) rather than trusting the xtask's own account of what it cleaned.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use drover_e2e::*;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

/// Where the local cluster keeps builds and state, as the README documents.
const CACHE_BIN: &str = "/var/cache/drover/bin";
const STATE_DIRS: [&str; 2] = ["/var/lib/drover/cluster", "/run/drover"];
const CLUSTER_RANGES: [&str; 3] = ["10.96.0.0/16", "10.244.0.0/16", "10.250.0.0/15"];

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

/// Everything of the cluster still on the host.
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
        // The kind cluster (its node containers, Docker's containerd and shims) is not
        // this cluster's and may run beside it.
        if cgroup.contains("/docker/") || cmdline.contains("/run/docker/") {
            continue;
        }
        if exe.starts_with(CACHE_BIN)
            || cgroup.contains("/kubepods")
            || name.starts_with("containerd")
            || STATE_DIRS.iter().any(|d| cmdline.contains(d))
        {
            left.push(format!("process {pid}: {cmdline}"));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for point in mounts.lines().filter_map(|l| l.split(' ').nth(4)) {
        if STATE_DIRS.iter().any(|d| point.starts_with(d)) || point.contains("/netns/cni-") {
            left.push(format!("mount {point}"));
        }
    }
    let routes = host_ok("ip", &["-4", "route", "show"]);
    for range in CLUSTER_RANGES.iter().chain(["10.244.0.0/24"].iter()) {
        if routes.lines().any(|l| l.starts_with(range)) {
            left.push(format!("route {range}"));
        }
    }
    for link in ["drover0", "drover-sink"] {
        if Path::new("/sys/class/net").join(link).exists() {
            left.push(format!("link {link}"));
        }
    }
    for save in ["iptables-save", "ip6tables-save"] {
        for line in host_ok(save, &[]).lines() {
            if line.contains("KUBE-") || line.contains("CNI-") {
                left.push(format!("{save}: {line}"));
            }
        }
    }
    let tables = host_ok("nft", &["list", "tables"]);
    for t in tables
        .lines()
        .filter(|t| (t.contains("drover") || t.contains("kube")) && !t.contains("drover-kind"))
    {
        left.push(format!("nftables {t}"));
    }
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        if hierarchy.path().join("kubepods").exists() {
            left.push(format!("cgroup {}/kubepods", hierarchy.path().display()));
        }
    }
    for dir in STATE_DIRS {
        if Path::new(dir).exists() {
            left.push(format!("directory {dir}"));
        }
    }
    // What containerd, libcni and the kubelet keep at fixed paths.
    if std::fs::read_dir("/run/containerd/runc/k8s.io").is_ok_and(|mut d| d.next().is_some()) {
        left.push("runc state in /run/containerd/runc/k8s.io".into());
    }
    if let Ok(results) = std::fs::read_dir("/var/lib/cni/results") {
        for r in results.flatten() {
            if r.file_name().to_string_lossy().starts_with("drover-pods-") {
                left.push(format!("CNI result {}", r.path().display()));
            }
        }
    }
    if Path::new("/var/lib/kubelet/device-plugins/kubelet.sock").exists() {
        left.push("kubelet device-plugin socket".into());
    }
    left
}

#[tokio::test]
async fn down_leaves_nothing_behind_and_up_works_again() {
    // The cluster is up and running real containers before it is taken down.
    let before_down = client().await;
    real_node(&before_down).await;
    assert!(
        !remains().is_empty(),
        "a running cluster shows up in the checks"
    );

    xtask(&["cluster", "down"]);
    let left = remains();
    assert!(
        left.is_empty(),
        "after down, still on the host:\n{}",
        left.join("\n")
    );

    let fake_nodes = std::env::var("DROVER_FAKE_NODES").unwrap_or_else(|_| "3".into());
    xtask(&["cluster", "up", "--fake-nodes", &fake_nodes]);
    let client = client().await;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(nodes.iter().all(is_ready), "every node Ready after up");
    assert_eq!(nodes.iter().filter(|n| !is_fake(n)).count(), 1);
    assert_eq!(
        nodes.iter().filter(|n| is_fake(n)).count().to_string(),
        fake_nodes
    );
    // Running `up` on a running cluster changes nothing: the same processes keep running.
    let before = component_pids();
    assert_eq!(
        before.len(),
        8,
        "eight components have PID files: {before:?}"
    );
    xtask(&["cluster", "up", "--fake-nodes", &fake_nodes]);
    assert_eq!(component_pids(), before, "a second up restarted something");
    wait_for(
        "the apiserver after a second up",
        Duration::from_secs(10),
        || async { client.apiserver_version().await.ok() },
    )
    .await;
}

fn component_pids() -> Vec<(String, String)> {
    let mut pids: Vec<(String, String)> = std::fs::read_dir("/var/lib/drover/cluster/pids")
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    pids.sort();
    pids
}
