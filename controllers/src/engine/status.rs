//! Writing a workload's status, the Events its condition changes raise, and when to look
//! at it again — the same for every kind.

use std::time::Duration;

use drover_crds::AppStatus;
use drover_crds::names::{condition, reason};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use serde::Serialize;
use serde_json::json;
use tracing::debug;

use super::{Engine, Error, Object, command, undo};
use crate::rollout::command::Effect;

/// Without anything happening, look again this often (drift check).
pub const RESYNC: Duration = Duration::from_secs(300);
/// A workload whose cached version predates drover's own last write is looked at again this
/// soon, if the write's watch event has not woken it first.
pub const STALE_RETRY: Duration = Duration::from_secs(1);
/// While only its counts move (pods starting, becoming ready), a workload's status is
/// written at most this often; any other change is written at once. Under a burst of pod
/// events this keeps the controller's writes (and the passes their watch events cause)
/// for the pods, not for every intermediate count.
pub const COUNTS_INTERVAL: Duration = Duration::from_secs(1);
/// An eviction a disruption budget refused is tried again this soon.
pub const EVICTION_RETRY: Duration = Duration::from_secs(5);

/// With `autoRollback`: when the progress deadline passed (as `status` says) and an
/// earlier revision completed, goes back to it, as `drover.dev/undo` would. Returns
/// whether it did.
pub async fn roll_back_if_stalled<K: Object>(
    engine: &Engine,
    object: &K,
    uid: &str,
    status: &AppStatus,
) -> Result<bool, Error> {
    let Some(stalled) = status
        .conditions
        .iter()
        .find(|c| c.reason == reason::PROGRESS_DEADLINE_EXCEEDED)
    else {
        return Ok(false);
    };
    if status.current_revision.is_empty() || status.current_revision == status.update_revision {
        return Ok(false);
    }
    let why = format!("automatically, {}", stalled.message);
    undo::to_revision(engine, object, uid, &status.current_revision, &why).await?;
    Ok(true)
}

/// Records a pass: writes the workload's status `new` if it differs from `old` — at
/// once, unless only counts moved (`counts_only`), which waits for [`COUNTS_INTERVAL`]
/// since the last write — then settles the pending command with `effect`. Returns how
/// long a held-back write waits, or the Action that ends the pass when the status was
/// computed from an outdated workload (not written).
pub async fn record<K: Object, S: Serialize + PartialEq>(
    engine: &Engine,
    object: &K,
    (old, new): (Option<&S>, &S),
    counts_only: bool,
    effect: Effect,
) -> Result<Result<Option<Duration>, Action>, Error> {
    let uid = object.uid().unwrap_or_default();
    // The version the workload is at after this pass's own writes.
    let mut version = object.resource_version();
    let changed = old != Some(new);
    let counts_wait = (changed && counts_only)
        .then(|| engine.ledger.status_wait(&uid, COUNTS_INTERVAL))
        .flatten();
    if changed && counts_wait.is_none() {
        match write(engine, object, new).await? {
            Some(written) => version = Some(written),
            None => return Ok(Err(Action::requeue(STALE_RETRY))),
        }
    }
    command::settle(engine, object, version, effect).await?;
    Ok(Ok(counts_wait))
}

/// When to look at a workload again, with nothing else happening: at the earliest of
/// `revisits` (a pod becoming available, a deadline), `waits` (a held-back status, a
/// blocked eviction), the ledger's create backoff and in-flight expiry, and [`RESYNC`].
pub fn next_pass(
    engine: &Engine,
    uid: &str,
    now: Timestamp,
    revisits: &[Option<Timestamp>],
    waits: &[Option<Duration>],
) -> Action {
    let ledger = [
        engine.ledger.create_backoff(uid),
        engine
            .ledger
            .next_expiry(uid)
            .map(|e| e + Duration::from_secs(1)),
    ];
    let wait = revisits
        .iter()
        .flatten()
        .map(|at| until(now, *at))
        .chain(waits.iter().chain(&ledger).flatten().copied())
        .fold(RESYNC, Duration::min);
    Action::requeue(wait)
}

