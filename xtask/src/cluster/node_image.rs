//! The kind node image, assembled on this machine (no registry is reachable): a Debian
//! root filesystem from `debootstrap` (cached by suite and package list) imported into
//! Docker as the base, then the Kubernetes node binaries, drover's node files
//! (`cluster/kind/node/`), kind's manifests and the preloaded images on top. The tag
//! carries a digest of every input, so the image is rebuilt only when one changes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::cluster::{SERVICE_SUBNET, docker, images};
use crate::cmd::cmd;
use crate::digest::hex;
use crate::layout::Layout;
use crate::process;

pub const REPOSITORY: &str = "drover.local/kind-node";
const BASE_REPOSITORY: &str = "drover.local/kind-base";
const SUITE: &str = "bookworm";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// What a node runs besides Kubernetes' own binaries: systemd as init, Debian's
/// containerd, runc and CNI plugins, and the tools the kubelet, kube-proxy and the volume
/// driver call.
const PACKAGES: [&str; 21] = [
    "systemd",
    "systemd-sysv",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "conntrack",
    "iptables",
    "nftables",
    "iproute2",
    "ethtool",
    "util-linux",
    "mount",
    "kmod",
    "libseccomp2",
    "pigz",
    "bash",
    "ca-certificates",
    "jq",
    "procps",
    "e2fsprogs",
    "xfsprogs",
];

/// drover's node files, compiled in so the image's digest follows them.
const ENTRYPOINT: &str = include_str!("../../../cluster/kind/node/entrypoint");
const PREPARE: &str = include_str!("../../../cluster/kind/node/prepare");
const CONTAINERD_CONFIG: &str = include_str!("../../../cluster/kind/node/containerd.toml");
const KUBELET_SERVICE: &str = include_str!("../../../cluster/kind/node/kubelet.service");
const KUBELET_SLICE: &str = include_str!("../../../cluster/kind/node/kubelet.slice");
const UNHIDE_CGROUPS: &str = include_str!("../../../cluster/kind/node/unhide-cgroups.service");
const CNI_MANIFEST: &str = include_str!("../../../cluster/kind/cni.yaml");
const STORAGE_MANIFEST: &str = include_str!("../../../cluster/kind/storage.yaml");

/// One file of the node image: path relative to `/`, contents, mode.
struct NodeFile {
    path: String,
    data: Vec<u8>,
    mode: u32,
}

/// The node image for the pinned versions, built if Docker does not hold it yet.
/// Returns its reference.
pub fn ensure(layout: &Layout) -> Result<String> {
    let rootfs = ensure_rootfs(layout)?;
    let base = ensure_base(&rootfs)?;
    let preload = images::preload(layout, &rootfs)?;
    let files = node_files(layout, &preload.pause)?;

    let mut digest = Sha256::new();
    digest.update(base.as_bytes());
    for f in &files {
        digest.update(f.path.as_bytes());
        digest.update(f.mode.to_le_bytes());
        digest.update(&f.data);
    }
    for archive in &preload.archives {
        digest.update(fs::read(archive)?);
    }
    let inputs = hex(&digest.finalize())[..12].to_string();
    let version = &layout.versions.get("kubernetes")?.version;
    let reference = format!("{REPOSITORY}:{version}-{inputs}");
    if docker::has_image(&reference) {
        println!("node image {reference}: cached");
        return Ok(reference);
    }

    let started = Instant::now();
    println!("node image {reference}: building");
    let context = layout.cache.join("kind/node-build");
    let _ = fs::remove_dir_all(&context);
    let root = context.join("rootfs");
    for f in &files {
        let path = root.join(&f.path);
        fs::create_dir_all(path.parent().context("node file has no parent")?)?;
        fs::write(&path, &f.data)?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(f.mode))?;
    }
    preload_containerd(layout, &root.join("var/lib/containerd"), &preload.archives)?;
    fs::write(context.join("prepare"), PREPARE)?;
    fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {base}\n\
             COPY rootfs/ /\n\
             COPY prepare /kind/prepare\n\
             RUN sh /kind/prepare && rm /kind/prepare\n\
             ENV container=docker\n\
             STOPSIGNAL SIGRTMIN+3\n\
             LABEL dev.drover.node-inputs={inputs}\n\
             ENTRYPOINT [\"/usr/local/bin/entrypoint\", \"/sbin/init\"]\n"
        ),
    )?;
    docker::docker()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "--quiet", "--tag", &reference])
        .arg(&context)
        .run()
        .context("building the node image")?;
    let _ = fs::remove_dir_all(&context);
    remove_older(&reference);
    println!(
        "node image {reference}: built in {}s",
        started.elapsed().as_secs()
    );
    Ok(reference)
}

