//! The App's side of config in revisions: what the referenced ConfigMaps and Secrets
//! contain now (watched by metadata only; a body is fetched when its resourceVersion
//! moves), the immutable snapshots a revision's pods mount, and putting a revision's
//! contents back into the sources on undo.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use drover_crds::App;
use drover_crds::names::label;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};

use super::error::{Error, WriteOutcome, classify};
use super::{CONTROLLER, Context, lock};
use crate::rollout::config::{self, Contents, Kind, Pinned, Source};

/// What the controller last read of one source.
#[derive(Debug)]
struct Seen {
    resource_version: Option<String>,
    digest: Option<String>,
    /// When its contents were last seen to change (not set by the first read).
    changed_at: Option<Instant>,
}

/// Digests of the sources Apps reference, by namespace and source.
#[derive(Debug, Default)]
pub struct ConfigCache {
    seen: Mutex<HashMap<(String, Source), Seen>>,
}

/// The current contents of an App's config, and when any of it last changed.
#[derive(Debug)]
pub struct Observed {
    pub contents: Contents,
    pub last_change: Option<Instant>,
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::ConfigMap => "ConfigMap",
        Kind::Secret => "Secret",
    }
}

/// The resourceVersion of a ConfigMap or Secret from the metadata stores (`None`: absent).
fn resource_version(ctx: &Context, namespace: &str, kind: Kind, name: &str) -> Option<String> {
    match kind {
        Kind::ConfigMap => ctx
            .config_maps
            .get(&ObjectRef::new(name).within(namespace))
            .map(|m| m.resource_version().unwrap_or_default()),
        Kind::Secret => ctx
            .secrets
            .get(&ObjectRef::new(name).within(namespace))
            .map(|m| m.resource_version().unwrap_or_default()),
    }
}

/// The fields of a ConfigMap that reach a pod.
fn config_map_contents(cm: &ConfigMap) -> Value {
    json!({"data": cm.data, "binaryData": cm.binary_data})
}

/// The fields of a Secret that reach a pod.
fn secret_contents(secret: &Secret) -> Value {
    json!({"type": secret.type_, "data": secret.data})
}

fn read_error(kind: Kind, name: &str, source: kube::Error) -> Error {
    Error::Config {
        action: "reading",
        kind: kind_name(kind),
        name: name.into(),
        source,
    }
}

/// Reads a source; `None` when it does not exist.
async fn fetch(ctx: &Context, namespace: &str, source: &Source) -> Result<Option<Value>, Error> {
    let client = ctx.client.clone();
    let result = match source.kind {
        Kind::ConfigMap => Api::<ConfigMap>::namespaced(client, namespace)
            .get_opt(&source.name)
            .await
            .map(|o| o.as_ref().map(config_map_contents)),
        Kind::Secret => Api::<Secret>::namespaced(client, namespace)
            .get_opt(&source.name)
            .await
            .map(|o| o.as_ref().map(secret_contents)),
    };
    result.map_err(|e| read_error(source.kind, &source.name, e))
}

