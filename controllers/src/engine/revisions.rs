//! A workload's revisions as `ControllerRevision` objects: the update revision stored with
//! the highest number, old ones pruned to `revisionHistoryLimit`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use drover_crds::names::{annotation, reason};
use drover_crds::revision::{ConfigPin, Pinned, RevisionData};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::EventType;
use serde_json::json;
use tracing::{info, warn};

use super::error::{Error, WriteOutcome, classify};
use super::{Engine, Object, child_meta, config as engine_config};
use crate::rollout::config::{self, Source};
use crate::rollout::revision::{self, Stored};

/// The update revision: its name, its number once stored, and the template its pods are
/// built from (config references pointing at the revision's snapshots).
#[derive(Debug)]
pub struct UpdateRevision {
    pub name: String,
    pub number: Option<i64>,
    pub template: PodTemplateSpec,
    /// Look again after this long: a config edit is settling, or a refused store is
    /// tried again (nothing the apiserver sends says when a quota was raised).
    pub revisit: Option<Duration>,
    /// ConfigMaps and Secrets the template needs that do not exist.
    pub missing: Vec<Source>,
    /// Why the revision the spec asks for could not be stored (its config read, its
    /// snapshots written): the pods stay on this one, the last stored, meanwhile.
    pub failure: Option<String>,
    /// Sources whose pods keep an earlier revision's snapshot since an undo, though the
    /// source now holds something else (see [`config::hold`]).
    pub held: Vec<Source>,
}

/// A revision's name and the template its pods are built from.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub template: PodTemplateSpec,
}

/// How long referenced config must stay unchanged before it makes a new revision: a burst
/// of edits (several ConfigMaps applied one after the other) makes one rollout.
pub const CONFIG_SETTLE: Duration = Duration::from_secs(3);

/// What a stored revision holds.
pub fn data(revision: &ControllerRevision) -> Option<RevisionData> {
    RevisionData::from_raw(&revision.data.as_ref()?.0)
}

/// The template a revision's pods run: `template` with its config pinned to snapshots.
pub fn pinned_template(template: &PodTemplateSpec, pinned: &[Pinned]) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(spec) = t.spec.as_mut() {
        config::pin(spec, pinned);
    }
    t
}

/// A stored revision's template, as its pods run it.
pub fn template(stored: &[Arc<ControllerRevision>], name: &str) -> Option<Template> {
    let data = stored
        .iter()
        .find(|r| r.name_any() == name)
        .and_then(|r| data(r))?;
    Some(Template {
        name: name.to_string(),
        template: pinned_template(&data.template, &data.config),
    })
}

/// The workload's revisions, from the cache.
pub fn owned(engine: &Engine, uid: &str) -> Vec<Arc<ControllerRevision>> {
    engine.revisions_by_owner.get(&engine.revisions, uid)
}

/// Stores the update revision (or moves it to the top when the template returns to an old
/// one) with snapshots of its config, then prunes old revisions no pod runs beyond the
/// history limit. When that fails (a quota on ConfigMaps, a Secret whose copy is refused,
/// config that cannot be read), the workload stays on the update revision it had, which
/// is stored: its pods are still replaced and scaled while the failure is reported.
pub async fn sync<K: Object>(
    engine: &Engine,
    object: &K,
    owned: &[Arc<ControllerRevision>],
    in_use: &HashSet<String>,
) -> Result<UpdateRevision, Error> {
    let uid = object.uid().unwrap_or_default();
    let error = match store(engine, object, owned, in_use).await {
        Ok(update) => {
            engine.ledger.stored(&uid);
            return Ok(update);
        }
        Err(error) => error,
    };
    let Some(stay) = recorded(object, owned) else {
        return Err(error);
    };
    warn!(workload = %object.name_any(), revision = %stay.name, %error, "the update revision cannot be stored; staying on the last one");
    Ok(UpdateRevision {
        revisit: Some(engine.ledger.store_failed(&uid)),
        failure: Some(error.to_string()),
        ..stay
    })
}

/// The update revision the workload's status recorded, as stored: where its pods stay
/// while a new one waits (paused, config settling) or cannot be stored.
fn recorded<K: Object>(object: &K, owned: &[Arc<ControllerRevision>]) -> Option<UpdateRevision> {
    let current = object.recorded().update_revision;
    let revision = owned.iter().find(|r| r.name_any() == current)?;
    let data = data(revision)?;
    Some(UpdateRevision {
        name: current.to_string(),
        number: Some(revision.revision),
        template: pinned_template(&data.template, &data.config),
        revisit: None,
        missing: vec![],
        failure: None,
        held: vec![],
    })
}

