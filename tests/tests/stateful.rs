//! StatefulApp on the kind cluster's real nodes and volumes: pods named by ordinal with
//! their own DNS names and claims, started and removed in order (or all at once), rolled
//! highest ordinal first within a partition, or only as they are deleted; claims kept or
//! deleted as the retention policy says, grown in place from the template; and a rollout
//! to a broken revision that recovers by itself once undone, where a StatefulSet's stays
//! stuck; claims snapshotted before an update and restored with an undo; and a
//! StatefulApp named as an App waiting for it to go.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use drover_crds::StatefulApp;
use drover_e2e::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const READY: Duration = READY_TIMEOUT;

/// Waits until the StatefulApp's pods are exactly `names`, each Running, Ready and on
/// `version` of the sample image.
async fn wait_pods(client: &kube::Client, ns: &str, name: &str, names: &[&str], version: &str) {
    let image = format!("{SAMPLE_IMAGE}:{version}");
    wait_until_in(
        ns,
        &format!("pods {names:?} ready on {image}"),
        READY,
        || async {
            let pods = pods_of(client, ns, name).await;
            let seen: Vec<String> = pods
                .values()
                .map(|p| {
                    format!(
                        "{}({}, ready {})",
                        p.name_any(),
                        image_of(p),
                        is_pod_ready(p)
                    )
                })
                .collect();
            let done = pods.len() == names.len()
                && names.iter().all(|n| {
                    pods.get(*n).is_some_and(|p| {
                        is_active_pod(p) && is_pod_ready(p) && image_of(p) == image
                    })
                });
            if done { Ok(()) } else { Err(seen.join(", ")) }
        },
    )
    .await;
}

/// When a pod's Ready condition last turned True.
fn ready_at(p: &Pod) -> Timestamp {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
        .unwrap()
}

fn created_at(p: &Pod) -> Timestamp {
    p.metadata.creation_timestamp.as_ref().unwrap().0
}

