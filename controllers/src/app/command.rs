//! Rollout commands given with `kubectl annotate`: `drover.dev/promote=step|full` and
//! `drover.dev/abort`. A strategy reads the pending one; once the status holds its effect
//! an Event says what happened and the annotation is removed.

use drover_crds::App;
use drover_crds::names::{annotation, reason};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;

use super::error::Error;
use super::{CONTROLLER, Context, lock};
use crate::rollout::canary::Command;

/// What a command did.
#[derive(Debug)]
pub enum Effect {
    /// Acted on: the Event to publish.
    Acted(EventType, &'static str, String),
    /// Not yet (a blue-green promotion waits for the preview): the annotation stays.
    Deferred,
    /// Nothing to act on.
    Nothing,
}

/// A command found in the App's annotations.
enum Found {
    /// Not acted on yet (or unreadable, reported by [`settle_command`]).
    New(Result<(Command, &'static str), String>),
    /// Acted on; its removal may not have reached the store (or failed).
    Acted(&'static str),
}

fn find(ctx: &Context, app: &App) -> Option<Found> {
    let annotations = app.annotations();
    let uid = app.uid().unwrap_or_default();
    let mut acted = lock(&ctx.acted);
    acted.retain(|(u, key)| *u != uid || annotations.contains_key(*key));
    if let Some(key) = [annotation::ABORT, annotation::PROMOTE]
        .into_iter()
        .find(|key| acted.contains(&(uid.clone(), *key)))
    {
        return Some(Found::Acted(key));
    }
    if annotations.contains_key(annotation::ABORT) {
        return Some(Found::New(Ok((Command::Abort, annotation::ABORT))));
    }
    let value = annotations.get(annotation::PROMOTE)?;
    Some(Found::New(match value.trim() {
        "" | "step" => Ok((Command::Promote, annotation::PROMOTE)),
        "full" => Ok((Command::PromoteFull, annotation::PROMOTE)),
        other => Err(format!(
            "annotation {}={other:?}: set it to `step` (past the current step) or `full` (every pod)",
            annotation::PROMOTE
        )),
    }))
}

/// The command to act on in this pass, if any.
pub fn pending(ctx: &Context, app: &App) -> Option<(Command, &'static str)> {
    match find(ctx, app) {
        Some(Found::New(Ok(command))) => Some(command),
        _ => None,
    }
}

/// Settles the pending command once the status holds its effect: publishes what
/// happened (or why nothing could) and removes the annotation.
pub async fn settle(ctx: &Context, app: &App, effect: Effect) -> Result<(), Error> {
    let key = match find(ctx, app) {
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
                (Ok((_, key)), Effect::Acted(kind, reason, note)) => (key, kind, reason, note),
                (Ok((_, key)), Effect::Nothing) => (
                    key,
                    EventType::Warning,
                    reason::PROMOTED,
                    format!(
                        "annotation {key}: no canary or blue-green rollout is in progress; nothing to do"
                    ),
                ),
            };
            ctx.publish(app, kind, reason, note).await;
            lock(&ctx.acted).insert((app.uid().unwrap_or_default(), key));
            key
        }
    };
    let patch = json!({"metadata": {"annotations": {key: null}}});
    let api: Api<App> = Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    let written = api
        .patch(
            &app.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|source| Error::Annotation {
            name: app.name_any(),
            key,
            source,
        })?;
    let uid = app.uid().unwrap_or_default();
    ctx.ledger
        .wrote_app(&uid, app.resource_version(), written.resource_version());
    ctx.metrics.write(CONTROLLER, "patch", "apps");
    Ok(())
}
