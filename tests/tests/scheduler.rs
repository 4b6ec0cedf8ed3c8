//! drover's scheduler on the real cluster: pods naming it are bound on simulated nodes and
//! on the real node by its rules (bin packing, nodeSelector, required node affinity,
//! taints); a pod that fits nowhere stays Pending with `PodScheduled=False` and a
//! `FailedScheduling` event; a bin-packed App's pods land on the fewest nodes; a
//! restarted scheduler binds nothing twice and over-commits no node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use drover_crds::App;
use drover_e2e::*;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const BIND_TIMEOUT: Duration = Duration::from_secs(120);

/// A sample pod for drover's scheduler, requesting `cpu` and `memory`, with `extra`
/// merged into its spec.
fn scheduled_pod(name: &str, placement: &Placement, cpu: &str, memory: &str, extra: Value) -> Pod {
    let mut pod = serde_json::to_value(sample_pod(name, "1", placement)).unwrap();
    let spec = &mut pod["spec"];
    spec["schedulerName"] = json!(SCHEDULER);
    spec["containers"][0]["resources"] = json!({"requests": {"cpu": cpu, "memory": memory}});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(pod).unwrap()
}

async fn create_pods(client: &Client, ns: &str, pods: &[Pod]) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    for p in pods {
        api.create(&PostParams::default(), p).await.unwrap();
    }
}

/// Waits until every named pod is bound; returns pod → node.
async fn wait_bound(client: &Client, ns: &str, names: &[&str]) -> BTreeMap<String, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("pods {names:?} to be bound"),
        BIND_TIMEOUT,
        || async {
            let mut bound = BTreeMap::new();
            for name in names {
                let pod = api.get(name).await.ok()?;
                bound.insert(name.to_string(), pod.spec?.node_name?);
            }
            Some(bound)
        },
    )
    .await
}

async fn events(client: &Client, ns: &str, pod: &str, reason: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default().fields(&format!("involvedObject.name={pod},reason={reason}")))
        .await
        .unwrap()
        .items
}

/// The `PodScheduled` condition of a pending pod once its reason is `reason`: its message.
async fn wait_pod_scheduled(pods_api: &Api<Pod>, name: &str, reason: &str) -> String {
    wait_for(
        &format!("{name} to have PodScheduled=False/{reason}"),
        BIND_TIMEOUT,
        || async {
            let pod = pods_api.get(name).await.ok()?;
            let c = pod
                .status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled")?;
            (c.status == "False" && c.reason.as_deref() == Some(reason)).then_some(c.message?)
        },
    )
    .await
}