fn condition(app: &StatefulApp, type_: &str) -> Option<(String, String, String)> {
    app.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn ordered_ready_starts_ordinals_in_order_and_removes_the_highest_first() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-sapp-ordered").await;
    let api = create_stateful(
        &client,
        &ns.name,
        stateful_manifest("db", 0, "1", json!({})),
    )
    .await;
    patch_stateful(&api, "db", json!({"replicas": 3})).await;
    wait_pods(&client, &ns.name, "db", &["db-0", "db-1", "db-2"], "1").await;
    let pods = pods_of(&client, &ns.name, "db").await;
    for (lower, higher) in [("db-0", "db-1"), ("db-1", "db-2")] {
        assert!(
            created_at(&pods[higher]) >= ready_at(&pods[lower]),
            "{higher} was created ({}) only once {lower} was ready ({})",
            created_at(&pods[higher]),
            ready_at(&pods[lower])
        );
    }
    // Identity: host name, subdomain, and a DNS name each through the headless Service.
    for (name, pod) in &pods {
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(name.as_str()));
        assert_eq!(spec.subdomain.as_deref(), Some("db"));
        assert_eq!(pod.labels()["drover.dev/ordinal"], &name[3..]);
    }
    let fqdn = format!("db-2.db.{}.svc.cluster.local", ns.name);
    let ip = pods["db-2"]
        .status
        .as_ref()
        .unwrap()
        .pod_ip
        .clone()
        .unwrap();
    let looked_up = exec(&ns.name, "db-0", &["nslookup", &fqdn]);
    assert!(
        looked_up.contains(&ip),
        "{fqdn} resolves to db-2's address {ip}: {looked_up}"
    );
    assert_eq!(
        exec(&ns.name, "db-1", &["hostname"]).trim(),
        "db-1",
        "the pod's host name is its own"
    );

    // Scale-in: the highest goes first, and the next only once it is gone.
    patch_stateful(&api, "db", json!({"replicas": 1})).await;
    let mut gone_at: HashMap<String, Instant> = HashMap::new();
    let mut overlap = vec![];
    let started = Instant::now();
    while gone_at.len() < 2 && started.elapsed() < READY {
        let pods = pods_of(&client, &ns.name, "db").await;
        let going = |n: &str| {
            pods.get(n)
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
        };
        for n in ["db-1", "db-2"] {
            if going(n) {
                gone_at.entry(n.to_string()).or_insert_with(Instant::now);
            }
        }
        if going("db-1") && pods.contains_key("db-2") {
            overlap.push(format!("{:?}", pods.keys().collect::<Vec<_>>()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone_at["db-2"] <= gone_at["db-1"], "db-2 went before db-1");
    assert!(
        overlap.is_empty(),
        "db-1 is removed only once db-2 is gone: {overlap:?}"
    );
    wait_pods(&client, &ns.name, "db", &["db-0"], "1").await;
}

#[tokio::test]
async fn parallel_starts_every_ordinal_at_once_where_ordered_ready_waits() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-sapp-parallel").await;
    // Pods that never become ready: OrderedReady stops at the first, Parallel does not.
    let never_ready = |name: &str, policy: &str| {
        let mut m = stateful_manifest(name, 3, "1", json!({"podManagementPolicy": policy}));
        m["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] =
            json!("/no-such-path");
        m
    };
    create_stateful(&client, &ns.name, never_ready("par", "Parallel")).await;
    create_stateful(&client, &ns.name, never_ready("ord", "OrderedReady")).await;
    wait_until_in(
        &ns.name,
        "3 pods of the Parallel StatefulApp",
        READY,
        || async {
            let pods = pods_of(&client, &ns.name, "par").await;
            let names: Vec<&String> = pods.keys().collect();
            if names == ["par-0", "par-1", "par-2"] {
                Ok(())
            } else {
                Err(format!("{names:?}"))
            }
        },
    )
    .await;
    // Give the ordered one as long again: it still has only its first pod.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let ordered: Vec<String> = pods_of(&client, &ns.name, "ord")
        .await
        .into_keys()
        .collect();
    assert_eq!(
        ordered,
        ["ord-0"],
        "OrderedReady waits for ord-0 to be ready"
    );
}

#[tokio::test]
async fn a_partition_holds_lower_ordinals_and_on_delete_replaces_only_deleted_pods() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-sapp-partition").await;
    let staged =
        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}});
    let api = create_stateful(&client, &ns.name, stateful_manifest("db", 3, "1", staged)).await;
    wait_pods(&client, &ns.name, "db", &["db-0", "db-1", "db-2"], "1").await;
    let before = pods_of(&client, &ns.name, "db").await;
    set_stateful_image(&api, "2").await;
    let image = |v: &str| format!("{SAMPLE_IMAGE}:{v}");
    wait_until_in(
        &ns.name,
        "db-2 on version 2, held at the partition",
        READY,
        || async {
            let pods = pods_of(&client, &ns.name, "db").await;
            let app = api.get("db").await.unwrap();
            let progressing = condition(&app, "Progressing");
            let done = pods
                .get("db-2")
                .is_some_and(|p| image_of(p) == image("2") && is_pod_ready(p))
                && progressing.as_ref().is_some_and(|c| c.1 == "Partitioned");
            if done {
                Ok(())
            } else {
                Err(format!("{progressing:?}"))
            }
        },
    )
    .await;
    let after = pods_of(&client, &ns.name, "db").await;
    for n in ["db-0", "db-1"] {
        assert_eq!(
            after[n].uid(),
            before[n].uid(),
            "{n} below the partition stays"
        );
        assert_eq!(image_of(&after[n]), image("1"));
    }

    // OnDelete: a new template changes nothing until a pod is deleted.
    patch_stateful(
        &api,
        "db",
        json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}),
    )
    .await;
    set_stateful_image(&api, "3").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let held = pods_of(&client, &ns.name, "db").await;
    for n in ["db-0", "db-1", "db-2"] {
        assert_eq!(held[n].uid(), after[n].uid(), "OnDelete leaves {n} alone");
    }
    Api::<Pod>::namespaced(client.clone(), &ns.name)
        .delete("db-1", &DeleteParams::default())
        .await
        .unwrap();
    wait_until_in(&ns.name, "db-1 back on version 3", READY, || async {
        let pods = pods_of(&client, &ns.name, "db").await;
        match pods.get("db-1") {
            Some(p) if p.uid() != held["db-1"].uid() && is_pod_ready(p) => Ok(image_of(p)),
            other => Err(format!("{:?}", other.map(|p| (p.uid(), image_of(p))))),
        }
    })
    .await;
    let last = pods_of(&client, &ns.name, "db").await;
    assert_eq!(image_of(&last["db-1"]), image("3"));
    for n in ["db-0", "db-2"] {
        assert_eq!(
            last[n].uid(),
            held[n].uid(),
            "{n} was not deleted, and stays"
        );
    }
}

