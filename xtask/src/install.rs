//! Installing drover on the local cluster: the image, the Helm release, the sample App.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cluster;
use crate::cmd::cmd;
use crate::image;
use crate::kubectl::Kubectl;
use crate::layout::Layout;

pub const NAMESPACE: &str = "drover-system";
pub const RELEASE: &str = "drover";

/// Builds the drover image, imports it and installs (or upgrades) the chart with it.
/// Returns the image reference.
pub fn install_drover(layout: &Layout) -> Result<String> {
    install_drover_on(layout, &layout.admin_kubeconfig(), &|archives| {
        image::import(layout, archives)
    })
}

/// Builds the drover image, hands it to the cluster's nodes with `load` and installs (or
/// upgrades) the chart with it on the cluster of `kubeconfig`. Returns the image reference.
pub fn install_drover_on(
    layout: &Layout,
    kubeconfig: &Path,
    load: &dyn Fn(&[PathBuf]) -> Result<()>,
) -> Result<String> {
    let (reference, archive) = image::build_drover(layout)?;
    load(&[archive])?;
    let (_, tag) = reference
        .rsplit_once(':')
        .context("image reference has no tag")?;
    cmd(layout.bin("helm")?)
        .arg("--kubeconfig")
        .arg(kubeconfig)
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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    cmd(&cargo)
        .current_dir(&layout.repo)
        .args(["build", "--release", "--locked", "-p", "kubectl-drover"])
        .run_inherit()
        .context("building the kubectl-drover plugin")?;
    let built = layout.target_dir().join("release/kubectl-drover");
    let dir = layout.client_bin_dir();
    std::fs::create_dir_all(&dir)?;
    let installed = dir.join("kubectl-drover");
    std::fs::copy(&built, &installed)
        .with_context(|| format!("installing {}", installed.display()))?;
    println!("kubectl drover plugin installed in {}", dir.display());
    Ok(())
}

/// `cargo xtask up`: the cluster, drover, and the sample App, ready to use.
pub fn up(fake_nodes: usize) -> Result<()> {
    let started = Instant::now();
    cluster::up(fake_nodes)?;
    let layout = Layout::detect()?;
    install_drover(&layout)?;
    apply_sample(&Kubectl::new(&layout)?)?;
    println!(
        "\nready in {}s: the cluster, drover, and the sample App `web` (3 pods behind Service web).\n\n\
         export KUBECONFIG={} PATH={}:$PATH\n\
         kubectl get apps.drover.dev                     # Desired, Ready, Available\n\
         kubectl get pods -l drover.dev/app=web -o wide\n\
         kubectl scale app.drover.dev/web --replicas=5\n\
         kubectl describe app.drover.dev/web             # conditions and events\n\
         curl http://$(kubectl get svc web -o jsonpath='{{.spec.clusterIP}}')/",
        started.elapsed().as_secs(),
        layout.admin_kubeconfig().display(),
        layout.client_bin_dir().display(),
    );
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
