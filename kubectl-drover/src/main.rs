//! `kubectl drover rollout ...`: the optional kubectl plugin for drover Apps. Every command
//! does exactly what the stock `kubectl patch` / `kubectl annotate` documented in the
//! README does, with readable output; `status` follows the rollout until it is done.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use drover_crds::names::{annotation, label};
use drover_crds::revision::RevisionData;
use drover_crds::{App, AppStatus};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(name = "kubectl drover", about = "Rollouts of drover Apps")]
struct Cli {
    /// Namespace of the App (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Watch, inspect and steer an App's rollout.
    Rollout {
        #[command(subcommand)]
        action: Action,
    },
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Follow the rollout until it is complete (or report where it stands).
    Status {
        app: String,
        /// Keep following (false: print where it stands and exit).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        watch: bool,
        /// Give up after this many seconds (0: never).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// List the App's revisions (`--revision N`: that revision's template and config).
    History {
        app: String,
        #[arg(long)]
        revision: Option<i64>,
    },
    /// Return to the previous revision (or `--to-revision N`), template and config.
    Undo {
        app: String,
        #[arg(long)]
        to_revision: Option<i64>,
    },
    /// Move a canary past its current step (`--full`: to every pod); switch a blue-green
    /// App to its preview.
    Promote {
        app: String,
        #[arg(long)]
        full: bool,
    },
    /// Send a canary or a blue-green preview back to the stable revision.
    Abort { app: String },
    /// Hold template and config changes (scaling goes on).
    Pause { app: String },
    /// Let held changes roll out.
    Resume { app: String },
    /// Replace every pod (a new revision of the same template).
    Restart { app: String },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let client = Client::try_default()
        .await
        .context("connecting to the cluster (KUBECONFIG)")?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let apps: Api<App> = Api::namespaced(client.clone(), &namespace);
    let Top::Rollout { action } = cli.command;
    match action {
        Action::Status {
            app,
            watch,
            timeout,
        } => status(&apps, &app, watch, timeout).await,
        Action::History { app, revision } => {
            let revisions: Api<ControllerRevision> = Api::namespaced(client, &namespace);
            history(&apps, &revisions, &app, revision).await
        }
        Action::Undo { app, to_revision } => {
            let to = to_revision.map_or("previous".to_string(), |n| n.to_string());
            annotate(&apps, &app, annotation::UNDO, &to).await?;
            println!("app.drover.dev/{app} rolling back to revision {to}");
            Ok(())
        }
        Action::Promote { app, full } => {
            let how = if full { "full" } else { "step" };
            annotate(&apps, &app, annotation::PROMOTE, how).await?;
            println!("app.drover.dev/{app} promoted ({how})");
            Ok(())
        }
        Action::Abort { app } => {
            annotate(&apps, &app, annotation::ABORT, "true").await?;
            println!("app.drover.dev/{app} aborted");
            Ok(())
        }
        Action::Pause { app } => set_paused(&apps, &app, true).await,
        Action::Resume { app } => set_paused(&apps, &app, false).await,
        Action::Restart { app } => {
            let now = Timestamp::now().to_string();
            let patch = json!({"spec": {"template": {"metadata": {"annotations": {annotation::RESTARTED_AT: now}}}}});
            merge(&apps, &app, &patch).await?;
            println!("app.drover.dev/{app} restarted");
            Ok(())
        }
    }
}

async fn merge(apps: &Api<App>, name: &str, patch: &Value) -> Result<()> {
    apps.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .with_context(|| format!("patching app.drover.dev/{name}"))?;
    Ok(())
}

/// `kubectl annotate app <name> <key>=<value> --overwrite`.
async fn annotate(apps: &Api<App>, name: &str, key: &str, value: &str) -> Result<()> {
    merge(
        apps,
        name,
        &json!({"metadata": {"annotations": {key: value}}}),
    )
    .await
}

/// `kubectl patch app <name> --type merge -p '{"spec":{"paused":...}}'`.
async fn set_paused(apps: &Api<App>, name: &str, paused: bool) -> Result<()> {
    merge(apps, name, &json!({"spec": {"paused": paused}})).await?;
    let what = if paused { "paused" } else { "resumed" };
    println!("app.drover.dev/{name} {what}");
    Ok(())
}

/// Where a rollout stands: `Ok(true)` once complete, an error if it failed.
fn describe(app: &App) -> Result<(bool, String)> {
    let name = app.name_any();
    let Some(status) = app.status.as_ref() else {
        return Ok((false, format!("Waiting for app {name:?} to be observed...")));
    };
    if status.observed_generation != app.metadata.generation {
        return Ok((
            false,
            format!("Waiting for app {name:?} spec update to be observed..."),
        ));
    }
    let progressing = status.conditions.iter().find(|c| c.type_ == "Progressing");
    if let Some(c) = progressing
        && c.status == "False"
    {
        bail!("app {name:?} rollout failed ({}): {}", c.reason, c.message);
    }
    let replicas = app.spec.replicas;
    if complete(status, replicas) {
        return Ok((true, format!("app {name:?} successfully rolled out")));
    }
    let held = progressing
        .filter(|c| {
            c.status != "True" || matches!(c.reason.as_str(), "Canary" | "BlueGreen" | "Paused")
        })
        .map(|c| format!(" ({}: {})", c.reason, c.message))
        .unwrap_or_default();
    Ok((
        false,
        format!(
            "Waiting for app {name:?} rollout to finish: {} of {replicas} updated replicas are available, {} running{held}...",
            status.updated_replicas.min(status.available_replicas),
            status.replicas
        ),
    ))
}

fn complete(status: &AppStatus, replicas: i32) -> bool {
    status.updated_replicas == replicas
        && status.available_replicas == replicas
        && status.replicas == replicas
        && status.current_revision == status.update_revision
}

async fn status(apps: &Api<App>, name: &str, watch: bool, timeout: u64) -> Result<()> {
    let started = std::time::Instant::now();
    let mut last = String::new();
    let mut unreachable = false;
    // When the apiserver last failed to answer at all.
    let mut lost: Option<std::time::Instant> = None;
    loop {
        let app = match apps.get(name).await {
            Ok(app) => {
                unreachable = false;
                app
            }
            // Following a rollout outlasts an apiserver restart or a dropped connection,
            // as `kubectl rollout status` does; an App that is gone or forbidden ends it
            // (but an apiserver back from a restart refuses everyone until its
            // authorizer has synced, so a refusal right after one is tried again).
            Err(e)
                if watch
                    && (transient(&e)
                        || refused(&e) && lost.is_some_and(|at| at.elapsed() < RESTART_GRACE)) =>
            {
                if transient(&e) {
                    lost = Some(std::time::Instant::now());
                }
                if !unreachable {
                    eprintln!("reading app.drover.dev/{name}: {e}; trying again");
                    unreachable = true;
                }
                if timeout > 0 && started.elapsed() >= Duration::from_secs(timeout) {
                    bail!("timed out after {timeout}s waiting for app {name:?} to roll out");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("reading app.drover.dev/{name}")),
        };
        let (done, line) = describe(&app)?;
        if line != last {
            println!("{line}");
            last = line;
        }
        if done || !watch {
            return Ok(());
        }
        if timeout > 0 && started.elapsed() >= Duration::from_secs(timeout) {
            bail!("timed out after {timeout}s waiting for app {name:?} to roll out");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How long after the apiserver last failed to answer a refusal may still be its restart.
const RESTART_GRACE: Duration = Duration::from_secs(30);

/// Whether the apiserver refused the caller (401 or 403).
fn refused(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if matches!(status.code, 401 | 403))
}

/// Whether a failed read may succeed when tried again: the apiserver unreachable,
/// restarting or overloaded, not an answer about the App or the caller's rights.
fn transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => matches!(status.code, 429 | 500..),
        kube::Error::Auth(_) | kube::Error::SerdeError(_) | kube::Error::BuildRequest(_) => false,
        _ => true,
    }
}

/// The images of a stored template, comma-separated.
fn images(data: &RevisionData) -> String {
    data.template
        .spec
        .as_ref()
        .map(|spec| {
            spec.containers
                .iter()
                .filter_map(|c| c.image.as_deref())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The config a stored revision pinned, e.g. `ConfigMap/settings`.
fn config(data: &RevisionData) -> String {
    if data.config.is_empty() {
        return "<none>".into();
    }
    data.config
        .iter()
        .map(|p| format!("{}/{}", p.kind.as_str(), p.name))
        .collect::<Vec<_>>()
        .join(",")
}

async fn history(
    apps: &Api<App>,
    revisions: &Api<ControllerRevision>,
    name: &str,
    revision: Option<i64>,
) -> Result<()> {
    let app = apps
        .get(name)
        .await
        .with_context(|| format!("reading app.drover.dev/{name}"))?;
    let uid = app.uid().unwrap_or_default();
    let mut owned: Vec<ControllerRevision> = revisions
        .list(&ListParams::default().labels(&format!("{}={name}", label::APP)))
        .await
        .context("listing ControllerRevisions")?
        .items
        .into_iter()
        .filter(|r| r.owner_references().iter().any(|o| o.uid == uid))
        .collect();
    owned.sort_by_key(|r| r.revision);
    if let Some(n) = revision {
        let r = owned
            .iter()
            .find(|r| r.revision == n)
            .with_context(|| format!("app {name:?} has no revision {n}"))?;
        let data = r.data.as_ref().map(|d| d.0.clone()).unwrap_or_default();
        println!("app.drover.dev/{name} revision {n} ({}):", r.name_any());
        println!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(());
    }
    let status = app.status.unwrap_or_default();
    println!("app.drover.dev/{name}");
    println!(
        "{:<9} {:<22} {:<10} {:<40} CONFIG",
        "REVISION", "NAME", "STATE", "IMAGES"
    );
    for r in &owned {
        let data = r
            .data
            .as_ref()
            .and_then(|d| RevisionData::from_raw(&d.0))
            .unwrap_or_default();
        let rname = r.name_any();
        let state = if rname == status.update_revision && rname == status.current_revision {
            "current"
        } else if rname == status.update_revision {
            "updating"
        } else if rname == status.current_revision {
            "stable"
        } else {
            ""
        };
        println!(
            "{:<9} {:<22} {:<10} {:<40} {}",
            r.revision,
            rname,
            state,
            images(&data),
            config(&data)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_that_may_pass_are_tried_again() {
        let api = |code| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure("", "").with_code(code),
            ))
        };
        for code in [429, 500, 503, 504] {
            assert!(transient(&api(code)), "{code}");
        }
        for code in [401, 403, 404] {
            assert!(!transient(&api(code)), "{code}");
        }
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(transient(&kube::Error::ReadEvents(reset)));
    }

    #[test]
    fn reads_images_and_config_from_a_stored_revision() {
        let data = RevisionData::from_raw(&json!({
            "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:2"}]}},
            "config": [{"kind": "ConfigMap", "name": "settings", "snapshot": "settings-1"}],
        }))
        .unwrap();
        assert_eq!(images(&data), "x:1,y:2");
        assert_eq!(config(&data), "ConfigMap/settings");
        assert_eq!(config(&RevisionData::default()), "<none>");
    }

    #[test]
    fn a_failed_rollout_is_an_error_and_a_complete_one_is_done() {
        let mut app: App = serde_json::from_value(json!({
            "apiVersion": "drover.dev/v1alpha1", "kind": "App",
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"observedGeneration": 2, "replicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                "updatedReplicas": 2, "currentRevision": "web-a", "updateRevision": "web-a"},
        }))
        .unwrap();
        assert!(describe(&app).unwrap().0);
        let status = app.status.as_mut().unwrap();
        status.update_revision = "web-b".into();
        status.conditions = vec![
            serde_json::from_value(json!({
                "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": "no progress for 10s", "lastTransitionTime": "2026-01-01T00:00:00Z",
            }))
            .unwrap(),
        ];
        let err = describe(&app).unwrap_err().to_string();
        assert!(err.contains("ProgressDeadlineExceeded"), "{err}");
    }
}
