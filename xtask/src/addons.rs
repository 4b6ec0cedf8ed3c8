//! The cluster's system add-ons (bootstrap RBAC, CoreDNS, metrics-server), applied from
//! `cluster/manifests/` with the few values that depend on the build filled in.

use std::fs;

use anyhow::{Context, Result};

use crate::fake_nodes;
use crate::image;
use crate::kubectl::{Kubectl, condition_true};
use crate::layout::Layout;
use crate::network;

/// Cluster-scoped RBAC the components need before anything else.
pub fn apply_bootstrap(layout: &Layout, kubectl: &Kubectl) -> Result<()> {
    kubectl.apply("bootstrap", &render(layout, "bootstrap.yaml")?)
}

pub fn apply_system(layout: &Layout, kubectl: &Kubectl) -> Result<()> {
    kubectl.apply("coredns", &render(layout, "coredns.yaml")?)?;
    kubectl.apply("metrics-server", &render(layout, "metrics-server.yaml")?)
}

/// The host-process cluster signs the kubelet's serving certificate with the cluster CA.
const KUBELET_TLS: &str =
    "--kubelet-certificate-authority=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

fn render(layout: &Layout, file: &str) -> Result<String> {
    Ok(render_with(layout, file)?.replace("{{KUBELET_TLS}}", KUBELET_TLS))
}

/// A manifest of `cluster/manifests/` with the build's values filled in; cluster-specific
/// placeholders are left to the caller.
pub fn render_with(layout: &Layout, file: &str) -> Result<String> {
    let path = layout.repo.join("cluster/manifests").join(file);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .replace("{{CLUSTER_DOMAIN}}", network::CLUSTER_DOMAIN)
        .replace("{{DNS_SERVICE_IP}}", network::DNS_SERVICE_IP)
        .replace("{{COREDNS_IMAGE}}", &image::coredns_image(layout)?)
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
