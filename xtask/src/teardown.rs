//! `cluster down`: stop every process the cluster started and remove everything it set
//! up on the host, so that `up` starts from nothing again.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::mount::{MntFlags, umount2};

use crate::cmd::cmd;
use crate::components::Component;
use crate::host;
use crate::layout::Layout;
use crate::network;
use crate::process::{self, HostProcess};

/// iptables chains created by kube-proxy and the kubelet (`KUBE-`) and by CNI plugins
/// (`CNI-`).
const CHAIN_PREFIXES: [&str; 2] = ["KUBE-", "CNI-"];
/// Network namespaces containerd's CRI creates for pod sandboxes.
const NETNS_DIR: &str = "/var/run/netns";
const NETNS_PREFIX: &str = "cni-";
/// Where the kubelet links container logs, whatever its podLogsDir.
const CONTAINER_LOG_LINKS: &str = "/var/log/containers";
/// Directories the components create at fixed paths outside the cluster's own: containerd
/// 1.6's shim sockets and runc state, libcni's result cache, the kubelet's device-plugin
/// socket, container log links.
const FOREIGN_DIRS: [&str; 4] = [
    "/run/containerd",
    "/var/lib/cni",
    "/var/lib/kubelet",
    CONTAINER_LOG_LINKS,
];
const RUNC_STATE: &str = "/run/containerd/runc/k8s.io";
const CNI_RESULTS: &str = "/var/lib/cni/results";

/// Records which foreign directories do not exist yet, so `down` removes exactly those.
/// Called before any component starts.
pub fn record_foreign_dirs(layout: &Layout) -> Result<()> {
    let marker = layout.host_marker("created-dirs");
    let mut created: Vec<String> = fs::read_to_string(&marker)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    for dir in FOREIGN_DIRS {
        if !Path::new(dir).exists() && !created.iter().any(|d| d == dir) {
            created.push(dir.to_string());
        }
    }
    fs::write(marker, created.join("\n"))?;
    Ok(())
}

/// Removes what the components left at fixed paths: whole directories the cluster
/// created, and otherwise the entries of its own containers (by container ID).
fn remove_foreign(layout: &Layout, container_ids: &[String]) -> Result<()> {
    let created = fs::read_to_string(layout.host_marker("created-dirs")).unwrap_or_default();
    for dir in created.lines().filter(|d| FOREIGN_DIRS.contains(d)) {
        if Path::new(dir).exists() {
            fs::remove_dir_all(dir).with_context(|| format!("removing {dir}"))?;
        }
    }
    for id in container_ids {
        let _ = fs::remove_dir_all(Path::new(RUNC_STATE).join(id));
        if let Ok(results) = fs::read_dir(CNI_RESULTS) {
            for r in results.flatten() {
                if r.file_name().to_string_lossy().contains(id.as_str()) {
                    let _ = fs::remove_file(r.path());
                }
            }
        }
    }
    Ok(())
}

/// IDs of the containers and sandboxes containerd ran for the cluster.
fn container_ids(layout: &Layout) -> Vec<String> {
    fs::read_dir(
        layout
            .containerd_state()
            .join("io.containerd.runtime.v2.task/k8s.io"),
    )
    .map(|entries| {
        entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    })
    .unwrap_or_default()
}

pub fn run(layout: &Layout) -> Result<()> {
    // Node agents first, so nothing restarts containers while they are being removed.
    for c in [Component::Kwok, Component::KubeProxy, Component::Kubelet] {
        stop(layout, c)?;
    }
    kill_containers();
    stop(layout, Component::Containerd)?;
    for c in [
        Component::KubeScheduler,
        Component::KubeControllerManager,
        Component::KubeApiserver,
        Component::Etcd,
    ] {
        stop(layout, c)?;
    }
    for p in stray_processes(layout) {
        println!("stopping stray process {} ({})", p.pid, p.cmdline.trim());
        process::terminate(p.pid, Duration::from_secs(5));
    }

    let ids = container_ids(layout);
    unmount_under(&[layout.state.clone(), layout.run.clone()])?;
    remove_netns()?;
    network::delete_link(network::POD_BRIDGE)?;
    network::remove_guard()?;
    remove_iptables_chains()?;
    remove_cgroups();
    remove_container_log_links(layout);
    remove_foreign(layout, &ids)?;
    host::restore(layout)?;
    for dir in [&layout.state, &layout.run] {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }

    let left = leftovers(layout);
    if !left.is_empty() {
        anyhow::bail!(
            "the cluster is down but left behind:\n  {}",
            left.join("\n  ")
        );
    }
    println!(
        "cluster is down; nothing of it is left on the host (logs kept in {})",
        layout.logs.display()
    );
    Ok(())
}

