//! Revisions: each distinct pod template is a revision, named by a hash of its content and
//! stored as a `ControllerRevision` (`kubectl get controllerrevisions` lists the history).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use sha2::{Digest, Sha256};

use super::config::{Contents, Source};

/// Hex digits of the content hash in a revision's name.
const HASH_LENGTH: usize = 10;

/// The revision's name for a workload's template and the contents of the config it
/// references: `<workload>-<hash>`. The same template with the same config always gives
/// the same name, so returning to an old one reuses its revision.
pub fn name(workload: &str, template: &PodTemplateSpec, config: &Contents) -> String {
    // k8s-openapi serialises fields in a fixed order and maps sorted: the JSON is canonical.
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(template).unwrap_or_default());
    // Templates without config keep the names they had before config was hashed.
    if !config.is_empty() {
        let entries: Vec<(&Source, &Option<String>)> = config.iter().collect();
        hasher.update(serde_json::to_vec(&entries).unwrap_or_default());
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{workload}-{}", &hex[..HASH_LENGTH])
}

/// A stored revision: its name and number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub name: String,
    pub number: i64,
}

/// The number the update revision must carry: one above every other revision's, so the
/// latest template always has the highest number — also when it returns to an old one.
/// `None` when the stored revision already has the right number.
pub fn number_for(update: &str, stored: &[Stored]) -> Option<i64> {
    let highest_other = stored
        .iter()
        .filter(|r| r.name != update)
        .map(|r| r.number)
        .max()
        .unwrap_or(0);
    match stored.iter().find(|r| r.name == update) {
        Some(r) if r.number > highest_other => None,
        _ => Some(highest_other + 1),
    }
}

/// The stable revision a rollout moves away from — what every pod ran when the last
/// rollout completed (`current`) — while it differs from the update revision and is
/// still stored.
pub fn stable(current: &str, update: &str, stored: &[String]) -> Option<String> {
    (!current.is_empty() && current != update && stored.iter().any(|s| s == current))
        .then(|| current.to_string())
}

/// Revisions to delete: beyond the `limit` newest old ones, those no pod runs. The update
/// revision is always kept.
pub fn to_prune(
    stored: &[Stored],
    update: &str,
    in_use: &HashSet<String>,
    limit: usize,
) -> Vec<String> {
    let mut old: Vec<&Stored> = stored.iter().filter(|r| r.name != update).collect();
    old.sort_by_key(|r| std::cmp::Reverse(r.number));
    old.into_iter()
        .skip(limit)
        .filter(|r| !in_use.contains(&r.name))
        .map(|r| r.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use drover_crds::revision::ConfigKind;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"b": "2", "a": "1"}},
            "spec": {"containers": [{"name": "web", "image": image}]},
        }))
        .unwrap()
    }

    fn stored(pairs: &[(&str, i64)]) -> Vec<Stored> {
        pairs
            .iter()
            .map(|(name, number)| Stored {
                name: name.to_string(),
                number: *number,
            })
            .collect()
    }

    #[test]
    fn names_follow_the_content() {
        let none = Contents::new();
        let a = name("web", &template("sample:1"), &none);
        assert_eq!(a, name("web", &template("sample:1"), &none));
        assert_ne!(a, name("web", &template("sample:2"), &none));
        assert!(a.starts_with("web-") && a.len() == "web-".len() + HASH_LENGTH);
    }

    #[test]
    fn names_follow_the_config_contents() {
        let settings = |digest: Option<&str>| {
            Contents::from([(
                Source {
                    kind: ConfigKind::ConfigMap,
                    name: "settings".into(),
                },
                digest.map(str::to_string),
            )])
        };
        let t = template("sample:1");
        let one = name("web", &t, &settings(Some("1")));
        assert_eq!(one, name("web", &t, &settings(Some("1"))));
        assert_ne!(one, name("web", &t, &settings(Some("2"))));
        assert_ne!(one, name("web", &t, &settings(None)));
        assert_ne!(one, name("web", &t, &Contents::new()));
    }

    #[test]
    fn the_latest_template_has_the_highest_number() {
        assert_eq!(number_for("web-a", &[]), Some(1));
        assert_eq!(number_for("web-b", &stored(&[("web-a", 1)])), Some(2));
        assert_eq!(
            number_for("web-b", &stored(&[("web-a", 1), ("web-b", 2)])),
            None
        );
        // Back to the first template: its revision moves to the top.
        assert_eq!(
            number_for("web-a", &stored(&[("web-a", 1), ("web-b", 2)])),
            Some(3)
        );
    }

    #[test]
    fn the_stable_revision_is_the_stored_current_one() {
        let stored = ["web-a".to_string(), "web-b".to_string()];
        assert_eq!(stable("web-a", "web-b", &stored).as_deref(), Some("web-a"));
        assert_eq!(
            stable("web-b", "web-b", &stored),
            None,
            "nothing to move from"
        );
        assert_eq!(
            stable("", "web-b", &stored),
            None,
            "no rollout completed yet"
        );
        assert_eq!(stable("web-z", "web-b", &stored), None, "pruned");
    }

    #[test]
    fn prunes_the_oldest_unused_revisions_beyond_the_limit() {
        let all = stored(&[("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)]);
        let in_use = HashSet::from(["a".to_string()]);
        assert_eq!(to_prune(&all, "e", &in_use, 2), ["b"]);
        assert_eq!(
            to_prune(&all, "e", &HashSet::new(), 0),
            ["d", "c", "b", "a"]
        );
        assert!(to_prune(&all, "e", &HashSet::new(), 10).is_empty());
    }
}
