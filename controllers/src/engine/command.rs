//! The command annotations of a workload (`drover.dev/promote`, `drover.dev/abort`, read
//! by [`crate::rollout::command`]): which one a pass acts on, and settling it once the
//! status holds its effect — an Event saying what happened (or why nothing could), and
//! the annotation removed.

use std::collections::HashSet;
use std::sync::Mutex;

use drover_crds::names::{annotation, reason};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;

use super::error::Error;
use super::{Engine, Object};
use crate::rollout::command::{self, Command, Effect};
use crate::runtime::lock;

/// Commands acted on whose annotation's removal the watch has not shown yet, as
/// (workload UID, annotation). A pass in between must not act on them twice.
#[derive(Debug, Default)]
pub struct Acted(Mutex<HashSet<(String, &'static str)>>);

/// A command found in the annotations.
enum Found {
    /// Not acted on yet (or unreadable: the message says why).
    New(Result<Command, String>),
    /// Acted on; its removal may not have reached the cache (or failed).
    Acted(&'static str),
}

fn find<K: Object>(engine: &Engine, object: &K) -> Option<Found> {
    let annotations = object.annotations();
    let uid = object.uid().unwrap_or_default();
    let mut acted = lock(&engine.commands.0);
    acted.retain(|(u, key)| *u != uid || annotations.contains_key(*key));
    if let Some(key) = [annotation::ABORT, annotation::PROMOTE]
        .into_iter()
        .find(|key| acted.contains(&(uid.clone(), *key)))
    {
        return Some(Found::Acted(key));
    }
    command::parse(annotations).map(Found::New)
}

/// The command to act on in this pass, if any.
pub fn pending<K: Object>(engine: &Engine, object: &K) -> Option<Command> {
    match find(engine, object) {
        Some(Found::New(Ok(command))) => Some(command),
        _ => None,
    }
}

/// Settles the pending command once the status holds its `effect`: publishes what
/// happened (or why nothing could) and removes the annotation.
pub async fn settle<K: Object>(engine: &Engine, object: &K, effect: Effect) -> Result<(), Error> {
    let key = match find(engine, object) {
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
            lock(&engine.commands.0).insert((object.uid().unwrap_or_default(), key));
            key
        }
    };
    let patch = json!({"metadata": {"annotations": {key: null}}});
    let api: Api<K> = Api::namespaced(
        engine.client.clone(),
        &object.namespace().unwrap_or_default(),
    );
    let written = api
        .patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|source| Error::Annotation {
            kind: K::KIND,
            name: object.name_any(),
            key,
            source,
        })?;
    let uid = object.uid().unwrap_or_default();
    engine
        .ledger
        .wrote(&uid, object.resource_version(), written.resource_version());
    engine.wrote("patch", K::PLURAL);
    Ok(())
}