fn stop(layout: &Layout, c: Component) -> Result<()> {
    if process::stop(layout, c)? {
        println!("stopped {}", c.name());
    }
    Ok(())
}

/// Kills every process in a pod's cgroup (containers and sandboxes).
fn kill_containers() {
    let pods: Vec<HostProcess> = process::host_processes()
        .into_iter()
        .filter(|p| in_pod_cgroup(p.pid))
        .collect();
    if !pods.is_empty() {
        println!("stopping {} container processes", pods.len());
    }
    for p in pods {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn in_pod_cgroup(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c.contains("/kubepods"))
}

/// Processes of the cluster that no PID file accounts for: anything running a binary
/// from the build cache, containerd or its shims serving our socket, and containers.
pub fn stray_processes(layout: &Layout) -> Vec<HostProcess> {
    let bin_root = layout.cache.join("bin");
    let socket = layout.containerd_socket().display().to_string();
    let config = layout.config("containerd.toml").display().to_string();
    process::host_processes()
        .into_iter()
        .filter(|p| {
            p.exe.starts_with(&bin_root)
                || (p.cmdline.contains(&socket) || p.cmdline.contains(&config))
                || in_pod_cgroup(p.pid)
        })
        .collect()
}

/// Mount points under `roots` and the pods' network namespaces, deepest first.
fn cluster_mounts(roots: &[PathBuf]) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| {
            roots.iter().any(|r| p.starts_with(r))
                || (p.starts_with(NETNS_DIR) || p.starts_with("/run/netns"))
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(NETNS_PREFIX))
        })
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    mounts.dedup();
    mounts
}

/// mountinfo escapes spaces and a few other bytes as `\NNN` (octal).
fn unescape_mount_path(raw: &str) -> PathBuf {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(b) = u8::from_str_radix(&code, 8) {
                out.push(b as char);
                continue;
            }
            out.push('\\');
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    PathBuf::from(out)
}

fn unmount_under(roots: &[PathBuf]) -> Result<()> {
    // A mount can hide another at the same point; repeat until none is left.
    for _ in 0..5 {
        let mounts = cluster_mounts(roots);
        if mounts.is_empty() {
            return Ok(());
        }
        for m in mounts {
            if umount2(&m, MntFlags::empty()).is_err() {
                umount2(&m, MntFlags::MNT_DETACH)
                    .with_context(|| format!("unmounting {}", m.display()))?;
            }
        }
    }
    Ok(())
}

fn remove_netns() -> Result<()> {
    let Ok(entries) = fs::read_dir(NETNS_DIR) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(NETNS_PREFIX) {
            fs::remove_file(e.path())
                .with_context(|| format!("removing {}", e.path().display()))?;
        }
    }
    Ok(())
}

fn is_cluster_chain(chain: &str) -> bool {
    CHAIN_PREFIXES.iter().any(|p| chain.starts_with(p))
}

