//! Benchmarks of drover's App controller against Kubernetes' Deployment controller (in
//! kube-controller-manager), on simulated nodes of the kind cluster, one after the other, with
//! the same pod template and strategy — once with equal client rate limits, once as each
//! ships. Reported side by side, as ratios: duration, API writes per pod (from the
//! apiserver's audit log, by the controller's identity), controller CPU seconds and peak
//! memory.
//!
//! - `bench scale`: from nothing to N Ready replicas; timed until the workload's status
//!   says every replica is Ready.
//! - `bench rollout`: a rolling update of N replicas to a new image (maxSurge and
//!   maxUnavailable 25%); timed from the change until the status says every replica is
//!   updated and available and no old one is left.

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::AuditMark;
use crate::cmd::cmd;
use crate::fake_nodes;
use crate::install;
use crate::kind;
use crate::kubectl::Kubectl;
use crate::layout::Layout;
use crate::process;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// App vs Deployment: bring N replicas to Ready on simulated nodes.
    Scale(Sizes),
    /// App vs Deployment: roll N replicas on simulated nodes to a new image.
    Rollout(Sizes),
    /// drover's scheduler vs kube-scheduler: place a seeded mix of pods on node pools.
    Scheduler(crate::bench_scheduler::SchedulerBench),
}

#[derive(Debug, Args)]
struct Sizes {
    #[arg(long, default_value_t = 1000)]
    replicas: u32,
    /// Runs per controller and scenario; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Kind {
    Scale,
    Rollout,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Scale => "scale",
            Kind::Rollout => "rollout",
        }
    }
}

/// kube-controller-manager's client limits as shipped (its `--kube-api-qps` and
/// `--kube-api-burst` defaults, which the local cluster does not change).
const KCM_LIMITS: (f64, u32) = (20.0, 30);
/// drover's client limits as shipped (the chart's defaults).
const DROVER_LIMITS: (f64, u32) = (50.0, 100);