async fn set_stateful_image(api: &Api<StatefulApp>, version: &str) {
    let mut app = api.get("db").await.unwrap();
    let spec = app.spec.template.spec.as_mut().unwrap();
    spec.containers[0].image = Some(format!("{SAMPLE_IMAGE}:{version}"));
    patch_stateful(api, "db", json!({"template": app.spec.template})).await;
}

#[tokio::test]
async fn claims_follow_their_ordinal_and_the_retention_policy() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-sapp-claims").await;
    let api = create_stateful(
        &client,
        &ns.name,
        with_data(stateful_manifest("db", 2, "1", json!({})), "1Gi"),
    )
    .await;
    wait_pods(&client, &ns.name, "db", &["db-0", "db-1"], "1").await;
    let claims = claims_of(&client, &ns.name).await;
    assert_eq!(
        claims.keys().collect::<Vec<_>>(),
        ["data-db-0", "data-db-1"]
    );
    let claim_uid = claims["data-db-1"].uid();
    exec(&ns.name, "db-1", &["sh", "-c", "echo one > /data/file"]);

    // A deleted pod comes back with its name, its claim and its data.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let old = pods.get("db-1").await.unwrap().uid();
    pods.delete("db-1", &DeleteParams::default()).await.unwrap();
    wait_until_in(&ns.name, "db-1 replaced and ready", READY, || async {
        let p = pods.get_opt("db-1").await.unwrap();
        match p {
            Some(p) if p.uid() != old && is_pod_ready(&p) => Ok(()),
            _ => Err(String::new()),
        }
    })
    .await;
    assert_eq!(exec(&ns.name, "db-1", &["cat", "/data/file"]).trim(), "one");
    assert_eq!(
        claims_of(&client, &ns.name).await["data-db-1"].uid(),
        claim_uid
    );

    // whenScaled Retain (the default): the claim stays, and comes back with its ordinal.
    patch_stateful(&api, "db", json!({"replicas": 1})).await;
    wait_pods(&client, &ns.name, "db", &["db-0"], "1").await;
    assert_eq!(
        claims_of(&client, &ns.name).await["data-db-1"].uid(),
        claim_uid
    );
    patch_stateful(&api, "db", json!({"replicas": 2})).await;
    wait_pods(&client, &ns.name, "db", &["db-0", "db-1"], "1").await;
    assert_eq!(exec(&ns.name, "db-1", &["cat", "/data/file"]).trim(), "one");

    // whenScaled Delete: the removed ordinal's claim goes.
    patch_stateful(
        &api,
        "db",
        json!({"persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"}, "replicas": 1}),
    )
    .await;
    wait_until_in(&ns.name, "data-db-1 deleted", READY, || async {
        let claims = claims_of(&client, &ns.name).await;
        let names: Vec<&String> = claims.keys().collect();
        if names == ["data-db-0"] {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    })
    .await;

    // whenDeleted: Retain keeps the claims of a deleted StatefulApp, Delete deletes them.
    let kept = create_stateful(
        &client,
        &ns.name,
        with_data(stateful_manifest("kept", 1, "1", json!({})), "1Gi"),
    )
    .await;
    let gone = create_stateful(
        &client,
        &ns.name,
        with_data(
            stateful_manifest(
                "gone",
                1,
                "1",
                json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}),
            ),
            "1Gi",
        ),
    )
    .await;
    wait_pods(&client, &ns.name, "kept", &["kept-0"], "1").await;
    wait_pods(&client, &ns.name, "gone", &["gone-0"], "1").await;
    kept.delete("kept", &DeleteParams::default()).await.unwrap();
    gone.delete("gone", &DeleteParams::default()).await.unwrap();
    wait_until_in(
        &ns.name,
        "data-gone-0 deleted with its StatefulApp",
        READY,
        || async {
            let claims = claims_of(&client, &ns.name).await;
            if claims.contains_key("data-gone-0") {
                Err(String::new())
            } else {
                Ok(())
            }
        },
    )
    .await;
    wait_until_in(&ns.name, "kept-0 gone", READY, || async {
        if pods_of(&client, &ns.name, "kept").await.is_empty() {
            Ok(())
        } else {
            Err(String::new())
        }
    })
    .await;
    assert!(
        claims_of(&client, &ns.name)
            .await
            .contains_key("data-kept-0"),
        "whenDeleted Retain keeps the claim"
    );
}

