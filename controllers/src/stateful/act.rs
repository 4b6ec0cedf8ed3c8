//! The act step of a StatefulApp's pass: claims first (made, grown, given or relieved of
//! their owner, deleted), then the pods the ordinal plan removes and starts — a pod only
//! once every claim of its ordinal exists — then the Services and the disruption budget.

use std::collections::{BTreeMap, HashSet};

use drover_crds::StatefulApp;
use drover_crds::names::{label, reason};
use drover_crds::stateful::{ClaimTemplate, Retention};
use futures::future::join_all;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, Pod, TypedLocalObjectReference,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::claims::{self, claim_name};
use super::observe::Observed;
use super::plan::{self, Why};
use super::reconcile::{DataPlan, retention};
use super::{Context, pod, service, snapshots, volumes};
use crate::engine::children;
use crate::engine::revisions;
use crate::engine::{Error, WriteOutcome, classify, pods};
use crate::runtime::events::list;

/// What acting left to follow up.
#[derive(Debug, Default)]
pub struct Acted {
    /// A disruption budget refused an eviction: try again soon.
    pub evictions_blocked: bool,
    /// Objects the StatefulApp asks for whose names others' objects hold.
    pub conflicts: Vec<String>,
    /// Why a claim could not be made, while it cannot.
    pub claim_failure: Option<String>,
    /// Claims the apiserver would not grow, with its reason.
    pub resize_refused: Vec<String>,
    /// Pods wait for snapshots, or a restore is under way: look again soon.
    pub data_pending: bool,
}

pub async fn act(
    ctx: &Context,
    app: &StatefulApp,
    observed: &Observed,
    plan: &plan::Plan,
    claim_plan: &claims::Plan,
    data: &DataPlan,
) -> Result<Acted, Error> {
    if !plan.creates.is_empty() || !plan.deletes.is_empty() {
        debug!(statefulapp = %observed.name, creates = plan.creates.len(), deletes = plan.deletes.len(), "plan");
    }
    let mut acted = Acted::default();
    let claims_api: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.engine.client.clone(), &observed.namespace);
    let made = make_claims(ctx, app, &claims_api, claim_plan, &mut acted).await?;
    grow_claims(ctx, app, observed, &claims_api, claim_plan, &mut acted).await?;
    own_claims(ctx, app, observed, &claims_api).await?;
    delete_claims(ctx, app, &claims_api, &claim_plan.deletes).await?;
    acted.data_pending = volumes::act(ctx, app, observed, data).await?;

    let pods_api: Api<Pod> = Api::namespaced(ctx.engine.client.clone(), &observed.namespace);
    let (delete_error, blocked) = delete_pods(ctx, app, &pods_api, plan).await;
    acted.evictions_blocked = blocked;
    // A pod starts once every claim of its ordinal exists (and is not going).
    let claimed = |ordinal: u32| {
        app.spec.volume_claim_templates.iter().all(|t| {
            let name = claim_name(&t.metadata.name, &observed.name, ordinal);
            made.contains(&name)
                || observed
                    .claims
                    .iter()
                    .any(|c| c.name == name && !c.terminating)
        })
    };
    let create_error = match ctx.engine.ledger.create_backoff(&observed.uid) {
        Some(_) => None,
        None => {
            let creates: Vec<&plan::Create> =
                plan.creates.iter().filter(|c| claimed(c.ordinal)).collect();
            create_pods(ctx, app, observed, &pods_api, &creates).await
        }
    };

    let engine = &ctx.engine;
    let services = service::desired(app);
    acted.conflicts =
        children::services(engine, app, &ctx.services, services, service::matches).await?;
    let budget = app.spec.disruption.as_ref();
    acted
        .conflicts
        .extend(children::budget(engine, app, &ctx.budgets, budget).await?);

    if let Some(e) = delete_error.or(create_error) {
        return Err(e);
    }
    if plan.creates.is_empty() {
        ctx.engine.ledger.settle(&observed.uid);
    }
    Ok(acted)
}

