//! `kubectl annotate <kind> <name> drover.dev/undo=previous` (or `=<revision number>`): the
//! workload returns to an earlier revision — its template goes back into the spec, and
//! its pods to the revision's own snapshots of the ConfigMaps and Secrets it references,
//! where they stay until a source is edited again (annotation `drover.dev/config-pin`).
//! The sources are not written, unless the workload asks for its ConfigMaps to be; its
//! Secrets never are. The rollout back then follows the workload's strategy. Also the
//! progress deadline's automatic rollback.

use std::collections::BTreeSet;

use drover_crds::names::{annotation, reason};
use drover_crds::revision::{ConfigPin, PinnedAt, RevisionData};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::events::EventType;
use tracing::info;

use super::error::Error;
use super::{Engine, Object, config, revisions};
use crate::rollout::config::Source;
use crate::rollout::undo;

/// Acts on the undo annotation if the workload has one. Returns whether the workload was
/// changed (the change itself wakes the next pass).
pub async fn apply<K: Object>(engine: &Engine, object: &K, uid: &str) -> Result<bool, Error> {
    let Some(value) = object.annotations().get(annotation::UNDO).cloned() else {
        return Ok(false);
    };
    let owned = revisions::owned(engine, uid);
    let stored: Vec<(String, i64)> = owned.iter().map(|r| (r.name_any(), r.revision)).collect();
    let recorded = object.recorded().update_revision;
    let chosen = undo::resolve(&value, &stored, Some(recorded).filter(|r| !r.is_empty()));
    let target = chosen.and_then(|i| {
        let data = revisions::data(&owned[i]).ok_or_else(|| {
            format!(
                "revision {} cannot be read; set {} to another revision",
                owned[i].revision,
                annotation::UNDO
            )
        })?;
        Ok((&owned[i], data))
    });
    match target {
        Ok((revision, data)) => roll_back(engine, object, revision, data, "").await?,
        Err(message) => {
            engine
                .publish(object, EventType::Warning, reason::UNDO_FAILED, message)
                .await;
            replace(engine, object, None).await?;
        }
    }
    Ok(true)
}

/// Returns the workload to its revision `name` (the progress deadline's automatic
/// rollback).
pub async fn to_revision<K: Object>(
    engine: &Engine,
    object: &K,
    uid: &str,
    name: &str,
    why: &str,
) -> Result<(), Error> {
    let owned = revisions::owned(engine, uid);
    let Some(revision) = owned.iter().find(|r| r.name_any() == name) else {
        return Ok(());
    };
    let Some(data) = revisions::data(revision) else {
        return Ok(());
    };
    roll_back(engine, object, revision, data, why).await
}

/// Puts the revision's template into the spec and pins its config (dropping the undo
/// annotation in the same write), restores its ConfigMaps if the workload asks, and says
/// so in an Event.
async fn roll_back<K: Object>(
    engine: &Engine,
    object: &K,
    revision: &ControllerRevision,
    data: RevisionData,
    why: &str,
) -> Result<(), Error> {
    let namespace = object.namespace().unwrap_or_default();
    let restored = if object.rollout_spec().restore_config_maps {
        config::restore_config_maps(engine, &namespace, &data.config).await?
    } else {
        vec![]
    };
    // What each source holds now: while it holds that, the pods keep the snapshot.
    let sources: BTreeSet<Source> = data.config.iter().map(Source::from).collect();
    let now = config::observe(engine, &namespace, &sources)
        .await?
        .contents;
    let differ: Vec<PinnedAt> = data
        .config
        .iter()
        .filter(|p| p.digest.is_some())
        .filter_map(|p| {
            let found = now.get(&Source::from(p))?.clone();
            (found != p.digest).then(|| PinnedAt {
                runs: p.clone(),
                found,
            })
        })
        .collect();
    let held: Vec<String> = differ
        .iter()
        .map(|p| format!("{} {}", p.runs.kind.as_str(), p.runs.name))
        .filter(|s| !restored.contains(s))
        .collect();
    let pin = (!differ.is_empty()).then(|| ConfigPin {
        revision: revision.name_any(),
        sources: differ,
    });
    replace(engine, object, Some((data.template, pin))).await?;
    let mut what = vec!["template".to_string()];
    what.extend(restored);
    let mut note = format!(
        "Rolled back to revision {} ({}): {} restored",
        revision.revision,
        revision.name_any(),
        what.join(", ")
    );
    if !held.is_empty() {
        note.push_str(&format!(
            "; the pods run its snapshots of {}, whose sources hold newer contents (edit them \
             to roll those out)",
            held.join(", ")
        ));
    }
    if !why.is_empty() {
        note.push_str(&format!(" ({why})"));
    }
    info!(workload = %object.name_any(), revision = %revision.name_any(), number = revision.revision, "rolled back");
    engine
        .publish(object, EventType::Normal, reason::ROLLED_BACK, note)
        .await;
    Ok(())
}

/// Removes the undo annotation and, with a template, puts that template into the spec
/// and sets (or clears) the config pin, in one write conditional on the workload not
/// having changed since it was read.
async fn replace<K: Object>(
    engine: &Engine,
    object: &K,
    template: Option<(PodTemplateSpec, Option<ConfigPin>)>,
) -> Result<(), Error> {
    let mut changed = object.clone();
    changed.annotations_mut().remove(annotation::UNDO);
    if let Some((template, pin)) = template {
        *changed.template_mut() = template;
        let pin = pin.and_then(|p| serde_json::to_string(&p).ok());
        match pin {
            Some(pin) => changed
                .annotations_mut()
                .insert(annotation::CONFIG_PIN.into(), pin),
            None => changed.annotations_mut().remove(annotation::CONFIG_PIN),
        };
    }
    changed.clear_status();
    let api: Api<K> = Api::namespaced(
        engine.client.clone(),
        &object.namespace().unwrap_or_default(),
    );
    match api
        .replace(&object.name_any(), &PostParams::default(), &changed)
        .await
    {
        Ok(_) => {
            engine.wrote("update", K::PLURAL);
            Ok(())
        }
        // Changed meanwhile: the next pass reads the new version.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(source) => Err(Error::Undo {
            kind: K::KIND,
            name: object.name_any(),
            source,
        }),
    }
}
