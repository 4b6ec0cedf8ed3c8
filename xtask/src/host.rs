//! Preparing the host: the Debian packages the cluster runs on, kernel settings, mount
//! propagation. What `prepare` changes is recorded so `restore` undoes exactly that.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::cmd::cmd;
use crate::layout::Layout;

/// Debian packages the cluster needs, each with a file that proves it is installed.
const PACKAGES: [(&str, &str); 13] = [
    ("containerd", "/usr/bin/containerd"),
    ("runc", "/usr/sbin/runc"),
    ("containernetworking-plugins", "/usr/lib/cni/bridge"),
    ("iptables", "/usr/sbin/iptables"),
    ("nftables", "/usr/sbin/nft"),
    ("iproute2", "/usr/bin/ip"),
    ("conntrack", "/usr/sbin/conntrack"),
    ("socat", "/usr/bin/socat"),
    ("ethtool", "/usr/sbin/ethtool"),
    // Health probes of the components.
    ("curl", "/usr/bin/curl"),
    // A static busybox is the userland of the sample image.
    ("busybox-static", "/bin/busybox"),
    // gcc and a static libc build the pause image.
    ("libc6-dev", "/usr/lib/x86_64-linux-gnu/libc.a"),
    ("gcc", "/usr/bin/gcc"),
];

/// Kernel settings the cluster needs: forwarding for Service traffic between pods, bridge
/// netfilter for kube-proxy's rules on the pod bridge, inotify for kubelet and pods.
const SYSCTLS: [(&str, &str); 5] = [
    ("net/ipv4/ip_forward", "1"),
    ("net/bridge/bridge-nf-call-iptables", "1"),
    ("net/bridge/bridge-nf-call-ip6tables", "1"),
    ("fs/inotify/max_user_instances", "8192"),
    ("fs/inotify/max_user_watches", "524288"),
];

/// Installs whatever packages of the host-process cluster are missing, with apt-get.
pub fn ensure_packages() -> Result<()> {
    ensure_packages_of(&PACKAGES)
}

/// Installs whatever packages of `(package, file that proves it)` are missing.
pub fn ensure_packages_of(packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, proof)| !Path::new(proof).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("installing Debian packages: {}", missing.join(" "));
    cmd("apt-get")
        .args(["update", "-qq"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    cmd("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
        .context("installing the cluster's Debian packages")?;
    Ok(())
}

/// Kernel settings, mount propagation and cgroup checks; safe to repeat.
pub fn prepare(layout: &Layout) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the local cluster runs host daemons and changes the network: run as root");
    }
    let markers = layout.host_marker("");
    fs::create_dir_all(&markers)?;
    for (key, value) in SYSCTLS {
        let path = Path::new("/proc/sys").join(key);
        let current = fs::read_to_string(&path).with_context(|| {
            format!("reading {}: the kernel lacks this setting", path.display())
        })?;
        let marker = layout.host_marker(&format!("sysctl-{}", key.replace('/', ".")));
        if current.trim() != value {
            if !marker.exists() {
                fs::write(&marker, current.trim())?;
            }
            fs::write(&path, value).with_context(|| format!("setting {}", path.display()))?;
        }
    }
    // The kubelet needs shared propagation for volume mounts; this VM boots with `/` private.
    if !root_is_shared()? {
        cmd("mount").args(["--make-rshared", "/"]).run()?;
        fs::write(layout.host_marker("rshared-root"), "")?;
    }
    for controller in ["cpu", "cpuacct", "cpuset", "memory", "pids"] {
        if !cgroup_controller_available(controller) {
            bail!("the {controller} cgroup controller is not mounted; the kubelet needs it");
        }
    }
    Ok(())
}

/// Undoes what `prepare` changed (the sysctls it raised go back to their old values).
pub fn restore(layout: &Layout) -> Result<()> {
    let dir = layout.host_marker("");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(key) = name.strip_prefix("sysctl-") {
            let old = fs::read_to_string(entry.path())?;
            let path = Path::new("/proc/sys").join(key.replace('.', "/"));
            fs::write(&path, old.trim())
                .with_context(|| format!("restoring {}", path.display()))?;
        } else if name == "rshared-root" {
            cmd("mount").args(["--make-rprivate", "/"]).run()?;
        }
    }
    Ok(())
}

fn root_is_shared() -> Result<bool> {
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info.lines().any(|line| {
        let f: Vec<&str> = line.split(' ').collect();
        f.get(4) == Some(&"/")
            && f.iter()
                .skip(6)
                .take_while(|x| **x != "-")
                .any(|x| x.starts_with("shared:"))
    }))
}

fn cgroup_controller_available(controller: &str) -> bool {
    let v1 = Path::new("/sys/fs/cgroup").join(controller).join("tasks");
    let v2 = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").is_ok_and(|c| {
        c.split_whitespace()
            .any(|x| x == controller || (controller == "cpuacct" && x == "cpu"))
    });
    v1.exists() || v2
}