/// Files the node image adds to the Debian base.
fn node_files(layout: &Layout, pause: &str) -> Result<Vec<NodeFile>> {
    let text = |path: &str, data: String, mode: u32| NodeFile {
        path: path.into(),
        data: data.into_bytes(),
        mode,
    };
    let version = &layout.versions.get("kubernetes")?.version;
    let flannel = &layout.versions.get("flannel")?.version;
    let local_path = &layout.versions.get("local-path-provisioner")?.version;
    let mut files = vec![
        text("usr/local/bin/entrypoint", ENTRYPOINT.into(), 0o755),
        text(
            "etc/containerd/config.toml",
            CONTAINERD_CONFIG.replace("{{PAUSE_IMAGE}}", pause),
            0o644,
        ),
        text(
            "etc/systemd/system/kubelet.service",
            KUBELET_SERVICE.into(),
            0o644,
        ),
        text(
            "etc/systemd/system/kubelet.slice",
            KUBELET_SLICE.into(),
            0o644,
        ),
        text(
            "etc/systemd/system/unhide-cgroups.service",
            UNHIDE_CGROUPS.into(),
            0o644,
        ),
        // kind reads the Kubernetes version here to choose its kubeadm configuration.
        text("kind/version", version.clone(), 0o644),
        text(
            "kind/manifests/default-cni.yaml",
            CNI_MANIFEST
                .replace("{{FLANNEL_VERSION}}", flannel)
                .replace("{{SERVICE_SUBNET}}", SERVICE_SUBNET),
            0o644,
        ),
        text(
            "kind/manifests/default-storage.yaml",
            STORAGE_MANIFEST.replace("{{LOCAL_PATH_VERSION}}", local_path),
            0o644,
        ),
    ];
    for binary in ["kubeadm", "kubelet", "kubectl"] {
        let path = layout.bin(binary)?;
        files.push(NodeFile {
            path: format!("usr/bin/{binary}"),
            data: fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
            mode: 0o755,
        });
    }
    Ok(files)
}

/// The Debian root filesystem, from debootstrap; cached by suite, packages and mirror.
fn ensure_rootfs(layout: &Layout) -> Result<PathBuf> {
    let mirror = std::env::var("DROVER_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.into());
    let key = rootfs_key(&mirror);
    let dir = layout.cache.join(format!("kind/rootfs-{SUITE}-{key}"));
    let stamp = dir.join(".drover-complete");
    if stamp.exists() {
        return Ok(dir);
    }
    let partial = dir.with_extension("partial");
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(partial.parent().context("rootfs has no parent")?)?;
    let started = Instant::now();
    println!("node rootfs: debootstrap {SUITE} from {mirror} (a few minutes)");
    cmd("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={}", PACKAGES.join(",")),
            SUITE,
        ])
        .arg(&partial)
        .arg(&mirror)
        .run_inherit()
        .context("debootstrap of the node's root filesystem")?;
    fs::write(partial.join(".drover-complete"), &key)?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&partial, &dir)?;
    println!("node rootfs: ready in {}s", started.elapsed().as_secs());
    Ok(dir)
}

fn rootfs_key(mirror: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(SUITE.as_bytes());
    digest.update(PACKAGES.join(",").as_bytes());
    digest.update(mirror.as_bytes());
    hex(&digest.finalize())[..12].to_string()
}

