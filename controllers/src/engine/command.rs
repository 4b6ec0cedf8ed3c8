//! The command annotations of a workload (`drover.dev/promote`, `drover.dev/abort`, read
//! by [`crate::rollout::command`]): which one a pass acts on, the record of it the status
//! takes in the same write as its effect, and settling it — an Event saying what happened
//! (or why nothing could), and the annotation removed.
//!
//! The record, not the controller's memory, says a command was acted on: a controller
//! that stops between the status write and the annotation's removal leaves both, and its
//! successor removes the annotation without acting again.

use drover_crds::CommandRecord;
use drover_crds::names::{annotation, reason};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;

use super::error::Error;
use super::{Engine, Object};
use crate::rollout::command::{self, Command, Effect};

/// A command found in the annotations.
enum Found {
    /// Not acted on yet (or unreadable: the message says why).
    New(Result<Command, String>),
    /// Acted on (the status records it); its removal may not have reached the cache, or
    /// the controller stopped before removing it.
    Acted(&'static str),
}

/// The command annotation in place, as the status would record it: abort before
/// promote (as [`command::parse`] reads them), its value, and when it was set (the
/// latest write of a field manager that owns it).
fn present<K: Object>(object: &K) -> Option<(&'static str, CommandRecord)> {
    let annotations = object.annotations();
    let key = [annotation::ABORT, annotation::PROMOTE]
        .into_iter()
        .find(|key| annotations.contains_key(*key))?;
    let field = format!("f:{key}");
    let set_at = object
        .meta()
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:metadata"]["f:annotations"].get(&field).is_some())
        })
        .filter_map(|m| m.time.clone())
        .max_by_key(|t| t.0);
    let record = CommandRecord {
        annotation: key.to_string(),
        value: annotations[key].clone(),
        set_at,
    };
    Some((key, record))
}

fn find<K: Object>(object: &K) -> Option<Found> {
    let (key, record) = present(object)?;
    if object.recorded().last_command == Some(&record) {
        return Some(Found::Acted(key));
    }
    command::parse(object.annotations()).map(Found::New)
}

/// The command to act on in this pass, if any.
pub fn pending<K: Object>(object: &K) -> Option<Command> {
    match find(object) {
        Some(Found::New(Ok(command))) => Some(command),
        _ => None,
    }
}

/// The record of the command this pass settles, for the status it writes: the one in
/// place and not yet recorded, unless its effect waits.
pub fn record<K: Object>(object: &K, effect: &Effect) -> Option<CommandRecord> {
    if *effect == Effect::Deferred {
        return None;
    }
    let (_, record) = present(object)?;
    (object.recorded().last_command != Some(&record)).then_some(record)
}

/// Settles the pending command once the status holds its `effect`: publishes what
/// happened (or why nothing could) and removes the annotation.
///
/// The removal is conditional on `version`, the object's version after the pass's own
/// writes: a command given again meanwhile must not be removed unseen. Refused (409), it
/// waits for the next pass, which sees the record and only removes it.
pub async fn settle<K: Object>(
    engine: &Engine,
    object: &K,
    version: Option<String>,
    effect: Effect,
) -> Result<(), Error> {
    let key = match find(object) {
        None => return Ok(()),
        Some(Found::Acted(key)) => key,
        Some(Found::New(parsed)) => {
            let (key, kind, reason, note) = match (parsed, effect) {
                (_, Effect::Deferred) => return Ok(()),
                (Err(message), _) => (
                    annotation::PROMOTE,
                    EventType::Warning,
                    reason::PROMOTED,
                    message,
                ),
                (Ok(command), Effect::Acted(kind, reason, note)) => {
                    (command.annotation(), kind, reason, note)
                }
                (Ok(command), Effect::Nothing) => (
                    command.annotation(),
                    EventType::Warning,
                    reason::PROMOTED,
                    format!(
                        "annotation {}: no canary or blue-green rollout is in progress; nothing to do",
                        command.annotation()
                    ),
                ),
            };
            engine.publish(object, kind, reason, note).await;
            key
        }
    };
    let patch = json!({"metadata": {"resourceVersion": version, "annotations": {key: null}}});
    let api: Api<K> = Api::namespaced(
        engine.client.clone(),
        &object.namespace().unwrap_or_default(),
    );
    let written = match api
        .patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(written) => written,
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
        Err(source) => {
            return Err(Error::Annotation {
                kind: K::KIND,
                name: object.name_any(),
                key,
                source,
            });
        }
    };
    // The version the cache may still show is the one this pass read: acting on it
    // again would undo the command.
    let uid = object.uid().unwrap_or_default();
    engine
        .ledger
        .wrote(&uid, object.resource_version(), written.resource_version());
    engine.wrote("patch", K::PLURAL);
    Ok(())
}
