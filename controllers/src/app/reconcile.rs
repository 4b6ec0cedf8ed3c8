//! One pass over an App: observe (reflector stores only) → plan (pure) → act (creates,
//! deletes, the Service) → report (status and Events).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use drover_crds::names::{condition, field_manager, reason};
use drover_crds::{App, AppStatus};
use futures::future::join_all;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, EvictParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::command::{self, Effect};
use super::error::{Error, WriteOutcome, classify};
use super::plan::{self, Create, Delete, Input, NodeHealth, Phase, PodState, Removal};
use super::revisions::Template;
use super::status::{self, CrashLoop, Observation};
use super::{CONTROLLER, Context, blue_green, canary, disruption, pod, revisions, service, undo};
use crate::rollout;

/// Without anything happening, look again this often (drift check).
const RESYNC: Duration = Duration::from_secs(300);
/// An App whose store version predates drover's own last write is looked at again this
/// soon, if the write's watch event has not woken it first.
const STALE_RETRY: Duration = Duration::from_secs(1);
/// An eviction a disruption budget refused is tried again this soon.
const EVICTION_RETRY: Duration = Duration::from_secs(5);

pub async fn reconcile(
    guard: Arc<DeserializeGuard<App>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    ctx.synced().await;
    ctx.queue.done(&ObjectRef::from_obj(guard.as_ref()));
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let app = match &guard.0 {
        Ok(app) => app,
        Err(invalid) => {
            return Err(Error::InvalidApp {
                name: invalid.metadata.name.clone().unwrap_or_default(),
                reason: invalid.error.clone(),
            });
        }
    };
    let name = app.name_any();
    let uid = app
        .uid()
        .ok_or_else(|| Error::MissingUid { name: name.clone() })?;
    if app.metadata.deletion_timestamp.is_some() {
        // Pods and the Service go with the App through their owner references.
        ctx.ledger.forget(&uid);
        return Ok(Action::await_change());
    }
    if ctx.ledger.is_stale(&uid, app.resource_version().as_deref()) {
        // drover's own last write to this App has not reached the store yet; the watch
        // event of that write wakes the App again.
        debug!(app = %name, "waiting for the App store to show drover's own write");
        return Ok(Action::requeue(STALE_RETRY));
    }
    if undo::apply(&ctx, app, &uid).await? {
        return Ok(Action::await_change());
    }
    let namespace = app.namespace().unwrap_or_default();
    let now = Timestamp::now();

    // Observe.
    let owned: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.namespace().as_deref() == Some(namespace.as_str()) && pod::is_owned_by(p, &uid)
        })
        .collect();
    let mut pods: Vec<PodState> = owned.iter().filter_map(|p| pod::state(&name, p)).collect();
    let observed_count = pods.len();
    let observed: HashMap<String, String> = pods
        .iter()
        .map(|p| (p.name.clone(), p.uid.clone()))
        .collect();
    let in_use: HashSet<String> = pods.iter().map(|p| p.revision.clone()).collect();
    let update = revisions::sync(&ctx, app, &uid, &in_use).await?;
    for (pod_name, slot, revision) in ctx.ledger.in_flight(&uid, &observed) {
        pods.push(PodState {
            name: pod_name,
            uid: String::new(),
            slot,
            revision,
            phase: Phase::Pending,
            terminating: false,
            node: None,
            ready: false,
            ready_since: None,
            created: now,
            restarts: 0,
        });
    }
    let nodes = node_health(&ctx, &pods);
    let taken = ctx.ledger.taken(&uid);
    let node_fill = if app.spec.placement.as_ref().is_some_and(|p| p.bin_pack) {
        ctx.node_usage.start(&ctx.client);
        ctx.node_usage
            .fills(&ctx.nodes, pods.iter().filter_map(|p| p.node.as_deref()))
    } else {
        HashMap::new()
    };

    // Plan.
    let replicas = u32::try_from(app.spec.replicas).unwrap_or(0);
    let min_ready = Duration::from_secs(u64::try_from(app.spec.min_ready_seconds).unwrap_or(0));
    let canary = canary::decide(&ctx, app, &uid, &update, &pods, min_ready, now);
    let blue_green = blue_green::decide(&ctx, app, &uid, &update, &pods, min_ready, now);
    // A blue-green App sizes each side to `replicas` whether paused or not; any other
    // rollout holds its split while paused.
    let method = match (&canary, &blue_green) {
        (_, Some(b)) => b.method,
        _ if app.spec.paused => rollout::held(&app.spec.strategy, replicas),
        (Some(c), _) => c.method,
        _ => rollout::method(&app.spec.strategy, replicas),
    };
    let stable = match (&canary, &blue_green) {
        (Some(c), _) => c.stable.clone(),
        (_, Some(b)) => b.stable.clone(),
        _ => revisions::stable(&ctx, app, &uid, &update),
    };
    let plan = plan::plan(&Input {
        app: &name,
        replicas,
        update_revision: &update.name,
        method,
        stable: stable.is_some(),
        disruption_budget: app
            .spec
            .disruption
            .as_ref()
            .map(|d| rollout::disruption_budget(&d.max_unavailable, replicas)),
        min_ready,
        pods: &pods,
        nodes: &nodes,
        taken: &taken,
        node_fill: &node_fill,
        now,
        node_lost_grace: ctx.config.node_lost_grace,
    });
    if !plan.is_empty() {
        debug!(app = %name, namespace = %namespace, creates = plan.creates.len(), deletes = plan.deletes.len(), "plan");
    }

    // Act.
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let (delete_error, evictions_blocked) =
        delete_pods(&ctx, app, &pod_api, &owned, &plan.deletes).await;
    let create_error = match ctx.ledger.create_backoff(&uid) {
        Some(_) => None,
        None => {
            let update = Template {
                name: update.name.clone(),
                template: update.template.clone(),
            };
            create_pods(
                &ctx,
                app,
                &uid,
                (&update, stable.as_ref()),
                &pod_api,
                &plan.creates,
            )
            .await
        }
    };
    let active = blue_green.as_ref().map(|b| b.status.active.as_str());
    reconcile_service(&ctx, app, &namespace, &uid, &update.name, active).await?;
    reconcile_budget(&ctx, app, &namespace, &uid).await?;
    if let Some(e) = delete_error.or(create_error) {
        return Err(e);
    }

    // Report.
    if plan.creates.is_empty() {
        ctx.ledger.settle(&uid);
    }
    let refusal = ctx.ledger.refusal(&uid);
    let crash_loops: Vec<CrashLoop> = owned.iter().flat_map(|p| pod::crash_loops(p)).collect();
    let (status, available_at) = status::compute(
        &Observation {
            app: &name,
            generation: app.metadata.generation,
            replicas: app.spec.replicas,
            update_revision: &update.name,
            revision_number: update.number,
            min_ready,
            progress_deadline: Duration::from_secs(
                u64::try_from(app.spec.progress_deadline_seconds).unwrap_or(1),
            ),
            paused: app.spec.paused,
            canary: canary.as_ref().map(|c| c.status.clone()),
            blue_green: blue_green.as_ref().map(|b| b.status.clone()),
            hold: canary
                .as_ref()
                .and_then(|c| c.hold.clone())
                .or(blue_green.as_ref().and_then(|b| b.hold.clone())),
            pods: &pods[..observed_count],
            crash_loops: &crash_loops,
            create_failure: refusal.as_deref(),
            now,
        },
        app.status.as_ref(),
    );
    report_transitions(&ctx, app, app.status.as_ref(), &status).await;
    if app.spec.auto_rollback
        && let Some(stalled) = status
            .conditions
            .iter()
            .find(|c| c.reason == reason::PROGRESS_DEADLINE_EXCEEDED)
        && !status.current_revision.is_empty()
        && status.current_revision != status.update_revision
    {
        let why = format!("automatically, {}", stalled.message);
        undo::to_revision(&ctx, app, &uid, &status.current_revision, &why).await?;
        return Ok(Action::await_change());
    }
    if app.status.as_ref() != Some(&status) {
        // Conditional on the version read: a status computed from an App that changed
        // meanwhile (or from a leader's outdated view) is not written.
        let api: Api<App> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = json!({
            "apiVersion": App::api_version(&()),
            "kind": App::kind(&()),
            "metadata": {"resourceVersion": app.resource_version()},
            "status": status,
        });
        match api
            .patch_status(
                &name,
                &PatchParams::apply(field_manager::APP).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(written) => {
                ctx.ledger
                    .wrote_app(&uid, app.resource_version(), written.resource_version());
                ctx.metrics.write(CONTROLLER, "patch_status", "apps");
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                debug!(app = %name, "the App changed since it was read; its status waits for the next pass");
                return Ok(Action::requeue(STALE_RETRY));
            }
            Err(source) => {
                return Err(Error::StatusPatch {
                    name: name.clone(),
                    source,
                });
            }
        }
    }
    let wake_at = canary
        .as_ref()
        .and_then(|c| c.wake_at)
        .or(blue_green.as_ref().and_then(|b| b.wake_at));
    let effect = match (&canary, blue_green) {
        (Some(c), _) => canary::effect(c),
        (_, Some(b)) => b.effect,
        _ => Effect::Nothing,
    };
    command::settle(&ctx, app, effect).await?;

    ctx.backoff.reset(&uid);
    let revisit = [plan.revisit_at, available_at].into_iter().flatten().min();
    let mut wait = revisit.map_or(RESYNC, |at| until(now, at).min(RESYNC));
    if let Some(backoff) = ctx.ledger.create_backoff(&uid) {
        wait = wait.min(backoff);
    }
    if let Some(expiry) = ctx.ledger.next_expiry(&uid) {
        wait = wait.min(expiry + Duration::from_secs(1));
    }
    if let Some(settling) = update.settling {
        wait = wait.min(settling);
    }
    if evictions_blocked {
        wait = wait.min(EVICTION_RETRY);
    }
    if let Some(at) = wake_at {
        wait = wait.min(until(now, at));
    }
    Ok(Action::requeue(wait))
}

