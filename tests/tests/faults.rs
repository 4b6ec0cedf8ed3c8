//! drover under faults and hostile input, on the real cluster: the scheduler outlives cut
//! connections (every watch lists again, nothing restarts), components hand their leases over
//! when asked to stop, refuse an App larger than the maximum and stay bounded at it, and
//! make a foreground deletion wait for the App's pods; mistakes in an App are named as the
//! user wrote them, and a revision that cannot be stored does not stop the healing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use drover_crds::App;
use drover_crds::app::MAX_REPLICAS;
use drover_e2e::*;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The pods of one of drover's Deployments.
async fn component_pods(client: &Client, deployment: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), "drover-system")
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/name={deployment}")))
        .await
        .unwrap()
        .items
}

/// Container restarts of a Deployment's pods, by pod.
async fn restarts(client: &Client, deployment: &str) -> Vec<(String, i32)> {
    let mut counts: Vec<(String, i32)> = component_pods(client, deployment)
        .await
        .iter()
        .map(|p| {
            let restarts = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
            (p.name_any(), restarts)
        })
        .collect();
    counts.sort();
    counts
}

/// Waits until `count` of the App's pods are Ready.
async fn wait_ready_pods(client: &Client, ns: &str, app: &str, count: usize) {
    wait_until_in(
        ns,
        &format!("{count} ready pods of App {app}"),
        Duration::from_secs(120),
        || async {
            let pods = app_pods(client, ns, app).await;
            let ready = pods
                .iter()
                .filter(|p| is_active_pod(p) && is_pod_ready(p))
                .count();
            if ready == count {
                Ok(())
            } else {
                Err(format!("{ready} ready of {} pods", pods.len()))
            }
        },
    )
    .await;
}

/// Cuts every connection of drover's `command` processes to the apiserver five times, two
/// seconds apart: each watch ends with an error mid-stream, each request in flight fails.
async fn cut_five_times(command: &str) {
    let mut cut = 0;
    for _ in 0..5 {
        cut += cut_connections(command);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(cut >= 5, "only {cut} connections of the {command} were cut");
}

#[tokio::test]
async fn the_controller_outlives_cut_connections() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-cut-app").await;
    // A bin-packed App before the cuts: it starts the controller's watch of every pod
    // (node fill) too.
    let mut manifest = app_manifest("packed", 2, "1", &Placement::FakeNode);
    manifest["spec"]["placement"] = json!({"binPack": true});
    create_app(&client, &ns.name, manifest).await;
    wait_ready_pods(&client, &ns.name, "packed", 2).await;
    let before = restarts(&client, CONTROLLER).await;
    cut_five_times("controller").await;
    // It still acts, with the same process: the App scales out and a new App starts.
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    patch_spec(&apps, "packed", json!({"replicas": 4})).await;
    create_app(
        &client,
        &ns.name,
        app_manifest("after", 2, "1", &Placement::FakeNode),
    )
    .await;
    wait_ready_pods(&client, &ns.name, "packed", 4).await;
    wait_ready_pods(&client, &ns.name, "after", 2).await;
    wait_until_in(
        &ns.name,
        "the new App's status",
        Duration::from_secs(60),
        || async {
            let app = apps.get("after").await.map_err(|e| e.to_string())?;
            let status = app.status.unwrap_or_default();
            if status.observed_generation.is_some() && status.available_replicas == 2 {
                Ok(())
            } else {
                Err(format!("{status:?}"))
            }
        },
    )
    .await;
    assert_eq!(
        before,
        restarts(&client, CONTROLLER).await,
        "the controller restarted after its connections were cut"
    );
}

#[tokio::test]
async fn the_scheduler_outlives_cut_connections() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-cut").await;
    let before = restarts(&client, SCHEDULER).await;
    cut_five_times("scheduler").await;
    // It still binds, with the same process.
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let names = ["cut-0", "cut-1", "cut-2"];
    for name in names {
        let mut pod = sample_pod(name, "1", &Placement::FakeNode);
        pod.spec.as_mut().unwrap().scheduler_name = Some(SCHEDULER.into());
        api.create(&PostParams::default(), &pod).await.unwrap();
    }
    wait_until_in(
        &ns.name,
        "the pods to be bound",
        Duration::from_secs(120),
        || async {
            let mut unbound = vec![];
            for name in names {
                let pod = api.get(name).await.map_err(|e| e.to_string())?;
                if node_of(&pod).is_empty() {
                    unbound.push(name);
                }
            }
            if unbound.is_empty() {
                Ok(())
            } else {
                Err(format!("unbound: {unbound:?}"))
            }
        },
    )
    .await;
    assert_eq!(
        before,
        restarts(&client, SCHEDULER).await,
        "the scheduler restarted after its connections were cut"
    );
}

