//! drover's add-ons to the kind cluster (metrics-server, kwok), applied from
//! `cluster/manifests/` with the few values that depend on the build filled in, and the
//! readiness of the system add-ons.

use std::fs;

use anyhow::{Context, Result};

use crate::cluster::fake_nodes;
use crate::cluster::kubectl::{Kubectl, condition_true};
use crate::image;
use crate::layout::Layout;

/// A manifest of `cluster/manifests/` with the build's values filled in; cluster-specific
/// placeholders are left to the caller.
pub fn render(layout: &Layout, file: &str) -> Result<String> {
    let path = layout.repo.join("cluster/manifests").join(file);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .replace(
            "{{METRICS_SERVER_IMAGE}}",
            &image::metrics_server_image(layout)?,
        )
        .replace("{{FAKE_NODE_LABEL}}", fake_nodes::LABEL)
        .replace("{{FAKE_NODE_LABEL_VALUE}}", fake_nodes::LABEL_VALUE))
}

/// What is not ready yet among the system add-ons; empty when all are.
pub fn not_ready(kubectl: &Kubectl) -> Vec<String> {
    let mut waiting = vec![];
    for deploy in ["coredns", "metrics-server"] {
        let ok = kubectl
            .json(&["-n", "kube-system", "get", "deployment", deploy])
            .is_ok_and(|d| condition_true(&d, "Available"));
        if !ok {
            waiting.push(format!("deployment kube-system/{deploy}"));
        }
    }
    let api = kubectl
        .json(&["get", "apiservice", "v1beta1.metrics.k8s.io"])
        .is_ok_and(|a| condition_true(&a, "Available"));
    if !api {
        waiting.push("apiservice v1beta1.metrics.k8s.io".into());
    }
    waiting
}
