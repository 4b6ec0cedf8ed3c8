//! The engine's side of config in revisions: what the referenced ConfigMaps and Secrets
//! contain now (watched by metadata only; a body is fetched when its resourceVersion
//! moves), the immutable snapshots a revision's pods mount (trusted only when owned by
//! the revision and holding what it pinned), and, where a workload asks, putting a
//! revision's ConfigMap contents back into the sources on undo. Secrets are never
//! written: an undo points the pods back at the snapshots.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use drover_crds::names::label;
use drover_crds::revision::{ConfigKind, Pinned};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::{Value, json};

use super::error::{Error, WriteOutcome, classify};
use super::{Engine, Object};
use crate::rollout::config::{self, Contents, Source};
use crate::runtime::lock;

/// What the controller last read of one source.
#[derive(Debug)]
struct Seen {
    resource_version: Option<String>,
    digest: Option<String>,
    /// When its contents were last seen to change (not set by the first read).
    changed_at: Option<Instant>,
}

/// Digests of the sources workloads reference, by namespace and source.
#[derive(Debug, Default)]
pub struct ConfigCache {
    seen: Mutex<HashMap<(String, Source), Seen>>,
    /// Snapshots (by UID) read and found to hold what their revision pinned.
    verified: Mutex<HashSet<String>>,
}

impl ConfigCache {
    /// Drops what is known of a source that is gone, so the cache holds only what exists.
    pub fn forget(&self, kind: ConfigKind, object: &ObjectMeta) {
        if let Some(uid) = &object.uid {
            lock(&self.verified).remove(uid);
        }
        let (Some(namespace), Some(name)) = (&object.namespace, &object.name) else {
            return;
        };
        let source = Source {
            kind,
            name: name.clone(),
        };
        lock(&self.seen).remove(&(namespace.clone(), source));
    }
}

/// The current contents of a workload's config, and when any of it last changed.
#[derive(Debug)]
pub struct Observed {
    pub contents: Contents,
    pub last_change: Option<Instant>,
}

/// The metadata of a ConfigMap or Secret from the metadata stores (`None`: absent).
fn meta(engine: &Engine, namespace: &str, kind: ConfigKind, name: &str) -> Option<ObjectMeta> {
    match kind {
        ConfigKind::ConfigMap => engine
            .config_maps
            .get(&ObjectRef::new(name).within(namespace))
            .map(|m| m.metadata.clone()),
        ConfigKind::Secret => engine
            .secrets
            .get(&ObjectRef::new(name).within(namespace))
            .map(|m| m.metadata.clone()),
    }
}

/// The resourceVersion of a ConfigMap or Secret from the metadata stores (`None`: absent).
fn resource_version(
    engine: &Engine,
    namespace: &str,
    kind: ConfigKind,
    name: &str,
) -> Option<String> {
    meta(engine, namespace, kind, name).map(|m| m.resource_version.unwrap_or_default())
}

/// A ConfigMap or a Secret, as the engine copies and restores it.
trait ConfigObject:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::Serialize
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Default
{
    const KIND: ConfigKind;
    /// The fields that reach a pod, as JSON (what the digest is of).
    fn contents(&self) -> Value;
    /// `from`'s contents put into `self`.
    fn take_contents(&mut self, from: Self);
    fn set_immutable(&mut self);
}

impl ConfigObject for ConfigMap {
    const KIND: ConfigKind = ConfigKind::ConfigMap;

    fn contents(&self) -> Value {
        json!({"data": self.data, "binaryData": self.binary_data})
    }

    fn take_contents(&mut self, from: Self) {
        self.data = from.data;
        self.binary_data = from.binary_data;
    }

    fn set_immutable(&mut self) {
        self.immutable = Some(true);
    }
}

impl ConfigObject for Secret {
    const KIND: ConfigKind = ConfigKind::Secret;

    fn contents(&self) -> Value {
        json!({"type": self.type_, "data": self.data})
    }

    fn take_contents(&mut self, from: Self) {
        self.data = from.data;
        self.string_data = None;
        if self.type_.is_none() {
            self.type_ = from.type_;
        }
    }

    fn set_immutable(&mut self) {
        self.immutable = Some(true);
    }
}

fn read_error(kind: ConfigKind, name: &str, source: kube::Error) -> Error {
    Error::Config {
        action: "reading",
        kind: kind.as_str(),
        name: name.into(),
        source,
    }
}

/// Reads a source; `None` when it does not exist.
async fn get<C: ConfigObject>(
    engine: &Engine,
    namespace: &str,
    name: &str,
) -> Result<Option<C>, Error> {
    Api::<C>::namespaced(engine.client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| read_error(C::KIND, name, e))
}

/// The digest of the ConfigMap or Secret `name` as it is now; `None` when it does not
/// exist.
async fn digest_of(
    engine: &Engine,
    namespace: &str,
    kind: ConfigKind,
    name: &str,
) -> Result<Option<String>, Error> {
    let contents = match kind {
        ConfigKind::ConfigMap => get::<ConfigMap>(engine, namespace, name)
            .await?
            .map(|c| c.contents()),
        ConfigKind::Secret => get::<Secret>(engine, namespace, name)
            .await?
            .map(|c| c.contents()),
    };
    Ok(contents.map(|c| engine.digester.digest(kind, &c)))
}