#[tokio::test]
async fn raising_the_template_size_grows_every_claim_in_place() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-sapp-resize").await;
    let manifest = with_data(
        stateful_manifest("db", 2, "1", json!({"podManagementPolicy": "Parallel"})),
        "1Gi",
    );
    let api = create_stateful(&client, &ns.name, manifest.clone()).await;
    wait_pods(&client, &ns.name, "db", &["db-0", "db-1"], "1").await;
    let before = pods_of(&client, &ns.name, "db").await;
    for p in ["db-0", "db-1"] {
        let small = data_size_mib(&ns.name, p);
        assert!((900..=1024).contains(&small), "a 1Gi volume: {small} MiB");
    }
    let mut templates = manifest["spec"]["volumeClaimTemplates"].clone();
    templates[0]["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    patch_stateful(&api, "db", json!({"volumeClaimTemplates": templates})).await;
    wait_until_in(
        &ns.name,
        "every claim at 2Gi and ClaimsResized",
        READY,
        || async {
            let claims = claims_of(&client, &ns.name).await;
            let capacity: Vec<String> = claims
                .values()
                .map(|c| {
                    c.status
                        .as_ref()
                        .and_then(|s| s.capacity.as_ref())
                        .and_then(|c| c.get("storage"))
                        .map(|q| q.0.clone())
                        .unwrap_or_default()
                })
                .collect();
            let app = api.get("db").await.unwrap();
            let resized = condition(&app, "ClaimsResized");
            let grown = capacity.iter().all(|c| c == "2Gi")
                && resized.as_ref().is_some_and(|c| c.0 == "True")
                && (0..2).all(|i| data_size_mib(&ns.name, &format!("db-{i}")) > 1900);
            if grown {
                Ok(app)
            } else {
                Err(format!("{capacity:?} {resized:?}"))
            }
        },
    )
    .await;
    let status = api.get("db").await.unwrap().status.unwrap();
    assert_eq!(status.claims[0].requested, "2Gi");
    assert_eq!((status.claims[0].claims, status.claims[0].resized), (2, 2));
    let after = pods_of(&client, &ns.name, "db").await;
    for p in ["db-0", "db-1"] {
        assert_eq!(after[p].uid(), before[p].uid(), "{p} was not restarted");
    }
    // Shrinking is refused at admission, naming the field.
    templates[0]["spec"]["resources"]["requests"]["storage"] = json!("1Gi");
    let refused = api
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"volumeClaimTemplates": templates}})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("resources.requests.storage may not be lowered"),
        "{refused}"
    );
}