async fn label_node(client: &Client, node: &str, patch: Value) {
    Api::<Node>::all(client.clone())
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test]
async fn pods_naming_drover_scheduler_are_placed_by_its_rules() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-sched").await;
    let pool = FakeNodePool::create(&client, "sched", 3).await;
    let [n0, n1, n2] = [0, 1, 2].map(|i| pool.nodes[i].clone());
    label_node(
        &client,
        &n0,
        json!({"metadata": {"labels": {"disk": "ssd"}}}),
    )
    .await;
    label_node(
        &client,
        &n2,
        json!({"metadata": {"labels": {"disk": "hdd"}}}),
    )
    .await;
    // n1 takes only pods that tolerate `dedicated=db`.
    let taints = json!({"spec": {"taints": [
        {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"},
        {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
    ]}});
    label_node(&client, &n1, taints).await;
    let placement = pool.placement();
    let fake_toleration = json!({
        "key": FAKE_NODE_TAINT.0, "operator": "Equal", "value": FAKE_NODE_TAINT.1, "effect": "NoSchedule",
    });
    let on = |node: &str| {
        json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}],
        }}})
    };

    // Four pods of 1 CPU on nodes of 32.
    let mut pods: Vec<Pod> = (0..4)
        .map(|i| scheduled_pod(&format!("packed-{i}"), &placement, "1", "1Gi", json!({})))
        .collect();
    // Required affinity by label (not the ssd node) and a nodeSelector (the ssd node).
    pods.push(scheduled_pod(
        "not-ssd",
        &placement,
        "100m",
        "64Mi",
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}],
        }}}}),
    ));
    pods.push(scheduled_pod(
        "ssd",
        &placement,
        "100m",
        "64Mi",
        json!({"nodeSelector": {POOL_LABEL: pool.name, "disk": "ssd"}}),
    ));
    // The tainted node: only with the toleration.
    pods.push(scheduled_pod(
        "tolerates-db",
        &placement,
        "100m",
        "64Mi",
        json!({"affinity": on(&n1), "tolerations": [fake_toleration.clone(),
            {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}),
    ));
    pods.push(scheduled_pod(
        "shuns-db",
        &placement,
        "100m",
        "64Mi",
        json!({"affinity": on(&n1)}),
    ));
    // Bigger than any node.
    pods.push(scheduled_pod(
        "oversized",
        &placement,
        "64",
        "1Gi",
        json!({}),
    ));
    create_pods(&client, &ns.name, &pods).await;

    let bound = wait_bound(
        &client,
        &ns.name,
        &[
            "packed-0",
            "packed-1",
            "packed-2",
            "packed-3",
            "not-ssd",
            "ssd",
            "tolerates-db",
        ],
    )
    .await;
    // Bin packing: the four pods share one node (not the tainted one).
    let packed = &bound["packed-0"];
    for i in 1..4 {
        assert_eq!(
            &bound[&format!("packed-{i}")],
            packed,
            "bin packing fills one node: {bound:?}"
        );
    }
    assert_ne!(packed, &n1, "{bound:?}");
    assert_eq!(bound["not-ssd"], n2, "{bound:?}");
    assert_eq!(bound["ssd"], n0, "{bound:?}");
    assert_eq!(bound["tolerates-db"], n1, "{bound:?}");
    let scheduled = events(&client, &ns.name, "packed-0", "Scheduled").await;
    assert!(
        scheduled.iter().any(|e| e.message.as_deref()
            == Some(&format!("Successfully assigned {}/packed-0 to {packed}", ns.name)[..])),
        "a Scheduled event: {scheduled:?}"
    );

    // Pods that fit nowhere: PodScheduled=False, FailedScheduling, kube-scheduler's words.
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    for (name, why) in [
        ("oversized", "Insufficient cpu"),
        ("shuns-db", "node(s) had untolerated taint {dedicated: db}"),
    ] {
        let message = wait_pod_scheduled(&pods_api, name, "Unschedulable").await;
        assert!(
            message.contains("nodes are available") && message.contains(why),
            "{name}: {message}"
        );
        let failed = events(&client, &ns.name, name, "FailedScheduling").await;
        assert!(
            failed
                .iter()
                .any(|e| e.message.as_deref().is_some_and(|m| m.contains(why))),
            "{name}: a FailedScheduling event saying {why:?}: {failed:?}"
        );
        let pod = pods_api.get(name).await.unwrap();
        assert_eq!(pod.spec.unwrap().node_name, None, "{name} stays Pending");
    }

    // Removing the taint is a change of the cluster: the pod is tried again and fits.
    label_node(
        &client,
        &n1,
        json!({"spec": {"taints": [
            {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"},
        ]}}),
    )
    .await;
    let bound = wait_bound(&client, &ns.name, &["shuns-db"]).await;
    assert_eq!(bound["shuns-db"], n1);
}

#[tokio::test]
async fn a_real_node_runs_a_pod_drover_scheduler_placed() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-sched-real").await;
    let node = workers(&client).await.remove(0);
    let pod = scheduled_pod(
        "real",
        &Placement::RealNode(node.clone()),
        "10m",
        "16Mi",
        json!({}),
    );
    create_pods(&client, &ns.name, &[pod]).await;
    let bound = wait_bound(&client, &ns.name, &["real"]).await;
    assert_eq!(bound["real"], node);
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    wait_pod_ready(&api, "real", BIND_TIMEOUT).await;
}

/// Creates App `web` of `replicas` sample pods on `pool` with `placement.binPack`, each
/// requesting 250m and `memory`; returns the namespace's pod Api.
async fn create_bin_packed(
    client: &Client,
    ns: &str,
    pool: &FakeNodePool,
    replicas: i32,
    memory: &str,
) -> Api<Pod> {
    let mut manifest = app_manifest("web", replicas, "1", &pool.placement());
    manifest["spec"]["placement"] = json!({"binPack": true});
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "250m", "memory": memory}});
    let app: App = serde_json::from_value(manifest).unwrap();
    Api::<App>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &app)
        .await
        .unwrap();
    Api::namespaced(client.clone(), ns)
}

/// The pods of App `web`.
async fn app_pods(pods: &Api<Pod>) -> Option<Vec<Pod>> {
    Some(
        pods.list(&ListParams::default().labels("drover.dev/app=web"))
            .await
            .ok()?
            .items,
    )
}