/// The digests of `sources` in `namespace` now. A source is read from the API only when
/// its resourceVersion differs from the last one read.
pub async fn observe(
    engine: &Engine,
    namespace: &str,
    sources: &BTreeSet<Source>,
) -> Result<Observed, Error> {
    let mut contents = Contents::new();
    let mut last_change: Option<Instant> = None;
    for source in sources {
        let key = (namespace.to_string(), source.clone());
        let version = resource_version(engine, namespace, source.kind, &source.name);
        let cached = {
            let seen = lock(&engine.config_cache.seen);
            seen.get(&key)
                .filter(|s| s.resource_version == version)
                .map(|s| (s.digest.clone(), s.changed_at))
        };
        let (digest, changed_at) = match cached {
            Some(hit) => hit,
            None => {
                let digest = match &version {
                    Some(_) => digest_of(engine, namespace, source.kind, &source.name).await?,
                    None => None,
                };
                let mut seen = lock(&engine.config_cache.seen);
                let changed_at = match seen.get(&key) {
                    Some(before) if before.digest != digest => Some(Instant::now()),
                    Some(before) => before.changed_at,
                    None => None,
                };
                seen.insert(
                    key,
                    Seen {
                        resource_version: version,
                        digest: digest.clone(),
                        changed_at,
                    },
                );
                (digest, changed_at)
            }
        };
        last_change = last_change.max(changed_at);
        contents.insert(source.clone(), digest);
    }
    Ok(Observed {
        contents,
        last_change,
    })
}

fn snapshot_meta<K: Object>(
    object: &K,
    revision: &str,
    name: &str,
    owner: OwnerReference,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: object.namespace(),
        labels: Some({
            let mut labels = super::labels(&object.name_any());
            labels.insert(label::REVISION.to_string(), revision.to_string());
            labels
        }),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    }
}

