//! The App's pods: built from its template, and read back into what the plan needs.

use std::collections::BTreeMap;

use drover_crds::App;
use drover_crds::names::label;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::plan::{Create, slot_of};
use super::status::Stuck;
use crate::engine::controller_ref;
use crate::rollout::pods::{Phase, PodState};

/// The pod for a slot: the revision's template, named and labelled by drover (with the
/// revision) and owned by the App (so deleting the App deletes it); with
/// `placement.binPack`, placed by drover's scheduler (named `scheduler`).
pub fn build(
    app: &App,
    template: &PodTemplateSpec,
    create: &Create,
    revision: &str,
    scheduler: &str,
) -> Option<Pod> {
    let name = app.name_any();
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = meta.labels.unwrap_or_default();
    labels.insert(label::APP.into(), name.clone());
    labels.insert(label::SLOT.into(), create.slot.to_string());
    labels.insert(label::REVISION.into(), revision.into());
    labels.insert(label::MANAGED_BY.into(), label::MANAGED_BY_VALUE.into());
    let mut spec = template.spec.clone();
    if app.spec.placement.as_ref().is_some_and(|p| p.bin_pack)
        && let Some(spec) = spec.as_mut()
    {
        spec.scheduler_name = Some(scheduler.into());
    }
    Some(Pod {
        metadata: ObjectMeta {
            name: Some(create.name.clone()),
            namespace: app.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            owner_references: Some(vec![controller_ref(app)?]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

/// A pod's UID and revision if the App (by UID) controls it and it is not going away: a
/// pod the App counts.
pub fn own_live(pod: &Pod, app_uid: &str) -> Option<(String, String)> {
    let controlled = pod
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == app_uid);
    if !controlled || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let revision = pod
        .labels()
        .get(label::REVISION)
        .cloned()
        .unwrap_or_default();
    Some((pod.uid()?, revision))
}

/// What the plan needs of an observed pod; `None` for a pod whose name is not one of the
/// App's slots.
pub fn state(app: &str, pod: &Pod) -> Option<PodState> {
    let name = pod.name_any();
    let slot = slot_of(app, &name)?;
    let status = pod.status.clone().unwrap_or_default();
    let phase = match status.phase.as_deref() {
        Some("Running") => Phase::Running,
        Some("Succeeded") => Phase::Succeeded,
        Some("Failed") => Phase::Failed,
        Some("Unknown") => Phase::Unknown,
        _ => Phase::Pending,
    };
    let ready_condition = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready");
    let ready = ready_condition.is_some_and(|c| c.status == "True");
    let restarts = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    Some(PodState {
        name,
        uid: pod.uid().unwrap_or_default(),
        slot,
        revision: pod
            .labels()
            .get(label::REVISION)
            .cloned()
            .unwrap_or_default(),
        phase,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        ready,
        ready_since: ready_condition
            .filter(|_| ready)
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0),
        created: pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
        restarts,
    })
}

/// Waiting reasons of a container that will not start by itself: it keeps crashing, its
/// image cannot be had, or the kubelet cannot build it from its spec (a missing
/// ConfigMap or Secret key, a bad command).
const STUCK: [&str; 8] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The pod's containers (init containers included) that will not start by themselves.
pub fn stuck(pod: &Pod) -> Vec<Stuck> {
    let Some(status) = &pod.status else {
        return vec![];
    };
    let init = status.init_container_statuses.iter().flatten();
    init.chain(status.container_statuses.iter().flatten())
        .filter_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.as_deref().filter(|r| STUCK.contains(r))?;
            Some(Stuck {
                pod: pod.name_any(),
                container: c.name.clone(),
                reason: reason.to_string(),
                message: waiting.message.clone().filter(|m| !m.is_empty()),
                restarts: c.restart_count,
                last_exit: c
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| {
                        format!(
                            "{}, exit code {}",
                            t.reason.as_deref().unwrap_or("Terminated"),
                            t.exit_code
                        )
                    }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn app() -> App {
        serde_json::from_value(json!({
            "apiVersion": "drover.dev/v1alpha1", "kind": "App",
            "metadata": {"name": "web", "namespace": "ns", "uid": "app-uid"},
            "spec": {"replicas": 2, "template": {
                "metadata": {"labels": {"tier": "front"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            }},
        }))
        .unwrap()
    }

    const SLOT_3: Create = Create {
        name: String::new(),
        slot: 3,
        stable: false,
    };

    #[test]
    fn pods_carry_the_template_drover_labels_and_an_owner() {
        let app = app();
        let create = Create {
            name: "web-3".into(),
            ..SLOT_3
        };
        let pod = build(
            &app,
            &app.spec.template,
            &create,
            "web-abc",
            "drover-scheduler",
        )
        .unwrap();
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels["tier"], "front");
        assert_eq!(labels["drover.dev/app"], "web");
        assert_eq!(labels["drover.dev/slot"], "3");
        assert_eq!(labels["drover.dev/revision"], "web-abc");
        assert_eq!(pod.metadata.annotations.unwrap()["a"], "b");
        assert_eq!(pod.metadata.name.as_deref(), Some("web-3"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ns"));
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("App", "app-uid", Some(true))
        );
        // A foreground deletion of the App waits for its pods.
        assert_eq!(owner.block_owner_deletion, Some(true));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.containers[0].image.as_deref(), Some("i"));
        assert_eq!(
            spec.scheduler_name, None,
            "the cluster's scheduler places it"
        );
    }

    #[test]
    fn an_existing_pod_counts_only_if_the_app_controls_it_and_it_stays() {
        let app = app();
        let mut pod = build(&app, &app.spec.template, &SLOT_3, "web-abc", "s").unwrap();
        pod.metadata.uid = Some("pod-uid".into());
        assert_eq!(
            own_live(&pod, "app-uid"),
            Some(("pod-uid".into(), "web-abc".into()))
        );
        // Another App's (a namesake recreated with a new UID), or going away.
        assert_eq!(own_live(&pod, "other-uid"), None);
        let mut going = pod.clone();
        going.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
        );
        assert_eq!(own_live(&going, "app-uid"), None);
        // Owned, but not as its controller.
        let mut adopted = pod;
        adopted.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        assert_eq!(own_live(&adopted, "app-uid"), None);
    }

    #[test]
    fn containers_that_cannot_start_are_stuck_and_starting_ones_are_not() {
        let waiting = |name: &str, reason: &str| {
            json!({"name": name, "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                   "state": {"waiting": {"reason": reason, "message": format!("{reason} here")}}})
        };
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0"},
            "status": {
                "initContainerStatuses": [waiting("init", "CreateContainerConfigError")],
                "containerStatuses": [
                    waiting("app", "InvalidImageName"),
                    waiting("side", "ContainerCreating"),
                    waiting("pull", "ErrImageNeverPull"),
                ],
            },
        }))
        .unwrap();
        let found: Vec<(String, String)> = stuck(&pod)
            .into_iter()
            .map(|s| (s.container, s.reason))
            .collect();
        assert_eq!(
            found,
            [
                ("init".into(), "CreateContainerConfigError".into()),
                ("app".into(), "InvalidImageName".into()),
                ("pull".into(), "ErrImageNeverPull".into()),
            ]
        );
    }

    #[test]
    fn bin_packed_apps_name_drovers_scheduler() {
        let mut app = app();
        app.spec.placement = Some(drover_crds::Placement { bin_pack: true });
        let pod = build(&app, &app.spec.template, &SLOT_3, "web-abc", "packer").unwrap();
        assert_eq!(pod.spec.unwrap().scheduler_name.as_deref(), Some("packer"));
    }

    #[test]
    fn reads_pod_state_and_crash_loops() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-2", "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"drover.dev/revision": "web-abc"}},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:01:00Z"}],
                "containerStatuses": [{
                    "name": "app", "ready": false, "restartCount": 4, "image": "i", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
                }],
            },
        }))
        .unwrap();
        let s = state("web", &pod).unwrap();
        assert_eq!(
            (s.slot, s.phase, s.ready, s.restarts),
            (2, Phase::Running, false, 4)
        );
        assert_eq!(s.node.as_deref(), Some("n1"));
        assert_eq!(s.revision, "web-abc");
        assert_eq!(s.ready_since, None);
        let loops = stuck(&pod);
        assert_eq!(loops.len(), 1);
        assert_eq!(loops[0].reason, "CrashLoopBackOff");
        assert_eq!(loops[0].last_exit.as_deref(), Some("Error, exit code 1"));
        assert!(state("api", &pod).is_none(), "not a slot of another app");
    }
}
