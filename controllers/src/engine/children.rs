//! Objects a workload owns beside its pods (Services, a disruption budget), kept in line
//! with what its spec asks for.

use std::sync::Arc;

use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use drover_crds::Disruption;
use drover_crds::names::reason;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{ObjectRef, Store};

use super::error::{Error, WriteOutcome, classify};
use super::{Engine, Object, disruption};

/// The workload's Services, each brought in line with the one `desired` names (`None`:
/// not wanted, deleted if it is the workload's own). Returns the conflicts, as sentences.
pub async fn services<W: Object>(
    engine: &Engine,
    owner: &W,
    cache: &Store<Service>,
    desired: Vec<(String, Option<Service>)>,
    same: fn(&Service, &Service) -> bool,
) -> Result<Vec<String>, Error> {
    let (namespace, uid) = (owner.namespace().unwrap_or_default(), owner.uid());
    let api: Api<Service> = Api::namespaced(engine.client.clone(), &namespace);
    let mut conflicts = vec![];
    for (name, desired) in desired {
        let current = cache
            .get(&ObjectRef::<Service>::new(&name).within(&namespace))
            .filter(|s| {
                s.owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == uid.as_ref())
            });
        let conflict = converge(
            engine,
            owner,
            &api,
            &name,
            (desired, current),
            same,
            ("services", reason::SERVICE_DELETED),
        )
        .await
        .map_err(|(deleting, source)| match deleting {
            false => Error::ServiceApply { name, source },
            true => Error::ServiceDelete { name, source },
        })?;
        conflicts.extend(conflict);
    }
    Ok(conflicts)
}

/// The workload's PodDisruptionBudget, kept as its `disruption` asks. Returns a conflict,
/// as a sentence.
pub async fn budget<W: Object>(
    engine: &Engine,
    owner: &W,
    cache: &Store<PodDisruptionBudget>,
    disruption: Option<&Disruption>,
) -> Result<Option<String>, Error> {
    let (name, namespace) = (owner.name_any(), owner.namespace().unwrap_or_default());
    let api: Api<PodDisruptionBudget> = Api::namespaced(engine.client.clone(), &namespace);
    let uid = owner.uid();
    let current = cache
        .get(&ObjectRef::<PodDisruptionBudget>::new(&name).within(&namespace))
        .filter(|b| {
            b.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref())
        });
    converge(
        engine,
        owner,
        &api,
        &name,
        (disruption::build(owner, disruption), current),
        disruption::matches,
        ("poddisruptionbudgets", reason::BUDGET_DELETED),
    )
    .await
    .map_err(|(_, source)| Error::BudgetWrite { name, source })
}

/// Brings an object the workload owns in line: applied (server-side) when missing or
/// different from `desired`, deleted when no longer wanted. An object of that name that
/// the workload does not own is left alone (applying would take it over, and deleting the
/// workload would then delete it): that conflict is returned, as a sentence for the
/// status. The error says whether it was deleting.
async fn converge<W: Object, K>(
    engine: &Engine,
    owner: &W,
    api: &Api<K>,
    name: &str,
    (desired, current): (Option<K>, Option<Arc<K>>),
    same: impl Fn(&K, &K) -> bool,
    (resource, deleted): (&'static str, &'static str),
) -> Result<Option<String>, (bool, kube::Error)>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match (desired, current) {
        (Some(desired), current) => {
            if current.as_ref().is_some_and(|o| same(o, &desired)) {
                return Ok(None);
            }
            // Not among the workload's own (the watches follow only objects with drover's
            // label): one of that name may exist all the same.
            if current.is_none()
                && let Some(existing) = api.get_opt(name).await.map_err(|e| (false, e))?
                && !existing
                    .owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == owner.uid().as_ref())
            {
                let kind = K::kind(&());
                let owner_kind = W::KIND;
                return Ok(Some(format!(
                    "{kind} {name} exists and is not this {owner_kind}'s: drover leaves it alone; delete or rename it for the {owner_kind} to make its own"
                )));
            }
            api.patch(
                name,
                &PatchParams::apply(engine.field_manager).force(),
                &Patch::Apply(&desired),
            )
            .await
            .map_err(|e| (false, e))?;
            engine.wrote("apply", resource);
        }
        (None, Some(existing)) => {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: existing.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let result = api.delete(name, &params).await;
            if !matches!(classify(&result), WriteOutcome::Done | WriteOutcome::Gone)
                && let Err(source) = result
            {
                return Err((true, source));
            }
            engine.wrote("delete", resource);
            let kind = K::kind(&());
            engine
                .publish(
                    owner,
                    EventType::Normal,
                    deleted,
                    format!(
                        "Deleted {kind} {name}: the {} no longer asks for it",
                        W::KIND
                    ),
                )
                .await;
        }
        (None, None) => {}
    }
    Ok(None)
}