#[tokio::test]
async fn a_bin_packed_app_fills_few_nodes_and_a_restarted_scheduler_binds_nothing_twice() {
    const REPLICAS: i32 = 40;
    let client = client().await;
    let started = std::time::SystemTime::now();
    let ns = TestNamespace::create(&client, "e2e-binpack").await;
    // Six nodes of 2 CPUs: 24 pods of 250m fill 3 of them, 40 fill 5.
    let pool = FakeNodePool::create_sized(&client, "binpack", 6, "2", "8Gi").await;
    let pods_api = create_bin_packed(&client, &ns.name, &pool, 24, "256Mi").await;
    let all_bound = |replicas: usize| {
        let pods_api = pods_api.clone();
        async move {
            let pods = app_pods(&pods_api).await?;
            let bound = pods
                .iter()
                .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()));
            (pods.len() == replicas && bound.count() == replicas).then_some(pods)
        }
    };
    wait_for("the App's pods to be bound", ROLLOUT_TIMEOUT, || {
        all_bound(24)
    })
    .await;
    // The scheduler dies; once its successor holds the lease (the killed one's lapses),
    // the App grows and the successor places the new pods beside the ones bound before.
    let holder = lease_holder(&client, SCHEDULER).await;
    kill(SCHEDULER);
    wait_for(
        "the next scheduler to take the lease",
        ROLLOUT_TIMEOUT,
        || async {
            let now = lease_holder(&client, SCHEDULER).await;
            (now.is_some() && now != holder).then_some(())
        },
    )
    .await;
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    patch_spec(&apps, "web", json!({"replicas": REPLICAS})).await;
    let pods = wait_for(
        "the new pods to be bound by the next scheduler",
        ROLLOUT_TIMEOUT,
        || all_bound(REPLICAS as usize),
    )
    .await;
    wait_ready(SCHEDULER);

    let mut per_node: HashMap<String, usize> = HashMap::new();
    for p in &pods {
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.scheduler_name.as_deref(), Some(SCHEDULER));
        *per_node.entry(spec.node_name.clone().unwrap()).or_default() += 1;
    }
    // 8 pods of 250m fill a 2-CPU node: 30 pods on 4 nodes, none over-committed.
    assert!(
        per_node.values().all(|&n| n <= 8),
        "a node over-committed: {per_node:?}"
    );
    assert_eq!(
        per_node.len(),
        5,
        "packed onto the fewest nodes: {per_node:?}"
    );
    // Every binding the apiserver saw for these pods: one each, none refused (a restarted
    // scheduler that bound from a stale view would be refused with 409).
    let mut bindings: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for record in audit_records(started, "\"subresource\":\"binding\"") {
        let object = &record["objectRef"];
        if record["stage"] == "ResponseComplete"
            && record["verb"] == "create"
            && object["namespace"] == ns.name.as_str()
        {
            let name = object["name"].as_str().unwrap_or_default().to_string();
            let code = record["responseStatus"]["code"].as_i64().unwrap_or(0);
            bindings.entry(name).or_default().push(code);
        }
    }
    for p in &pods {
        let name = p.name_any();
        assert_eq!(
            bindings.get(&name).map(Vec::as_slice),
            Some(&[201][..]),
            "bindings of {name}: {bindings:?}"
        );
        assert!(
            events(&client, &ns.name, &name, "FailedScheduling")
                .await
                .is_empty()
        );
    }
}

#[tokio::test]
async fn pods_evicted_under_memory_pressure_are_replaced_where_they_fit() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-pressure").await;
    let pool = FakeNodePool::create_sized(&client, "pressure", 2, "2", "4Gi").await;
    let pods_api = create_bin_packed(&client, &ns.name, &pool, 4, "512Mi").await;
    let on_node = |node: String| {
        let pods_api = pods_api.clone();
        async move {
            let pods = app_pods(&pods_api).await?;
            let ready = pods.iter().filter(|p| {
                is_active_pod(p)
                    && is_pod_ready(p)
                    && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&node)
            });
            (ready.count() == 4).then_some(pods)
        }
    };
    // Packed: all four on the first node.
    let [full, spare] = [0, 1].map(|i| pool.nodes[i].clone());
    let before = wait_for("the App packed on one node", BIND_TIMEOUT, || {
        on_node(full.clone())
    })
    .await;

    // The node runs out of memory: something outside the App takes all but 256Mi of it
    // (a pod bound there directly), and its kubelet evicts the App's pods (Failed,
    // Evicted). Their replacements (512Mi each) fit only on the other node.
    let mut hog = serde_json::to_value(sample_pod("hog", "1", &pool.placement())).unwrap();
    hog["spec"]["nodeName"] = json!(full);
    hog["spec"]["containers"][0]["resources"] = json!({"requests": {"memory": "3840Mi"}});
    pods_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(hog).unwrap(),
        )
        .await
        .unwrap();
    for p in &before {
        let status = json!({"status": {
            "phase": "Failed",
            "reason": "Evicted",
            "message": "The node was low on resource: memory.",
        }});
        pods_api
            .patch_status(
                &p.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await
            .unwrap();
    }
    // Replaced by the App and placed where they fit: the other node.
    let after = wait_for(
        "the App running again on the spare node",
        ROLLOUT_TIMEOUT,
        || on_node(spare.clone()),
    )
    .await;
    let old: Vec<String> = before.iter().map(|p| p.uid().unwrap()).collect();
    assert!(
        after
            .iter()
            .filter(|p| is_active_pod(p))
            .all(|p| !old.contains(&p.uid().unwrap())),
        "the evicted pods were replaced"
    );
}

