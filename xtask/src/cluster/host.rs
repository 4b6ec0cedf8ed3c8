//! Preparing the host: the Debian packages the kind cluster is built and run with, and
//! kernel settings. What `prepare` changes is recorded so `restore` undoes exactly that.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::cmd::cmd;
use crate::layout::Layout;

/// Debian packages `up` needs on the host, each with a file that proves it is installed.
const PACKAGES: [(&str, &str); 12] = [
    // The nodes' runtime, and jq for the runtime wrapper that drops capabilities.
    ("docker.io", "/usr/sbin/dockerd"),
    ("jq", "/usr/bin/jq"),
    // The node image: a Debian root, and a containerd to preload images into it.
    ("debootstrap", "/usr/sbin/debootstrap"),
    ("containerd", "/usr/bin/containerd"),
    // The network rule, and what the tests inspect the host with.
    ("nftables", "/usr/sbin/nft"),
    ("iptables", "/usr/sbin/iptables"),
    ("iproute2", "/usr/bin/ip"),
    ("procps", "/usr/bin/ps"),
    // A static busybox is the userland of the sample image and of helper images.
    ("busybox-static", "/bin/busybox"),
    // gcc and a static libc build the pause image.
    ("libc6-dev", "/usr/lib/x86_64-linux-gnu/libc.a"),
    ("gcc", "/usr/bin/gcc"),
    ("ca-certificates", "/etc/ssl/certs"),
];

/// Kernel settings the nodes need: every node's kubelet, containerd and pods watch files
/// with inotify, and the defaults (128 instances) run out with a few nodes.
const SYSCTLS: [(&str, &str); 2] = [
    ("fs/inotify/max_user_instances", "8192"),
    ("fs/inotify/max_user_watches", "524288"),
];

/// Installs whatever packages `up` needs are missing, with apt-get.
pub fn ensure_packages() -> Result<()> {
    ensure_packages_of(&PACKAGES)
}

/// Installs whatever packages of `(package, file that proves it)` are missing.
fn ensure_packages_of(packages: &[(&str, &str)]) -> Result<()> {
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

/// Root, and the kernel settings; safe to repeat.
pub fn prepare(layout: &Layout) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the local cluster runs dockerd and sets a host firewall rule: run as root");
    }
    let markers = layout.host_marker("");
    fs::create_dir_all(&markers)?;
    for (key, value) in SYSCTLS {
        let path = Path::new("/proc/sys").join(key);
        let current = fs::read_to_string(&path).with_context(|| {
            format!("reading {}: the kernel lacks this setting", path.display())
        })?;
        let marker = layout.host_marker(&format!("sysctl-{}", key.replace('/', ".")));
        // Only raised, never lowered.
        let raise = current
            .trim()
            .parse::<u64>()
            .is_ok_and(|c| c < value.parse().unwrap_or(0));
        if raise {
            if !marker.exists() {
                fs::write(&marker, current.trim())?;
            }
            fs::write(&path, value).with_context(|| format!("setting {}", path.display()))?;
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
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
