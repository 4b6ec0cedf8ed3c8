//! The images a kind node holds before `kubeadm init` runs (nothing can be pulled): the
//! control plane under the names `kubeadm config images list` gives, and the cluster's
//! add-ons. Each is an OCI archive written by `crate::image` from binaries built here;
//! those that run `iptables` (kube-proxy, flanneld) carry the files of Debian's iptables
//! packages, taken from the node's own root filesystem.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{kwok, storage};
use crate::cmd::cmd;
use crate::image::{self, Entry, ImageSpec};
use crate::layout::Layout;

/// The busybox userland: flannel's CNI configuration writer, local-path's helper pods.
pub const BUSYBOX_IMAGE: &str = "registry.local/k8s/busybox:1";

/// Debian packages whose files make `iptables` (nft backend) and `conntrack` work in an
/// image: the tools and every library they link.
const IPTABLES_PACKAGES: [&str; 10] = [
    "iptables",
    "libip4tc2",
    "libip6tc2",
    "libxtables12",
    "libnftnl11",
    "libmnl0",
    "libnetfilter-conntrack3",
    "libnfnetlink0",
    "conntrack",
    "libc6",
];

/// The names Debian's `update-alternatives` would point at the nft backend.
const IPTABLES_ALTERNATIVES: [&str; 6] = [
    "iptables",
    "iptables-save",
    "iptables-restore",
    "ip6tables",
    "ip6tables-save",
    "ip6tables-restore",
];

/// Every image a node preloads; returns their archives and the pause image's name
/// (containerd's sandbox image must be the one kubeadm expects).
#[derive(Debug)]
pub struct Preload {
    pub archives: Vec<PathBuf>,
    pub pause: String,
}

pub fn preload(layout: &Layout, rootfs: &Path) -> Result<Preload> {
    let version = &layout.versions.get("kubernetes")?.version;
    let listed = cmd(layout.bin("kubeadm")?)
        .args(["config", "images", "list", "--kubernetes-version", version])
        .output()
        .context("asking kubeadm which images it runs")?;
    let mut specs = vec![];
    let mut pause = None;
    for reference in listed.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let name = repository_name(reference);
        let spec = match name {
            "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" => {
                binaries_image(layout, reference, &[name], vec![])?
            }
            "kube-proxy" => binaries_image(layout, reference, &[name], iptables_files(rootfs)?)?,
            "etcd" => binaries_image(layout, reference, &["etcd", "etcdctl"], vec![])?,
            // Root, as upstream's image is not: it binds port 53 without file capabilities.
            "coredns" => image::single_binary(layout, "coredns", reference, "0")?,
            "pause" => {
                pause = Some(reference.to_string());
                image::pause(layout, reference)?
            }
            other => bail!("kubeadm lists an image drover does not build: {other} ({reference})"),
        };
        specs.push(spec);
    }
    let pause = pause.context("kubeadm listed no pause image")?;

    let flannel = &layout.versions.get("flannel")?.version;
    specs.push(binaries_image(
        layout,
        &format!("registry.local/k8s/flannel:{flannel}"),
        &["flanneld"],
        iptables_files(rootfs)?,
    )?);
    let local_path = &layout.versions.get("local-path-provisioner")?.version;
    specs.push(binaries_image(
        layout,
        &format!("registry.local/k8s/local-path-provisioner:{local_path}"),
        &["local-path-provisioner"],
        vec![],
    )?);
    specs.push(busybox()?);
    specs.extend(addons(layout)?);

    let mut archives = vec![];
    for spec in &specs {
        archives.push(image::write_archive(layout, spec)?);
    }
    println!("{} node images written", archives.len());
    Ok(Preload { archives, pause })
}

/// The add-ons drover runs in the cluster beside kubeadm's: metrics-server, kwok, the
/// volume driver and its sidecars.
fn addons(layout: &Layout) -> Result<Vec<ImageSpec>> {
    let mut specs = vec![
        image::single_binary(
            layout,
            "metrics-server",
            &image::metrics_server_image(layout)?,
            "65534",
        )?,
        binaries_image(layout, &kwok::image(layout)?, &["kwok"], vec![])?,
    ];
    specs.extend(storage::images(layout)?);
    Ok(specs)
}

/// The add-ons' images alone, for a node image drover did not build.
pub fn addon_archives(layout: &Layout) -> Result<Vec<PathBuf>> {
    addons(layout)?
        .iter()
        .map(|spec| image::write_archive(layout, spec))
        .collect()
}

/// `registry.k8s.io/coredns/coredns:v1.12.1` -> `coredns`.
fn repository_name(reference: &str) -> &str {
    let without_tag = reference
        .rsplit_once(':')
        .map_or(reference, |(name, _)| name);
    without_tag.rsplit('/').next().unwrap_or(without_tag)
}

/// Binaries from the build cache under /usr/local/bin, run as root (static pods and
/// node agents), with `extra` files beside them.
fn binaries_image(
    layout: &Layout,
    reference: &str,
    binaries: &[&str],
    extra: Vec<Entry>,
) -> Result<ImageSpec> {
    let mut entries = image::base_entries();
    entries.extend(extra);
    for binary in binaries {
        let path = layout.bin(binary)?;
        let data = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        image::add_file(
            &mut entries,
            &Path::new("/usr/local/bin").join(binary),
            data,
            0o755,
        );
    }
    Ok(ImageSpec {
        reference: reference.into(),
        entries,
        entrypoint: vec![format!("/usr/local/bin/{}", binaries[0])],
        user: "0:0".into(),
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        exposed_ports: vec![],
    })
}