/// A crash-looping update, then the way back: the StatefulApp replaces its broken pod by
/// itself; a StatefulSet given the same sequence keeps it (kubernetes/kubernetes#67250).
#[tokio::test]
async fn a_rollout_to_a_broken_revision_recovers_once_undone_where_a_statefulset_stays_stuck() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-sapp-stuck").await;
    let api = create_stateful(
        &client,
        &ns.name,
        stateful_manifest("db", 3, "1", json!({})),
    )
    .await;
    wait_pods(&client, &ns.name, "db", &["db-0", "db-1", "db-2"], "1").await;
    let broken = |mut template: Value| {
        template["spec"]["containers"][0]["command"] = json!(["sh", "-c", "exit 1"]);
        template
    };
    let good = serde_json::to_value(api.get("db").await.unwrap().spec.template).unwrap();
    patch_stateful(&api, "db", json!({"template": broken(good.clone())})).await;
    let crashing = wait_crash_loop(&client, &ns.name, "db-2").await;
    // Through the plugin: `rollout undo` sets drover.dev/undo=previous.
    let undone = kubectl_ok(&[
        "drover",
        "rollout",
        "-n",
        &ns.name,
        "undo",
        "statefulapp/db",
    ]);
    assert!(
        undone.contains("statefulapp.drover.dev/db rolling back"),
        "{undone}"
    );
    wait_until_in(
        &ns.name,
        "db-2 replaced without a manual delete",
        READY,
        || async {
            let pods = pods_of(&client, &ns.name, "db").await;
            match pods.get("db-2") {
                Some(p) if p.uid() != Some(crashing.clone()) && is_pod_ready(p) => Ok(()),
                other => Err(format!("{:?}", other.map(|p| (p.uid(), is_pod_ready(p))))),
            }
        },
    )
    .await;
    wait_pods(&client, &ns.name, "db", &["db-0", "db-1", "db-2"], "1").await;
    let status = kubectl_ok(&[
        "drover",
        "rollout",
        "-n",
        &ns.name,
        "status",
        "statefulapp/db",
        "--timeout",
        "240",
    ]);
    assert!(status.ends_with("successfully rolled out\n"), "{status}");
    let history = kubectl_ok(&[
        "drover",
        "rollout",
        "-n",
        &ns.name,
        "history",
        "statefulapp/db",
    ]);
    let rows: Vec<&str> = history.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "the good and the broken revision: {history}");
    assert!(
        rows.iter()
            .any(|r| r.contains("current") && r.contains("sample:1")),
        "{history}"
    );

    // The same with a StatefulSet: revert the template; its broken pod stays.
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns.name);
    let mut template = good.clone();
    template["metadata"]["labels"] = json!({"sts": "web"});
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3, "serviceName": "web",
            "selector": {"matchLabels": {"sts": "web"}},
            "template": template,
        },
    }))
    .unwrap();
    sets.create(&PostParams::default(), &set).await.unwrap();
    wait_until_in(
        &ns.name,
        "the StatefulSet's 3 pods ready",
        READY,
        || async {
            let set = sets.get("web").await.unwrap();
            let ready = set.status.and_then(|s| s.ready_replicas).unwrap_or(0);
            if ready == 3 {
                Ok(())
            } else {
                Err(format!("{ready} ready"))
            }
        },
    )
    .await;
    let patch_template = |t: Value| json!({"spec": {"template": t}});
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&patch_template(broken(template.clone()))),
    )
    .await
    .unwrap();
    let stuck = wait_crash_loop(&client, &ns.name, "web-2").await;
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&patch_template(template)),
    )
    .await
    .unwrap();
    // As long as drover took, and longer: the broken pod is still there.
    tokio::time::sleep(Duration::from_secs(45)).await;
    let pod = Api::<Pod>::namespaced(client.clone(), &ns.name)
        .get("web-2")
        .await
        .unwrap();
    assert_eq!(
        pod.uid(),
        Some(stuck),
        "the StatefulSet keeps its broken pod"
    );
    assert!(!is_pod_ready(&pod), "and it is still not ready");
}

