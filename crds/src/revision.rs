//! What a `ControllerRevision` of a drover workload holds in its `data`: the pod template
//! and the config it pinned. Written by the controllers, read by the kubectl plugin.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::{Deserialize, Serialize};

/// The kind of a config source a template references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigKind {
    ConfigMap,
    Secret,
}

impl ConfigKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigKind::ConfigMap => "ConfigMap",
            ConfigKind::Secret => "Secret",
        }
    }

    /// The resource's plural, as in RBAC rules and metrics.
    pub fn plural(self) -> &'static str {
        match self {
            ConfigKind::ConfigMap => "configmaps",
            ConfigKind::Secret => "secrets",
        }
    }
}

/// What a revision holds of one source: the digest of its contents when the revision was
/// made (`None`: it did not exist) and the snapshot its pods mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pinned {
    pub kind: ConfigKind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub snapshot: String,
}

/// What an undo leaves on the workload (annotation `drover.dev/config-pin`): the revision
/// it returned to and, for each source whose contents differ from that revision's, what
/// the pods run (the revision's digest and snapshot) and what the source held at the
/// time. A source still holding that keeps the snapshot; once edited, what it holds rolls
/// out. Self-contained: it holds when the revision itself is pruned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigPin {
    pub revision: String,
    pub sources: Vec<PinnedAt>,
}

/// One source an undo pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedAt {
    /// What the pods run: the revision's digest and snapshot of the source.
    pub runs: Pinned,
    /// The digest of what the source held at the undo (`None`: it did not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
}

/// The `data` of a revision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RevisionData {
    pub template: PodTemplateSpec,
    /// Config the template references, pinned to snapshots (absent in revisions made
    /// before config was pinned).
    #[serde(default)]
    pub config: Vec<Pinned>,
}

impl RevisionData {
    /// Reads a revision's `data`; `None` when it is not a drover revision.
    pub fn from_raw(data: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(data.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_what_the_controller_writes() {
        let data = RevisionData {
            template: serde_json::from_value(
                json!({"spec": {"containers": [{"name": "a", "image": "x:1"}]}}),
            )
            .unwrap(),
            config: vec![Pinned {
                kind: ConfigKind::Secret,
                name: "s".into(),
                digest: None,
                snapshot: "s-1".into(),
            }],
        };
        let raw = serde_json::to_value(&data).unwrap();
        assert_eq!(raw["config"][0]["kind"], "Secret");
        assert_eq!(RevisionData::from_raw(&raw), Some(data));
        let old = json!({"template": {"spec": {"containers": []}}});
        assert!(RevisionData::from_raw(&old).is_some_and(|d| d.config.is_empty()));
        assert_eq!(RevisionData::from_raw(&json!({"x": 1})), None);
    }
}
