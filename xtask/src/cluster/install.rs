//! Installing drover on the local cluster: the image, the Helm release, the sample App.

use anyhow::{Context, Result};

use crate::cluster;
use crate::cluster::kubectl::Kubectl;
use crate::cmd::cmd;
use crate::image;
use crate::layout::Layout;

pub const NAMESPACE: &str = "drover-system";
pub const RELEASE: &str = "drover";

/// The kind cluster (default workers) with exactly `fake_nodes` simulated nodes, and
/// drover installed from the tree.
pub fn cluster_with_drover(layout: &Layout, fake_nodes: usize) -> Result<()> {
    let up = cluster::UpArgs {
        workers: cluster::DEFAULT_WORKERS,
        node_image: None,
        fake_nodes,
    };
    cluster::cluster_up(layout, &up)?;
    install_drover(layout).map(drop)
}

/// Builds the drover image, loads it into the cluster's nodes and installs (or upgrades)
/// the chart with it. Returns the image reference.
pub fn install_drover(layout: &Layout) -> Result<String> {
    let (reference, archive) = image::build_drover(layout)?;
    cluster::load_images(&[archive])?;
    let (_, tag) = reference
        .rsplit_once(':')
        .context("image reference has no tag")?;
    cmd(layout.bin("helm")?)
        .arg("--kubeconfig")
        .arg(layout.kubeconfig())
        .args(["upgrade", "--install", RELEASE])
        .arg(layout.repo.join("charts/drover"))
        .args([
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--wait",
            "--timeout",
            "180s",
        ])
        .arg("--set")
        .arg(format!("image.tag={tag}"))
        .run()
        .context("installing the drover chart")?;
    println!("drover {tag} installed in {NAMESPACE}");
    install_plugin(layout)?;
    Ok(reference)
}

/// Builds the `kubectl drover` plugin and puts it beside the cluster's kubectl, on the
/// PATH the README's export line sets.
fn install_plugin(layout: &Layout) -> Result<()> {
    let built = image::release_binary(layout, "kubectl-drover")?;
    let dir = layout.client_bin_dir();
    std::fs::create_dir_all(&dir)?;
    let installed = dir.join("kubectl-drover");
    std::fs::copy(&built, &installed)
        .with_context(|| format!("installing {}", installed.display()))?;
    println!("kubectl drover plugin installed in {}", dir.display());
    Ok(())
}

/// Applies the sample App `web` and waits until it is Available.
pub fn apply_sample(kubectl: &Kubectl) -> Result<()> {
    let layout = Layout::detect()?;
    kubectl
        .cmd()
        .args(["apply", "-n", "default", "-f"])
        .arg(layout.repo.join("examples/web.yaml"))
        .run()?;
    kubectl
        .cmd()
        .args([
            "wait",
            "-n",
            "default",
            "--for=condition=Available",
            "app.drover.dev/web",
            "--timeout=180s",
        ])
        .run()
        .context("waiting for the sample App")
}
