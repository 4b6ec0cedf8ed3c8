//! Objects a workload owns beside its pods (Services, a disruption budget), kept in line
//! with what its spec asks for.

use std::sync::Arc;

use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::error::{WriteOutcome, classify};
use super::{Engine, Object};

/// Brings an object the workload owns in line: applied (server-side) when missing or
/// different from `desired`, deleted when no longer wanted. An object of that name that
/// the workload does not own is left alone (applying would take it over, and deleting the
/// workload would then delete it): that conflict is returned, as a sentence for the
/// status. The error says whether it was deleting.
pub async fn converge<W: Object, K>(
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
