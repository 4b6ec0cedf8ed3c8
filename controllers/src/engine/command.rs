//! The command annotations of a workload (`drover.dev/promote`, `drover.dev/abort`, read
//! by [`crate::rollout::command`]): which one a pass acts on, the record of it the status
//! takes in the same write as its effect, and settling it — an Event saying what happened
//! (or why nothing could), and the annotation removed.
//!
//! The record, not the controller's memory, says a command was acted on: a controller
//! that stops between the status write and the annotation's removal leaves both, and its
//! successor removes the annotation without acting again. The removal writes the record's
//! number beside it (`drover.dev/settled-command`), in the same write: an annotation that
//! matches the record but whose removal is already written is the same command given
//! again (within the second `setAt` resolves), and is acted on.

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
        // An annotation does not know its number; see `number`.
        number: 0,
    };
    Some((key, record))
}

/// The record of the command in place, if it was acted on and its annotation not yet
/// removed.
fn acted<'a, K: Object>(object: &'a K, record: &CommandRecord) -> Option<&'a CommandRecord> {
    let last = object.recorded().last_command?;
    let same = last.annotation == record.annotation
        && last.value == record.value
        && last.set_at == record.set_at;
    let removed = object
        .annotations()
        .get(annotation::SETTLED_COMMAND)
        .and_then(|n| n.parse::<i64>().ok())
        == Some(last.number);
    (same && !removed).then_some(last)
}

fn find<K: Object>(object: &K) -> Option<Found> {
    let (key, record) = present(object)?;
    if acted(object, &record).is_some() {
        return Some(Found::Acted(key));
    }
    command::parse(object.annotations()).map(Found::New)
}

/// The number the command in place has or takes: the record's, once acted on; the next
/// one otherwise.
fn number<K: Object>(object: &K) -> i64 {
    let last = object.recorded().last_command.map_or(0, |l| l.number);
    match present(object) {
        Some((_, record)) if acted(object, &record).is_some() => last,
        _ => last + 1,
    }
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
    acted(object, &record).is_none().then(|| CommandRecord {
        number: number(object),
        ..record
    })
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
    let number = number(object);
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
    let patch = json!({"metadata": {
        "resourceVersion": version,
        "annotations": {key: null, annotation::SETTLED_COMMAND: number.to_string()},
    }});
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

#[cfg(test)]
mod tests {
    use drover_crds::App;
    use serde_json::{Value, json};

    use super::*;

    /// An App with `promote=step` set at `set_at` (by its field manager), the status
    /// recording `last` and the settled marker `settled`.
    fn app(set_at: &str, last: Value, settled: Option<&str>) -> App {
        let mut annotations = json!({"drover.dev/promote": "step"});
        if let Some(n) = settled {
            annotations["drover.dev/settled-command"] = json!(n);
        }
        serde_json::from_value(json!({
            "apiVersion": "drover.dev/v1alpha1", "kind": "App",
            "metadata": {
                "name": "web", "annotations": annotations,
                "managedFields": [{
                    "manager": "kubectl", "operation": "Update", "time": set_at,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:annotations": {"f:drover.dev/promote": {}}}},
                }],
            },
            "spec": {"replicas": 1, "template": {}},
            "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                "updatedReplicas": 1, "currentRevision": "", "updateRevision": "",
                "selector": "", "lastCommand": last},
        }))
        .unwrap()
    }

    fn acted_at(set_at: &str, number: i64) -> Value {
        json!({"annotation": "drover.dev/promote", "value": "step", "setAt": set_at, "number": number})
    }

    const T: &str = "2026-12-07T15:22:33Z";

    #[test]
    fn a_command_acted_on_and_still_in_place_is_not_acted_on_again() {
        let app = app(T, acted_at(T, 1), None);
        assert!(pending(&app).is_none());
        assert!(record(&app, &Effect::Nothing).is_none());
        // Nor when an earlier command's removal left its marker.
        let app = self::app(T, acted_at(T, 2), Some("1"));
        assert!(pending(&app).is_none());
    }

    #[test]
    fn the_same_command_given_again_within_the_second_is_a_new_one() {
        // The record's annotation was removed (marker 1): this one is new.
        let app = app(T, acted_at(T, 1), Some("1"));
        assert_eq!(pending(&app), Some(Command::Promote));
        let next = record(&app, &Effect::Nothing).unwrap();
        assert_eq!(next.number, 2);
        assert_eq!(
            next.set_at,
            acted_at(T, 1)["setAt"].as_str().map(|t| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t.parse().unwrap())
            })
        );
    }

    #[test]
    fn a_command_set_later_is_a_new_one() {
        let app = app("2026-12-07T15:22:35Z", acted_at(T, 4), Some("4"));
        assert_eq!(pending(&app), Some(Command::Promote));
        assert_eq!(record(&app, &Effect::Nothing).unwrap().number, 5);
        let app = self::app("2026-12-07T15:22:35Z", acted_at(T, 4), None);
        assert_eq!(pending(&app), Some(Command::Promote));
    }
}