#[tokio::test]
async fn a_component_asked_to_stop_gives_its_lease_up() {
    let client = client().await;
    for (deployment, lease) in [
        (SCHEDULER, "drover-scheduler"),
        (CONTROLLER, "drover-controller"),
    ] {
        wait_ready(deployment);
        // A holder that runs now (a predecessor may have left the lease to run out).
        let leader = wait_for(
            &format!("a running holder of {lease}"),
            Duration::from_secs(60),
            || async {
                let holder = lease_holder(&client, lease).await?;
                let running = component_pods(&client, deployment).await;
                running
                    .iter()
                    .any(|p| p.name_any() == holder && p.metadata.deletion_timestamp.is_none())
                    .then_some(holder)
            },
        )
        .await;
        // A graceful delete: SIGTERM, and the kubelet waits for the process to end.
        kubectl_ok(&[
            "-n",
            "drover-system",
            "delete",
            "pod",
            &leader,
            "--wait=true",
        ]);
        // Its lease was released on the way out, not left to run out (15 s after the
        // last renewal): the holder is nobody, or already the successor.
        let holder = lease_holder(&client, lease).await;
        assert_ne!(
            holder.as_deref(),
            Some(leader.as_str()),
            "{deployment} stopped without giving {lease} up"
        );
        wait_ready(deployment);
    }
}

/// Asserts that `kubectl <args>` (with `manifest` on stdin, if any) is refused with an
/// error that says `message`.
fn assert_refused(what: &str, args: &[&str], manifest: Option<&serde_json::Value>, message: &str) {
    let out = match manifest {
        Some(m) => kubectl_stdin(args, &m.to_string()),
        None => kubectl(args),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: accepted");
    assert!(
        stderr.contains(message),
        "{what}: the error does not say {message:?}:\n{stderr}"
    );
}

#[tokio::test]
async fn an_app_larger_than_the_maximum_is_refused() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-max").await;
    let mut manifest = app_manifest("huge", 2_000_000_000, "1", &Placement::FakeNode);
    manifest["metadata"]["namespace"] = json!(ns.name);
    let maximum = "spec.replicas may be at most 100000";
    assert_refused(
        "an App of 2,000,000,000",
        &["apply"],
        Some(&manifest),
        maximum,
    );
    // Scaling through the scale subresource (kubectl scale, an autoscaler) is refused
    // alike.
    manifest["spec"]["replicas"] = json!(1);
    kubectl_stdin(&["apply"], &manifest.to_string());
    let scale = ["-n", &ns.name, "scale", "app/huge", "--replicas=2000000000"];
    assert_refused("kubectl scale to 2,000,000,000", &scale, None, maximum);
}

/// Resident memory of drover's controller processes on this machine (the kind nodes'
/// containers are its processes), the largest.
fn controller_rss_kib() -> u64 {
    drover_processes("controller")
        .into_iter()
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .max()
        .expect("drover's controller runs on this machine")
}