/// Writes a workload's status, conditional on the version read: a status computed from
/// a workload that changed meanwhile (or from a leader's outdated view) is not written.
/// Returns the workload's version after the write, or `None` when it was not written.
pub async fn write<K: Object, S: Serialize>(
    engine: &Engine,
    object: &K,
    status: &S,
) -> Result<Option<String>, Error> {
    let (name, uid) = (object.name_any(), object.uid().unwrap_or_default());
    let api: Api<K> = Api::namespaced(
        engine.client.clone(),
        &object.namespace().unwrap_or_default(),
    );
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"resourceVersion": object.resource_version()},
        "status": status,
    });
    match api
        .patch_status(
            &name,
            &PatchParams::apply(engine.field_manager).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(written) => {
            engine
                .ledger
                .wrote(&uid, object.resource_version(), written.resource_version());
            engine.ledger.status_written(&uid);
            engine.wrote("patch_status", K::PLURAL);
            Ok(Some(written.resource_version().unwrap_or_default()))
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            debug!(kind = K::KIND, %name, "changed since it was read; its status waits for the next pass");
            Ok(None)
        }
        Err(source) => Err(Error::StatusPatch {
            kind: K::KIND,
            name,
            source,
        }),
    }
}

pub fn until(now: Timestamp, at: Timestamp) -> Duration {
    // A second of slack so the state has changed when the App is looked at again.
    Duration::try_from(at.duration_since(now)).unwrap_or_default() + Duration::from_secs(1)
}

/// Events for conditions that changed: the workload became (un)available, stalled, or started
/// crash-looping.
pub async fn transitions<K: Object>(
    engine: &Engine,
    object: &K,
    old: Option<&AppStatus>,
    new: &AppStatus,
) {
    let get = |s: Option<&AppStatus>, t: &str| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == t))
            .map(|c| (c.status.clone(), c.message.clone()))
    };
    let was = get(old, condition::AVAILABLE).map(|c| c.0);
    if let Some((status, message)) = get(Some(new), condition::AVAILABLE)
        && was.as_deref() != Some(status.as_str())
        && (was.is_some() || status == "True")
    {
        let (kind, reason) = if status == "True" {
            (EventType::Normal, reason::AVAILABLE)
        } else {
            (EventType::Warning, reason::UNAVAILABLE)
        };
        engine.publish(object, kind, reason, message).await;
    }
    if let Some((status, message)) = get(Some(new), condition::PROGRESSING)
        && status == "False"
        && get(old, condition::PROGRESSING).is_none_or(|c| c.0 == "True")
    {
        engine
            .publish(
                object,
                EventType::Warning,
                reason::PROGRESS_DEADLINE_EXCEEDED,
                message,
            )
            .await;
    }
    for (type_, reason) in [
        (condition::NAME_CONFLICT, reason::NAME_TAKEN),
        (condition::CONFIG_MISSING, reason::CONFIG_NOT_FOUND),
        (condition::PORT_UNDECLARED, reason::TARGET_PORT_NOT_FOUND),
        (condition::REVISION_FAILURE, reason::REVISION_NOT_STORED),
    ] {
        if let Some((_, message)) = get(Some(new), type_)
            && get(old, type_).is_none_or(|c| c.1 != message)
        {
            engine
                .publish(object, EventType::Warning, reason, message)
                .await;
        }
    }
    let was_healthy = get(old, condition::HEALTHY).is_none_or(|c| c.0 == "True");
    if let Some(healthy) = new
        .conditions
        .iter()
        .find(|c| c.type_ == condition::HEALTHY)
        && healthy.status == "False"
        && was_healthy
    {
        let (reason, message) = (healthy.reason.as_str(), healthy.message.clone());
        engine
            .publish(object, EventType::Warning, reason, message)
            .await;
    }
}