/// The rootfs as a Docker image, imported once.
fn ensure_base(rootfs: &Path) -> Result<String> {
    let key = fs::read_to_string(rootfs.join(".drover-complete"))?;
    let reference = format!("{BASE_REPOSITORY}:{SUITE}-{}", key.trim());
    if docker::has_image(&reference) {
        return Ok(reference);
    }
    println!("node base image {reference}: importing the rootfs");
    let script = format!(
        "tar -C '{}' --numeric-owner --exclude=./.drover-complete --exclude='./dev/*' \
         --exclude='./proc/*' --exclude='./sys/*' -c . | {} import - '{reference}'",
        rootfs.display(),
        docker::client()
    );
    cmd("bash")
        .args(["-o", "pipefail", "-c", &script])
        .run()
        .context("importing the node rootfs into Docker")?;
    Ok(reference)
}

/// Imports the image archives into a containerd root that becomes the node's
/// /var/lib/containerd, with the host's containerd (same Debian release as the node's),
/// run just for this. Images are not unpacked: the node's containerd does that on first
/// use.
fn preload_containerd(layout: &Layout, root: &Path, archives: &[PathBuf]) -> Result<()> {
    let state = layout.run.join("kind-preload");
    let _ = fs::remove_dir_all(&state);
    fs::create_dir_all(&state)?;
    fs::create_dir_all(root)?;
    let socket = state.join("containerd.sock");
    let config = state.join("config.toml");
    fs::write(
        &config,
        format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{}\"\n",
            root.display(),
            state.join("state").display(),
            socket.display()
        ),
    )?;
    let log = fs::File::create(state.join("containerd.log"))?;
    let child = Command::new("/usr/bin/containerd")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting containerd to preload the node's images")?;
    let containerd = Running(child);
    let ctr = || {
        cmd("ctr")
            .arg("--address")
            .arg(&socket)
            .args(["--namespace", "k8s.io"])
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ctr().arg("version").succeeds() {
        if Instant::now() > deadline {
            bail!(
                "containerd for preloading did not start; see {}",
                state.join("containerd.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for archive in archives {
        ctr()
            .args(["images", "import", "--no-unpack"])
            .arg(archive)
            .run()
            .with_context(|| format!("preloading {}", archive.display()))?;
    }
    drop(containerd);
    let _ = fs::remove_dir_all(&state);
    Ok(())
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped, errors included.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            process::terminate(pid, Duration::from_secs(10));
        }
        let _ = self.0.wait();
    }
}

/// Removes node images of earlier inputs (each is over a gigabyte); one a cluster still
/// runs on stays.
fn remove_older(current: &str) {
    let Ok(listed) = docker::docker()
        .args([
            "image",
            "ls",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            REPOSITORY,
        ])
        .output()
    else {
        return;
    };
    for old in listed.lines().filter(|r| *r != current) {
        let _ = docker::docker().args(["image", "rm", old]).run();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rootfs_key_follows_the_mirror() {
        assert_ne!(rootfs_key("http://a/debian"), rootfs_key("http://b/debian"));
        assert_eq!(rootfs_key("http://a/debian").len(), 12);
    }

    #[test]
    fn node_manifests_keep_only_kinds_template() {
        // kind renders the CNI manifest as a Go template: drover's own placeholders must
        // all be filled before it is, or the template fails to parse.
        for manifest in [CNI_MANIFEST, STORAGE_MANIFEST] {
            let filled = manifest
                .replace("{{FLANNEL_VERSION}}", "v1")
                .replace("{{SERVICE_SUBNET}}", "10.0.0.0/16")
                .replace("{{LOCAL_PATH_VERSION}}", "v1");
            let left: Vec<&str> = filled
                .match_indices("{{")
                .map(|(i, _)| {
                    &filled[i..filled[i..].find("}}").map_or(filled.len(), |e| i + e + 2)]
                })
                .collect();
            assert!(
                left.iter().all(|t| *t == "{{ .PodSubnet }}"),
                "unfilled placeholders: {left:?}"
            );
        }
    }
}
