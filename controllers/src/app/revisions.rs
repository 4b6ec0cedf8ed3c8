//! The App's revisions as `ControllerRevision` objects: the update revision stored with the
//! highest number, old ones pruned to `revisionHistoryLimit`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use drover_crds::App;
use drover_crds::names::{label, reason};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::info;

use super::error::{Error, WriteOutcome, classify};
use super::{CONTROLLER, Context, config as app_config};
use crate::rollout::config::{self, Pinned};
use crate::rollout::revision::{self, Stored};

/// The update revision: its name, its number once stored, and the template its pods are
/// built from (config references pointing at the revision's snapshots).
#[derive(Debug)]
pub struct UpdateRevision {
    pub name: String,
    pub number: Option<i64>,
    pub template: PodTemplateSpec,
    /// Set while a config edit is settling: look again after this long.
    pub settling: Option<Duration>,
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

/// What a stored revision holds: its template and the config it pinned.
pub fn stored_parts(revision: &ControllerRevision) -> Option<(PodTemplateSpec, Vec<Pinned>)> {
    let data = &revision.data.as_ref()?.0;
    let template = serde_json::from_value(data.get("template")?.clone()).ok()?;
    let pinned = data
        .get("config")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    Some((template, pinned))
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
    let (template, pinned) = stored
        .iter()
        .find(|r| r.name_any() == name)
        .and_then(|r| stored_parts(r))?;
    Some(Template {
        name: name.to_string(),
        template: pinned_template(&template, &pinned),
    })
}

/// The stable revision a rollout moves away from — what every pod ran when the last
/// rollout completed — while it differs from the update revision and is still stored.
pub fn stable(ctx: &Context, app: &App, uid: &str, update: &UpdateRevision) -> Option<Template> {
    let current = &app.status.as_ref()?.current_revision;
    if current.is_empty() || *current == update.name {
        return None;
    }
    let namespace = app.namespace().unwrap_or_default();
    template(&owned(ctx, &namespace, uid), current)
}

/// The App's revisions, from the store.
pub fn owned(ctx: &Context, namespace: &str, uid: &str) -> Vec<Arc<ControllerRevision>> {
    ctx.revisions
        .state()
        .into_iter()
        .filter(|r| r.namespace().as_deref() == Some(namespace))
        .filter(|r| {
            r.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .collect()
}

/// Stores the update revision (or moves it to the top when the template returns to an old
/// one) with snapshots of its config, then prunes old revisions no pod runs beyond the
/// history limit.
pub async fn sync(
    ctx: &Context,
    app: &App,
    uid: &str,
    in_use: &HashSet<String>,
) -> Result<UpdateRevision, Error> {
    let namespace = app.namespace().unwrap_or_default();
    let sources = app
        .spec
        .template
        .spec
        .as_ref()
        .map(config::references)
        .unwrap_or_default();
    let observed = app_config::observe(ctx, &namespace, &sources).await?;
    let update = revision::name(&app.name_any(), &app.spec.template, &observed.contents);
    let owned = owned(ctx, &namespace, uid);
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
    let current = app.status.as_ref().map(|s| s.update_revision.as_str());
    if (app.spec.paused || settling.is_some())
        && current != Some(update.as_str())
        && let Some(revision) = owned
            .iter()
            .find(|r| Some(r.name_any().as_str()) == current)
        && let Some((template, pinned)) = stored_parts(revision)
    {
        return Ok(UpdateRevision {
            name: revision.name_any(),
            number: Some(revision.revision),
            template: pinned_template(&template, &pinned),
            settling,
        });
    }

    let pinned = config::pinned(&observed.contents, &update);
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &namespace);
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
            match build(app, &update, wanted, &pinned) {
                Some(object) => api
                    .create(&PostParams::default(), &object)
                    .await
                    .map(|created| revision_uid = created.uid()),
                None => Ok(()),
            }
        };
        match classify(&result) {
            WriteOutcome::Done => {
                ctx.metrics
                    .write(CONTROLLER, "write", "controllerrevisions");
                number = Some(wanted);
                info!(app = %app.name_any(), revision = %update, number = wanted, "revision stored");
                ctx.publish(
                    app,
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
        app_config::ensure_snapshots(ctx, app, &update, &revision_uid, &pinned).await?;
    }

    let limit = usize::try_from(app.spec.revision_history_limit).unwrap_or(0);
    for name in revision::to_prune(&stored, &update, in_use, limit) {
        let Some(object) = owned.iter().find(|r| r.name_any() == name) else {
            continue;
        };
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: object.uid(),
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
        ctx.metrics
            .write(CONTROLLER, "delete", "controllerrevisions");
    }
    Ok(UpdateRevision {
        template: pinned_template(&app.spec.template, &pinned),
        name: update,
        number,
        settling: None,
    })
}

/// The stored form of a revision: the template and the config it pinned, labelled for
/// the App and owned by it.
fn build(app: &App, name: &str, number: i64, pinned: &[Pinned]) -> Option<ControllerRevision> {
    let labels = BTreeMap::from([
        (label::APP.to_string(), app.name_any()),
        (
            label::MANAGED_BY.to_string(),
            label::MANAGED_BY_VALUE.to_string(),
        ),
    ]);
    Some(ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: app.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![app.controller_owner_ref(&())?]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(
            json!({"template": app.spec.template, "config": pinned}),
        )),
        revision: number,
    })
}