/// The owner a claim gets with `whenDeleted: Delete`, so that the garbage collector
/// deletes it with the StatefulApp. Not its controller: the claim outlives any pod.
fn claim_owner(app: &StatefulApp) -> Option<OwnerReference> {
    let mut owner = app.controller_owner_ref(&())?;
    owner.controller = None;
    owner.block_owner_deletion = None;
    Some(owner)
}

/// The claim of `template` for `ordinal`, made from the VolumeSnapshot `from` if given.
pub fn build_claim(
    app: &StatefulApp,
    template: &ClaimTemplate,
    ordinal: u32,
    from: Option<&str>,
) -> Option<PersistentVolumeClaim> {
    let name = app.name_any();
    let mut labels: BTreeMap<String, String> = template.metadata.labels.clone();
    labels.extend(crate::engine::labels(&name));
    labels.insert(label::ORDINAL.into(), ordinal.to_string());
    let owned = retention(app).when_deleted == Retention::Delete;
    let spec = &template.spec;
    let access_modes = if spec.access_modes.is_empty() {
        vec!["ReadWriteOnce".to_string()]
    } else {
        spec.access_modes
            .iter()
            .map(|m| {
                serde_json::to_value(m)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            })
            .collect()
    };
    Some(PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(claim_name(&template.metadata.name, &name, ordinal)),
            namespace: app.namespace(),
            labels: Some(labels),
            annotations: (!template.metadata.annotations.is_empty())
                .then(|| template.metadata.annotations.clone()),
            owner_references: if owned {
                Some(vec![claim_owner(app)?])
            } else {
                None
            },
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(access_modes),
            storage_class_name: spec.storage_class_name.clone(),
            volume_attributes_class_name: spec.volume_attributes_class_name.clone(),
            volume_mode: spec.volume_mode.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(spec.resources.requests.storage.clone()),
                )])),
                limits: None,
            }),
            data_source: from.map(|snapshot| TypedLocalObjectReference {
                api_group: Some(snapshots::GROUP.into()),
                kind: "VolumeSnapshot".into(),
                name: snapshot.into(),
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    })
}

/// Makes the planned claims. Returns the names that exist now (made, or found made by
/// someone else: a claim of that name is used as it is, as a StatefulSet does).
async fn make_claims(
    ctx: &Context,
    app: &StatefulApp,
    api: &Api<PersistentVolumeClaim>,
    plan: &claims::Plan,
    acted: &mut Acted,
) -> Result<HashSet<String>, Error> {
    let engine = &ctx.engine;
    let results = join_all(plan.creates.iter().filter_map(|(template, ordinal)| {
        let template = app
            .spec
            .volume_claim_templates
            .iter()
            .find(|t| &t.metadata.name == template)?;
        let claim = build_claim(app, template, *ordinal, None)?;
        Some(async move {
            let result = api.create(&PostParams::default(), &claim).await;
            (claim.name_any(), result)
        })
    }))
    .await;
    let mut made = HashSet::new();
    let mut created = vec![];
    for (name, result) in results {
        match classify(&result) {
            WriteOutcome::Done => {
                engine.wrote("create", "persistentvolumeclaims");
                created.push(name.clone());
                made.insert(name);
            }
            WriteOutcome::AlreadyExists => {
                made.insert(name);
            }
            WriteOutcome::Refused(message) => {
                let message = format!("creating claim {name}: {message}");
                warn!(statefulapp = %app.name_any(), %message, "claim create refused");
                if acted.claim_failure.is_none() {
                    engine
                        .publish(
                            app,
                            EventType::Warning,
                            reason::FAILED_CREATE_CLAIM,
                            message.clone(),
                        )
                        .await;
                }
                acted.claim_failure.get_or_insert(message);
            }
            WriteOutcome::Gone => {}
            WriteOutcome::Transient => {
                if let Err(source) = result {
                    return Err(Error::ClaimWrite { name, source });
                }
            }
        }
    }
    if !created.is_empty() {
        let created: Vec<&str> = created.iter().map(String::as_str).collect();
        engine
            .publish(
                app,
                EventType::Normal,
                reason::CREATED,
                format!("Created claims {}", list(&created)),
            )
            .await;
    }
    Ok(made)
}