/// An `iptables-restore --noflush` script that removes every cluster chain of a ruleset
/// (the output of `iptables-save`) and every rule that jumps to one. The rules are
/// deleted by their exact saved text, so no quoting has to be parsed here.
fn chain_removal_script(saved: &str) -> String {
    let mut script = String::new();
    let mut table: Option<&str> = None;
    let mut deletes = vec![];
    let mut chains = vec![];
    let mut flush = |table: Option<&str>, deletes: &mut Vec<String>, chains: &mut Vec<String>| {
        if let Some(t) = table
            && !(deletes.is_empty() && chains.is_empty())
        {
            script.push_str(&format!("*{t}\n"));
            for d in deletes.iter() {
                script.push_str(&format!("{d}\n"));
            }
            for c in chains.iter() {
                script.push_str(&format!("-F {c}\n"));
            }
            for c in chains.iter() {
                script.push_str(&format!("-X {c}\n"));
            }
            script.push_str("COMMIT\n");
        }
        deletes.clear();
        chains.clear();
    };
    for line in saved.lines() {
        if let Some(t) = line.strip_prefix('*') {
            flush(table, &mut deletes, &mut chains);
            table = Some(t);
        } else if let Some(decl) = line.strip_prefix(':') {
            let chain = decl.split_whitespace().next().unwrap_or_default();
            if is_cluster_chain(chain) {
                chains.push(chain.to_string());
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule.split_whitespace().next().unwrap_or_default();
            let words: Vec<&str> = rule.split_whitespace().collect();
            let jumps_to_ours = words
                .windows(2)
                .any(|w| (w[0] == "-j" || w[0] == "-g") && is_cluster_chain(w[1]));
            // Rules inside our own chains go with the chain; others are unhooked.
            if jumps_to_ours && !is_cluster_chain(chain) {
                deletes.push(format!("-D {rule}"));
            }
        }
    }
    flush(table, &mut deletes, &mut chains);
    script
}

fn remove_iptables_chains() -> Result<()> {
    for (save, restore) in [
        ("iptables-save", "iptables-restore"),
        ("ip6tables-save", "ip6tables-restore"),
    ] {
        let saved = cmd(save)
            .output()
            .with_context(|| format!("running {save}"))?;
        let script = chain_removal_script(&saved);
        if script.is_empty() {
            continue;
        }
        let path = std::env::temp_dir().join("drover-iptables-cleanup");
        fs::write(&path, &script)?;
        let out = std::process::Command::new(restore)
            .arg("--noflush")
            .stdin(fs::File::open(&path)?)
            .output()?;
        let _ = fs::remove_file(&path);
        if !out.status.success() {
            anyhow::bail!(
                "{restore} could not remove the cluster's chains: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(())
}

/// The cgroup directories the kubelet made for pods, deepest first, in every hierarchy.
fn pod_cgroups() -> Vec<PathBuf> {
    let mut found = vec![];
    let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else {
        return found;
    };
    for h in hierarchies.flatten() {
        let root = h.path();
        for candidate in [root.join("kubepods"), root.join("kubepods.slice")] {
            collect_dirs(&candidate, &mut found);
        }
    }
    // The unified hierarchy root itself can hold kubepods on cgroup v2 hosts.
    collect_dirs(Path::new("/sys/fs/cgroup/kubepods"), &mut found);
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

fn remove_cgroups() {
    // A cgroup can be briefly busy while its last process exits.
    for _ in 0..20 {
        let left = pod_cgroups();
        if left.is_empty() {
            return;
        }
        for dir in left {
            let _ = fs::remove_dir(dir);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn remove_container_log_links(layout: &Layout) {
    let Ok(entries) = fs::read_dir(CONTAINER_LOG_LINKS) else {
        return;
    };
    for e in entries.flatten() {
        if fs::read_link(e.path()).is_ok_and(|t| t.starts_with(layout.pod_logs())) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Everything of the cluster still on the host; empty when it is fully down.
pub fn leftovers(layout: &Layout) -> Vec<String> {
    let mut left = vec![];
    for p in stray_processes(layout) {
        left.push(format!("process {} {}", p.pid, p.cmdline.trim()));
    }
    for m in cluster_mounts(&[layout.state.clone(), layout.run.clone()]) {
        left.push(format!("mount {}", m.display()));
    }
    for range in network::SINK_ROUTES {
        if cmd("ip")
            .args(["-4", "route", "show", "exact", range])
            .output()
            .is_ok_and(|o| !o.trim().is_empty())
        {
            left.push(format!("route {range}"));
        }
    }
    for link in [network::POD_BRIDGE, network::SINK_BRIDGE] {
        if network::link_exists(link) {
            left.push(format!("link {link}"));
        }
    }
    for save in ["iptables-save", "ip6tables-save"] {
        let saved = cmd(save).output().unwrap_or_default();
        for line in saved.lines() {
            if let Some(decl) = line.strip_prefix(':') {
                let chain = decl.split_whitespace().next().unwrap_or_default();
                if is_cluster_chain(chain) {
                    left.push(format!("{save}: chain {chain}"));
                }
            }
        }
    }
    if cmd("nft")
        .args(["list", "table", "inet", network::GUARD_TABLE])
        .succeeds()
    {
        left.push(format!("nftables table inet {}", network::GUARD_TABLE));
    }
    for cg in pod_cgroups() {
        left.push(format!("cgroup {}", cg.display()));
    }
    for dir in [&layout.state, &layout.run] {
        if dir.exists() {
            left.push(format!("directory {}", dir.display()));
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVED: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-X - [0:0]
:OTHER - [0:0]
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A OUTPUT -j OTHER
-A KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-X
COMMIT
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -j ACCEPT
COMMIT
";

    #[test]
    fn removal_script_unhooks_and_deletes_only_cluster_chains() {
        let script = chain_removal_script(SAVED);
        assert_eq!(
            script,
            "*nat\n\
             -D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -F KUBE-SERVICES\n-F KUBE-SVC-X\n-X KUBE-SERVICES\n-X KUBE-SVC-X\nCOMMIT\n"
        );
    }

    #[test]
    fn nothing_to_remove_gives_an_empty_script() {
        assert_eq!(
            chain_removal_script("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"),
            ""
        );
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b"), PathBuf::from("/a b"));
    }
}