async fn cordon(client: &Client, node: &str, on: bool) {
    label_node(client, node, json!({"spec": {"unschedulable": on}})).await;
}

#[tokio::test]
async fn a_bin_packed_app_scales_in_from_its_least_used_node() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-scalein").await;
    let pool = FakeNodePool::create_sized(&client, "scalein", 2, "2", "8Gi").await;
    let [first, second] = [0, 1].map(|i| pool.nodes[i].clone());
    let ready_on = |pods_api: &Api<Pod>, node: String, count: usize| {
        let pods_api = pods_api.clone();
        async move {
            let pods: Vec<Pod> = app_pods(&pods_api)
                .await?
                .into_iter()
                .filter(is_active_pod)
                .collect();
            let here = pods.iter().filter(|p| {
                is_pod_ready(p)
                    && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&node)
            });
            (here.count() == count).then_some(pods)
        }
    };
    // The older four pods on the first node, the newer four on the second (each placed
    // while the other node was cordoned).
    cordon(&client, &second, true).await;
    let pods_api = create_bin_packed(&client, &ns.name, &pool, 4, "256Mi").await;
    wait_for("four pods on the first node", BIND_TIMEOUT, || {
        ready_on(&pods_api, first.clone(), 4)
    })
    .await;
    cordon(&client, &first, true).await;
    cordon(&client, &second, false).await;
    let apps: Api<App> = Api::namespaced(client.clone(), &ns.name);
    patch_spec(&apps, "web", json!({"replicas": 8})).await;
    let newer: Vec<String> = wait_for("four more on the second node", BIND_TIMEOUT, || {
        ready_on(&pods_api, second.clone(), 4)
    })
    .await
    .iter()
    .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&second))
    .map(|p| p.uid().unwrap())
    .collect();
    cordon(&client, &first, false).await;
    // Something outside the App takes another 500m of the second node: it is the fuller
    // (75 % of its CPU against 50 %).
    let mut other = serde_json::to_value(sample_pod("other", "1", &pool.placement())).unwrap();
    other["spec"]["nodeName"] = json!(second);
    other["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "500m"}});
    pods_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(other).unwrap(),
        )
        .await
        .unwrap();
    wait_pod_ready(&pods_api, "other", BIND_TIMEOUT).await;

    // Scaled in by four: the pods of the least used node go — the older ones, which a
    // plain scale-in keeps — and that node empties.
    patch_spec(&apps, "web", json!({"replicas": 4})).await;
    let kept = wait_for("the App down to four pods", ROLLOUT_TIMEOUT, || async {
        let pods: Vec<Pod> = app_pods(&pods_api)
            .await?
            .into_iter()
            .filter(is_active_pod)
            .collect();
        (pods.len() == 4).then_some(pods)
    })
    .await;
    let mut kept: Vec<String> = kept.iter().map(|p| p.uid().unwrap()).collect();
    kept.sort();
    let mut newer = newer;
    newer.sort();
    assert_eq!(kept, newer, "the pods on the second (fuller) node stay");
}

