//! `kubectl annotate <kind> <name> drover.dev/undo=previous` (or `=<revision number>`): the
//! workload returns to an earlier revision — its template goes back into the spec, and
//! the ConfigMaps and Secrets it references get the contents that revision ran with, from
//! its snapshots. The rollout back then follows the workload's strategy. Also the
//! progress deadline's automatic rollback.

use drover_crds::names::{annotation, reason};
use drover_crds::revision::RevisionData;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::events::EventType;
use tracing::info;

use super::error::Error;
use super::{Engine, Object, config, revisions};
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

/// Restores the revision's config, puts its template into the spec (dropping the undo
/// annotation in the same write), and says so in an Event.
async fn roll_back<K: Object>(
    engine: &Engine,
    object: &K,
    revision: &ControllerRevision,
    data: RevisionData,
    why: &str,
) -> Result<(), Error> {
    let namespace = object.namespace().unwrap_or_default();
    let restored = config::restore(engine, &namespace, &data.config).await?;
    replace(engine, object, Some(data.template)).await?;
    let what = if restored.is_empty() {
        "template".to_string()
    } else {
        format!("template, {}", restored.join(", "))
    };
    let mut note = format!(
        "Rolled back to revision {} ({}): {what} restored",
        revision.revision,
        revision.name_any()
    );
    if !why.is_empty() {
        note.push_str(&format!(" ({why})"));
    }
    info!(workload = %object.name_any(), revision = %revision.name_any(), number = revision.revision, "rolled back");
    engine
        .publish(object, EventType::Normal, reason::ROLLED_BACK, note)
        .await;
    Ok(())
}

/// Removes the undo annotation and, with `template`, puts that template into the spec,
/// in one write conditional on the workload not having changed since it was read.
async fn replace<K: Object>(
    engine: &Engine,
    object: &K,
    template: Option<PodTemplateSpec>,
) -> Result<(), Error> {
    let mut changed = object.clone();
    changed.annotations_mut().remove(annotation::UNDO);
    if let Some(template) = template {
        *changed.template_mut() = template;
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
