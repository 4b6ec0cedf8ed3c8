//! Simulated nodes, played by kwok: Node objects marked with kwok's annotation and
//! tainted so only pods that ask for them land there.

use anyhow::Result;
use serde_json::{Value, json};

use crate::cluster::kubectl::{Kubectl, condition_true};

/// Simulated nodes a cluster gets unless asked otherwise.
pub const DEFAULT_COUNT: usize = 3;
/// kwok manages exactly the nodes carrying this annotation (never the real node).
pub const ANNOTATION: &str = "kwok.x-k8s.io/node";
pub const ANNOTATION_VALUE: &str = "fake";
/// The label (and taint key) pods and tools use to tell simulated nodes apart.
pub const LABEL: &str = "type";
pub const LABEL_VALUE: &str = "kwok";
/// Each simulated node's index, so scaling in can delete by selector in one request.
const INDEX_LABEL: &str = "drover.dev/fake-node-index";
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
                INDEX_LABEL: index.to_string(),
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
    let extra = existing.iter().any(|n| !wanted.contains(n));
    if !missing.is_empty() {
        // One List per chunk keeps each kubectl call short.
        for chunk in missing.chunks(250) {
            let list = json!({"apiVersion": "v1", "kind": "List", "items": chunk});
            kubectl.apply("fake-nodes", &serde_json::to_string(&list)?)?;
        }
    }
    if extra {
        // One collection delete: kubectl deletes one node per request, a few per second.
        kubectl
            .cmd()
            .args(["delete", "--raw"])
            .arg(format!(
                "/api/v1/nodes?labelSelector={}",
                url_encode(&surplus_selector(count))
            ))
            .run()?;
    }
    Ok(())
}

/// Selects the simulated nodes whose index is `count` or more (and any without an index).
fn surplus_selector(count: usize) -> String {
    if count == 0 {
        return format!("{LABEL}={LABEL_VALUE}");
    }
    let keep: Vec<String> = (0..count).map(|i| i.to_string()).collect();
    format!(
        "{LABEL}={LABEL_VALUE},{INDEX_LABEL} notin ({})",
        keep.join(",")
    )
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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
        assert_eq!(n["metadata"]["labels"][INDEX_LABEL], "7");
    }

    #[test]
    fn surplus_selector_keeps_the_first_nodes() {
        assert_eq!(surplus_selector(0), "type=kwok");
        assert_eq!(
            surplus_selector(3),
            "type=kwok,drover.dev/fake-node-index notin (0,1,2)"
        );
        assert_eq!(url_encode("a=b,c (d)"), "a%3Db%2Cc%20%28d%29");
    }
}
