//! `kubectl drover rollout ...`: the optional kubectl plugin for drover's workloads (Apps,
//! and StatefulApps named `statefulapp/<name>`). Every command does exactly what the
//! stock `kubectl patch` / `kubectl annotate` documented in the README does, with
//! readable output; `status` follows the rollout until it is done.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use drover_crds::names::{annotation, label};
use drover_crds::revision::RevisionData;
use drover_crds::{App, AppStatus, StatefulApp};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "kubectl drover",
    about = "Rollouts of drover Apps and StatefulApps"
)]
struct Cli {
    /// Namespace of the workload (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Watch, inspect and steer a workload's rollout. WORKLOAD is `<name>` or `app/<name>`
    /// for an App, `statefulapp/<name>` for a StatefulApp.
    Rollout {
        #[command(subcommand)]
        action: Action,
    },
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Follow the rollout until it is complete (or report where it stands).
    Status {
        #[arg(value_parser = Target::parse, value_name = "WORKLOAD")]
        app: Target,
        /// Keep following (false: print where it stands and exit).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        watch: bool,
        /// Give up after this many seconds (0: never).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// List the App's revisions (`--revision N`: that revision's template and config).
    History {
        #[arg(value_parser = Target::parse, value_name = "WORKLOAD")]
        app: Target,
        #[arg(long)]
        revision: Option<i64>,
    },
    /// Return to the previous revision (or `--to-revision N`), template and config.
    Undo {
        #[arg(value_parser = Target::parse, value_name = "WORKLOAD")]
        app: Target,
        #[arg(long)]
        to_revision: Option<i64>,
    },
    /// Move a canary past its current step (`--full`: to every pod); switch a blue-green
    /// App to its preview.
    Promote {
        #[arg(value_parser = Target::parse, value_name = "WORKLOAD")]
        app: Target,
        #[arg(long)]
        full: bool,
    },
    /// Send a canary or a blue-green preview back to the stable revision.
    Abort {
        #[arg(value_parser = Target::parse, value_name = "WORKLOAD")]
        app: Target,
    },
    /// Hold template and config changes (scaling goes on).
    Pause {
        #[arg(value_parser = Target::parse, value_name = "WORKLOAD")]
        app: Target,
    },
    /// Let held changes roll out.
    Resume {
        #[arg(value_parser = Target::parse, value_name = "WORKLOAD")]
        app: Target,
    },
    /// Replace every pod (a new revision of the same template).
    Restart {
        #[arg(value_parser = Target::parse, value_name = "WORKLOAD")]
        app: Target,
    },
}

/// The kinds of workload the plugin steers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    App,
    StatefulApp,
}

impl Kind {
    /// As in messages and `kubectl get` (`app`, `statefulapp`).
    fn word(self) -> &'static str {
        match self {
            Kind::App => "app",
            Kind::StatefulApp => "statefulapp",
        }
    }

    fn resource(self) -> ApiResource {
        match self {
            Kind::App => ApiResource::erase::<App>(&()),
            Kind::StatefulApp => ApiResource::erase::<StatefulApp>(&()),
        }
    }
}

/// A workload named on the command line: `web`, `app/web`, `statefulapp/db`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    kind: Kind,
    name: String,
}

