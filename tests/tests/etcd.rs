//! The example StatefulApp, `examples/etcd.yaml`, on the kind workers and real volumes:
//! a 3-member etcd cluster whose members find each other by their DNS names, keep their
//! data across their pods' replacement, and roll one at a time keeping a quorum. A suite of
//! its own: it measures the longest outage a client sees, which the other suites' load
//! would lengthen on a 2-core machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use drover_crds::StatefulApp;
use drover_e2e::*;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const READY: Duration = READY_TIMEOUT;

/// `etcdctl ...` in a member, against its own endpoint.
fn etcdctl(ns: &str, pod: &str, args: &[&str]) -> String {
    let mut command = vec!["etcdctl", "--endpoints=http://127.0.0.1:2379"];
    command.extend_from_slice(args);
    exec(ns, pod, &command)
}

/// Waits until every member answers as healthy, asked from `pod` by their DNS names (a
/// member ready on its own may still be joining, or its peers' resolvers remember its
/// name missing from before it started); what etcdctl printed.
async fn healthy(ns: &str, pod: &str) -> String {
    wait_until_in(ns, "three healthy etcd members", READY, || async {
        let args = [
            "-n",
            ns,
            "exec",
            pod,
            "--",
            "etcdctl",
            "--endpoints=http://127.0.0.1:2379",
            "endpoint",
            "health",
            "--cluster",
        ];
        let out = kubectl(&args);
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && printed.matches("is healthy").count() == 3 {
            Ok(printed)
        } else {
            Err(format!("{printed}{}", String::from_utf8_lossy(&out.stderr)))
        }
    })
    .await
}

/// A client of the example's `etcd-client` Service: every 100 ms it writes a key and
/// reads it back, and logs `ok|fail <n> <uptime>` (uptime in centiseconds' precision).
fn etcd_client() -> Pod {
    let script = "i=0; while true; do i=$((i+1)); t=$(cut -d' ' -f1 /proc/uptime); \
        e='etcdctl --endpoints=http://etcd-client:2379 --dial-timeout=1s --command-timeout=1s'; \
        if $e put load-$i v$i >/dev/null 2>&1 && [ \"$($e get load-$i --print-value-only 2>/dev/null)\" = v$i ]; \
        then echo ok $i $t; else echo fail $i $t; fi; sleep 0.1; done";
    serde_json::from_value(json!({
        "metadata": {"name": "client"},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "client",
                "image": format!("registry.local/drover/etcd:{}", etcd_version()),
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/sh", "-c", script],
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }))
    .unwrap()
}

/// The etcd version the example's image carries (as `examples/etcd.yaml` names it).
fn etcd_version() -> String {
    let example = std::fs::read_to_string(example_path()).unwrap();
    let image = example
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: registry.local/drover/etcd:"))
        .expect("the example names its image");
    image.trim().to_string()
}

fn example_path() -> String {
    format!("{}/../examples/etcd.yaml", env!("CARGO_MANIFEST_DIR"))
}

/// The example etcd cluster: three healthy members; a member deleted comes back with its
/// name, DNS name and data and rejoins; a rolling update with `maxUnavailable: 1` keeps
/// a quorum — a client writing and reading through the client Service every 100 ms sees
/// no outage longer than a leader election — and every key is there at the end.
#[tokio::test]
async fn the_etcd_example_keeps_its_members_data_and_quorum() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "e2e-sapp-etcd").await;
    kubectl_ok(&["apply", "-n", &ns.name, "-f", &example_path()]);
    let api: Api<StatefulApp> = Api::namespaced(client.clone(), &ns.name);
    let members = ["etcd-0", "etcd-1", "etcd-2"];
    wait_updated(&api, &client, &ns.name, "etcd", &members).await;
    let health = healthy(&ns.name, "etcd-0").await;
    for m in members {
        assert!(
            health.contains(&format!("http://{m}.etcd.{}.svc:2379", ns.name)),
            "{m} is reached by its DNS name: {health}"
        );
    }
    exec(
        &ns.name,
        "etcd-0",
        &[
            "sh",
            "-c",
            "for i in $(seq 0 49); do etcdctl put k$i v$i >/dev/null || exit 1; done",
        ],
    );

    // A member deleted comes back with its name, claim and data, and rejoins.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let old = pods.get("etcd-1").await.unwrap().uid();
    let claim = claims_of(&client, &ns.name).await["data-etcd-1"].uid();
    pods.delete("etcd-1", &DeleteParams::default())
        .await
        .unwrap();
    wait_until_in(&ns.name, "etcd-1 replaced and ready", READY, || async {
        match pods.get_opt("etcd-1").await.unwrap() {
            Some(p) if p.uid() != old && is_pod_ready(&p) => Ok(()),
            _ => Err(String::new()),
        }
    })
    .await;
    assert_eq!(
        claims_of(&client, &ns.name).await["data-etcd-1"].uid(),
        claim
    );
    let local = etcdctl(
        &ns.name,
        "etcd-1",
        &["get", "k7", "--consistency=s", "--print-value-only"],
    );
    assert_eq!(local.trim(), "v7", "etcd-1 serves its own data");
    healthy(&ns.name, "etcd-1").await;
    let listed = etcdctl(&ns.name, "etcd-1", &["member", "list"]);
    assert_eq!(
        listed.lines().filter(|l| l.contains("started")).count(),
        3,
        "{listed}"
    );

    // A rolling update (a flag, as an environment variable) under a client's load.
    pods.create(&PostParams::default(), &etcd_client())
        .await
        .unwrap();
    wait_pod_ready(&pods, "client", READY).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut app = api.get("etcd").await.unwrap();
    let container = &mut app.spec.template.spec.as_mut().unwrap().containers[0];
    let mut env = container.env.clone().unwrap_or_default();
    env.push(
        serde_json::from_value(json!({"name": "ETCD_SNAPSHOT_COUNT", "value": "20000"})).unwrap(),
    );
    container.env = Some(env);
    patch_stateful(&api, "etcd", json!({"template": app.spec.template})).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_updated(&api, &client, &ns.name, "etcd", &members).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = kubectl_ok(&["logs", "-n", &ns.name, "client"]);
    let ops: Vec<(bool, u64, f64)> = log
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let ok = f.next()? == "ok";
            Some((ok, f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    let oks: Vec<f64> = ops.iter().filter(|o| o.0).map(|o| o.2).collect();
    let longest = oks.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    let failed = ops.iter().filter(|o| !o.0).count();
    println!(
        "etcd rolling update under load: {} operations, {failed} failed, longest gap between successes {longest:.2}s",
        ops.len()
    );
    assert!(oks.len() > 50, "the client ran throughout: {log}");
    // etcd elects a new leader within its election timeout (1 s) of losing one; with the
    // Service's endpoints catching up, an outage stays within a few seconds.
    assert!(
        longest < 5.0,
        "no outage longer than a leader election: the longest was {longest:.2}s"
    );
    // Every key is there: the first 50, and every write the client saw succeed.
    let keys = etcdctl(&ns.name, "etcd-2", &["get", "--prefix", "", "--keys-only"]);
    let keys: std::collections::BTreeSet<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    for i in 0..50 {
        assert!(keys.contains(format!("k{i}").as_str()), "k{i} kept");
    }
    for (_, n, _) in ops.iter().filter(|o| o.0) {
        assert!(keys.contains(format!("load-{n}").as_str()), "load-{n} kept");
    }
}