fn busybox() -> Result<ImageSpec> {
    let mut entries = image::base_entries();
    entries.extend(image::busybox_entries()?);
    Ok(ImageSpec {
        reference: BUSYBOX_IMAGE.into(),
        entries,
        entrypoint: vec!["/bin/sh".into()],
        user: "0:0".into(),
        env: vec!["PATH=/bin:/sbin:/usr/bin:/usr/sbin".into()],
        exposed_ports: vec![],
    })
}

/// The files of Debian's iptables packages as installed in `rootfs`, with the
/// alternatives pointing at the nft backend (what the node itself uses).
fn iptables_files(rootfs: &Path) -> Result<Vec<Entry>> {
    let mut entries = debian_files(rootfs, &IPTABLES_PACKAGES)?;
    for name in IPTABLES_ALTERNATIVES {
        entries.push(Entry::Symlink {
            path: format!("usr/sbin/{name}"),
            target: "xtables-nft-multi".into(),
        });
    }
    Ok(entries)
}

/// The files, directories and symlinks dpkg lists for `packages` in `rootfs`, at their
/// real paths (bookworm's /lib, /bin and /sbin are symlinks into /usr; those symlinks
/// come along).
fn debian_files(rootfs: &Path, packages: &[&str]) -> Result<Vec<Entry>> {
    let mut entries = vec![];
    let mut seen = BTreeSet::new();
    for top in ["bin", "sbin", "lib", "lib64"] {
        if let Ok(target) = fs::read_link(rootfs.join(top)) {
            seen.insert(top.to_string());
            entries.push(Entry::Symlink {
                path: top.into(),
                target: target.to_string_lossy().into_owned(),
            });
        }
    }
    let root = rootfs
        .canonicalize()
        .with_context(|| format!("{} does not exist", rootfs.display()))?;
    for package in packages {
        let info = rootfs.join("var/lib/dpkg/info");
        let list = [format!("{package}:amd64.list"), format!("{package}.list")]
            .into_iter()
            .map(|name| info.join(name))
            .find(|p| p.exists())
            .with_context(|| format!("package {package} is not installed in the node rootfs"))?;
        for listed in fs::read_to_string(&list)?.lines() {
            let Some(relative) = real_path(&root, listed) else {
                continue;
            };
            if !seen.insert(relative.clone()) {
                continue;
            }
            let on_disk = root.join(&relative);
            let meta = fs::symlink_metadata(&on_disk)?;
            let entry = if meta.is_symlink() {
                Entry::Symlink {
                    path: relative,
                    target: fs::read_link(&on_disk)?.to_string_lossy().into_owned(),
                }
            } else if meta.is_dir() {
                Entry::Dir {
                    path: relative,
                    mode: 0o755,
                }
            } else {
                use std::os::unix::fs::PermissionsExt;
                Entry::File {
                    path: relative,
                    data: fs::read(&on_disk)?,
                    mode: meta.permissions().mode() & 0o7777,
                }
            };
            entries.push(entry);
        }
    }
    // Parents before children, as a tar must create them.
    let mut with_parents = vec![];
    for entry in entries {
        let (Entry::File { path, .. } | Entry::Symlink { path, .. } | Entry::Dir { path, .. }) =
            &entry;
        image::add_parent_dirs(&mut with_parents, path);
        let duplicate_dir = matches!(&entry, Entry::Dir { path, .. }
            if with_parents.iter().any(|e| matches!(e, Entry::Dir { path: p, .. } if p == path)));
        if !duplicate_dir {
            with_parents.push(entry);
        }
    }
    Ok(with_parents)
}

/// A path dpkg lists, relative to the rootfs, with symlinked parent directories
/// resolved (`/lib/x86_64-linux-gnu/libc.so.6` -> `usr/lib/x86_64-linux-gnu/libc.so.6`);
/// `None` for the root itself and paths that are not there.
fn real_path(root: &Path, listed: &str) -> Option<String> {
    let listed = Path::new(listed.trim());
    let name = listed.file_name()?;
    let parent = root
        .join(listed.parent()?.strip_prefix("/").ok()?)
        .canonicalize()
        .ok()?;
    let relative = parent.strip_prefix(root).ok()?.join(name);
    fs::symlink_metadata(root.join(&relative)).ok()?;
    Some(relative.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_drop_registry_path_and_tag() {
        assert_eq!(
            repository_name("registry.k8s.io/coredns/coredns:v1.12.1"),
            "coredns"
        );
        assert_eq!(
            repository_name("registry.k8s.io/kube-apiserver:v1.34.12"),
            "kube-apiserver"
        );
        assert_eq!(repository_name("pause"), "pause");
    }

    #[test]
    fn listed_paths_resolve_through_symlinked_parents() {
        let root = std::env::temp_dir().join(format!("drover-real-path-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("usr/lib/x")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        fs::write(root.join("usr/lib/x/libc.so.6"), b"").unwrap();
        let root = root.canonicalize().unwrap();
        assert_eq!(
            real_path(&root, "/lib/x/libc.so.6").as_deref(),
            Some("usr/lib/x/libc.so.6")
        );
        assert_eq!(real_path(&root, "/."), None);
        assert_eq!(real_path(&root, "/lib/x/missing.so"), None);
        fs::remove_dir_all(&root).unwrap();
    }
}
