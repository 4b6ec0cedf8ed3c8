//! kwok in the kind cluster: a Deployment on the control plane that plays the simulated
//! nodes (`--fake-nodes`) for scale tests and benchmarks.

use std::fs;

use anyhow::{Context, Result};
use serde_json::json;

use crate::cluster::addons;
use crate::cluster::fake_nodes;
use crate::cluster::kubectl::{Kubectl, condition_true};
use crate::layout::Layout;

/// Addresses kwok gives pods on simulated nodes; nothing answers there, and the host's
/// rule drops what is sent to them.
pub const POD_CIDR: &str = "10.250.0.0/16";
/// The address kwok reports for its simulated nodes.
pub const NODE_IP: &str = "10.251.0.1";

/// kwok's own default stages, the set kwokctl configures: nodes initialise and keep a
/// lease; pods become Ready, complete, and go away when deleted. Read from the pinned
/// kwok module in the Go module cache.
const STAGES: [&str; 5] = [
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
];

pub fn stages(layout: &Layout) -> Result<String> {
    let pin = layout.versions.get("kwok")?;
    let module_dir = layout
        .go_mod_cache()
        .join(format!("{}@{}", pin.module, pin.version));
    let mut docs = vec![];
    for stage in STAGES {
        let path = module_dir.join("kustomize/stage").join(stage);
        let text = fs::read_to_string(&path).with_context(|| {
            format!(
                "reading kwok's stage {}: run `cargo xtask cluster build`",
                path.display()
            )
        })?;
        docs.push(text.trim().trim_start_matches("---").trim().to_string());
    }
    Ok(docs.join("\n---\n") + "\n")
}

/// kwok's image, as the node image preloads it.
pub fn image(layout: &Layout) -> Result<String> {
    Ok(format!(
        "registry.local/k8s/kwok:{}",
        layout.versions.get("kwok")?.version
    ))
}

/// Applies kwok's stages, RBAC and Deployment.
pub fn install(layout: &Layout, kubectl: &Kubectl) -> Result<()> {
    let config = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kwok", "namespace": "kube-system"},
        "data": {"stages.yaml": stages(layout)?},
    });
    kubectl.apply("kwok-stages", &config.to_string())?;
    let manifest = addons::render(layout, "kwok.yaml")?
        .replace("{{KWOK_IMAGE}}", &image(layout)?)
        .replace(
            "{{KWOK_ANNOTATION}}",
            &format!(
                "{}={}",
                fake_nodes::ANNOTATION,
                fake_nodes::ANNOTATION_VALUE
            ),
        )
        .replace("{{KWOK_POD_CIDR}}", POD_CIDR)
        .replace("{{KWOK_NODE_IP}}", NODE_IP);
    kubectl.apply("kwok", &manifest)
}

/// kubeadm's kube-proxy DaemonSet tolerates every taint, so it would put a pod on
/// every simulated node (and its requests in their capacity): it is kept to real nodes,
/// as flannel's is by its manifest.
pub fn keep_kube_proxy_off(kubectl: &Kubectl) -> Result<()> {
    let patch = json!({"spec": {"template": {"spec": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{
                "key": fake_nodes::LABEL,
                "operator": "NotIn",
                "values": [fake_nodes::LABEL_VALUE],
            }]}
        ]}
    }}}}}});
    kubectl
        .cmd()
        .args([
            "-n",
            "kube-system",
            "patch",
            "daemonset",
            "kube-proxy",
            "-p",
        ])
        .arg(patch.to_string())
        .run()
}

/// Whether kwok's Deployment is available.
pub fn ready(kubectl: &Kubectl) -> bool {
    kubectl
        .json(&["-n", "kube-system", "get", "deployment", "kwok"])
        .is_ok_and(|d| condition_true(&d, "Available"))
}