/// Makes sure every snapshot of the revision exists, copying each source whose contents
/// still match what the revision pinned (a source that moved on since will make a newer
/// revision), or else a snapshot that holds them: the one in `held` (what an undo pinned
/// the workload to), or another of the `owned` revisions'. Snapshots are owned by the
/// ControllerRevision: pruning it removes them. An object already under a snapshot's name
/// is trusted only if the revision owns it and it holds what the revision pinned.
pub async fn ensure_snapshots<K: Object>(
    engine: &Engine,
    object: &K,
    (revision, revision_uid): (&str, &str),
    pinned: &[Pinned],
    (held, owned): (&[Pinned], &[Arc<ControllerRevision>]),
) -> Result<(), Error> {
    let namespace = object.namespace().unwrap_or_default();
    let owner = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ControllerRevision".into(),
        name: revision.into(),
        uid: revision_uid.into(),
        ..OwnerReference::default()
    };
    for p in pinned {
        let Some(digest) = &p.digest else { continue };
        if let Some(existing) = meta(engine, &namespace, p.kind, &p.snapshot) {
            let foreign = |problem| Error::ForeignSnapshot {
                kind: p.kind.as_str(),
                name: p.snapshot.clone(),
                revision: revision.into(),
                problem,
            };
            let owned = existing
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == revision_uid);
            if !owned {
                return Err(foreign("not owned by the revision"));
            }
            if !verify(engine, &namespace, p, digest, &existing).await? {
                return Err(foreign("its contents are not what the revision pinned"));
            }
            continue;
        }
        // A held source's contents are in the pinned revision's snapshot, or in that of
        // any stored revision that pinned the same.
        let stored: Vec<Pinned> = owned
            .iter()
            .filter_map(|r| super::revisions::data(r))
            .flat_map(|d| d.config)
            .collect();
        let copy_of = held
            .iter()
            .chain(&stored)
            .filter(|h| h.kind == p.kind && h.name == p.name && h.digest.as_ref() == Some(digest))
            .map(|h| h.snapshot.as_str())
            .find(|name| meta(engine, &namespace, p.kind, name).is_some());
        let meta = snapshot_meta(object, revision, &p.snapshot, owner.clone());
        let result = match p.kind {
            ConfigKind::ConfigMap => {
                snapshot::<ConfigMap>(engine, &namespace, (p, digest, copy_of), meta).await?
            }
            ConfigKind::Secret => {
                snapshot::<Secret>(engine, &namespace, (p, digest, copy_of), meta).await?
            }
        };
        match classify(&result) {
            WriteOutcome::Done => engine.wrote("create", p.kind.plural()),
            WriteOutcome::AlreadyExists | WriteOutcome::Gone => {}
            WriteOutcome::Refused(_) | WriteOutcome::Transient => {
                if let Err(source) = result {
                    return Err(Error::Config {
                        action: "snapshotting",
                        kind: p.kind.as_str(),
                        name: p.name.clone(),
                        source,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Whether the snapshot `existing` of `p` holds `digest`, read once per snapshot (they
/// are immutable).
async fn verify(
    engine: &Engine,
    namespace: &str,
    p: &Pinned,
    digest: &str,
    existing: &ObjectMeta,
) -> Result<bool, Error> {
    let uid = existing.uid.clone().unwrap_or_default();
    if lock(&engine.config_cache.verified).contains(&uid) {
        return Ok(true);
    }
    let good = digest_of(engine, namespace, p.kind, &p.snapshot)
        .await?
        .as_deref()
        == Some(digest);
    if good {
        lock(&engine.config_cache.verified).insert(uid);
    }
    Ok(good)
}

/// Creates the immutable snapshot of `p`'s source, if the source still holds what the
/// revision pinned (`digest`), or else from the snapshot `copy_of` if that does (a source
/// that moved on since will make a newer revision).
async fn snapshot<C: ConfigObject>(
    engine: &Engine,
    namespace: &str,
    (p, digest, copy_of): (&Pinned, &str, Option<&str>),
    metadata: ObjectMeta,
) -> Result<Result<(), kube::Error>, Error> {
    let holds = |c: &C| engine.digester.digest(C::KIND, &c.contents()) == digest;
    let source = match get::<C>(engine, namespace, &p.name).await? {
        Some(source) if holds(&source) => source,
        _ => match copy_of {
            Some(name) => match get::<C>(engine, namespace, name).await? {
                Some(snapshot) if holds(&snapshot) => snapshot,
                _ => return Ok(Ok(())),
            },
            None => return Ok(Ok(())),
        },
    };
    let mut copy = C::default();
    *copy.meta_mut() = metadata;
    copy.take_contents(source);
    copy.set_immutable();
    let api = Api::<C>::namespaced(engine.client.clone(), namespace);
    Ok(api.create(&PostParams::default(), &copy).await.map(drop))
}

/// Puts a revision's ConfigMaps back (where the workload asks for it): every one whose
/// contents differ from its snapshot gets the snapshot's contents (and is created again
/// if it was deleted). Secrets are never written. Returns the sources written.
pub async fn restore_config_maps(
    engine: &Engine,
    namespace: &str,
    pinned: &[Pinned],
) -> Result<Vec<String>, Error> {
    let mut restored = vec![];
    for p in pinned.iter().filter(|p| p.kind == ConfigKind::ConfigMap) {
        let Some(digest) = &p.digest else { continue };
        if restore_one::<ConfigMap>(engine, namespace, p, digest).await? {
            engine.wrote("write", p.kind.plural());
            restored.push(format!("{} {}", p.kind.as_str(), p.name));
        }
    }
    Ok(restored)
}

/// Puts the snapshot's contents into `p`'s source (created again if it was deleted)
/// unless it holds them already. Returns whether it wrote.
async fn restore_one<C: ConfigObject>(
    engine: &Engine,
    namespace: &str,
    p: &Pinned,
    digest: &str,
) -> Result<bool, Error> {
    let write_error = |source| Error::Config {
        action: "restoring",
        kind: C::KIND.as_str(),
        name: p.name.clone(),
        source,
    };
    let api = Api::<C>::namespaced(engine.client.clone(), namespace);
    let params = PostParams::default();
    let snapshot: C = api
        .get(&p.snapshot)
        .await
        .map_err(|e| read_error(C::KIND, &p.snapshot, e))?;
    match get::<C>(engine, namespace, &p.name).await? {
        Some(source) if engine.digester.digest(C::KIND, &source.contents()) == digest => Ok(false),
        Some(mut source) => {
            source.take_contents(snapshot);
            api.replace(&p.name, &params, &source)
                .await
                .map_err(write_error)?;
            Ok(true)
        }
        None => {
            let mut fresh = C::default();
            fresh.meta_mut().name = Some(p.name.clone());
            fresh.take_contents(snapshot);
            api.create(&params, &fresh).await.map_err(write_error)?;
            Ok(true)
        }
    }
}

/// Whether the workload's template references this ConfigMap or Secret.
pub fn references<K: Object>(object: &K, kind: ConfigKind, name: &str) -> bool {
    object
        .rollout_spec()
        .template
        .spec
        .as_ref()
        .is_some_and(|spec| {
            config::references(spec).contains(&Source {
                kind,
                name: name.into(),
            })
        })
}
/// The workloads whose template references a ConfigMap or Secret (a revision's
/// snapshot is no one's), for a change of it to wake them.
pub fn users<K: Object>(
    workloads: &Store<DeserializeGuard<K>>,
    kind: ConfigKind,
    object: &ObjectMeta,
) -> Vec<ObjectRef<DeserializeGuard<K>>> {
    let snapshot = object
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(label::REVISION));
    let (Some(namespace), Some(name)) = (&object.namespace, &object.name) else {
        return vec![];
    };
    if snapshot {
        return vec![];
    }
    workloads
        .state()
        .iter()
        .filter(|w| w.namespace().as_ref() == Some(namespace))
        .filter(|w| w.0.as_ref().is_ok_and(|w| references(w, kind, name)))
        .map(|w| ObjectRef::from_obj(w.as_ref()))
        .collect()
}