fn until(now: Timestamp, at: Timestamp) -> Duration {
    // A second of slack so the state has changed when the App is looked at again.
    Duration::try_from(at.duration_since(now)).unwrap_or_default() + Duration::from_secs(1)
}

/// Health of the nodes the pods are bound to, from the node store.
fn node_health(ctx: &Context, pods: &[PodState]) -> HashMap<String, NodeHealth> {
    let mut nodes = HashMap::new();
    for node in pods.iter().filter_map(|p| p.node.as_deref()) {
        if nodes.contains_key(node) {
            continue;
        }
        if let Some(n) = ctx.nodes.get(&ObjectRef::<Node>::new(node)) {
            nodes.insert(node.to_string(), health_of(&n));
        }
    }
    nodes
}

fn health_of(node: &Node) -> NodeHealth {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    match ready {
        Some(c) if c.status == "True" => NodeHealth::Ready,
        Some(c) => NodeHealth::NotReadySince(
            c.last_transition_time
                .as_ref()
                .map_or(Timestamp::now(), |t| t.0),
        ),
        // A node that has never reported is not ready yet; its pods get the grace period.
        None => NodeHealth::NotReadySince(
            node.metadata
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::now(), |t| t.0),
        ),
    }
}

/// Removes the planned pods, each with its UID as precondition (so a pod re-created
/// under the same name is never removed by mistake). Voluntary removals (scale-in, a
/// rollout) go through the Eviction API, so PodDisruptionBudgets apply; finished pods and
/// pods of lost nodes are deleted. Returns the first failure, and whether a budget
/// blocked an eviction.
async fn delete_pods(
    ctx: &Context,
    app: &App,
    api: &Api<Pod>,
    owned: &[Arc<Pod>],
    deletes: &[Delete],
) -> (Option<Error>, bool) {
    if deletes.is_empty() {
        return (None, false);
    }
    let results = join_all(deletes.iter().map(|d| async move {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(d.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let result = match d.reason {
            Removal::ScaleDown | Removal::Outdated => {
                let evict = EvictParams {
                    delete_options: Some(params),
                    post_options: PostParams::default(),
                };
                api.evict(&d.name, &evict).await.map(drop)
            }
            Removal::Finished | Removal::NodeLost { .. } => {
                api.delete(&d.name, &params).await.map(drop)
            }
        };
        (d, result)
    }))
    .await;
    let mut first_error = None;
    let mut blocked = vec![];
    let mut scaled_down = vec![];
    let mut outdated = vec![];
    for (d, result) in results {
        match classify(&result) {
            WriteOutcome::Done | WriteOutcome::Gone => {}
            // 429 to an eviction: a disruption budget allows no more just now.
            _ if matches!(&result, Err(kube::Error::Api(s)) if s.code == 429) => {
                blocked.push(d.name.as_str());
                continue;
            }
            _ => {
                if let Err(source) = result {
                    first_error.get_or_insert(Error::PodDelete {
                        pod: d.name.clone(),
                        source,
                    });
                }
                continue;
            }
        }
        ctx.metrics.write(CONTROLLER, "delete", "pods");
        match &d.reason {
            Removal::ScaleDown => scaled_down.push(d.name.as_str()),
            Removal::Outdated => outdated.push(d.name.as_str()),
            Removal::Finished => {
                let why = owned
                    .iter()
                    .find(|p| p.name_any() == d.name)
                    .and_then(|p| p.status.as_ref())
                    .map(|s| {
                        let reason = s
                            .reason
                            .clone()
                            .unwrap_or_else(|| s.phase.clone().unwrap_or_default());
                        match &s.message {
                            Some(m) => format!("{reason}: {m}"),
                            None => reason,
                        }
                    })
                    .unwrap_or_default();
                info!(app = %app.name_any(), pod = %d.name, %why, "replacing a finished pod");
                ctx.publish(
                    app,
                    EventType::Warning,
                    "PodFailed",
                    format!("Pod {} ended ({why}); replacing it", d.name),
                )
                .await;
            }
            Removal::NodeLost { node } => {
                info!(app = %app.name_any(), pod = %d.name, %node, "replacing a pod of a lost node");
                let grace = ctx.config.node_lost_grace.as_secs();
                ctx.publish(
                    app,
                    EventType::Warning,
                    "NodeLost",
                    format!(
                        "Node {node} has been NotReady for more than {grace}s; replacing pod {}",
                        d.name
                    ),
                )
                .await;
            }
        }
    }
    if !scaled_down.is_empty() {
        ctx.publish(
            app,
            EventType::Normal,
            "ScalingDown",
            format!("Deleted pods {}", list(&scaled_down)),
        )
        .await;
    }
    if !outdated.is_empty() {
        ctx.publish(
            app,
            EventType::Normal,
            "Replacing",
            format!("Deleted pods {} of an old revision", list(&outdated)),
        )
        .await;
    }
    if !blocked.is_empty() {
        ctx.publish(
            app,
            EventType::Warning,
            reason::EVICTION_BLOCKED,
            format!(
                "Cannot evict {} yet: a PodDisruptionBudget allows no more disruptions; retrying",
                list(&blocked)
            ),
        )
        .await;
    }
    (first_error, !blocked.is_empty())
}

/// Creates the planned pods in batches of 1, 2, 4, ... so that a template the apiserver
/// refuses costs one request, not `replicas`. Returns a transient failure, if any.
async fn create_pods(
    ctx: &Context,
    app: &App,
    uid: &str,
    (update, stable): (&Template, Option<&Template>),
    api: &Api<Pod>,
    creates: &[Create],
) -> Option<Error> {
    let mut created = vec![];
    let mut batch = 1;
    let mut rest = creates;
    // A refusal stops creating (the condition and event say why); a transient failure
    // also fails the reconcile, to be retried with backoff.
    let mut stop = false;
    let mut transient = None;
    while !rest.is_empty() && !stop {
        let (now, later) = rest.split_at(batch.min(rest.len()));
        rest = later;
        batch *= 2;
        let results = join_all(now.iter().map(|c| async move {
            let revision = if c.stable {
                stable.unwrap_or(update)
            } else {
                update
            };
            let scheduler = &ctx.config.scheduler_name;
            let result = match pod::build(app, &revision.template, c, &revision.name, scheduler) {
                Some(p) => api
                    .create(&PostParams::default(), &p)
                    .await
                    .map(|p| p.uid().unwrap_or_default()),
                None => Ok(String::new()),
            };
            (c, revision.name.as_str(), result)
        }))
        .await;
        for (c, revision, result) in results {
            match classify(&result) {
                WriteOutcome::Done => {
                    let pod_uid = result.as_deref().unwrap_or_default();
                    ctx.ledger.created(uid, &c.name, pod_uid, c.slot, revision);
                    ctx.metrics.write(CONTROLLER, "create", "pods");
                    created.push(c.name.as_str());
                }
                WriteOutcome::AlreadyExists => ctx.ledger.name_taken(uid, &c.name),
                WriteOutcome::Refused(message) => {
                    let count = ctx.ledger.refused(uid, &message);
                    warn!(app = %app.name_any(), pod = %c.name, %message, "pod create refused");
                    if count == 1 || count.is_power_of_two() {
                        ctx.publish(
                            app,
                            EventType::Warning,
                            "FailedCreate",
                            format!("Creating pod {}: {message}", c.name),
                        )
                        .await;
                    }
                    stop = true;
                }
                // The namespace is going away, and the App with it.
                WriteOutcome::Gone => stop = true,
                WriteOutcome::Transient => {
                    stop = true;
                    if let Err(source) = result {
                        transient.get_or_insert(Error::PodCreate {
                            pod: c.name.clone(),
                            source,
                        });
                    }
                }
            }
        }
    }
    if !created.is_empty() {
        info!(app = %app.name_any(), pods = %list(&created), "created pods");
        ctx.publish(
            app,
            EventType::Normal,
            "ScalingUp",
            format!("Created pods {}", list(&created)),
        )
        .await;
    }
    transient
}

/// The Service follows `spec.ports`: applied when it differs, deleted when there are no
/// ports (only if it is the App's own).
async fn reconcile_service(
    ctx: &Context,
    app: &App,
    namespace: &str,
    uid: &str,
    update_revision: &str,
    active: Option<&str>,
) -> Result<(), Error> {
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    for (name, desired) in service::desired(app, update_revision, active) {
        let observed = ctx
            .services
            .get(&ObjectRef::<Service>::new(&name).within(namespace))
            .filter(|s| s.owner_references().iter().any(|o| o.uid == uid));
        converge(
            ctx,
            app,
            &api,
            &name,
            (desired, observed),
            service::matches,
            "services",
        )
        .await
        .map_err(|(deleting, source)| match deleting {
            false => Error::ServiceApply { name, source },
            true => Error::ServiceDelete { name, source },
        })?;
    }
    Ok(())
}

/// The App's PodDisruptionBudget, kept as `spec.disruption` asks.
async fn reconcile_budget(
    ctx: &Context,
    app: &App,
    namespace: &str,
    uid: &str,
) -> Result<(), Error> {
    let name = app.name_any();
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), namespace);
    let observed = ctx
        .budgets
        .get(&ObjectRef::<PodDisruptionBudget>::new(&name).within(namespace))
        .filter(|b| b.owner_references().iter().any(|o| o.uid == uid));
    converge(
        ctx,
        app,
        &api,
        &name,
        (disruption::build(app), observed),
        disruption::matches,
        "poddisruptionbudgets",
    )
    .await
    .map_err(|(_, source)| Error::BudgetWrite { name, source })
}