#[tokio::test]
async fn a_bin_packed_app_keeps_its_anti_affinity_and_spread_on_real_nodes() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-interpod").await;
    let workers = workers(&client).await;
    assert!(workers.len() >= 2, "needs two real workers: {workers:?}");
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let on_nodes = |app: &'static str| {
        let pods_api = pods_api.clone();
        async move {
            let pods = pods_api
                .list(&ListParams::default().labels(&format!("drover.dev/app={app}")))
                .await
                .ok()?
                .items;
            Some(
                pods.into_iter()
                    .map(|p| (p.name_any(), node_of(&p)))
                    .collect::<Vec<_>>(),
            )
        }
    };
    let bin_packed = |name: &str, replicas: usize, rules: Value| {
        let mut manifest = app_manifest(name, replicas as i32, "1", &Placement::AnyNode);
        manifest["spec"]["placement"] = json!({"binPack": true});
        let spec = &mut manifest["spec"]["template"]["spec"];
        spec["containers"][0]["resources"] = json!({"requests": {"cpu": "10m", "memory": "16Mi"}});
        for (k, v) in rules.as_object().unwrap() {
            spec[k] = v.clone();
        }
        manifest
    };

    // One pod per real worker, and one more that has nowhere to go. Bin packing alone
    // would put them all on one node (each takes 10m).
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"test": "solo"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    create_app(
        &client,
        &ns.name,
        bin_packed("solo", workers.len() + 1, anti),
    )
    .await;
    let placed = wait_for("one solo pod on each worker", BIND_TIMEOUT, || async {
        let placed = on_nodes("solo").await?;
        let bound: Vec<&String> = placed
            .iter()
            .map(|(_, n)| n)
            .filter(|n| !n.is_empty())
            .collect();
        (placed.len() == workers.len() + 1 && bound.len() == workers.len()).then_some(placed)
    })
    .await;
    let mut hosts: Vec<&String> = placed
        .iter()
        .map(|(_, n)| n)
        .filter(|n| !n.is_empty())
        .collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(
        hosts.len(),
        workers.len(),
        "never two on one node: {placed:?}"
    );
    let (pending, _) = placed.iter().find(|(_, n)| n.is_empty()).unwrap();
    let message = wait_pod_scheduled(&pods_api, pending, "Unschedulable").await;
    assert!(
        message.contains(&format!(
            "{} node(s) didn't match pod anti-affinity rules",
            workers.len()
        )),
        "{message}"
    );
    let failed = events(&client, &ns.name, pending, "FailedScheduling").await;
    assert!(!failed.is_empty(), "a FailedScheduling event for {pending}");

    // Two per worker: a skew of at most 1 over the hosts beats packing them on one. The
    // tainted nodes (the control plane, the simulated ones) are no domains with
    // `nodeTaintsPolicy: Honor`; by default they would count, empty, as kube-scheduler
    // counts them.
    let replicas = 2 * workers.len();
    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
        "nodeTaintsPolicy": "Honor",
        "labelSelector": {"matchLabels": {"test": "even"}}}]});
    create_app(&client, &ns.name, bin_packed("even", replicas, spread)).await;
    let placed = wait_for("the even pods bound", BIND_TIMEOUT, || async {
        let placed = on_nodes("even").await?;
        (placed.len() == replicas && placed.iter().all(|(_, n)| !n.is_empty())).then_some(placed)
    })
    .await;
    for worker in &workers {
        let here = placed.iter().filter(|(_, n)| n == worker).count();
        assert_eq!(here, 2, "two on {worker}: {placed:?}");
    }
    // Real kubelets run them where they were placed.
    wait_for("the even pods ready", ROLLOUT_TIMEOUT, || async {
        let pods = pods_api
            .list(&ListParams::default().labels("drover.dev/app=even"))
            .await
            .ok()?
            .items;
        pods.iter().all(is_pod_ready).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_gated_pod_waits_and_a_pod_with_claims_is_refused_by_name() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-sched-held").await;
    let pool = FakeNodePool::create(&client, "held", 1).await;
    let placement = pool.placement();
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let gated = scheduled_pod(
        "gated",
        &placement,
        "100m",
        "64Mi",
        json!({"schedulingGates": [{"name": "example.com/quota"}]}),
    );
    let claims = scheduled_pod(
        "claims",
        &placement,
        "100m",
        "64Mi",
        json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}),
    );
    create_pods(&client, &ns.name, &[gated, claims]).await;
    // The apiserver marks a gated pod SchedulingGated at creation without naming the
    // gates; drover's scheduler names them.
    wait_for(
        "gated to be SchedulingGated with a message naming example.com/quota",
        BIND_TIMEOUT,
        || async {
            let message = wait_pod_scheduled(&pods_api, "gated", "SchedulingGated").await;
            message.contains("example.com/quota").then_some(())
        },
    )
    .await;
    let message = wait_pod_scheduled(&pods_api, "claims", "Unschedulable").await;
    assert!(
        message.contains("volume \"data\"") && message.contains("PersistentVolumeClaim"),
        "{message}"
    );
    let pod = pods_api.get("gated").await.unwrap();
    assert_eq!(
        pod.spec.unwrap().node_name,
        None,
        "a gated pod is not placed"
    );
    // The gate lifted, the pod is placed at once (no backoff, no 5-minute flush).
    pods_api
        .patch(
            "gated",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"schedulingGates": null}})),
        )
        .await
        .unwrap();
    let bound = wait_bound(&client, &ns.name, &["gated"]).await;
    assert_eq!(bound["gated"], pool.nodes[0]);
}