impl Target {
    fn parse(s: &str) -> Result<Target, String> {
        let (kind, name) = match s.split_once('/') {
            None => (Kind::App, s),
            Some((kind, name)) => {
                let kind = match kind.trim_end_matches(".drover.dev") {
                    "app" | "apps" | "dapp" => Kind::App,
                    "statefulapp" | "statefulapps" | "dsapp" => Kind::StatefulApp,
                    other => {
                        return Err(format!(
                            "{other:?} is not a drover workload: name an app/<name> or a statefulapp/<name>"
                        ));
                    }
                };
                (kind, name)
            }
        };
        if name.is_empty() {
            return Err(format!("{s:?} names no workload"));
        }
        Ok(Target {
            kind,
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.drover.dev/{}", self.kind.word(), self.name)
    }
}

/// What the commands read of a workload, whatever its kind: the status fields every
/// kind shares.
#[derive(Debug, Clone)]
struct Workload {
    kind: Kind,
    name: String,
    uid: String,
    generation: Option<i64>,
    replicas: i32,
    status: Option<AppStatus>,
}

impl From<App> for Workload {
    fn from(app: App) -> Self {
        Workload {
            kind: Kind::App,
            name: app.name_any(),
            uid: app.uid().unwrap_or_default(),
            generation: app.metadata.generation,
            replicas: app.spec.replicas,
            status: app.status,
        }
    }
}

impl From<StatefulApp> for Workload {
    fn from(app: StatefulApp) -> Self {
        Workload {
            kind: Kind::StatefulApp,
            name: app.name_any(),
            uid: app.uid().unwrap_or_default(),
            generation: app.metadata.generation,
            replicas: app.spec.replicas,
            status: app.status.as_ref().map(|s| s.rollout()),
        }
    }
}

/// The client and namespace the commands work in.
struct Cluster {
    client: Client,
    namespace: String,
}

impl Cluster {
    async fn get(&self, target: &Target) -> Result<Workload, kube::Error> {
        let (client, ns) = (self.client.clone(), self.namespace.as_str());
        Ok(match target.kind {
            Kind::App => Api::<App>::namespaced(client, ns)
                .get(&target.name)
                .await?
                .into(),
            Kind::StatefulApp => Api::<StatefulApp>::namespaced(client, ns)
                .get(&target.name)
                .await?
                .into(),
        })
    }

    async fn merge(&self, target: &Target, patch: &Value) -> Result<()> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &target.kind.resource(),
        );
        api.patch(&target.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .with_context(|| format!("patching {target}"))?;
        Ok(())
    }

    /// `kubectl annotate <kind> <name> <key>=<value> --overwrite`.
    async fn annotate(&self, target: &Target, key: &str, value: &str) -> Result<()> {
        self.merge(target, &json!({"metadata": {"annotations": {key: value}}}))
            .await
    }

    /// `kubectl patch <kind> <name> --type merge -p '{"spec":{"paused":...}}'`.
    async fn set_paused(&self, target: &Target, paused: bool) -> Result<()> {
        self.merge(target, &json!({"spec": {"paused": paused}}))
            .await?;
        let what = if paused { "paused" } else { "resumed" };
        println!("{target} {what}");
        Ok(())
    }
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
    let cluster = Cluster { client, namespace };
    let Top::Rollout { action } = cli.command;
    match action {
        Action::Status {
            app,
            watch,
            timeout,
        } => status(&cluster, &app, watch, timeout).await,
        Action::History { app, revision } => history(&cluster, &app, revision).await,
        Action::Undo { app, to_revision } => {
            let to = to_revision.map_or("previous".to_string(), |n| n.to_string());
            cluster.annotate(&app, annotation::UNDO, &to).await?;
            println!("{app} rolling back to revision {to}");
            Ok(())
        }
        Action::Promote { app, full } => {
            let how = if full { "full" } else { "step" };
            cluster.annotate(&app, annotation::PROMOTE, how).await?;
            println!("{app} promoted ({how})");
            Ok(())
        }
        Action::Abort { app } => {
            cluster.annotate(&app, annotation::ABORT, "true").await?;
            println!("{app} aborted");
            Ok(())
        }
        Action::Pause { app } => cluster.set_paused(&app, true).await,
        Action::Resume { app } => cluster.set_paused(&app, false).await,
        Action::Restart { app } => {
            let now = Timestamp::now().to_string();
            let patch = json!({"spec": {"template": {"metadata": {"annotations": {annotation::RESTARTED_AT: now}}}}});
            cluster.merge(&app, &patch).await?;
            println!("{app} restarted");
            Ok(())
        }
    }
}

/// Where a rollout stands: `Ok(true)` once complete, an error if it failed.
fn describe(workload: &Workload) -> Result<(bool, String)> {
    let (kind, name) = (workload.kind.word(), &workload.name);
    let Some(status) = workload.status.as_ref() else {
        return Ok((
            false,
            format!("Waiting for {kind} {name:?} to be observed..."),
        ));
    };
    if status.observed_generation != workload.generation {
        return Ok((
            false,
            format!("Waiting for {kind} {name:?} spec update to be observed..."),
        ));
    }
    let progressing = status.conditions.iter().find(|c| c.type_ == "Progressing");
    if let Some(c) = progressing
        && c.status == "False"
    {
        bail!(
            "{kind} {name:?} rollout failed ({}): {}",
            c.reason,
            c.message
        );
    }
    let replicas = workload.replicas;
    if complete(status, replicas) {
        return Ok((true, format!("{kind} {name:?} successfully rolled out")));
    }
    let held = progressing
        .filter(|c| {
            c.status != "True"
                || matches!(
                    c.reason.as_str(),
                    "Canary" | "BlueGreen" | "Paused" | "Partitioned" | "OnDelete"
                )
        })
        .map(|c| format!(" ({}: {})", c.reason, c.message))
        .unwrap_or_default();
    Ok((
        false,
        format!(
            "Waiting for {kind} {name:?} rollout to finish: {} of {replicas} updated replicas are available, {} running{held}...",
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

async fn status(cluster: &Cluster, target: &Target, watch: bool, timeout: u64) -> Result<()> {
    let (kind, name) = (target.kind.word(), &target.name);
    let started = std::time::Instant::now();
    let mut last = String::new();
    let mut unreachable = false;
    // When the apiserver last failed to answer at all.
    let mut lost: Option<std::time::Instant> = None;
    loop {
        let workload = match cluster.get(target).await {
            Ok(workload) => {
                unreachable = false;
                workload
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
                    eprintln!("reading {target}: {e}; trying again");
                    unreachable = true;
                }
                if timeout > 0 && started.elapsed() >= Duration::from_secs(timeout) {
                    bail!("timed out after {timeout}s waiting for {kind} {name:?} to roll out");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {target}")),
        };
        let (done, line) = describe(&workload)?;
        if line != last {
            println!("{line}");
            last = line;
        }
        if done || !watch {
            return Ok(());
        }
        if timeout > 0 && started.elapsed() >= Duration::from_secs(timeout) {
            bail!("timed out after {timeout}s waiting for {kind} {name:?} to roll out");
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

async fn history(cluster: &Cluster, target: &Target, revision: Option<i64>) -> Result<()> {
    let workload = cluster
        .get(target)
        .await
        .with_context(|| format!("reading {target}"))?;
    let (uid, name) = (workload.uid.as_str(), &target.name);
    let revisions: Api<ControllerRevision> =
        Api::namespaced(cluster.client.clone(), &cluster.namespace);
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
            .with_context(|| format!("{} {name:?} has no revision {n}", target.kind.word()))?;
        let data = r.data.as_ref().map(|d| d.0.clone()).unwrap_or_default();
        println!("{target} revision {n} ({}):", r.name_any());
        println!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(());
    }
    let status = workload.status.unwrap_or_default();
    println!("{target}");
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
    fn workloads_are_named_as_kubectl_names_them() {
        let app = Target::parse("web").unwrap();
        assert_eq!((app.kind, app.name.as_str()), (Kind::App, "web"));
        assert_eq!(Target::parse("app.drover.dev/web").unwrap(), app);
        let db = Target::parse("statefulapp/db").unwrap();
        assert_eq!((db.kind, db.name.as_str()), (Kind::StatefulApp, "db"));
        assert_eq!(Target::parse("dsapp/db").unwrap(), db);
        assert_eq!(db.to_string(), "statefulapp.drover.dev/db");
        let wrong = Target::parse("deployment/web").unwrap_err();
        assert!(
            wrong.contains("app/<name> or a statefulapp/<name>"),
            "{wrong}"
        );
        assert!(Target::parse("app/").is_err());
    }

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
        assert!(describe(&app.clone().into()).unwrap().0);
        let status = app.status.as_mut().unwrap();
        status.update_revision = "web-b".into();
        status.conditions = vec![
            serde_json::from_value(json!({
                "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": "no progress for 10s", "lastTransitionTime": "2026-01-01T00:00:00Z",
            }))
            .unwrap(),
        ];
        let err = describe(&app.into()).unwrap_err().to_string();
        assert!(err.contains("ProgressDeadlineExceeded"), "{err}");
    }
}