#[tokio::test]
async fn a_scale_to_the_maximum_keeps_the_controller_bounded() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-bound").await;
    // Its pods fit no node, so they stay Pending and cost the cluster little.
    let mut manifest = app_manifest("wide", 0, "1", &Placement::FakeNode);
    manifest["spec"]["template"]["spec"]["nodeSelector"] =
        json!({"drover.dev/e2e-nowhere": "true"});
    create_app(&client, &ns.name, manifest).await;
    let mut steady = 0;
    for _ in 0..10 {
        steady = steady.max(controller_rss_kib());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    kubectl_ok(&[
        "-n",
        &ns.name,
        "scale",
        "app/wide",
        &format!("--replicas={MAX_REPLICAS}"),
    ]);
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(20) {
        peak = peak.max(controller_rss_kib());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pods = app_pods(&client, &ns.name, "wide").await.len();
    kubectl_ok(&["-n", &ns.name, "scale", "app/wide", "--replicas=0"]);
    assert!(pods > 0, "no pod was created");
    // A pass creates at most 500 pods; what the controller keeps of the pods it made is
    // small. 64 MiB is many times both, and a fraction of planning every replica at once.
    let grown = peak.saturating_sub(steady);
    eprintln!(
        "controller RSS: steady {steady} KiB, peak {peak} KiB (+{grown} KiB) within 20 s of a \
         scale to {MAX_REPLICAS} ({pods} pods made)"
    );
    assert!(
        grown < 64 * 1024,
        "the controller grew by {grown} KiB (from {steady} KiB) within 20 s of a scale to {MAX_REPLICAS} ({pods} pods made)"
    );
}

#[tokio::test]
async fn a_foreground_deletion_waits_for_the_pods() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-fg").await;
    create_app(
        &client,
        &ns.name,
        app_manifest("web", 1, "1", &Placement::FakeNode),
    )
    .await;
    wait_ready_pods(&client, &ns.name, "web", 1).await;
    let pod = app_pods(&client, &ns.name, "web").await[0].name_any();
    // The pod is held by a finalizer of the test's: its deletion cannot finish until the
    // test lets it.
    const HOLD: &str = "e2e.drover.dev/hold";
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    pods.patch(
        &pod,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": [HOLD]}})),
    )
    .await
    .unwrap();
    kubectl_ok(&[
        "-n",
        &ns.name,
        "delete",
        "app",
        "web",
        "--cascade=foreground",
        "--wait=false",
    ]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    let app = apps.get_opt("web").await.unwrap();
    assert!(
        app.as_ref()
            .is_some_and(|a| a.metadata.deletion_timestamp.is_some()),
        "the App is gone while its pod still exists: a foreground deletion did not wait"
    );
    pods.patch(
        &pod,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    wait_for("the App to be gone", Duration::from_secs(60), || async {
        apps.get_opt("web").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(
        app_pods(&client, &ns.name, "web").await.is_empty(),
        "the App went before its pod"
    );
}

/// One condition of the App, if it has it.
async fn condition(apps: &Api<App>, name: &str, type_: &str) -> Option<Condition> {
    let app = apps.get(name).await.ok()?;
    app.status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
}

/// Waits until the App has the condition `type_`, and returns it.
async fn wait_condition(apps: &Api<App>, ns: &str, name: &str, type_: &str) -> Condition {
    wait_until_in(
        ns,
        &format!("a {type_} condition"),
        Duration::from_secs(60),
        || async {
            condition(apps, name, type_)
                .await
                .ok_or_else(|| format!("no {type_} condition yet"))
        },
    )
    .await
}

/// The App's `Healthy` condition: (status, reason, message).
async fn healthy(apps: &Api<App>, name: &str) -> Option<(String, String, String)> {
    let c = condition(apps, name, "Healthy").await?;
    Some((c.status, c.reason, c.message))
}

#[tokio::test]
async fn pods_that_cannot_start_make_the_app_unhealthy() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-stuck").await;
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    // On real nodes: only a kubelet pulls images. Nothing serves `missing`, and an image
    // name with capitals in its path does not parse.
    let cases = [
        (
            "missing",
            format!("{SAMPLE_IMAGE}-missing:1"),
            &["ErrImagePull", "ImagePullBackOff"][..],
        ),
        (
            "invalid",
            "registry.local/Drover/Sample:1".to_string(),
            &["InvalidImageName"][..],
        ),
    ];
    for (name, image, _) in &cases {
        let mut manifest = app_manifest(name, 1, "1", &Placement::AnyNode);
        manifest["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
        create_app(&client, &ns.name, manifest).await;
    }
    for (name, _, reasons) in cases {
        let (reason, message) = wait_until_in(
            &ns.name,
            &format!("App {name} to be unhealthy"),
            Duration::from_secs(120),
            || async {
                match healthy(&apps, name).await {
                    Some((status, reason, message)) if status == "False" => Ok((reason, message)),
                    other => Err(format!("Healthy: {other:?}")),
                }
            },
        )
        .await;
        assert!(
            reasons.contains(&reason.as_str()),
            "{name}: reason {reason}"
        );
        let pod = format!("{name}-0");
        assert!(
            message.starts_with(&format!("container sample of pod {pod} cannot start: ")),
            "{name}: {message}"
        );
        let warnings = app_warnings(&ns.name, name);
        assert!(
            warnings.iter().any(|(r, _)| reasons.contains(&r.as_str())),
            "{name}: no Warning event with the reason: {warnings:?}"
        );
    }
}

#[tokio::test]
async fn what_a_deployment_refuses_an_app_refuses() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-strict").await;
    let cases = [
        (
            "maxUnavailable above 100%",
            json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%"}}}),
            "spec.strategy.rollingUpdate.maxUnavailable may be at most 100%",
        ),
        (
            "a progress deadline within minReadySeconds",
            json!({"minReadySeconds": 30, "progressDeadlineSeconds": 30}),
            "spec.progressDeadlineSeconds must be greater than spec.minReadySeconds",
        ),
    ];
    for (what, spec, message) in cases {
        let mut manifest = app_manifest("strict", 1, "1", &Placement::FakeNode);
        manifest["metadata"]["namespace"] = json!(ns.name);
        for (k, v) in spec.as_object().unwrap() {
            manifest["spec"][k] = v.clone();
        }
        assert_refused(what, &["apply"], Some(&manifest), message);
    }
}

#[tokio::test]
async fn a_service_of_another_owner_is_left_alone() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-foreign").await;
    // Another team's Service, named as the App's would be.
    let foreign = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": ns.name, "labels": {"team": "other"}},
        "spec": {"selector": {"team": "other"}, "ports": [{"port": 81, "targetPort": 9000}]},
    });
    kubectl_stdin(&["apply"], &foreign.to_string());
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), &ns.name);
    let before = services.get("web").await.unwrap();
    create_app(
        &client,
        &ns.name,
        app_manifest("web", 1, "1", &Placement::FakeNode),
    )
    .await;
    wait_ready_pods(&client, &ns.name, "web", 1).await;
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    let conflict = wait_until_in(
        &ns.name,
        "a NameConflict condition",
        Duration::from_secs(60),
        || async {
            let app = apps.get("web").await.map_err(|e| e.to_string())?;
            let conditions = app.status.unwrap_or_default().conditions;
            let found = conditions
                .iter()
                .find(|c| c.type_ == "NameConflict" && c.status == "True");
            found.cloned().ok_or_else(|| {
                let types: Vec<&str> = conditions.iter().map(|c| c.type_.as_str()).collect();
                format!("conditions: {types:?}")
            })
        },
    )
    .await;
    assert!(
        conflict
            .message
            .contains("Service web exists and is not this App's"),
        "{}",
        conflict.message
    );
    let after = services.get("web").await.unwrap();
    assert_eq!(
        (after.metadata.owner_references, after.spec),
        (before.metadata.owner_references, before.spec),
        "the foreign Service was changed"
    );
    let warnings = app_warnings(&ns.name, "web");
    assert!(
        warnings.iter().any(|(r, _)| r == "NameTaken"),
        "no NameTaken event: {warnings:?}"
    );
    // Deleting the App leaves the other team's Service.
    apps.delete("web", &Default::default()).await.unwrap();
    wait_for("the App to be gone", Duration::from_secs(60), || async {
        apps.get_opt("web").await.unwrap().is_none().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        services.get_opt("web").await.unwrap().is_some(),
        "the foreign Service went with the App"
    );
}

