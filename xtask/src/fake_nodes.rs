//! Simulated nodes, played by kwok: Node objects marked with kwok's annotation and
//! tainted so only pods that ask for them land there.

use anyhow::Result;
use serde_json::{Value, json};

use crate::kubectl::{Kubectl, condition_true};

/// kwok manages exactly the nodes carrying this annotation (never the real node).
pub const ANNOTATION: &str = "kwok.x-k8s.io/node";
pub const ANNOTATION_VALUE: &str = "fake";
/// The label (and taint key) pods and tools use to tell simulated nodes apart.
pub const LABEL: &str = "type";
pub const LABEL_VALUE: &str = "kwok";
const NAME_PREFIX: &str = "kwok-node-";

fn node(index: usize) -> Value {
    let name = format!("{NAME_PREFIX}{index}");
    let resources = json!({
        "cpu": "32",
        "memory": "256Gi",
        "ephemeral-storage": "500Gi",
        "pods": "110",
    });
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {ANNOTATION: ANNOTATION_VALUE},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                LABEL: LABEL_VALUE,
            },
        },
        "spec": {
            // A provider ID keeps the node lifecycle controller from treating the node as gone.
            "providerID": format!("kwok://{name}"),
            "taints": [{"key": ANNOTATION, "value": ANNOTATION_VALUE, "effect": "NoSchedule"}],
        },
        "status": {
            "allocatable": resources,
            "capacity": resources,
        },
    })
}

/// Names of the simulated nodes that exist, and how many of them are Ready.
pub fn observe(kubectl: &Kubectl) -> Result<(Vec<String>, usize)> {
    let nodes = kubectl.json(&["get", "nodes", "-l", &format!("{LABEL}={LABEL_VALUE}")])?;
    let items = nodes["items"].as_array().cloned().unwrap_or_default();
    let names = items
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let ready = items.iter().filter(|n| condition_true(n, "Ready")).count();
    Ok((names, ready))
}

/// Creates or deletes simulated nodes until exactly `count` exist
/// (`kwok-node-0` .. `kwok-node-{count-1}`).
pub fn scale(kubectl: &Kubectl, count: usize) -> Result<()> {
    let (existing, _) = observe(kubectl)?;
    let wanted: Vec<String> = (0..count).map(|i| format!("{NAME_PREFIX}{i}")).collect();
    let missing: Vec<Value> = (0..count)
        .filter(|i| !existing.contains(&wanted[*i]))
        .map(node)
        .collect();
    let extra: Vec<&String> = existing.iter().filter(|n| !wanted.contains(n)).collect();
    if !missing.is_empty() {
        // One List per chunk keeps each kubectl call short.
        for chunk in missing.chunks(250) {
            let list = json!({"apiVersion": "v1", "kind": "List", "items": chunk});
            kubectl.apply("fake-nodes", &serde_json::to_string(&list)?)?;
        }
    }
    if !extra.is_empty() {
        for chunk in extra.chunks(250) {
            kubectl
                .cmd()
                .args(["delete", "node", "--wait=false"])
                .args(chunk.iter().map(|s| s.as_str()))
                .run()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_nodes_are_marked_for_kwok_and_tainted() {
        let n = node(7);
        assert_eq!(n["metadata"]["name"], "kwok-node-7");
        assert_eq!(n["metadata"]["annotations"][ANNOTATION], ANNOTATION_VALUE);
        assert_eq!(n["metadata"]["labels"][LABEL], LABEL_VALUE);
        assert_eq!(n["spec"]["taints"][0]["effect"], "NoSchedule");
    }
}