/// Raises the planned claims' requests to their template's size: the driver grows the
/// volume, and the kubelet its file system while the pod runs.
async fn grow_claims(
    ctx: &Context,
    app: &StatefulApp,
    observed: &Observed,
    api: &Api<PersistentVolumeClaim>,
    plan: &claims::Plan,
    acted: &mut Acted,
) -> Result<(), Error> {
    let engine = &ctx.engine;
    let mut grown = vec![];
    for (name, _) in &plan.grows {
        let Some(template) = observed
            .claims
            .iter()
            .find(|c| &c.name == name)
            .and_then(|c| {
                app.spec
                    .volume_claim_templates
                    .iter()
                    .find(|t| t.metadata.name == c.template)
            })
        else {
            continue;
        };
        let size = &template.spec.resources.requests.storage;
        let patch = json!({"spec": {"resources": {"requests": {"storage": size}}}});
        let result = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        match classify(&result) {
            WriteOutcome::Done => {
                engine.wrote("patch", "persistentvolumeclaims");
                grown.push(format!("{name} to {size}"));
            }
            WriteOutcome::Refused(message) => {
                acted.resize_refused.push(format!("{name}: {message}"));
            }
            WriteOutcome::AlreadyExists | WriteOutcome::Gone => {}
            WriteOutcome::Transient => {
                if let Err(source) = result {
                    return Err(Error::ClaimWrite {
                        name: name.clone(),
                        source,
                    });
                }
            }
        }
    }
    if !grown.is_empty() {
        let grown: Vec<&str> = grown.iter().map(String::as_str).collect();
        info!(statefulapp = %app.name_any(), claims = %list(&grown), "growing claims");
        engine
            .publish(
                app,
                EventType::Normal,
                reason::RESIZING,
                format!("Growing claims {}", list(&grown)),
            )
            .await;
    }
    Ok(())
}