#[tokio::test]
async fn a_missing_config_map_is_named_and_the_app_recovers_once_it_exists() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-missing").await;
    let mut manifest = app_manifest("web", 2, "1", &Placement::FakeNode);
    manifest["spec"]["template"]["spec"]["containers"][0]["envFrom"] =
        json!([{"configMapRef": {"name": "missing-cm"}}]);
    create_app(&client, &ns.name, manifest).await;
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    let condition = |apps: Api<App>| async move {
        let app = apps.get("web").await.map_err(|e| e.to_string())?;
        Ok::<_, String>(
            app.status
                .unwrap_or_default()
                .conditions
                .into_iter()
                .find(|c| c.type_ == "ConfigMissing"),
        )
    };
    let missing = wait_until_in(
        &ns.name,
        "a ConfigMissing condition",
        Duration::from_secs(60),
        || async {
            condition(apps.clone())
                .await?
                .ok_or_else(|| "no ConfigMissing condition yet".to_string())
        },
    )
    .await;
    assert!(
        missing
            .message
            .starts_with("ConfigMap \"missing-cm\" not found"),
        "{}",
        missing.message
    );
    let warnings = app_warnings(&ns.name, "web");
    assert!(
        warnings
            .iter()
            .any(|(r, m)| r == "ConfigNotFound" && m.contains("ConfigMap \"missing-cm\" not found")),
        "{warnings:?}"
    );
    // The pods name the ConfigMap the user wrote, not a snapshot of it.
    let pods = app_pods(&client, &ns.name, "web").await;
    let referenced = |p: &Pod| {
        p.spec.as_ref().unwrap().containers[0]
            .env_from
            .as_ref()
            .and_then(|e| e[0].config_map_ref.as_ref())
            .map(|r| r.name.clone())
            .unwrap_or_default()
    };
    assert!(!pods.is_empty() && pods.iter().all(|p| referenced(p) == "missing-cm"));

    // Once it exists: the condition goes and the pods move to a snapshot of it.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "missing-cm", "namespace": ns.name}, "data": {"A": "1"}});
    kubectl_stdin(&["apply"], &cm.to_string());
    wait_until_in(
        &ns.name,
        "the condition to go and the pods to use a snapshot",
        Duration::from_secs(120),
        || async {
            if condition(apps.clone()).await?.is_some() {
                return Err("ConfigMissing still set".into());
            }
            let pods: Vec<Pod> = app_pods(&client, &ns.name, "web")
                .await
                .into_iter()
                .filter(is_active_pod)
                .collect();
            let moved = pods
                .iter()
                .filter(|p| referenced(p).starts_with("missing-cm-") && is_pod_ready(p))
                .count();
            if moved == 2 && pods.len() == 2 {
                Ok(())
            } else {
                Err(format!("{moved} of {} pods on a snapshot", pods.len()))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn mistakes_found_only_past_admission_are_named_as_written() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-named").await;
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);

    // A Service port aimed at a container port name that no container declares.
    let mut manifest = app_manifest("ports", 1, "1", &Placement::FakeNode);
    manifest["spec"]["ports"][0]["targetPort"] = json!("htpp");
    create_app(&client, &ns.name, manifest).await;
    let undeclared = wait_condition(&apps, &ns.name, "ports", "PortUndeclared").await;
    assert!(
        undeclared
            .message
            .starts_with("spec.ports[0] (http): targetPort \"htpp\" is not the name of a port"),
        "{}",
        undeclared.message
    );
    assert_eq!(undeclared.reason, "TargetPortNotFound");
    let warnings = app_warnings(&ns.name, "ports");
    assert!(
        warnings
            .iter()
            .any(|(r, m)| r == "TargetPortNotFound" && m.contains("\"htpp\"")),
        "{warnings:?}"
    );
    // Fixed, the condition goes.
    patch_spec(
        &apps,
        "ports",
        json!({"ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
    )
    .await;
    wait_until_in(
        &ns.name,
        "the PortUndeclared condition to go",
        Duration::from_secs(60),
        || async {
            match condition(&apps, "ports", "PortUndeclared").await {
                None => Ok(()),
                Some(c) => Err(format!("still there: {}", c.message)),
            }
        },
    )
    .await;

    // A memory limit that does not parse: the apiserver refuses the pod without naming it.
    let mut manifest = app_manifest("sizes", 1, "1", &Placement::FakeNode);
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits": {"memory": "12 Gb"}});
    create_app(&client, &ns.name, manifest).await;
    let failure = wait_condition(&apps, &ns.name, "sizes", "ReplicaFailure").await;
    assert_eq!(
        failure.message,
        "spec.template.spec.containers[sample].resources.limits.memory: \"12 Gb\" is not a \
         quantity; write it like 500m, 2, 128Mi or 1Gi"
    );
    let warnings = app_warnings(&ns.name, "sizes");
    assert!(
        warnings.iter().any(|(r, m)| r == "FailedCreate"
            && m.contains("containers[sample].resources.limits.memory")),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn a_revision_that_cannot_be_stored_does_not_stop_healing() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-quota").await;
    let config = |value: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": ns.name}, "data": {"A": value}})
        .to_string()
    };
    kubectl_stdin(&["apply"], &config("1"));
    let mut manifest = app_manifest("web", 2, "1", &Placement::FakeNode);
    manifest["spec"]["template"]["spec"]["containers"][0]["envFrom"] =
        json!([{"configMapRef": {"name": "cfg"}}]);
    create_app(&client, &ns.name, manifest).await;
    wait_ready_pods(&client, &ns.name, "web", 2).await;
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    let first = apps
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .update_revision;

    // A quota that the ConfigMaps there now fill: the next snapshot is refused.
    let config_maps =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &ns.name)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "full", "namespace": ns.name},
        "spec": {"hard": {"configmaps": config_maps.to_string()}}});
    kubectl_stdin(&["apply"], &quota.to_string());
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> =
        Api::namespaced(client.clone(), &ns.name);
    wait_for(
        "the quota to count the ConfigMaps",
        Duration::from_secs(60),
        || async {
            let used = quotas.get("full").await.ok()?.status?.used?;
            used.contains_key("configmaps").then_some(())
        },
    )
    .await;
    kubectl_stdin(&["apply"], &config("2"));
    let failure = wait_condition(&apps, &ns.name, "web", "RevisionFailure").await;
    assert!(
        failure.message.starts_with("snapshotting ConfigMap cfg:")
            && failure.message.contains("exceeded quota")
            && failure.message.ends_with(&format!(
                "the pods stay on revision {first} until it can be stored"
            )),
        "{}",
        failure.message
    );

    // Healing goes on: a deleted pod comes back, on the revision that is stored.
    let pods = app_pods(&client, &ns.name, "web").await;
    let (gone, gone_uid) = (pods[0].name_any(), pods[0].uid());
    Api::<Pod>::namespaced(client.clone(), &ns.name)
        .delete(&gone, &Default::default())
        .await
        .unwrap();
    wait_until_in(
        &ns.name,
        "the deleted pod replaced",
        Duration::from_secs(90),
        || async {
            let pods: Vec<Pod> = app_pods(&client, &ns.name, "web")
                .await
                .into_iter()
                .filter(|p| is_active_pod(p) && is_pod_ready(p))
                .collect();
            let revisions: Vec<String> = pods
                .iter()
                .map(|p| {
                    p.labels()
                        .get("drover.dev/revision")
                        .cloned()
                        .unwrap_or_default()
                })
                .collect();
            let replaced = pods.iter().all(|p| p.uid() != gone_uid);
            if pods.len() == 2 && revisions.iter().all(|r| *r == first) && replaced {
                Ok(())
            } else {
                Err(format!("ready pods on {revisions:?}"))
            }
        },
    )
    .await;

    // Once the quota goes, the new revision is stored and the pods move to it.
    quotas.delete("full", &Default::default()).await.unwrap();
    wait_until_in(
        &ns.name,
        "the new revision rolled out",
        Duration::from_secs(120),
        || async {
            let app = apps.get("web").await.map_err(|e| e.to_string())?;
            let status = app.status.unwrap_or_default();
            let failing = status
                .conditions
                .iter()
                .any(|c| c.type_ == "RevisionFailure");
            if !failing
                && status.update_revision != first
                && status.updated_replicas == 2
                && status.available_replicas == 2
            {
                Ok(())
            } else {
                Err(format!(
                    "failing {failing}, update {}, updated {}",
                    status.update_revision, status.updated_replicas
                ))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_rollout_goes_on_and_is_followed_through_an_apiserver_restart() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-restart").await;
    let mut manifest = app_manifest("web", 3, "1", &Placement::FakeNode);
    // Slow enough that the restart falls in the middle of the rollout.
    manifest["spec"]["minReadySeconds"] = json!(10);
    create_app(&client, &ns.name, manifest).await;
    wait_ready_pods(&client, &ns.name, "web", 3).await;
    set_image(&client, &ns.name, "web", "2", None).await;
    let follower = std::process::Command::new("kubectl")
        .args([
            "drover",
            "rollout",
            "-n",
            &ns.name,
            "status",
            "web",
            "--timeout",
            "300",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl drover");
    tokio::time::sleep(Duration::from_secs(2)).await;
    restart_apiserver();
    let out = follower.wait_with_output().expect("kubectl drover output");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.ends_with("successfully rolled out\n"),
        "the plugin gave up: {stdout}{stderr}"
    );
    assert!(
        stderr.contains("trying again"),
        "the plugin never saw the apiserver gone: {stderr}"
    );
    let pods: Vec<Pod> = app_pods(&client, &ns.name, "web")
        .await
        .into_iter()
        .filter(is_active_pod)
        .collect();
    assert!(
        pods.len() == 3 && pods.iter().all(|p| image_of(p).ends_with("sample:2")),
        "{:?}",
        pods.iter().map(image_of).collect::<Vec<_>>()
    );
}
