//! The cluster's volumes: drover's CSI driver (`cluster/csi/`, built from the tree), the
//! upstream CSI sidecars and snapshot controller (built from the Go module proxy), the
//! VolumeSnapshot CRDs, and the directory of volume files every node mounts from the host.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::cluster::addons;
use crate::cluster::kubectl::{Kubectl, condition_true};
use crate::cmd::{cmd, go};
use crate::components;
use crate::digest::sha256_hex;
use crate::image::{self, ImageSpec};
use crate::layout::Layout;

/// Where the volume files are inside every node (and in the driver's pods).
pub const NODE_DIR: &str = "/var/lib/drover-csi";
const NAMESPACE: &str = "drover-csi";
const DRIVER_SOURCE: &str = "cluster/csi";

/// The host directory behind [`NODE_DIR`]: one directory for every node, so any node
/// mounts any volume.
pub fn host_dir(layout: &Layout) -> PathBuf {
    layout.state.join("volumes")
}

/// The driver's image, tagged by a digest of its sources (so a change is a new image).
fn driver_image(layout: &Layout) -> Result<String> {
    let dir = layout.repo.join(DRIVER_SOURCE);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (name.ends_with(".go") && !name.ends_with("_test.go"))
                || name == "go.mod"
                || name == "go.sum"
        })
        .collect();
    files.sort();
    let mut all = vec![];
    for f in files {
        all.extend(f.file_name().unwrap_or_default().as_encoded_bytes());
        all.extend(fs::read(&f)?);
    }
    Ok(format!(
        "registry.local/drover/csi:{}",
        &sha256_hex(&all)[..12]
    ))
}

fn sidecar_image(layout: &Layout, binary: &str) -> Result<String> {
    let component = crate::versions::component_of_binary(binary)?;
    let version = &layout.versions.get(component)?.version;
    Ok(format!("registry.local/k8s/{binary}:{version}"))
}

const SIDECARS: [&str; 4] = [
    "csi-provisioner",
    "csi-resizer",
    "csi-snapshotter",
    "snapshot-controller",
];

/// The images of the driver and the sidecars.
pub fn images(layout: &Layout) -> Result<Vec<ImageSpec>> {
    let reference = driver_image(layout)?;
    let tag = reference.rsplit_once(':').map_or("dev", |(_, t)| t);
    let out = layout.images().join("build");
    fs::create_dir_all(&out)?;
    let binary = out.join("drover-csi");
    go(layout, &layout.repo.join(DRIVER_SOURCE))
        // Without the checkout's VCS stamp: the same sources give the same binary (and
        // node image) in any clone.
        .args(["build", "-trimpath", "-buildvcs=false", "-ldflags"])
        .arg(format!("-s -w -X main.version={tag}"))
        .arg("-o")
        .arg(&binary)
        .arg(".")
        .run()
        .context("building drover's CSI driver")?;
    let mut specs = vec![image::binary_image(&binary, "drover-csi", &reference, "0")?];
    for sidecar in SIDECARS {
        specs.push(image::single_binary(
            layout,
            sidecar,
            &sidecar_image(layout, sidecar)?,
            "0",
        )?);
    }
    Ok(specs)
}

/// The VolumeSnapshot CRDs, then the driver, its sidecars and the classes.
pub fn install(layout: &Layout, kubectl: &Kubectl) -> Result<()> {
    if !fs::read_to_string("/proc/filesystems").is_ok_and(|f| f.contains("\txfs")) {
        bail!(
            "the kernel has no XFS, which the cluster's volumes are formatted with \
             (`modprobe xfs` on the host)"
        );
    }
    for crd in snapshot_crds(layout)? {
        let name = crd.file_stem().and_then(|n| n.to_str()).unwrap_or("crd");
        kubectl.apply(name, &fs::read_to_string(&crd)?)?;
    }
    for crd in [
        "volumesnapshotclasses",
        "volumesnapshotcontents",
        "volumesnapshots",
    ] {
        kubectl
            .cmd()
            .args(["wait", "--for=condition=Established", "--timeout=60s"])
            .arg(format!("crd/{crd}.snapshot.storage.k8s.io"))
            .run()?;
    }
    let mut manifest =
        addons::render(layout, "csi.yaml")?.replace("{{CSI_DRIVER_IMAGE}}", &driver_image(layout)?);
    for (placeholder, binary) in [
        ("{{CSI_PROVISIONER_IMAGE}}", "csi-provisioner"),
        ("{{CSI_RESIZER_IMAGE}}", "csi-resizer"),
        ("{{CSI_SNAPSHOTTER_IMAGE}}", "csi-snapshotter"),
        ("{{SNAPSHOT_CONTROLLER_IMAGE}}", "snapshot-controller"),
    ] {
        manifest = manifest.replace(placeholder, &sidecar_image(layout, binary)?);
    }
    kubectl.apply("csi", &manifest)
}

/// The `snapshot.storage.k8s.io` CRDs of external-snapshotter's client module, at the
/// pinned version (group snapshots stay off, as the snapshot controller has them).
fn snapshot_crds(layout: &Layout) -> Result<Vec<PathBuf>> {
    let pin = layout.versions.get("external-snapshotter")?;
    let client = pin
        .module
        .strip_suffix("/v8")
        .map(|base| format!("{base}/client/v8"))
        .with_context(|| format!("{}: expected a /v8 module", pin.module))?;
    let info = components::download(layout, &client, &pin.version)?;
    let dir = PathBuf::from(
        info["Dir"]
            .as_str()
            .context("go mod download reported no Dir")?,
    )
    .join("config/crd");
    let mut crds: Vec<PathBuf> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snapshot.storage.k8s.io_") && n.ends_with(".yaml"))
        })
        .collect();
    crds.sort();
    if crds.len() != 3 {
        bail!(
            "expected 3 VolumeSnapshot CRDs in {}, found {crds:?}",
            dir.display()
        );
    }
    Ok(crds)
}

/// What of the storage is not ready yet; empty when all is.
pub fn not_ready(kubectl: &Kubectl) -> Vec<String> {
    let mut waiting = vec![];
    for deploy in ["controller", "snapshot-controller"] {
        let ok = kubectl
            .json(&["-n", NAMESPACE, "get", "deployment", deploy])
            .is_ok_and(|d| condition_true(&d, "Available"));
        if !ok {
            waiting.push(format!("deployment {NAMESPACE}/{deploy}"));
        }
    }
    let nodes = kubectl.json(&["-n", NAMESPACE, "get", "daemonset", "node"]);
    let ready = nodes.as_ref().is_ok_and(|d| {
        let status = &d["status"];
        status["desiredNumberScheduled"].as_i64().unwrap_or(0) > 0
            && status["numberReady"] == status["desiredNumberScheduled"]
    });
    if !ready {
        waiting.push(format!("daemonset {NAMESPACE}/node"));
    }
    waiting
}

/// Detaches the loop devices the nodes left on the host's kernel (the node containers are
/// gone, their mounts with them) and removes the volume files.
pub fn clean(layout: &Layout) -> Result<()> {
    let listed = cmd("losetup")
        .args(["--list", "--noheadings", "--output", "NAME,BACK-FILE"])
        .output()
        .unwrap_or_default();
    for line in listed.lines() {
        if let Some((device, file)) = line.trim().split_once(char::is_whitespace)
            && file.trim().starts_with(NODE_DIR)
        {
            cmd("losetup")
                .args(["--detach", device])
                .run()
                .with_context(|| format!("detaching {device} ({})", file.trim()))?;
        }
    }
    let dir = host_dir(layout);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}
