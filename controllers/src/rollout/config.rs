//! The configuration a pod template references — ConfigMaps and Secrets, through volumes,
//! projected volumes, `envFrom` and `env[].valueFrom` — belongs to its revision: the
//! revision's name hashes their contents too, and its pods mount immutable snapshots of
//! them, so returning to a revision returns to the configuration it ran with.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use drover_crds::revision::{ConfigKind, ConfigPin, Pinned};
use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest name of a ConfigMap or Secret.
const MAX_NAME: usize = 253;

/// A ConfigMap or Secret a template references, by name (same namespace).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Source {
    pub kind: ConfigKind,
    pub name: String,
}

impl From<&Pinned> for Source {
    fn from(p: &Pinned) -> Source {
        Source {
            kind: p.kind,
            name: p.name.clone(),
        }
    }
}

/// Source -> digest of its current contents (`None` when it does not exist).
pub type Contents = BTreeMap<Source, Option<String>>;

/// Calls `f` on every ConfigMap or Secret name the pod spec references, mutably, and
/// whether that reference is optional (the pod starts without the object).
fn visit(spec: &mut PodSpec, f: &mut impl FnMut(ConfigKind, &mut String, bool)) {
    let optional = |o: Option<bool>| o.unwrap_or(false);
    for volume in spec.volumes.iter_mut().flatten() {
        if let Some(cm) = volume.config_map.as_mut() {
            f(ConfigKind::ConfigMap, &mut cm.name, optional(cm.optional));
        }
        if let Some(secret) = volume.secret.as_mut() {
            let opt = optional(secret.optional);
            if let Some(name) = secret.secret_name.as_mut() {
                f(ConfigKind::Secret, name, opt);
            }
        }
        let sources = volume.projected.as_mut().and_then(|p| p.sources.as_mut());
        for source in sources.into_iter().flatten() {
            if let Some(cm) = source.config_map.as_mut() {
                f(ConfigKind::ConfigMap, &mut cm.name, optional(cm.optional));
            }
            if let Some(secret) = source.secret.as_mut() {
                f(
                    ConfigKind::Secret,
                    &mut secret.name,
                    optional(secret.optional),
                );
            }
        }
    }
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for container in containers {
        visit_container(container, f);
    }
}

fn visit_container(container: &mut Container, f: &mut impl FnMut(ConfigKind, &mut String, bool)) {
    let optional = |o: Option<bool>| o.unwrap_or(false);
    for from in container.env_from.iter_mut().flatten() {
        if let Some(cm) = from.config_map_ref.as_mut() {
            f(ConfigKind::ConfigMap, &mut cm.name, optional(cm.optional));
        }
        if let Some(secret) = from.secret_ref.as_mut() {
            f(
                ConfigKind::Secret,
                &mut secret.name,
                optional(secret.optional),
            );
        }
    }
    for var in container.env.iter_mut().flatten() {
        let Some(from) = var.value_from.as_mut() else {
            continue;
        };
        if let Some(key) = from.config_map_key_ref.as_mut() {
            f(ConfigKind::ConfigMap, &mut key.name, optional(key.optional));
        }
        if let Some(key) = from.secret_key_ref.as_mut() {
            f(ConfigKind::Secret, &mut key.name, optional(key.optional));
        }
    }
}

/// Every ConfigMap and Secret the pod spec references.
pub fn references(spec: &PodSpec) -> BTreeSet<Source> {
    let mut found = BTreeSet::new();
    visit(&mut spec.clone(), &mut |kind, name, _| {
        if !name.is_empty() {
            found.insert(Source {
                kind,
                name: name.clone(),
            });
        }
    });
    found
}

/// The sources the pods cannot start without (referenced at least once without
/// `optional: true`) that do not exist in `contents`.
pub fn missing(spec: &PodSpec, contents: &Contents) -> Vec<Source> {
    let mut missing = BTreeSet::new();
    visit(&mut spec.clone(), &mut |kind, name, optional| {
        let source = Source {
            kind,
            name: name.clone(),
        };
        if !optional && !name.is_empty() && matches!(contents.get(&source), Some(None)) {
            missing.insert(source);
        }
    });
    missing.into_iter().collect()
}

/// Points every reference of the pod spec at the revision's snapshot of it. A source that
/// did not exist keeps its own name: the kubelet then names it in its errors, and finds it
/// once it is created.
pub fn pin(spec: &mut PodSpec, pinned: &[Pinned]) {
    visit(spec, &mut |kind, name, _| {
        if let Some(p) = pinned
            .iter()
            .find(|p| p.kind == kind && p.name == *name && p.digest.is_some())
        {
            *name = p.snapshot.clone();
        }
    });
}

