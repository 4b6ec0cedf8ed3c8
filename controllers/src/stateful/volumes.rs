//! The claims' snapshots against the API: VolumeSnapshots read, taken before an update,
//! and claims restored from them (the decisions are [`super::snapshots`]'s).

use drover_crds::StatefulApp;
use drover_crds::names::{annotation, label, reason};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    Preconditions,
};
use kube::core::GroupVersionKind;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::info;

use super::Context;
use super::act::build_claim;
use super::observe::Observed;
use super::reconcile::DataPlan;
use super::snapshots::{GROUP, Restore, Snapshot, snapshot_name};
use crate::engine::{Error, WriteOutcome, classify, pods};
use crate::runtime::events::list;

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, "v1", "VolumeSnapshot"),
        "volumesnapshots",
    )
}

fn api(ctx: &Context, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(ctx.engine.client.clone(), namespace, &resource())
}

/// The StatefulApp's VolumeSnapshots (by its label).
pub async fn observe(ctx: &Context, observed: &Observed) -> Result<Vec<Snapshot>, Error> {
    let listed = api(ctx, &observed.namespace)
        .list(&ListParams::default().labels(&format!("{}={}", label::APP, observed.name)))
        .await
        .map_err(|source| Error::SnapshotWrite {
            name: format!("(list of {})", observed.name),
            source,
        })?;
    Ok(listed
        .items
        .iter()
        .map(|s| {
            let status = s.data.get("status");
            Snapshot {
                name: s.name_any(),
                ready: status
                    .and_then(|st| st.get("readyToUse"))
                    .and_then(|r| r.as_bool())
                    .unwrap_or(false),
                error: status
                    .and_then(|st| st.pointer("/error/message"))
                    .and_then(|m| m.as_str())
                    .map(String::from),
                created: s.metadata.creation_timestamp.as_ref().map(|t| t.0),
                deleting: s.metadata.deletion_timestamp.is_some(),
            }
        })
        .collect())
}

/// Acts on the data plan: the snapshots taken (and a failure said), the restore's steps
/// taken, and the restore finished once every ordinal is. Returns whether something is
/// under way, to look again soon.
pub async fn act(
    ctx: &Context,
    app: &StatefulApp,
    observed: &Observed,
    data: &DataPlan,
) -> Result<bool, Error> {
    retake(ctx, app, observed, &data.stale).await?;
    take(ctx, app, observed, &data.takes).await?;
    if !data.failed.is_empty() {
        ctx.engine
            .publish(
                app,
                EventType::Warning,
                reason::SNAPSHOT_FAILED,
                format!(
                    "{}; their pods are not replaced meanwhile",
                    data.failed.join("; ")
                ),
            )
            .await;
    }
    let Some((revision, steps)) = &data.restore else {
        return Ok(data.held > 0);
    };
    for (ordinal, step) in steps {
        restore(ctx, app, observed, *ordinal, step).await?;
    }
    let finished = |s: &Restore| matches!(s, Restore::Done | Restore::NoSnapshot(_));
    if !steps.iter().all(|(_, s)| finished(s)) {
        return Ok(true);
    }
    let done: Vec<u32> = steps
        .iter()
        .filter(|(_, s)| *s == Restore::Done)
        .map(|(o, _)| *o)
        .collect();
    let without: Vec<String> = steps
        .iter()
        .filter_map(|(_, s)| match s {
            Restore::NoSnapshot(claim) => Some(claim.clone()),
            _ => None,
        })
        .collect();
    restored(ctx, app, revision, &done, &without).await?;
    Ok(false)
}

