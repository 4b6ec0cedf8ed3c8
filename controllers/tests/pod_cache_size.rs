//! What drover's scheduler keeps per pod. Its cache holds every pod of the cluster (it
//! must: any pod may take room on a node, or match an affinity term), trimmed to what
//! placement reads, and for each bound pod what it takes of its node. Measured here with
//! a counting allocator on a pod as the apiserver serves a running App pod, so the size
//! the README states follows the code; the test fails if a change makes it grow past
//! the ceiling.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::collections::HashMap;
use std::sync::Arc;

use drover_controllers::runtime::trim;
use drover_controllers::scheduler::bound::Bound;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A running pod of an App, as the apiserver serves it: labels, owner, managed fields,
/// one container with env, probes and mounts, the default tolerations, full status.
fn running_pod(i: usize) -> Pod {
    let name = format!("web-{i:05}");
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": format!("6b1f0c2e-1d4a-4c3b-9e8f-{i:012}"),
            "resourceVersion": "123456789",
            "creationTimestamp": "2026-12-01T10:00:00Z",
            "labels": {"drover.dev/app": "web", "drover.dev/slot": i.to_string(),
                "drover.dev/revision": "web-5f7d9c8b6a", "app.kubernetes.io/managed-by": "drover"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-12-01T09:00:00Z"},
            "ownerReferences": [{"apiVersion": "drover.dev/v1alpha1", "kind": "App", "name": "web",
                "uid": "0c6e3d52-8b4f-4f6a-a1d2-3e4f5a6b7c8d", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [
                {"manager": "drover", "operation": "Update", "apiVersion": "v1", "time": "2026-12-01T10:00:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:drover.dev/app": {}}}, "f:spec": {"f:containers": {}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2026-12-01T10:00:05Z",
                 "fieldsType": "FieldsV1", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:podIP": {}}}},
            ],
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "registry.example.com/shop/web:1.24.3",
                "args": ["--listen=:8080", "--config=/config/app.yaml"],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-5f7d9c8b6a", "key": "password"}}},
                ],
                "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                "volumeMounts": [
                    {"name": "config", "mountPath": "/config"},
                    {"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true},
                ],
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 5},
                "livenessProbe": {"httpGet": {"path": "/livez", "port": 8080}, "periodSeconds": 10},
                "imagePullPolicy": "IfNotPresent",
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }],
            "volumes": [
                {"name": "config", "configMap": {"name": "settings-5f7d9c8b6a", "defaultMode": 420}},
                {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ]}},
            ],
            "nodeName": format!("worker-{}", i % 50),
            "schedulerName": "drover-scheduler",
            "serviceAccountName": "default",
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "terminationGracePeriodSeconds": 30,
            "priority": 0,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ],
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2026-12-01T10:00:03Z"},
                {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-12-01T10:00:01Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-01T10:00:06Z"},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-12-01T10:00:06Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-01T10:00:00Z"},
            ],
            "hostIP": "172.18.0.3",
            "hostIPs": [{"ip": "172.18.0.3"}],
            "podIP": "10.244.1.17",
            "podIPs": [{"ip": "10.244.1.17"}],
            "startTime": "2026-12-01T10:00:01Z",
            "containerStatuses": [{
                "name": "web", "ready": true, "started": true, "restartCount": 0,
                "image": "registry.example.com/shop/web:1.24.3",
                "imageID": "registry.example.com/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "containerID": "containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "state": {"running": {"startedAt": "2026-12-01T10:00:05Z"}},
            }],
            "qosClass": "Burstable",
        },
    }))
    .unwrap()
}

/// The ceiling, in bytes per pod; the README states the measured size.
const CEILING: isize = 6 * 1024;

#[test]
fn the_scheduler_keeps_about_4_kib_per_bound_pod() {
    const PODS: usize = 2000;
    let mut store: HashMap<ObjectRef<Pod>, Arc<Pod>> = HashMap::new();
    let mut bound = Bound::default();
    let region = Region::new(GLOBAL);
    for i in 0..PODS {
        let mut pod = running_pod(i);
        // As the watch hands it on: trimmed, counted on its node, then stored.
        trim::pod_for_placement(&mut pod);
        bound.apply(&pod);
        trim::bound_pod(&mut pod);
        store.insert(ObjectRef::from_obj(&pod), Arc::new(pod));
    }
    let change = region.change();
    let kept = isize::try_from(change.bytes_allocated).unwrap_or(isize::MAX)
        - isize::try_from(change.bytes_deallocated).unwrap_or(0)
        + change.bytes_reallocated;
    let per_pod = kept / isize::try_from(PODS).unwrap_or(1);
    println!("the scheduler keeps {per_pod} bytes per bound pod ({PODS} pods measured)");
    assert!(per_pod > 0, "nothing was kept");
    assert!(per_pod < CEILING, "{per_pod} bytes per pod, over {CEILING}");
    drop((store, bound));
}