/// Gives the claims the StatefulApp as owner while `whenDeleted` is `Delete`, and takes
/// it away while it is `Retain`.
async fn own_claims(
    ctx: &Context,
    app: &StatefulApp,
    observed: &Observed,
    api: &Api<PersistentVolumeClaim>,
) -> Result<(), Error> {
    let owned = retention(app).when_deleted == Retention::Delete;
    let Some(owner) = claim_owner(app) else {
        return Ok(());
    };
    for claim in &observed.claims {
        let Some(pvc) = observed.claim_object(&claim.name) else {
            continue;
        };
        let refs = pvc.owner_references();
        if refs.iter().any(|o| o.uid == owner.uid) == owned || claim.terminating {
            continue;
        }
        let mut wanted: Vec<OwnerReference> = refs
            .iter()
            .filter(|o| o.uid != owner.uid)
            .cloned()
            .collect();
        if owned {
            wanted.push(owner.clone());
        }
        // Conditional on the version read: owners someone else set meanwhile stay.
        let patch = json!({"metadata": {
            "resourceVersion": pvc.resource_version(),
            "ownerReferences": wanted,
        }});
        let result = api
            .patch(&claim.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        match classify(&result) {
            WriteOutcome::Done => ctx.engine.wrote("patch", "persistentvolumeclaims"),
            WriteOutcome::Transient => {
                if let Err(source) = result {
                    return Err(Error::ClaimWrite {
                        name: claim.name.clone(),
                        source,
                    });
                }
            }
            // A conflict (409) or a claim gone: the next pass looks again.
            _ => {}
        }
    }
    Ok(())
}

/// Deletes the claims of removed ordinals (`whenScaled: Delete`), each with its UID as
/// precondition.
async fn delete_claims(
    ctx: &Context,
    app: &StatefulApp,
    api: &Api<PersistentVolumeClaim>,
    deletes: &[String],
) -> Result<(), Error> {
    let mut deleted = vec![];
    for name in deletes {
        let uid = ctx
            .claims
            .get(
                &ObjectRef::<PersistentVolumeClaim>::new(name)
                    .within(&app.namespace().unwrap_or_default()),
            )
            .and_then(|c| c.uid());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let result = api.delete(name, &params).await;
        match classify(&result) {
            WriteOutcome::Done => {
                ctx.engine.wrote("delete", "persistentvolumeclaims");
                deleted.push(name.as_str());
            }
            WriteOutcome::Transient => {
                if let Err(source) = result {
                    return Err(Error::ClaimWrite {
                        name: name.clone(),
                        source,
                    });
                }
            }
            _ => {}
        }
    }
    if !deleted.is_empty() {
        ctx.engine
            .publish(
                app,
                EventType::Normal,
                reason::CLAIM_DELETED,
                format!(
                    "Deleted claims {} of removed ordinals (whenScaled: Delete)",
                    list(&deleted)
                ),
            )
            .await;
    }
    Ok(())
}

/// Removes the planned pods: outdated and scaled-in ones through the Eviction API (so
/// disruption budgets apply), finished ones deleted. Returns the first failure and
/// whether a budget blocked an eviction.
async fn delete_pods(
    ctx: &Context,
    app: &StatefulApp,
    api: &Api<Pod>,
    plan: &plan::Plan,
) -> (Option<Error>, bool) {
    let engine = &ctx.engine;
    let results = join_all(plan.deletes.iter().map(|d| async move {
        let evict = d.why != Why::Finished;
        (d, pods::remove(api, &d.name, &d.uid, evict).await)
    }))
    .await;
    let (mut first_error, mut blocked) = (None, vec![]);
    let (mut scaled_in, mut outdated, mut finished) = (vec![], vec![], vec![]);
    for (d, result) in results {
        match pods::removed(engine, &d.name, result) {
            pods::Removed::Done => {}
            pods::Removed::Blocked => {
                blocked.push(d.name.as_str());
                continue;
            }
            pods::Removed::Failed(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        }
        match d.why {
            Why::ScaleIn => scaled_in.push(d.name.as_str()),
            Why::Update => outdated.push(d.name.as_str()),
            Why::Finished => finished.push(d.name.as_str()),
        }
    }
    for (pods, type_, why, note) in [
        (
            &scaled_in,
            EventType::Normal,
            reason::SCALING_DOWN,
            "ordinals no longer asked for",
        ),
        (
            &outdated,
            EventType::Normal,
            reason::REPLACING,
            "an old revision",
        ),
        (
            &finished,
            EventType::Warning,
            reason::POD_FAILED,
            "pods that ended; their ordinals start again",
        ),
        (
            &blocked,
            EventType::Warning,
            reason::EVICTION_BLOCKED,
            "a PodDisruptionBudget allows no more disruptions; retrying",
        ),
    ] {
        if pods.is_empty() {
            continue;
        }
        let note = if why == reason::EVICTION_BLOCKED {
            format!("Cannot evict {} yet: {note}", list(pods))
        } else {
            format!("Deleted pods {} of {note}", list(pods))
        };
        engine.publish(app, type_, why, note).await;
    }
    (first_error, !blocked.is_empty())
}

/// Starts the planned pods, each at its revision's template.
async fn create_pods(
    ctx: &Context,
    app: &StatefulApp,
    observed: &Observed,
    api: &Api<Pod>,
    creates: &[&plan::Create],
) -> Option<Error> {
    let update = revisions::Template {
        name: observed.update.name.clone(),
        template: observed.update.template.clone(),
    };
    let templates: Vec<revisions::Template> = creates
        .iter()
        .map(|c| {
            if c.revision == update.name {
                update.clone()
            } else {
                revisions::template(&observed.revisions, &c.revision).unwrap_or(update.clone())
            }
        })
        .collect();
    let planned = creates
        .iter()
        .zip(&templates)
        .filter_map(|(c, t)| {
            Some(pods::Planned {
                pod: pod::build(app, &t.template, c.ordinal, &t.name)?,
                slot: c.ordinal,
                revision: &t.name,
                template: &t.template,
            })
        })
        .collect();
    let (created, transient) = pods::create(&ctx.engine, app, &observed.uid, api, planned).await;
    if !created.is_empty() {
        let created: Vec<&str> = created.iter().map(String::as_str).collect();
        info!(statefulapp = %app.name_any(), pods = %list(&created), "created pods");
        ctx.engine
            .publish(
                app,
                EventType::Normal,
                reason::SCALING_UP,
                format!("Created pods {}", list(&created)),
            )
            .await;
    }
    transient
}