/// An App and a StatefulApp of one name would take in each other's pods (both label
/// theirs `drover.dev/app=<name>`): the younger starts nothing and says why until the
/// other is gone.
#[tokio::test]
async fn of_an_app_and_a_statefulapp_of_one_name_the_younger_waits() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-sapp-rival").await;
    create_app(
        &client,
        &ns.name,
        app_manifest("db", 1, "1", &Placement::AnyNode),
    )
    .await;
    let api = create_stateful(
        &client,
        &ns.name,
        stateful_manifest("db", 1, "1", json!({})),
    )
    .await;
    let message = wait_until_in(
        &ns.name,
        "the StatefulApp's NameConflict",
        READY,
        || async {
            let app = api.get("db").await.map_err(|e| e.to_string())?;
            match condition(&app, "NameConflict") {
                Some((status, _, message)) if status == "True" => Ok(message),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert!(
        message.starts_with("App db in this namespace has the same name and came first"),
        "{message}"
    );
    // A while on, it has started nothing; the App keeps its one pod and no conflict.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pods = pods_of(&client, &ns.name, "db").await;
    let kinds: Vec<String> = pods
        .values()
        .map(|p| format!("{} of {}", p.name_any(), p.owner_references()[0].kind))
        .collect();
    assert!(
        pods.len() == 1 && pods.values().all(|p| p.owner_references()[0].kind == "App"),
        "only the App's pod: {kinds:?}"
    );
    let apps: Api<drover_crds::App> = Api::namespaced(client.clone(), &ns.name);
    let app = apps.get("db").await.unwrap();
    assert!(
        app.status
            .unwrap()
            .conditions
            .iter()
            .all(|c| c.type_ != "NameConflict"),
        "the App, first, goes on"
    );

    apps.delete("db", &DeleteParams::foreground())
        .await
        .unwrap();
    wait_until_in(&ns.name, "the App gone", READY, || async {
        match apps.get_opt("db").await {
            Ok(None) => Ok(()),
            other => Err(format!("{:?}", other.map(|a| a.map(|a| a.name_any())))),
        }
    })
    .await;
    wait_pods(&client, &ns.name, "db", &["db-0"], "1").await;
    let app = api.get("db").await.unwrap();
    assert_eq!(condition(&app, "NameConflict"), None, "cleared");
}

/// Waits until `pod` has crashed at least once; its UID.
async fn wait_crash_loop(client: &kube::Client, ns: &str, pod: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_until_in(ns, &format!("{pod} crash-looping"), READY, || async {
        let p = pods.get_opt(pod).await.unwrap().ok_or_else(String::new)?;
        let restarts = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.first())
            .map_or(0, |c| c.restart_count);
        if restarts >= 1 {
            Ok(p.uid().unwrap())
        } else {
            Err(format!("{restarts} restarts"))
        }
    })
    .await
}

/// The VolumeSnapshots of a namespace, as JSON (the snapshot API is not in k8s-openapi).
fn snapshots(ns: &str) -> Vec<Value> {
    let listed: Value = serde_json::from_str(&kubectl_ok(&[
        "get",
        "volumesnapshots",
        "-n",
        ns,
        "-o",
        "json",
    ]))
    .unwrap();
    listed["items"].as_array().cloned().unwrap_or_default()
}

/// With `beforeUpdate`, every claim is snapshotted before its pod goes to the new
/// revision; undo with `restore-data` brings back what the claims held before the update
/// (here after the new revision wrote over it); a later update takes the restored
/// revision's snapshots again, and they are pruned with their revision.
#[tokio::test]
async fn snapshots_before_an_update_bring_the_data_back_with_the_undo() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-sapp-snap").await;
    let snapshotted = json!({
        "podManagementPolicy": "Parallel",
        "volumeSnapshots": {"beforeUpdate": true, "className": "drover-csi"},
    });
    let api = create_stateful(
        &client,
        &ns.name,
        with_data(stateful_manifest("db", 2, "1", snapshotted), "1Gi"),
    )
    .await;
    wait_pods(&client, &ns.name, "db", &["db-0", "db-1"], "1").await;
    for p in ["db-0", "db-1"] {
        let write = format!("echo before-{p} > /data/file && sync");
        exec(&ns.name, p, &["sh", "-c", &write]);
    }
    let first = api.get("db").await.unwrap().status.unwrap().update_revision;
    set_stateful_image(&api, "2").await;
    wait_pods(&client, &ns.name, "db", &["db-0", "db-1"], "2").await;
    let taken = snapshots(&ns.name);
    let pods = pods_of(&client, &ns.name, "db").await;
    for p in ["db-0", "db-1"] {
        let name = format!("data-{p}-{first}");
        let snapshot = taken
            .iter()
            .find(|s| s["metadata"]["name"] == json!(name))
            .unwrap_or_else(|| panic!("snapshot {name} taken: {taken:?}"));
        assert_eq!(snapshot["status"]["readyToUse"], json!(true), "{snapshot}");
        let at: Timestamp = snapshot["status"]["creationTime"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            at <= created_at(&pods[p]),
            "{name} was taken ({at}) before {p} of the new revision started ({})",
            created_at(&pods[p])
        );
        assert_eq!(
            exec(&ns.name, p, &["cat", "/data/file"]).trim(),
            format!("before-{p}"),
            "the new revision starts on the same claim"
        );
        // The new revision damages the data.
        exec(
            &ns.name,
            p,
            &["sh", "-c", "echo corrupt > /data/file && sync"],
        );
    }
    kubectl_ok(&[
        "annotate",
        "-n",
        &ns.name,
        "statefulapp",
        "db",
        "drover.dev/undo=previous",
        "drover.dev/restore-data=true",
    ]);
    wait_pods(&client, &ns.name, "db", &["db-0", "db-1"], "1").await;
    wait_until_in(&ns.name, "the restore finished", READY, || async {
        let app = api.get("db").await.unwrap();
        if app.annotations().contains_key("drover.dev/restore-data") {
            Err("the annotation is still there".into())
        } else {
            Ok(())
        }
    })
    .await;
    wait_pods(&client, &ns.name, "db", &["db-0", "db-1"], "1").await;
    for p in ["db-0", "db-1"] {
        assert_eq!(
            exec(&ns.name, p, &["cat", "/data/file"]).trim(),
            format!("before-{p}"),
            "{p}'s data as it was before the update"
        );
        let claim = &claims_of(&client, &ns.name).await[&format!("data-{p}")];
        let source = claim.spec.as_ref().unwrap().data_source.as_ref().unwrap();
        assert_eq!(source.name, format!("data-{p}-{first}"));
    }
    let events = kubectl_ok(&[
        "get",
        "events",
        "-n",
        &ns.name,
        "--field-selector",
        "reason=DataRestored",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "a DataRestored event");

    // The next update leaves the restored revision, whose snapshots predate its pods
    // (they would miss what the pods wrote since): they are taken again first.
    let taken_at = |ns: &str, name: &str| -> Option<Timestamp> {
        snapshots(ns)
            .iter()
            .find(|s| s["metadata"]["name"] == json!(name))?["metadata"]["creationTimestamp"]
            .as_str()?
            .parse()
            .ok()
    };
    let pods = pods_of(&client, &ns.name, "db").await;
    let before: HashMap<&str, Timestamp> = ["db-0", "db-1"]
        .into_iter()
        .map(|p| (p, taken_at(&ns.name, &format!("data-{p}-{first}")).unwrap()))
        .collect();
    set_stateful_image(&api, "3").await;
    wait_pods(&client, &ns.name, "db", &["db-0", "db-1"], "3").await;
    for p in ["db-0", "db-1"] {
        let name = format!("data-{p}-{first}");
        let at = taken_at(&ns.name, &name).unwrap_or_else(|| panic!("{name} taken again"));
        assert!(
            at > before[p] && at >= created_at(&pods[p]),
            "{name} taken again ({at}) after {p} of the restored revision started ({}); the first was {}",
            created_at(&pods[p]),
            before[p]
        );
    }
    // Pruned with their revision: no history kept, the snapshots go with it.
    patch_stateful(&api, "db", json!({"revisionHistoryLimit": 0})).await;
    wait_until_in(
        &ns.name,
        "the old revision's snapshots pruned",
        READY,
        || async {
            let left: Vec<String> = snapshots(&ns.name)
                .iter()
                .filter_map(|s| s["metadata"]["name"].as_str().map(String::from))
                .filter(|n| n.ends_with(first.as_str()))
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    )
    .await;
    let revisions = kubectl_ok(&["get", "controllerrevisions", "-n", &ns.name, "-o", "name"]);
    assert!(
        !revisions.contains(first.as_str()),
        "revision {first} pruned: {revisions}"
    );
}
