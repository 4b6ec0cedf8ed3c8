//! How the benchmarks set drover up: its components' limits, replicas and leases, and
//! a fresh namespace per run.

use std::fs;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::measure::host_pid;
use crate::cluster::install;
use crate::cluster::kubectl::Kubectl;
use crate::cmd::cmd;
use crate::layout::Layout;

/// One of drover's components as the benchmarks drive it.
pub struct DroverComponent {
    /// Its section of the chart's values.
    pub values: &'static str,
    /// `app.kubernetes.io/name` of its pods.
    pub pods: &'static str,
    pub lease: &'static str,
    /// How its process's command line starts (seen from the host, as every process of
    /// the kind nodes is).
    pub command: &'static str,
}

pub const CONTROLLER: DroverComponent = DroverComponent {
    values: "controller",
    pods: "drover",
    lease: "drover-controller",
    command: "/drover controller",
};

pub const SCHEDULER: DroverComponent = DroverComponent {
    values: "scheduler",
    pods: "drover-scheduler",
    lease: "drover-scheduler",
    command: "/drover scheduler",
};

/// What a component's pod requests of CPU: while benchmarked, and as the chart ships it.
pub const BENCH_CPU: &str = "1";
pub const SHIPPED_CPU: &str = "50m";

/// Points an installed component at new client limits and a CPU request, and waits until
/// its replacement leads (once its predecessor's lease is released or lapses).
pub fn set_limits(
    layout: &Layout,
    component: &DroverComponent,
    (qps, burst): (f64, u32),
    cpu: &str,
) -> Result<()> {
    let kubectl = crate::cluster::kubectl(layout)?;
    // Gone first: on a worker of two cores two pods requesting a CPU each may not fit.
    scale(&kubectl, component, 0)?;
    cmd(layout.bin("helm")?)
        .arg("--kubeconfig")
        .arg(layout.kubeconfig())
        .args(["upgrade", install::RELEASE])
        .arg(layout.repo.join("charts/drover"))
        .args([
            "--namespace",
            install::NAMESPACE,
            "--reuse-values",
            "--wait",
            "--timeout",
            "180s",
        ])
        .arg("--set")
        // Benchmarked, the Go side runs on the control-plane node, whose container weighs
        // as much as a worker's (1024 shares); the chart's small CPU request would give
        // drover 51 of its worker's and starve it behind the node's own agents whenever
        // the two cores are busy. A request of one CPU is 1024 shares.
        .arg(format!(
            "{0}.kubeApiQps={qps},{0}.kubeApiBurst={burst},{0}.resources.requests.cpu={cpu}",
            component.values
        ))
        .run()?;
    wait_leading(&kubectl, component)
}

/// Sets the replicas of a component's Deployment; at 0, waits until its pods are gone.
pub fn scale(kubectl: &Kubectl, component: &DroverComponent, replicas: u32) -> Result<()> {
    kubectl
        .cmd()
        .args([
            "-n",
            install::NAMESPACE,
            "scale",
            "deployment",
            component.pods,
        ])
        .arg(format!("--replicas={replicas}"))
        .run()?;
    if replicas == 0 {
        kubectl
            .cmd()
            .args(["-n", install::NAMESPACE, "wait", "--for=delete", "pod"])
            .arg(format!(
                "--selector=app.kubernetes.io/name={}",
                component.pods
            ))
            .arg("--timeout=120s")
            .run()?;
    }
    Ok(())
}

/// Waits until one pod of the component runs, holds its lease and shows on the host.
pub fn wait_leading(kubectl: &Kubectl, component: &DroverComponent) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pods = kubectl.json(&[
            "-n",
            install::NAMESPACE,
            "get",
            "pods",
            "-l",
            &format!("app.kubernetes.io/name={}", component.pods),
        ])?;
        let names: Vec<String> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
            .collect();
        let holder = kubectl
            .json(&["-n", install::NAMESPACE, "get", "lease", component.lease])
            .ok()
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from));
        if names.len() == 1
            && holder.as_deref() == Some(names[0].as_str())
            && host_pid(component).is_some()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} did not take its lease within 120s", component.pods);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Marks the namespaces the benchmarks create.
const BENCH_NAMESPACE_LABEL: &str = "drover.dev/bench";

/// How long a benchmark namespace may take to go: at 10,000 pods the namespace controller
/// (at kube-controller-manager's client limits) and kwok take minutes.
const NAMESPACE_GONE: &str = "--timeout=1800s";

/// Creates a run's namespace, once every namespace an earlier run left is gone: an
/// interrupted run leaves its pods, which would take the simulated nodes' room.
pub fn fresh_namespace(kubectl: &Kubectl, ns: &str) -> Result<()> {
    kubectl
        .cmd()
        .args(["delete", "namespace", "-l", BENCH_NAMESPACE_LABEL])
        .arg(NAMESPACE_GONE)
        .run()?;
    kubectl.cmd().args(["create", "namespace", ns]).run()?;
    kubectl
        .cmd()
        .args(["label", "namespace", ns])
        .arg(format!("{BENCH_NAMESPACE_LABEL}=true"))
        .run()
}

/// Deletes a run's namespace and waits until it is gone.
pub fn delete_namespace(kubectl: &Kubectl, ns: &str) -> Result<()> {
    kubectl
        .cmd()
        .args(["delete", "namespace", ns, "--wait=true", NAMESPACE_GONE])
        .run()
}

/// kubectl processes that submit a benchmark's objects side by side: together they go
/// past the rate a 2-core apiserver sustains, so the apiserver, not the client, sets the
/// pace.
pub const SUBMITTERS: usize = 16;

/// Submits `objects` with `kubectl <verb> -f` (`create`, or `apply`), split among
/// [`SUBMITTERS`] processes running side by side.
pub fn submit_all(kubectl: &Kubectl, verb: &str, objects: &[Value]) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("drover-bench-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let submitters: Vec<Child> = objects
        .chunks(objects.len().div_ceil(SUBMITTERS).max(1))
        .enumerate()
        .map(|(i, chunk)| {
            let file = dir.join(format!("objects-{i}.json"));
            fs::write(
                &file,
                serde_json::to_string(
                    &json!({"apiVersion": "v1", "kind": "List", "items": chunk}),
                )?,
            )?;
            let mut command = kubectl.cmd();
            command = command.arg(verb);
            if verb == "apply" {
                command = command.args([
                    "--server-side",
                    "--force-conflicts",
                    "--field-manager=drover-bench",
                ]);
            }
            Ok(command
                .arg("-f")
                .arg(&file)
                .into_inner()
                .stdout(Stdio::null())
                .spawn()?)
        })
        .collect::<Result<_>>()?;
    for mut s in submitters {
        let status = s.wait()?;
        if !status.success() {
            bail!("kubectl {verb} of the benchmark's objects failed ({status})");
        }
    }
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}
