//! The start of every workload's pass, whatever its kind: the workload read (or its spec
//! reported unreadable), a deleted one forgotten, a cached version older than drover's own
//! last write waited out, and a pending undo applied.

use drover_crds::names::reason;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::{debug, warn};

use super::status::STALE_RETRY;
use super::{Engine, Error, Object, undo};

/// The workload and its UID to go on with, or how the pass ends here.
pub async fn begin<'a, K: Object>(
    engine: &Engine,
    guard: &'a DeserializeGuard<K>,
) -> Result<Result<(&'a K, String), Action>, Error> {
    let object = guard.0.as_ref().map_err(|invalid| Error::InvalidSpec {
        kind: K::KIND,
        name: invalid.metadata.name.clone().unwrap_or_default(),
        reason: invalid.error.clone(),
    })?;
    let uid = object.uid().ok_or_else(|| Error::MissingUid {
        kind: K::KIND,
        name: object.name_any(),
    })?;
    if object.meta().deletion_timestamp.is_some() {
        // What it owns goes with it through the owner references.
        engine.forget(&uid);
        return Ok(Err(Action::await_change()));
    }
    if engine
        .ledger
        .is_stale(&uid, object.resource_version().as_deref())
    {
        // drover's own last write has not reached the cache yet; the watch event of that
        // write wakes the workload again.
        debug!(kind = K::KIND, name = %object.name_any(), "waiting for the cache to show drover's own write");
        return Ok(Err(Action::requeue(STALE_RETRY)));
    }
    match undo::apply(engine, object, &uid).await {
        Ok(true) => return Ok(Err(Action::await_change())),
        Ok(false) => {}
        // The undo is tried again by the next pass; this one still keeps the pods.
        Err(error) => {
            warn!(kind = K::KIND, name = %object.name_any(), %error, "undo failed");
            engine
                .publish(
                    object,
                    EventType::Warning,
                    reason::UNDO_FAILED,
                    error.to_string(),
                )
                .await;
        }
    }
    Ok(Ok((object, uid)))
}
