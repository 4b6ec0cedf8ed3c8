//! `kubectl annotate app <name> drover.dev/undo=previous` (or `=<revision number>`): the
//! App returns to an earlier revision — its template goes back into the spec, and the
//! ConfigMaps and Secrets it references get the contents that revision ran with, from
//! its snapshots. The rollout back then follows the App's strategy.

use drover_crds::App;
use drover_crds::names::{annotation, reason};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::events::EventType;
use tracing::info;

use super::error::Error;
use super::{CONTROLLER, Context, config, revisions};
use crate::rollout::config::Pinned;

/// Where to go back to.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Previous,
    Number(i64),
}

fn parse(value: &str) -> Option<Target> {
    match value.trim() {
        "" | "previous" => Some(Target::Previous),
        n => n.parse().ok().filter(|n| *n > 0).map(Target::Number),
    }
}

/// The revision to return to, from the stored (name, number) pairs and the current one.
fn choose(target: &Target, stored: &[(String, i64)], current: Option<i64>) -> Option<usize> {
    let current = current.or_else(|| stored.iter().map(|(_, n)| *n).max())?;
    match target {
        Target::Previous => stored
            .iter()
            .enumerate()
            .filter(|(_, (_, n))| *n < current)
            .max_by_key(|(_, (_, n))| *n)
            .map(|(i, _)| i),
        Target::Number(wanted) => stored.iter().position(|(_, n)| n == wanted),
    }
}

/// Acts on the undo annotation if the App has one. Returns whether the App was changed
/// (the change itself wakes the next reconcile).
pub async fn apply(ctx: &Context, app: &App, uid: &str) -> Result<bool, Error> {
    let Some(value) = app.annotations().get(annotation::UNDO).cloned() else {
        return Ok(false);
    };
    let namespace = app.namespace().unwrap_or_default();
    let owned = revisions::owned(ctx, &namespace, uid);
    let stored: Vec<(String, i64)> = owned.iter().map(|r| (r.name_any(), r.revision)).collect();
    let current = app
        .status
        .as_ref()
        .and_then(|s| stored.iter().find(|(n, _)| *n == s.update_revision))
        .map(|(_, n)| *n);
    let chosen = parse(&value).and_then(|t| choose(&t, &stored, current));
    let parts = chosen.and_then(|i| Some((&owned[i], revisions::stored_parts(&owned[i])?)));
    let Some((revision, (template, pinned))) = parts else {
        let mut numbers: Vec<i64> = stored.iter().map(|(_, n)| *n).collect();
        numbers.sort_unstable();
        let numbers: Vec<String> = numbers.iter().map(i64::to_string).collect();
        ctx.publish(
            app,
            EventType::Warning,
            reason::UNDO_FAILED,
            format!(
                "annotation {}={value:?} names no earlier revision; set it to `previous` or one of the revision numbers {}",
                annotation::UNDO,
                numbers.join(", ")
            ),
        )
        .await;
        remove_annotation(ctx, app, None).await?;
        return Ok(true);
    };
    roll_back(ctx, app, revision, template, &pinned, "").await?;
    Ok(true)
}

/// Returns the App to its revision `name` (the progress deadline's automatic rollback).
pub async fn to_revision(
    ctx: &Context,
    app: &App,
    uid: &str,
    name: &str,
    why: &str,
) -> Result<(), Error> {
    let owned = revisions::owned(ctx, &app.namespace().unwrap_or_default(), uid);
    let Some(revision) = owned.iter().find(|r| r.name_any() == name) else {
        return Ok(());
    };
    let Some((template, pinned)) = revisions::stored_parts(revision) else {
        return Ok(());
    };
    roll_back(ctx, app, revision, template, &pinned, why).await
}

/// Restores the revision's config, puts its template into the spec (dropping the undo
/// annotation in the same write), and says so in an Event.
async fn roll_back(
    ctx: &Context,
    app: &App,
    revision: &ControllerRevision,
    template: PodTemplateSpec,
    pinned: &[Pinned],
    why: &str,
) -> Result<(), Error> {
    let restored = config::restore(ctx, &app.namespace().unwrap_or_default(), pinned).await?;
    remove_annotation(ctx, app, Some(template)).await?;
    let what = if restored.is_empty() {
        "template".to_string()
    } else {
        format!("template, {}", restored.join(", "))
    };
    let mut note = format!(
        "Rolled back to revision {} ({}): {what} restored",
        revision.revision,
        revision.name_any()
    );
    if !why.is_empty() {
        note.push_str(&format!(" ({why})"));
    }
    info!(app = %app.name_any(), revision = %revision.name_any(), number = revision.revision, "rolled back");
    ctx.publish(app, EventType::Normal, reason::ROLLED_BACK, note)
        .await;
    Ok(())
}

/// Removes the annotation and, with `template`, puts that template into the spec, in one
/// write conditional on the App not having changed since it was read.
async fn remove_annotation(
    ctx: &Context,
    app: &App,
    template: Option<PodTemplateSpec>,
) -> Result<(), Error> {
    let mut changed = app.clone();
    changed.annotations_mut().remove(annotation::UNDO);
    if let Some(template) = template {
        changed.spec.template = template;
    }
    changed.status = None;
    let api: Api<App> = Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    match api
        .replace(&app.name_any(), &PostParams::default(), &changed)
        .await
    {
        Ok(_) => {
            ctx.metrics.write(CONTROLLER, "update", "apps");
            Ok(())
        }
        // Changed meanwhile: the next pass reads the new version.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(source) => Err(Error::Undo {
            name: app.name_any(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Vec<(String, i64)> {
        vec![("a".into(), 1), ("c".into(), 4), ("b".into(), 2)]
    }

    #[test]
    fn reads_the_annotation() {
        assert_eq!(parse("previous"), Some(Target::Previous));
        assert_eq!(parse(""), Some(Target::Previous));
        assert_eq!(parse(" 3 "), Some(Target::Number(3)));
        assert_eq!(parse("0"), None);
        assert_eq!(parse("last"), None);
    }

    #[test]
    fn previous_is_the_newest_below_the_current_revision() {
        assert_eq!(choose(&Target::Previous, &stored(), Some(4)), Some(2));
        assert_eq!(choose(&Target::Previous, &stored(), Some(2)), Some(0));
        assert_eq!(choose(&Target::Previous, &stored(), Some(1)), None);
        // Without a status, the newest revision is the current one.
        assert_eq!(choose(&Target::Previous, &stored(), None), Some(2));
        assert_eq!(choose(&Target::Number(1), &stored(), Some(4)), Some(0));
        assert_eq!(choose(&Target::Number(3), &stored(), Some(4)), None);
        assert_eq!(choose(&Target::Previous, &[], None), None);
    }
}