/// The snapshot of `source` for a revision: `<source>-<revision hash>`, the source's name
/// shortened if need be.
pub fn snapshot_name(source: &str, revision: &str) -> String {
    let hash = revision.rsplit('-').next().unwrap_or(revision);
    let keep = MAX_NAME.saturating_sub(hash.len() + 1).min(source.len());
    let mut end = keep;
    while !source.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", source[..end].trim_end_matches(['-', '.']))
}

/// Digests of config contents, given as the JSON of the fields that reach a pod (`data`,
/// `binaryData`, a Secret's `type`). A ConfigMap's is its SHA-256; a Secret's is keyed
/// (HMAC-SHA-256 with the installation's key): its digests sit in revisions and
/// annotations that whoever may view the workload reads, and a plain hash would let them
/// test guesses of its contents.
#[derive(Clone)]
pub struct Digester {
    key: Arc<[u8]>,
}

impl std::fmt::Debug for Digester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digester")
    }
}

impl Digester {
    pub fn new(key: &[u8]) -> Self {
        Digester { key: key.into() }
    }

    pub fn digest(&self, kind: ConfigKind, contents: &serde_json::Value) -> String {
        let bytes = contents.to_string();
        let hash: Vec<u8> = match kind {
            ConfigKind::ConfigMap => Sha256::digest(bytes.as_bytes()).to_vec(),
            ConfigKind::Secret => {
                let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
                mac.update(bytes.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
        };
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Since an undo pinned the workload to a revision's config: each source that still holds
/// what it held then is counted at that revision's digest (its pods keep the revision's
/// snapshot); one edited since counts as it is now. Returns the sources so held whose
/// contents differ from what runs.
pub fn hold(contents: &mut Contents, pin: &ConfigPin) -> Vec<Source> {
    let mut held = vec![];
    for at in pin.sources.iter().filter(|at| at.runs.digest.is_some()) {
        let source = Source::from(&at.runs);
        let Some(now) = contents.get_mut(&source) else {
            continue;
        };
        if *now == at.found && *now != at.runs.digest {
            now.clone_from(&at.runs.digest);
            held.push(source);
        }
    }
    held
}

/// What a revision pins of `contents`, its snapshots named for `revision`.
pub fn pinned(contents: &Contents, revision: &str) -> Vec<Pinned> {
    contents
        .iter()
        .map(|(source, digest)| Pinned {
            kind: source.kind,
            name: source.name.clone(),
            digest: digest.clone(),
            snapshot: snapshot_name(&source.name, revision),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec() -> PodSpec {
        serde_json::from_value(json!({
            "volumes": [
                {"name": "a", "configMap": {"name": "settings"}},
                {"name": "b", "secret": {"secretName": "tls"}},
                {"name": "c", "projected": {"sources": [
                    {"configMap": {"name": "extra"}},
                    {"secret": {"name": "token"}},
                    {"serviceAccountToken": {"path": "t"}},
                ]}},
                {"name": "d", "emptyDir": {}},
            ],
            "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
            "containers": [{
                "name": "web",
                "envFrom": [{"configMapRef": {"name": "env"}}],
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "b"}}},
                    {"name": "C", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ],
            }],
        }))
        .unwrap()
    }

    fn source(kind: ConfigKind, name: &str) -> Source {
        Source {
            kind,
            name: name.into(),
        }
    }

    #[test]
    fn finds_every_kind_of_reference_once() {
        let found: Vec<Source> = references(&spec()).into_iter().collect();
        assert_eq!(
            found,
            [
                source(ConfigKind::ConfigMap, "env"),
                source(ConfigKind::ConfigMap, "extra"),
                source(ConfigKind::ConfigMap, "settings"),
                source(ConfigKind::Secret, "db"),
                source(ConfigKind::Secret, "init-env"),
                source(ConfigKind::Secret, "tls"),
                source(ConfigKind::Secret, "token"),
            ]
        );
    }

    #[test]
    fn pinning_points_every_reference_at_its_snapshot() {
        let contents: Contents = references(&spec())
            .into_iter()
            .map(|s| (s, Some("d".to_string())))
            .collect();
        let pinned = pinned(&contents, "web-0123456789");
        let mut pinned_spec = spec();
        pin(&mut pinned_spec, &pinned);
        let names: Vec<String> = references(&pinned_spec)
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert!(
            names.iter().all(|n| n.ends_with("-0123456789")),
            "{names:?}"
        );
        assert_eq!(names.len(), 7);
        // A Secret and a ConfigMap of the same name stay apart.
        let mut both = spec();
        both.volumes.as_mut().unwrap()[1]
            .secret
            .as_mut()
            .unwrap()
            .secret_name = Some("settings".into());
        let only_the_config_map = [Pinned {
            kind: ConfigKind::ConfigMap,
            name: "settings".into(),
            digest: Some("d".into()),
            snapshot: "settings-snap".into(),
        }];
        pin(&mut both, &only_the_config_map);
        let found = references(&both);
        assert!(found.contains(&source(ConfigKind::Secret, "settings")));
        assert!(found.contains(&source(ConfigKind::ConfigMap, "settings-snap")));
        assert!(!found.contains(&source(ConfigKind::ConfigMap, "settings")));
    }

    #[test]
    fn a_missing_source_keeps_its_name_and_is_reported_unless_optional() {
        let mut spec = spec();
        // `extra` is optional where it is referenced; `db` is not.
        let volume = &mut spec.volumes.as_mut().unwrap()[2];
        let sources = volume.projected.as_mut().unwrap().sources.as_mut().unwrap();
        sources[0].config_map.as_mut().unwrap().optional = Some(true);
        let contents: Contents = references(&spec)
            .into_iter()
            .map(|s| {
                let exists = !matches!(s.name.as_str(), "db" | "extra");
                (s, exists.then(|| "d".to_string()))
            })
            .collect();
        assert_eq!(
            missing(&spec, &contents),
            [source(ConfigKind::Secret, "db")]
        );
        let pinned = pinned(&contents, "web-0123456789");
        pin(&mut spec, &pinned);
        let names: BTreeSet<String> = references(&spec).into_iter().map(|s| s.name).collect();
        assert!(names.contains("db") && names.contains("extra"), "{names:?}");
        assert!(names.contains("tls-0123456789"), "{names:?}");
    }

    #[test]
    fn snapshot_names_are_valid_and_distinct_per_revision() {
        assert_eq!(
            snapshot_name("settings", "web-0123456789"),
            "settings-0123456789"
        );
        assert_ne!(
            snapshot_name("settings", "web-0123456789"),
            snapshot_name("settings", "web-9876543210")
        );
        let long = "a".repeat(253);
        let name = snapshot_name(&long, "web-0123456789");
        assert_eq!(name.len(), 253);
        assert!(name.ends_with("a-0123456789"));
        assert_eq!(snapshot_name("x.-", "web-01"), "x-01");
    }

    #[test]
    fn digests_follow_the_contents_and_secrets_are_keyed() {
        let d = Digester::new(b"key");
        let digest = |kind, c: serde_json::Value| d.digest(kind, &c);
        let a = digest(ConfigKind::ConfigMap, json!({"data": {"k": "v"}}));
        assert_eq!(
            a,
            digest(ConfigKind::ConfigMap, json!({"data": {"k": "v"}}))
        );
        assert_ne!(
            a,
            digest(ConfigKind::ConfigMap, json!({"data": {"k": "w"}}))
        );
        assert_eq!(a.len(), 64);
        // A Secret's digest is not the plain hash of its contents, and depends on the key.
        let secret = json!({"type": "Opaque", "data": {"k": "dg=="}});
        let keyed = digest(ConfigKind::Secret, secret.clone());
        assert_eq!(keyed.len(), 64);
        assert_ne!(keyed, digest(ConfigKind::ConfigMap, secret.clone()));
        assert_ne!(
            keyed,
            Digester::new(b"other").digest(ConfigKind::Secret, &secret)
        );
        assert_eq!(keyed, digest(ConfigKind::Secret, secret));
    }

    #[test]
    fn an_undo_holds_sources_until_they_are_edited_again() {
        let settings = source(ConfigKind::ConfigMap, "settings");
        let db = source(ConfigKind::Secret, "db");
        let tls = source(ConfigKind::Secret, "tls");
        // Revision 1 ran settings=a, db=x, tls=t.
        let revision = pinned(
            &Contents::from([
                (settings.clone(), Some("a".into())),
                (db.clone(), Some("x".into())),
                (tls.clone(), Some("t".into())),
            ]),
            "web-1",
        );
        // At the undo, settings held b and db held y; tls was unchanged.
        let at = |i: usize, found: &str| drover_crds::revision::PinnedAt {
            runs: revision[i].clone(),
            found: Some(found.into()),
        };
        let pin = ConfigPin {
            revision: "web-1".into(),
            sources: vec![at(0, "b"), at(1, "y")],
        };
        // Since then db was edited to z: it rolls out; settings still holds b: held at a.
        let mut now = Contents::from([
            (settings.clone(), Some("b".into())),
            (db.clone(), Some("z".into())),
            (tls.clone(), Some("t".into())),
        ]);
        assert_eq!(hold(&mut now, &pin), std::slice::from_ref(&settings));
        assert_eq!(now[&settings].as_deref(), Some("a"));
        assert_eq!(now[&db].as_deref(), Some("z"));
        assert_eq!(now[&tls].as_deref(), Some("t"));
    }
}