/// Deletes snapshots older than the pods they would stand for; once gone they are taken
/// again.
async fn retake(
    ctx: &Context,
    app: &StatefulApp,
    observed: &Observed,
    stale: &[String],
) -> Result<(), Error> {
    let api = api(ctx, &observed.namespace);
    for name in stale {
        let result = api.delete(name, &DeleteParams::default()).await.map(|_| ());
        match classify(&result) {
            WriteOutcome::Done => {
                ctx.engine.wrote("delete", "volumesnapshots");
                info!(statefulapp = %app.name_any(), snapshot = %name, "snapshot older than its pod; taking it again");
            }
            WriteOutcome::Transient => {
                if let Err(source) = result {
                    return Err(Error::SnapshotWrite {
                        name: name.clone(),
                        source,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Takes the snapshots `(claim, revision)`, each owned by its revision's
/// ControllerRevision (so pruning the revision prunes them).
async fn take(
    ctx: &Context,
    app: &StatefulApp,
    observed: &Observed,
    takes: &[(String, String)],
) -> Result<(), Error> {
    if takes.is_empty() {
        return Ok(());
    }
    let class = app
        .spec
        .volume_snapshots
        .as_ref()
        .and_then(|v| v.class_name.clone());
    let api = api(ctx, &observed.namespace);
    let mut taken = vec![];
    for (claim, revision) in takes {
        let name = snapshot_name(claim, revision);
        let owner = observed
            .revisions
            .iter()
            .find(|r| &r.name_any() == revision)
            .and_then(|r| r.controller_owner_ref(&()))
            .map(|mut o: OwnerReference| {
                o.controller = None;
                o.block_owner_deletion = None;
                o
            });
        let ordinal = claim.rsplit('-').next().unwrap_or_default();
        let mut snapshot = json!({
            "apiVersion": format!("{GROUP}/v1"),
            "kind": "VolumeSnapshot",
            "metadata": {
                "name": name,
                "labels": {
                    label::APP: observed.name,
                    label::ORDINAL: ordinal,
                    label::REVISION: revision,
                    label::MANAGED_BY: label::MANAGED_BY_VALUE,
                },
                "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
            },
            "spec": {"source": {"persistentVolumeClaimName": claim}},
        });
        if let Some(class) = &class {
            snapshot["spec"]["volumeSnapshotClassName"] = json!(class);
        }
        let object: DynamicObject =
            serde_json::from_value(snapshot).map_err(|e| Error::SnapshotWrite {
                name: name.clone(),
                source: kube::Error::SerdeError(e),
            })?;
        let result = api.create(&PostParams::default(), &object).await;
        match classify(&result) {
            WriteOutcome::Done => {
                ctx.engine.wrote("create", "volumesnapshots");
                taken.push(name);
            }
            WriteOutcome::AlreadyExists | WriteOutcome::Gone => {}
            WriteOutcome::Refused(message) => {
                ctx.engine
                    .publish(
                        app,
                        EventType::Warning,
                        reason::SNAPSHOT_FAILED,
                        format!("Snapshot {name} of claim {claim}: {message}; its pod is not replaced meanwhile"),
                    )
                    .await;
            }
            WriteOutcome::Transient => {
                if let Err(source) = result {
                    return Err(Error::SnapshotWrite { name, source });
                }
            }
        }
    }
    if !taken.is_empty() {
        let taken: Vec<&str> = taken.iter().map(String::as_str).collect();
        ctx.engine
            .publish(
                app,
                EventType::Normal,
                reason::SNAPSHOT_TAKEN,
                format!(
                    "Snapshots {} taken before their pods are replaced by a new revision",
                    list(&taken)
                ),
            )
            .await;
    }
    Ok(())
}

/// Acts on one step of an ordinal's restore.
async fn restore(
    ctx: &Context,
    app: &StatefulApp,
    observed: &Observed,
    ordinal: u32,
    step: &Restore,
) -> Result<(), Error> {
    let ns = &observed.namespace;
    match step {
        Restore::DeletePod => {
            let pods: Api<Pod> = Api::namespaced(ctx.engine.client.clone(), ns);
            let Some(pod) = observed.observed_pods().iter().find(|p| p.slot == ordinal) else {
                return Ok(());
            };
            let result = pods::remove(&pods, &pod.name, &pod.uid, false).await;
            if !matches!(classify(&result), WriteOutcome::Done | WriteOutcome::Gone)
                && let Err(source) = result
            {
                return Err(Error::PodDelete {
                    pod: pod.name.clone(),
                    source,
                });
            }
            ctx.engine.wrote("delete", "pods");
        }
        Restore::DeleteClaim(claim) => {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.engine.client.clone(), ns);
            let uid = observed.claim_object(claim).and_then(|c| c.uid());
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid,
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let result = claims.delete(claim, &params).await;
            if !matches!(classify(&result), WriteOutcome::Done | WriteOutcome::Gone)
                && let Err(source) = result
            {
                return Err(Error::ClaimWrite {
                    name: claim.clone(),
                    source,
                });
            }
            ctx.engine.wrote("delete", "persistentvolumeclaims");
        }
        Restore::CreateClaim { claim, snapshot } => {
            let Some(template) = app
                .spec
                .volume_claim_templates
                .iter()
                .find(|t| claim.starts_with(&format!("{}-", t.metadata.name)))
            else {
                return Ok(());
            };
            let Some(pvc) = build_claim(app, template, ordinal, Some(snapshot)) else {
                return Ok(());
            };
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.engine.client.clone(), ns);
            let result = claims.create(&PostParams::default(), &pvc).await;
            match classify(&result) {
                WriteOutcome::Done => ctx.engine.wrote("create", "persistentvolumeclaims"),
                WriteOutcome::Transient | WriteOutcome::Refused(_) => {
                    if let Err(source) = result {
                        return Err(Error::ClaimWrite {
                            name: claim.clone(),
                            source,
                        });
                    }
                }
                _ => {}
            }
        }
        Restore::Wait | Restore::Done | Restore::NoSnapshot(_) => {}
    }
    Ok(())
}

/// Every ordinal restored (or without a snapshot to restore from): the annotation goes,
/// and an Event says what was restored.
async fn restored(
    ctx: &Context,
    app: &StatefulApp,
    revision: &str,
    done: &[u32],
    without: &[String],
) -> Result<(), Error> {
    let api: Api<StatefulApp> = Api::namespaced(
        ctx.engine.client.clone(),
        &app.namespace().unwrap_or_default(),
    );
    let patch = json!({"metadata": {
        "resourceVersion": app.resource_version(),
        "annotations": {annotation::RESTORE_DATA: null},
    }});
    match api
        .patch(
            &app.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(written) => {
            let uid = app.uid().unwrap_or_default();
            ctx.engine
                .ledger
                .wrote(&uid, app.resource_version(), written.resource_version());
            ctx.engine.wrote("patch", "statefulapps");
        }
        // Changed meanwhile: the next pass looks again.
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
        Err(source) => {
            return Err(Error::Annotation {
                kind: "StatefulApp",
                name: app.name_any(),
                key: annotation::RESTORE_DATA,
                source,
            });
        }
    }
    let mut note = format!(
        "Restored the claims of ordinals {:?} from their snapshots of revision {revision}",
        done
    );
    let (type_, reason) = if without.is_empty() {
        (EventType::Normal, reason::DATA_RESTORED)
    } else {
        note.push_str(&format!(
            "; no snapshot of that revision for {}, which keep their data",
            without.join(", ")
        ));
        (EventType::Warning, reason::DATA_RESTORED)
    };
    ctx.engine.publish(app, type_, reason, note).await;
    Ok(())
}