async fn store<K: Object>(
    engine: &Engine,
    object: &K,
    owned: &[Arc<ControllerRevision>],
    in_use: &HashSet<String>,
) -> Result<UpdateRevision, Error> {
    let namespace = object.namespace().unwrap_or_default();
    let spec = object.rollout_spec();
    let sources = spec
        .template
        .spec
        .as_ref()
        .map(config::references)
        .unwrap_or_default();
    let mut observed = engine_config::observe(engine, &namespace, &sources).await?;
    let pin: ConfigPin = object
        .annotations()
        .get(annotation::CONFIG_PIN)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    let held = config::hold(&mut observed.contents, &pin);
    let held_config: Vec<Pinned> = pin.sources.into_iter().map(|at| at.runs).collect();
    let update = revision::name(&object.name_any(), spec.template, &observed.contents);
    let missing = spec
        .template
        .spec
        .as_ref()
        .map(|s| config::missing(s, &observed.contents))
        .unwrap_or_default();
    let stored: Vec<Stored> = owned
        .iter()
        .map(|r| Stored {
            name: r.name_any(),
            number: r.revision,
        })
        .collect();

    // Paused, or config edited moments ago: stay on the current update revision (until
    // resumed, or the config settles).
    let settling = observed
        .last_change
        .map(|at| CONFIG_SETTLE.saturating_sub(at.elapsed()))
        .filter(|left| !left.is_zero());
    if (spec.paused || settling.is_some())
        && object.recorded().update_revision != update
        && let Some(stay) = recorded(object, owned)
    {
        return Ok(UpdateRevision {
            revisit: settling,
            missing,
            held,
            ..stay
        });
    }

    let pinned = config::pinned(&observed.contents, &update);
    let api: Api<ControllerRevision> = Api::namespaced(engine.client.clone(), &namespace);
    let mut number = stored.iter().find(|r| r.name == update).map(|r| r.number);
    let mut revision_uid = owned
        .iter()
        .find(|r| r.name_any() == update)
        .and_then(|r| r.uid());
    if let Some(wanted) = revision::number_for(&update, &stored) {
        let result = if number.is_some() {
            let patch = json!({"revision": wanted});
            api.patch(&update, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop)
        } else {
            match build(object, &update, wanted, &pinned) {
                Some(revision) => api
                    .create(&PostParams::default(), &revision)
                    .await
                    .map(|created| revision_uid = created.uid()),
                None => Ok(()),
            }
        };
        match classify(&result) {
            WriteOutcome::Done => {
                engine.wrote("write", "controllerrevisions");
                number = Some(wanted);
                info!(workload = %object.name_any(), revision = %update, number = wanted, "revision stored");
                engine
                    .publish(
                        object,
                        EventType::Normal,
                        reason::REVISION_CREATED,
                        format!("Revision {wanted} ({update}) is the update revision"),
                    )
                    .await;
            }
            // Stored by an earlier pass this controller has not observed yet.
            WriteOutcome::AlreadyExists | WriteOutcome::Gone => {}
            WriteOutcome::Refused(_) | WriteOutcome::Transient => {
                if let Err(source) = result {
                    return Err(Error::RevisionWrite {
                        name: update,
                        source,
                    });
                }
            }
        }
    }
    if let Some(revision_uid) = revision_uid {
        engine_config::ensure_snapshots(
            engine,
            object,
            (&update, &revision_uid),
            &pinned,
            (&held_config, owned),
        )
        .await?;
    }

    for name in revision::to_prune(&stored, &update, in_use, spec.history_limit) {
        let Some(revision) = owned.iter().find(|r| r.name_any() == name) else {
            continue;
        };
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: revision.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let result = api.delete(&name, &params).await;
        if !matches!(classify(&result), WriteOutcome::Done | WriteOutcome::Gone)
            && let Err(source) = result
        {
            return Err(Error::RevisionWrite { name, source });
        }
        engine.wrote("delete", "controllerrevisions");
    }
    Ok(UpdateRevision {
        template: pinned_template(spec.template, &pinned),
        name: update,
        number,
        revisit: None,
        missing,
        failure: None,
        held,
    })
}

/// The stored form of a revision: the template and the config it pinned, labelled for
/// the workload and owned by it.
fn build<K: Object>(
    object: &K,
    name: &str,
    number: i64,
    pinned: &[Pinned],
) -> Option<ControllerRevision> {
    let data = RevisionData {
        template: object.rollout_spec().template.clone(),
        config: pinned.to_vec(),
    };
    Some(ControllerRevision {
        metadata: child_meta(object, name)?,
        data: Some(RawExtension(serde_json::to_value(&data).ok()?)),
        revision: number,
    })
}