/// The digests of `sources` in `namespace` now. A source is read from the API only when
/// its resourceVersion differs from the last one read.
pub async fn observe(
    ctx: &Context,
    namespace: &str,
    sources: &BTreeSet<Source>,
) -> Result<Observed, Error> {
    let mut contents = Contents::new();
    let mut last_change: Option<Instant> = None;
    for source in sources {
        let key = (namespace.to_string(), source.clone());
        let version = resource_version(ctx, namespace, source.kind, &source.name);
        let cached = {
            let seen = lock(&ctx.config_cache.seen);
            seen.get(&key)
                .filter(|s| s.resource_version == version)
                .map(|s| (s.digest.clone(), s.changed_at))
        };
        let (digest, changed_at) = match cached {
            Some(hit) => hit,
            None => {
                let digest = match &version {
                    Some(_) => fetch(ctx, namespace, source)
                        .await?
                        .map(|c| config::digest(&c)),
                    None => None,
                };
                let mut seen = lock(&ctx.config_cache.seen);
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

fn snapshot_meta(app: &App, revision: &str, name: &str, owner: OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: app.namespace(),
        labels: Some(BTreeMap::from([
            (label::APP.to_string(), app.name_any()),
            (label::REVISION.to_string(), revision.to_string()),
            (
                label::MANAGED_BY.to_string(),
                label::MANAGED_BY_VALUE.to_string(),
            ),
        ])),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    }
}

/// Makes sure every snapshot of the revision exists, copying each source whose contents
/// still match what the revision pinned (a source that moved on since will make a newer
/// revision). Snapshots are owned by the ControllerRevision: pruning it removes them.
pub async fn ensure_snapshots(
    ctx: &Context,
    app: &App,
    revision: &str,
    revision_uid: &str,
    pinned: &[Pinned],
) -> Result<(), Error> {
    let namespace = app.namespace().unwrap_or_default();
    let owner = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ControllerRevision".into(),
        name: revision.into(),
        uid: revision_uid.into(),
        ..OwnerReference::default()
    };
    for p in pinned {
        let Some(digest) = &p.digest else { continue };
        if resource_version(ctx, &namespace, p.kind, &p.snapshot).is_some() {
            continue;
        }
        let meta = snapshot_meta(app, revision, &p.snapshot, owner.clone());
        let client = ctx.client.clone();
        let params = PostParams::default();
        let result = match p.kind {
            Kind::ConfigMap => {
                let api = Api::<ConfigMap>::namespaced(client, &namespace);
                let Some(source) = api
                    .get_opt(&p.name)
                    .await
                    .map_err(|e| read_error(p.kind, &p.name, e))?
                else {
                    continue;
                };
                if config::digest(&config_map_contents(&source)) != *digest {
                    continue;
                }
                let copy = ConfigMap {
                    metadata: meta,
                    data: source.data,
                    binary_data: source.binary_data,
                    immutable: Some(true),
                };
                api.create(&params, &copy).await.map(drop)
            }
            Kind::Secret => {
                let api = Api::<Secret>::namespaced(client, &namespace);
                let Some(source) = api
                    .get_opt(&p.name)
                    .await
                    .map_err(|e| read_error(p.kind, &p.name, e))?
                else {
                    continue;
                };
                if config::digest(&secret_contents(&source)) != *digest {
                    continue;
                }
                let copy = Secret {
                    metadata: meta,
                    data: source.data,
                    type_: source.type_,
                    immutable: Some(true),
                    ..Secret::default()
                };
                api.create(&params, &copy).await.map(drop)
            }
        };
        match classify(&result) {
            WriteOutcome::Done => {
                ctx.metrics
                    .write(CONTROLLER, "create", snapshot_resource(p.kind));
            }
            WriteOutcome::AlreadyExists | WriteOutcome::Gone => {}
            WriteOutcome::Refused(_) | WriteOutcome::Transient => {
                if let Err(source) = result {
                    return Err(Error::Config {
                        action: "snapshotting",
                        kind: kind_name(p.kind),
                        name: p.name.clone(),
                        source,
                    });
                }
            }
        }
    }
    Ok(())
}

fn snapshot_resource(kind: Kind) -> &'static str {
    match kind {
        Kind::ConfigMap => "configmaps",
        Kind::Secret => "secrets",
    }
}

/// Puts a revision's config back: every source whose contents differ from its snapshot
/// gets the snapshot's contents (and is created again if it was deleted). Returns the
/// sources written.
pub async fn restore(
    ctx: &Context,
    namespace: &str,
    pinned: &[Pinned],
) -> Result<Vec<String>, Error> {
    let mut restored = vec![];
    for p in pinned {
        let Some(digest) = &p.digest else { continue };
        let write_error = |source| Error::Config {
            action: "restoring",
            kind: kind_name(p.kind),
            name: p.name.clone(),
            source,
        };
        let client = ctx.client.clone();
        let params = PostParams::default();
        let written = match p.kind {
            Kind::ConfigMap => {
                let api = Api::<ConfigMap>::namespaced(client, namespace);
                let snapshot = api
                    .get(&p.snapshot)
                    .await
                    .map_err(|e| read_error(p.kind, &p.snapshot, e))?;
                match api
                    .get_opt(&p.name)
                    .await
                    .map_err(|e| read_error(p.kind, &p.name, e))?
                {
                    Some(source) if config::digest(&config_map_contents(&source)) == *digest => {
                        false
                    }
                    Some(mut source) => {
                        source.data = snapshot.data;
                        source.binary_data = snapshot.binary_data;
                        api.replace(&p.name, &params, &source)
                            .await
                            .map_err(write_error)?;
                        true
                    }
                    None => {
                        let fresh = ConfigMap {
                            metadata: ObjectMeta {
                                name: Some(p.name.clone()),
                                ..ObjectMeta::default()
                            },
                            data: snapshot.data,
                            binary_data: snapshot.binary_data,
                            ..ConfigMap::default()
                        };
                        api.create(&params, &fresh).await.map_err(write_error)?;
                        true
                    }
                }
            }
            Kind::Secret => {
                let api = Api::<Secret>::namespaced(client, namespace);
                let snapshot = api
                    .get(&p.snapshot)
                    .await
                    .map_err(|e| read_error(p.kind, &p.snapshot, e))?;
                match api
                    .get_opt(&p.name)
                    .await
                    .map_err(|e| read_error(p.kind, &p.name, e))?
                {
                    Some(source) if config::digest(&secret_contents(&source)) == *digest => false,
                    Some(mut source) => {
                        source.data = snapshot.data;
                        source.string_data = None;
                        api.replace(&p.name, &params, &source)
                            .await
                            .map_err(write_error)?;
                        true
                    }
                    None => {
                        let fresh = Secret {
                            metadata: ObjectMeta {
                                name: Some(p.name.clone()),
                                ..ObjectMeta::default()
                            },
                            data: snapshot.data,
                            type_: snapshot.type_,
                            ..Secret::default()
                        };
                        api.create(&params, &fresh).await.map_err(write_error)?;
                        true
                    }
                }
            }
        };
        if written {
            ctx.metrics
                .write(CONTROLLER, "write", snapshot_resource(p.kind));
            restored.push(format!("{} {}", kind_name(p.kind), p.name));
        }
    }
    Ok(restored)
}

/// Whether the App's template references this ConfigMap or Secret.
pub fn references(app: &App, kind: Kind, name: &str) -> bool {
    app.spec.template.spec.as_ref().is_some_and(|spec| {
        config::references(spec).contains(&Source {
            kind,
            name: name.into(),
        })
    })
}
