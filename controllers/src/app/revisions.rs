//! The App's revisions as `ControllerRevision` objects: the update revision stored with the
//! highest number, old ones pruned to `revisionHistoryLimit`.

use std::collections::{BTreeMap, HashSet};

use drover_crds::App;
use drover_crds::names::{label, reason};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::info;

use super::error::{Error, WriteOutcome, classify};
use super::{CONTROLLER, Context};
use crate::rollout::revision::{self, Stored};

/// The update revision: its name, and its number once stored.
#[derive(Debug)]
pub struct UpdateRevision {
    pub name: String,
    pub number: Option<i64>,
}

/// Stores the update revision (or moves it to the top when the template returns to an old
/// one), then prunes old revisions no pod runs beyond the history limit.
pub async fn sync(
    ctx: &Context,
    app: &App,
    uid: &str,
    in_use: &HashSet<String>,
) -> Result<UpdateRevision, Error> {
    let namespace = app.namespace().unwrap_or_default();
    let update = revision::name(&app.name_any(), &app.spec.template);
    let owned: Vec<_> = ctx
        .revisions
        .state()
        .into_iter()
        .filter(|r| r.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|r| {
            r.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .collect();
    let stored: Vec<Stored> = owned
        .iter()
        .map(|r| Stored {
            name: r.name_any(),
            number: r.revision,
        })
        .collect();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut number = stored.iter().find(|r| r.name == update).map(|r| r.number);
    if let Some(wanted) = revision::number_for(&update, &stored) {
        let result = if number.is_some() {
            let patch = json!({"revision": wanted});
            api.patch(&update, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop)
        } else {
            match build(app, &update, wanted) {
                Some(object) => api.create(&PostParams::default(), &object).await.map(drop),
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
        name: update,
        number,
    })
}

/// The stored form of a revision: the template, labelled for the App and owned by it.
fn build(app: &App, name: &str, number: i64) -> Option<ControllerRevision> {
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
        data: Some(RawExtension(json!({"template": app.spec.template}))),
        revision: number,
    })
}