/// Brings an object the App owns in line: applied (server-side) when missing or
/// different from `desired`, deleted when no longer wanted. The error says whether it
/// was deleting.
async fn converge<K>(
    ctx: &Context,
    app: &App,
    api: &Api<K>,
    name: &str,
    (desired, observed): (Option<K>, Option<Arc<K>>),
    same: impl Fn(&K, &K) -> bool,
    resource: &'static str,
) -> Result<(), (bool, kube::Error)>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let kind = K::kind(&());
    match (desired, observed) {
        (Some(desired), observed) => {
            if observed.is_some_and(|o| same(&o, &desired)) {
                return Ok(());
            }
            api.patch(
                name,
                &PatchParams::apply(field_manager::APP).force(),
                &Patch::Apply(&desired),
            )
            .await
            .map_err(|e| (false, e))?;
            ctx.metrics.write(CONTROLLER, "apply", resource);
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
            ctx.metrics.write(CONTROLLER, "delete", resource);
            ctx.publish(
                app,
                EventType::Normal,
                &format!("{kind}Deleted"),
                format!("Deleted {kind} {name}: the App no longer asks for it"),
            )
            .await;
        }
        (None, None) => {}
    }
    Ok(())
}

/// Events for conditions that changed: the App became (un)available, or started
/// crash-looping.
async fn report_transitions(ctx: &Context, app: &App, old: Option<&AppStatus>, new: &AppStatus) {
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
            (EventType::Normal, "Available")
        } else {
            (EventType::Warning, "Unavailable")
        };
        ctx.publish(app, kind, reason, message).await;
    }
    if let Some((status, message)) = get(Some(new), condition::PROGRESSING)
        && status == "False"
        && get(old, condition::PROGRESSING).is_none_or(|c| c.0 == "True")
    {
        ctx.publish(
            app,
            EventType::Warning,
            reason::PROGRESS_DEADLINE_EXCEEDED,
            message,
        )
        .await;
    }
    let was_healthy = get(old, condition::HEALTHY).is_none_or(|c| c.0 == "True");
    if let Some((status, message)) = get(Some(new), condition::HEALTHY)
        && status == "False"
        && was_healthy
    {
        ctx.publish(app, EventType::Warning, "CrashLoopBackOff", message)
            .await;
    }
}

/// Up to five names, then a count.
fn list(names: &[&str]) -> String {
    let mut shown = names.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        shown.push_str(&format!(" and {} more", names.len() - 5));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_short() {
        assert_eq!(list(&["a", "b"]), "a, b");
        assert_eq!(
            list(&["a", "b", "c", "d", "e", "f", "g"]),
            "a, b, c, d, e and 2 more"
        );
    }

    #[test]
    fn node_health_reads_the_ready_condition() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        }))
        .unwrap();
        assert_eq!(
            health_of(&node),
            NodeHealth::NotReadySince("2026-01-01T00:00:00Z".parse().unwrap())
        );
    }
}