const DROVER_USER: &str = "system:serviceaccount:drover-system:drover";
const KCM_USERS: [&str; 2] = [
    "system:serviceaccount:kube-system:deployment-controller",
    "system:serviceaccount:kube-system:replicaset-controller",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Workload {
    App,
    Deployment,
}

impl Workload {
    fn resource(self) -> &'static str {
        match self {
            Workload::App => "app.drover.dev",
            Workload::Deployment => "deployment.apps",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Sample {
    seconds: f64,
    writes: u64,
    writes_per_pod: f64,
    cpu_seconds: f64,
    peak_rss_mib: f64,
}

#[derive(Debug, Serialize)]
struct ScenarioResult {
    scenario: String,
    drover_limits: (f64, u32),
    kcm_limits: (f64, u32),
    app: Vec<Sample>,
    deployment: Vec<Sample>,
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.bench {
        Bench::Scale(s) => compare(Kind::Scale, s.replicas, s.runs),
        Bench::Rollout(s) => compare(Kind::Rollout, s.replicas, s.runs),
        Bench::Scheduler(s) => crate::bench_scheduler::run(s),
    }
}

fn compare(kind: Kind, replicas: u32, runs: usize) -> Result<()> {
    let layout = Layout::detect()?;
    let kubectl = kind::kubectl(&layout)?;
    let (nodes_before, _) = fake_nodes::observe(&kubectl).unwrap_or_default();
    // 110 pods per simulated node, with room to spare.
    let nodes = (replicas as usize).div_ceil(100) + 1;
    install::cluster_with_drover(&layout, nodes_before.len().max(nodes))?;
    let tick = clock_ticks()?;
    let scenarios = [
        ("equal client limits", KCM_LIMITS),
        ("as shipped", DROVER_LIMITS),
    ];
    let mut results = vec![];
    for (scenario, drover_limits) in scenarios {
        println!(
            "\n== {scenario}: drover {}/{} qps/burst, kube-controller-manager {}/{}",
            drover_limits.0, drover_limits.1, KCM_LIMITS.0, KCM_LIMITS.1
        );
        set_limits(&layout, &CONTROLLER, drover_limits, BENCH_CPU)?;
        let mut result = ScenarioResult {
            scenario: scenario.into(),
            drover_limits,
            kcm_limits: KCM_LIMITS,
            app: vec![],
            deployment: vec![],
        };
        for run in 0..runs {
            for workload in [Workload::App, Workload::Deployment] {
                let sample = measure(&layout, &kubectl, kind, workload, replicas, run, tick)?;
                println!(
                    "  {workload:?} run {}: {:.1}s, {:.2} writes/pod, {:.1} CPU s, {:.0} MiB peak",
                    run + 1,
                    sample.seconds,
                    sample.writes_per_pod,
                    sample.cpu_seconds,
                    sample.peak_rss_mib
                );
                match workload {
                    Workload::App => result.app.push(sample),
                    Workload::Deployment => result.deployment.push(sample),
                }
            }
        }
        print_table(kind, &result, replicas);
        results.push(result);
    }
    set_limits(&layout, &CONTROLLER, DROVER_LIMITS, SHIPPED_CPU)?;
    if nodes_before.len() < nodes {
        kind::set_fake_nodes(&kubectl, nodes_before.len())?;
    }
    let out = layout.repo.join("target/bench");
    fs::create_dir_all(&out)?;
    let file = out.join(format!("{}.json", kind.name()));
    fs::write(
        &file,
        serde_json::to_string_pretty(
            &json!({"bench": kind, "replicas": replicas, "runs": runs, "results": results}),
        )?,
    )?;
    println!("\nwrote {}", file.display());
    Ok(())
}

/// One of drover's components as the benchmarks drive it.
pub(crate) struct DroverComponent {
    /// Its section of the chart's values.
    pub values: &'static str,
    /// `app.kubernetes.io/name` of its pods.
    pub pods: &'static str,
    pub lease: &'static str,
    /// Its resources in the chart's values.
    pub resources: &'static str,
    /// How its process's command line starts (seen from the host, as every process of
    /// the kind nodes is).
    pub command: &'static str,
}

pub(crate) const CONTROLLER: DroverComponent = DroverComponent {
    values: "controller",
    pods: "drover",
    lease: "drover-controller",
    resources: "resources",
    command: "/drover controller",
};

pub(crate) const SCHEDULER: DroverComponent = DroverComponent {
    values: "scheduler",
    pods: "drover-scheduler",
    lease: "drover-scheduler",
    resources: "scheduler.resources",
    command: "/drover scheduler",
};

/// What a component's pod requests of CPU: while benchmarked, and as the chart ships it.
pub(crate) const BENCH_CPU: &str = "1";
pub(crate) const SHIPPED_CPU: &str = "50m";

/// Points an installed component at new client limits and a CPU request, and waits until
/// its replacement leads (once its predecessor's lease is released or lapses).
pub(crate) fn set_limits(
    layout: &Layout,
    component: &DroverComponent,
    (qps, burst): (f64, u32),
    cpu: &str,
) -> Result<()> {
    let kubectl = kind::kubectl(layout)?;
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
            "{0}.kubeApiQps={qps},{0}.kubeApiBurst={burst},{1}.requests.cpu={cpu}",
            component.values, component.resources
        ))
        .run()?;
    wait_leading(&kubectl, component)
}

/// Sets the replicas of a component's Deployment; at 0, waits until its pods are gone.
pub(crate) fn scale(kubectl: &Kubectl, component: &DroverComponent, replicas: u32) -> Result<()> {
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
pub(crate) fn wait_leading(kubectl: &Kubectl, component: &DroverComponent) -> Result<()> {
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

/// The bounds of every rolling update benchmarked (Deployment's defaults), the same for
/// both workloads.
fn strategy() -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
}

fn manifest(workload: Workload, namespace: &str, replicas: u32, version: u32) -> Value {
    let pod = json!({
        "metadata": {"labels": {"bench": "scale"}},
        "spec": {
            "nodeSelector": {fake_nodes::LABEL: fake_nodes::LABEL_VALUE},
            "tolerations": [{"key": fake_nodes::ANNOTATION, "operator": "Equal", "value": fake_nodes::ANNOTATION_VALUE, "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "app", "image": format!("registry.local/drover/sample:{version}")}],
        },
    });
    match workload {
        Workload::App => json!({
            "apiVersion": "drover.dev/v1alpha1", "kind": "App", "metadata": {"name": "scale", "namespace": namespace},
            "spec": {"replicas": replicas, "template": pod, "strategy": strategy()},
        }),
        Workload::Deployment => json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "scale", "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"bench": "scale"}}, "template": pod, "strategy": strategy()},
        }),
    }
}

/// One run in a fresh namespace: for `scale`, create the workload and wait until its
/// status reports every replica Ready; for `rollout`, create it at version 1, wait until
/// it is Ready (not measured), then change the image to version 2 and wait until the
/// status reports every replica updated and available. Then delete the namespace.
fn measure(
    layout: &Layout,
    kubectl: &Kubectl,
    kind: Kind,
    workload: Workload,
    replicas: u32,
    run: usize,
    tick: f64,
) -> Result<Sample> {
    let ns = format!("bench-{}-{run}", format!("{workload:?}").to_lowercase());
    fresh_namespace(kubectl, &ns)?;
    let apply = |version: u32| {
        kubectl.apply(
            &format!("bench-{ns}"),
            &manifest(workload, &ns, replicas, version).to_string(),
        )
    };
    if kind == Kind::Rollout {
        apply(1)?;
        let mut watch = status_watch(kubectl, &ns, workload)?;
        let ready = wait_for_status(&mut watch, Duration::from_secs(900), |s| {
            s.ready >= replicas && s.updated >= replicas
        });
        let _ = watch.kill();
        ready.with_context(|| format!("{workload:?} in {ns} before its rollout"))?;
    }
    let pid = match workload {
        Workload::App => {
            host_pid(&CONTROLLER).context("the drover controller process is not running")?
        }
        Workload::Deployment => process_pid("kube-controller-manager")
            .context("kube-controller-manager is not running")?,
    };
    let audit = AuditMark::now(&layout.audit_log());
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid).unwrap_or(0), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let cpu_before = cpu_ticks(pid)?;
    let started = Instant::now();
    apply(match kind {
        Kind::Scale => 1,
        Kind::Rollout => 2,
    })?;
    // `get --watch` of a named object fails if it does not exist yet; it starts with the
    // current state, so nothing is missed by starting it after the apply.
    let mut watch = status_watch(kubectl, &ns, workload)?;
    let ready = wait_for_status(&mut watch, Duration::from_secs(900), |s| match kind {
        Kind::Scale => s.ready >= replicas,
        Kind::Rollout => {
            s.generation == s.observed_generation
                && s.updated == replicas
                && s.available == replicas
                && s.replicas == replicas
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = cpu_ticks(pid)?;
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let _ = watch.kill();
    ready.with_context(|| format!("{workload:?} in {ns}"))?;
    let users: &[&str] = match workload {
        Workload::App => &[DROVER_USER],
        Workload::Deployment => &KCM_USERS,
    };
    let writes = count_writes(&audit.read_since(&layout.audit_log())?, users);

    kubectl
        .cmd()
        .args(["delete", "namespace", &ns, "--wait=true", "--timeout=600s"])
        .run()?;
    Ok(Sample {
        seconds,
        writes,
        writes_per_pod: writes as f64 / f64::from(replicas),
        cpu_seconds: (cpu_after - cpu_before) as f64 / tick,
        peak_rss_mib: peak.load(Ordering::Relaxed) as f64 / 1024.0,
    })
}

/// What the status watch prints of a workload, one line per change.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    generation: u32,
    observed_generation: u32,
    replicas: u32,
    ready: u32,
    updated: u32,
    available: u32,
}

/// The watch's jsonpath; the fields of [`Seen`], in order, space-separated.
const SEEN: &str = "{.metadata.generation} {.status.observedGeneration} {.status.replicas} {.status.readyReplicas} {.status.updatedReplicas} {.status.availableReplicas}{\"\\n\"}";

impl Seen {
    /// Unset fields (printed empty) are 0.
    fn parse(line: &str) -> Seen {
        let n: Vec<u32> = line
            .split(' ')
            .map(|f| f.trim().parse().unwrap_or(0))
            .collect();
        let at = |i: usize| n.get(i).copied().unwrap_or(0);
        Seen {
            generation: at(0),
            observed_generation: at(1),
            replicas: at(2),
            ready: at(3),
            updated: at(4),
            available: at(5),
        }
    }
}

/// `kubectl get -w` on the workload's status: one process for the whole run, so
/// measuring costs the machine almost nothing.
fn status_watch(kubectl: &Kubectl, ns: &str, workload: Workload) -> Result<Child> {
    let mut command = kubectl
        .cmd()
        .args([
            "-n",
            ns,
            "get",
            workload.resource(),
            "scale",
            "--watch",
            "--request-timeout=0",
        ])
        .args(["-o", &format!("jsonpath={SEEN}")])
        .into_inner();
    Ok(command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?)
}

fn wait_for_status(
    watch: &mut Child,
    timeout: Duration,
    done: impl Fn(&Seen) -> bool,
) -> Result<()> {
    let stdout = watch.stdout.take().context("watch has no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if done(&Seen::parse(&line)) => return Ok(()),
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                bail!("the status watch (kubectl get --watch) ended early")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                bail!("not done within {}s", timeout.as_secs())
            }
        }
    }
}

/// Marks the namespaces the benchmarks create.
const BENCH_NAMESPACE_LABEL: &str = "drover.dev/bench";

/// Creates a run's namespace, once every namespace an earlier run left is gone: an
/// interrupted run leaves its pods, which would take the simulated nodes' room.
pub(crate) fn fresh_namespace(kubectl: &Kubectl, ns: &str) -> Result<()> {
    kubectl
        .cmd()
        .args(["delete", "namespace", "-l", BENCH_NAMESPACE_LABEL])
        .arg("--timeout=600s")
        .run()?;
    kubectl.cmd().args(["create", "namespace", ns]).run()?;
    kubectl
        .cmd()
        .args(["label", "namespace", ns])
        .arg(format!("{BENCH_NAMESPACE_LABEL}=true"))
        .run()
}

/// Writes (create, update, patch, delete) the given users made, in a stretch of the
/// audit log.
fn count_writes(audit: &str, users: &[&str]) -> u64 {
    audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete")
        .filter(|e| {
            e["user"]["username"]
                .as_str()
                .is_some_and(|u| users.contains(&u))
        })
        .count() as u64
}

/// A component's host PID (its container's process).
pub(crate) fn host_pid(component: &DroverComponent) -> Option<i32> {
    process::host_processes()
        .into_iter()
        .find(|p| p.cmdline.starts_with(component.command))
        .map(|p| p.pid)
}

/// The PID (as the host sees it) of the one process running the executable `name`, in
/// whichever node container it runs.
pub(crate) fn process_pid(name: &str) -> Option<i32> {
    process::host_processes()
        .into_iter()
        .find(|p| p.exe.file_name().is_some_and(|n| n == name))
        .map(|p| p.pid)
}

pub(crate) fn cpu_ticks(pid: i32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

pub(crate) fn rss_kib(pid: i32) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub(crate) fn clock_ticks() -> Result<f64> {
    Ok(cmd("getconf").arg("CLK_TCK").output()?.trim().parse()?)
}

pub(crate) fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A row of the report: its label and how to read it off a sample.
type Row = (&'static str, fn(&Sample) -> f64);

fn print_table(kind: Kind, r: &ScenarioResult, replicas: u32) {
    println!("\n  {} replicas, median of {} runs", replicas, r.app.len());
    println!(
        "  {:<26} {:>14} {:>18} {:>16}",
        "", "App (drover)", "Deployment (kcm)", "drover / kcm"
    );
    let time: Row = match kind {
        Kind::Scale => ("time to all Ready (s)", |s| s.seconds),
        Kind::Rollout => ("rollout duration (s)", |s| s.seconds),
    };
    let rows: [Row; 4] = [
        time,
        ("API writes per pod", |s| s.writes_per_pod),
        ("controller CPU (s)", |s| s.cpu_seconds),
        ("controller peak RSS (MiB)", |s| s.peak_rss_mib),
    ];
    for (name, get) in rows {
        let a = median(r.app.iter().map(get));
        let d = median(r.deployment.iter().map(get));
        println!("  {name:<26} {a:>14.2} {d:>18.2} {:>16.2}", a / d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_line() {
        assert_eq!(
            Seen::parse("3 3 10 9 4 8"),
            Seen {
                generation: 3,
                observed_generation: 3,
                replicas: 10,
                ready: 9,
                updated: 4,
                available: 8
            }
        );
        assert_eq!(
            Seen::parse("1    "),
            Seen {
                generation: 1,
                ..Seen::default()
            }
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
    }

    #[test]
    fn counts_only_the_named_users_completed_writes() {
        let line = |user: &str, stage: &str| {
            json!({"stage": stage, "verb": "create", "user": {"username": user}}).to_string()
        };
        let audit = [
            line(DROVER_USER, "ResponseComplete"),
            line(DROVER_USER, "ResponseStarted"),
            line(KCM_USERS[1], "ResponseComplete"),
            line("system:kube-scheduler", "ResponseComplete"),
            "not json".into(),
        ]
        .join("\n");
        assert_eq!(count_writes(&audit, &[DROVER_USER]), 1);
        assert_eq!(count_writes(&audit, &KCM_USERS), 1);
        assert_eq!(count_writes(&audit, &["nobody"]), 0);
    }

    #[test]
    fn the_two_workloads_run_the_same_pods() {
        let app = manifest(Workload::App, "a", 5, 2);
        let dep = manifest(Workload::Deployment, "a", 5, 2);
        assert_eq!(app["spec"]["strategy"], dep["spec"]["strategy"]);
        assert_eq!(app["spec"]["template"], dep["spec"]["template"]);
        assert_eq!(app["spec"]["replicas"], dep["spec"]["replicas"]);
        assert_eq!(app["metadata"]["namespace"], "a");
        assert_eq!(dep["metadata"]["namespace"], "a");
    }
}
