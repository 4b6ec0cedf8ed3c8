//! Benchmarks of drover's workload controllers against Kubernetes' own (in
//! kube-controller-manager) — App against Deployment, StatefulApp against StatefulSet — on
//! simulated nodes of the kind cluster, one after the other, with the same pod template
//! and strategy — once with equal client rate limits, once as each ships. Reported side
//! by side, as ratios: duration, API writes per pod (from the apiserver's audit log, by
//! the controller's identity), controller CPU seconds and peak memory.
//!
//! - `bench scale`: from nothing to `apps` workloads of N Ready replicas each; timed until
//!   every workload's status says every replica is Ready.
//! - `bench rollout`: a rolling update of every workload's N replicas to a new image
//!   (maxSurge and maxUnavailable 25%); timed from the change until every status says every
//!   replica is updated and available and no old one is left.
//! - `bench stateful`: StatefulApp against StatefulSet, no claims, with each pod
//!   management policy (Parallel, OrderedReady): the scale from nothing to N Ready, then a
//!   rolling update (one pod at a time, both kinds' default), each timed as above.
//!
//! Each profile of client limits runs both controllers: `equal` (both at kcm's shipped
//! 20/30), `shipped` (each as it ships), `raised` (both at 500/1000, kcm's flags changed
//! for the run). A ceiling run first measures P_max, the pods per second this machine's
//! control plane takes when no controller stands in the way: the same number of pods,
//! created already bound to the simulated nodes by unthrottled clients, until all are
//! Ready. Every controller's pods per second is also given as a fraction of P_max.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use super::audit::AuditMark;
use super::measure::{PeakRss, clock_ticks, cpu_ticks, host_pid, median, process_pid};
use super::setup::{
    BENCH_CPU, CONTROLLER, SHIPPED_CPU, delete_namespace, fresh_namespace, set_limits, submit_all,
};
use crate::cluster;
use crate::cluster::fake_nodes;
use crate::cluster::install;
use crate::cluster::kubectl::Kubectl;
use crate::layout::Layout;

#[derive(Debug, Clone, Args)]
pub struct Sizes {
    /// Replicas of each workload (default: 1000; `bench stateful`: 500).
    #[arg(long)]
    pub replicas: Option<u32>,
    /// Workloads (Apps, and as many Deployments), each of `replicas`.
    #[arg(long, default_value_t = 1)]
    pub apps: u32,
    /// Profiles of client limits, in order: equal, shipped, raised.
    #[arg(long, value_delimiter = ',', default_value = "equal,shipped,raised")]
    pub profiles: Vec<Profile>,
    /// Skip the ceiling run (P_max).
    #[arg(long)]
    pub no_ceiling: bool,
    /// Runs per controller and scenario; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// Replicas of each workload unless told.
const REPLICAS: u32 = 1000;
const STATEFUL_REPLICAS: u32 = 500;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
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
/// Both controllers' limits in the `raised` profile (as the scheduler benchmark raises
/// both schedulers').
const RAISED_LIMITS: (f64, u32) = (500.0, 1000);

/// Client limits for both controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Profile {
    /// Both at kube-controller-manager's shipped limits.
    Equal,
    /// Each as it ships.
    Shipped,
    /// Both at 500/1000.
    Raised,
}

impl Profile {
    /// drover's limits and kube-controller-manager's.
    fn limits(self) -> ((f64, u32), (f64, u32)) {
        match self {
            Profile::Equal => (KCM_LIMITS, KCM_LIMITS),
            Profile::Shipped => (DROVER_LIMITS, KCM_LIMITS),
            Profile::Raised => (RAISED_LIMITS, RAISED_LIMITS),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Profile::Equal => "equal client limits",
            Profile::Shipped => "as shipped",
            Profile::Raised => "raised client limits",
        }
    }
}

const DROVER_USER: &str = "system:serviceaccount:drover-system:drover";
const KCM_USERS: [&str; 2] = [
    "system:serviceaccount:kube-system:deployment-controller",
    "system:serviceaccount:kube-system:replicaset-controller",
];

/// kube-controller-manager's StatefulSet controller.
const STATEFULSET_USER: &str = "system:serviceaccount:kube-system:statefulset-controller";

/// A StatefulApp's or StatefulSet's `podManagementPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Policy {
    Parallel,
    OrderedReady,
}

/// The workloads benchmarked: each of drover's against the stock one it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Workload {
    App,
    Deployment,
    StatefulApp(Policy),
    StatefulSet(Policy),
}

impl Workload {
    fn resource(self) -> &'static str {
        match self {
            Workload::App => "app.drover.dev",
            Workload::Deployment => "deployment.apps",
            Workload::StatefulApp(_) => "statefulapp.drover.dev",
            Workload::StatefulSet(_) => "statefulset.apps",
        }
    }

    /// As in the report's columns.
    fn title(self) -> &'static str {
        match self {
            Workload::App => "App (drover)",
            Workload::Deployment => "Deployment (kcm)",
            Workload::StatefulApp(_) => "StatefulApp (drover)",
            Workload::StatefulSet(_) => "StatefulSet (kcm)",
        }
    }

    /// As in namespace and file names.
    fn slug(self) -> String {
        let policy = |p: Policy| match p {
            Policy::Parallel => "parallel",
            Policy::OrderedReady => "ordered",
        };
        match self {
            Workload::App => "app".into(),
            Workload::Deployment => "deployment".into(),
            Workload::StatefulApp(p) => format!("statefulapp-{}", policy(p)),
            Workload::StatefulSet(p) => format!("statefulset-{}", policy(p)),
        }
    }

    fn is_drovers(self) -> bool {
        matches!(self, Workload::App | Workload::StatefulApp(_))
    }

    /// Whose API writes are the controller's.
    fn users(self) -> &'static [&'static str] {
        match self {
            Workload::App | Workload::StatefulApp(_) => &[DROVER_USER],
            Workload::Deployment => &KCM_USERS,
            Workload::StatefulSet(_) => &[STATEFULSET_USER],
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Sample {
    seconds: f64,
    /// Pods (of all workloads) per second.
    pods_per_second: f64,
    writes: u64,
    writes_per_pod: f64,
    cpu_seconds: f64,
    cpu_ms_per_pod: f64,
    peak_rss_mib: f64,
}

#[derive(Debug, Serialize)]
struct ScenarioResult {
    scenario: String,
    drover_limits: (f64, u32),
    kcm_limits: (f64, u32),
    /// drover's workload's samples, then the stock one's.
    drover: Vec<Sample>,
    stock: Vec<Sample>,
}

/// `bench stateful`: StatefulApp against StatefulSet with each policy, the scale and
/// then the rollout.
pub fn run_stateful(sizes: &Sizes) -> Result<()> {
    let sizes = Sizes {
        replicas: sizes.replicas.or(Some(STATEFUL_REPLICAS)),
        ..sizes.clone()
    };
    for policy in [Policy::Parallel, Policy::OrderedReady] {
        let pair = [Workload::StatefulApp(policy), Workload::StatefulSet(policy)];
        for kind in [Kind::Scale, Kind::Rollout] {
            println!("\n==== {kind:?} with podManagementPolicy {policy:?}");
            run(kind, pair, &sizes)?;
        }
    }
    Ok(())
}

/// Runs `kind` at `sizes` for both workloads of `pair` (drover's first) and reports them
/// side by side.
pub fn run(kind: Kind, pair: [Workload; 2], sizes: &Sizes) -> Result<()> {
    let replicas = sizes.replicas.unwrap_or(REPLICAS);
    let (apps, runs) = (sizes.apps.max(1), sizes.runs);
    let pods = replicas * apps;
    let layout = Layout::detect()?;
    let kubectl = cluster::kubectl(&layout)?;
    let (nodes_before, _) = fake_nodes::observe(&kubectl).unwrap_or_default();
    // 110 pods per simulated node, with room to spare.
    let nodes = (pods as usize).div_ceil(100) + 1;
    install::cluster_with_drover(&layout, nodes_before.len().max(nodes))?;
    let tick = clock_ticks()?;
    let p_max = if sizes.no_ceiling {
        None
    } else {
        let p = ceiling(&kubectl, pods)?;
        println!("\n== ceiling: {pods} pre-bound pods Ready at {p:.1} pods/s (P_max)");
        Some(p)
    };
    let mut results = vec![];
    for &profile in &sizes.profiles {
        let (drover_limits, kcm_limits) = profile.limits();
        println!(
            "\n== {}: drover {}/{} qps/burst, kube-controller-manager {}/{}",
            profile.name(),
            drover_limits.0,
            drover_limits.1,
            kcm_limits.0,
            kcm_limits.1
        );
        set_limits(&layout, &CONTROLLER, drover_limits, BENCH_CPU)?;
        let _kcm = KcmLimits::set(&kubectl, kcm_limits)?;
        let mut result = ScenarioResult {
            scenario: profile.name().into(),
            drover_limits,
            kcm_limits,
            drover: vec![],
            stock: vec![],
        };
        for run in 0..runs {
            for workload in pair {
                let shape = Shape { replicas, apps };
                let sample = measure(&layout, &kubectl, kind, workload, shape, run, tick)?;
                println!(
                    "  {workload:?} run {}: {:.1}s ({:.1} pods/s), {:.2} writes/pod, {:.1} CPU s, {:.0} MiB peak",
                    run + 1,
                    sample.seconds,
                    sample.pods_per_second,
                    sample.writes_per_pod,
                    sample.cpu_seconds,
                    sample.peak_rss_mib
                );
                match workload.is_drovers() {
                    true => result.drover.push(sample),
                    false => result.stock.push(sample),
                }
            }
        }
        print_table(kind, pair, &result, (replicas, apps), p_max);
        results.push(result);
    }
    set_limits(&layout, &CONTROLLER, DROVER_LIMITS, SHIPPED_CPU)?;
    if nodes_before.len() < nodes {
        cluster::set_fake_nodes(&kubectl, nodes_before.len())?;
    }
    let out = layout.repo.join("target/bench");
    fs::create_dir_all(&out)?;
    let file = out.join(format!(
        "{}-{}-{apps}x{replicas}.json",
        kind.name(),
        pair[0].slug()
    ));
    fs::write(
        &file,
        serde_json::to_string_pretty(&json!({
            "bench": kind, "workloads": pair, "replicas": replicas, "apps": apps, "runs": runs,
            "p_max": p_max, "results": results,
        }))?,
    )?;
    println!("\nwrote {}", file.display());
    Ok(())
}

/// How many workloads, of how many replicas each.
#[derive(Debug, Clone, Copy)]
struct Shape {
    replicas: u32,
    apps: u32,
}

/// P_max: `pods` pods created already bound (round-robin on the simulated nodes) by
/// `SUBMITTERS` unthrottled clients; pods per second from the first create until the
/// last is Ready.
fn ceiling(kubectl: &Kubectl, pods: u32) -> Result<f64> {
    let ns = "bench-ceiling";
    fresh_namespace(kubectl, ns)?;
    let (nodes, _) = fake_nodes::observe(kubectl)?;
    if nodes.is_empty() {
        bail!("no simulated nodes to bind the ceiling run's pods to");
    }
    let objects: Vec<Value> = (0..pods as usize)
        .map(|i| {
            let mut pod = pod_template(1);
            pod["apiVersion"] = json!("v1");
            pod["kind"] = json!("Pod");
            pod["metadata"]["name"] = json!(format!("ceiling-{i}"));
            pod["metadata"]["namespace"] = json!(ns);
            pod["spec"]["nodeName"] = json!(nodes[i % nodes.len()]);
            pod
        })
        .collect();
    let mut watch = Watch::start(kubectl, ns, "pods", POD_READY)?;
    let started = Instant::now();
    submit_all(kubectl, "create", &objects)?;
    let ready = watch.wait_for_all(pods, patience(pods), |s| s.ready >= 1);
    let seconds = started.elapsed().as_secs_f64();
    drop(watch);
    ready.context("the ceiling run's pods")?;
    delete_namespace(kubectl, ns)?;
    Ok(f64::from(pods) / seconds)
}

/// kube-controller-manager's client limits, set in its static pod manifest on the
/// control-plane node for as long as this lives (the kubelet restarts it on each change).
struct KcmLimits<'a> {
    kubectl: &'a Kubectl,
    changed: bool,
}

impl<'a> KcmLimits<'a> {
    fn set(kubectl: &'a Kubectl, limits: (f64, u32)) -> Result<Self> {
        let changed = limits != KCM_LIMITS;
        if changed {
            restart_kcm(kubectl, Some(limits))?;
        }
        Ok(KcmLimits { kubectl, changed })
    }
}

impl Drop for KcmLimits<'_> {
    fn drop(&mut self) {
        if self.changed
            && let Err(e) = restart_kcm(self.kubectl, None)
        {
            eprintln!("could not put kube-controller-manager's limits back: {e:#}");
        }
    }
}

/// Rewrites kube-controller-manager's manifest with `limits` (`None`: its defaults) and
/// waits until the restarted process runs with them and holds its lease.
fn restart_kcm(kubectl: &Kubectl, limits: Option<(f64, u32)>) -> Result<()> {
    const MANIFEST: &str = "/etc/kubernetes/manifests/kube-controller-manager.yaml";
    let holder = || {
        kubectl
            .json(&[
                "-n",
                "kube-system",
                "get",
                "lease",
                "kube-controller-manager",
            ])
            .ok()
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
    };
    let before = holder();
    let mut script = format!("sed -i '/--kube-api-qps=/d;/--kube-api-burst=/d' {MANIFEST}");
    if let Some((qps, burst)) = limits {
        script.push_str(&format!(
            " && sed -i 's|^    - kube-controller-manager$|&\\n    - --kube-api-qps={qps}\\n    - --kube-api-burst={burst}|' {MANIFEST}"
        ));
    }
    cluster::docker::docker()
        .args([
            "exec",
            &format!("{}-control-plane", cluster::CLUSTER),
            "sh",
            "-c",
            &script,
        ])
        .run()?;
    let wanted = limits.map(|(qps, _)| format!("--kube-api-qps={qps}"));
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let running = crate::process::host_processes().into_iter().any(|p| {
            p.exe
                .file_name()
                .is_some_and(|n| n == "kube-controller-manager")
                && match &wanted {
                    Some(flag) => p.cmdline.contains(flag.as_str()),
                    None => !p.cmdline.contains("--kube-api-qps="),
                }
        });
        let leads = holder().is_some_and(|h| Some(&h) != before.as_ref());
        if running && leads {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("kube-controller-manager did not restart with its new limits within 180s");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The bounds of every rolling update benchmarked (Deployment's defaults), the same for
/// both workloads.
fn strategy() -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
}

/// The pod every benchmark runs, at image `version`, on the simulated nodes.
fn pod_template(version: u32) -> Value {
    json!({
        "metadata": {"labels": {"bench": "scale"}},
        "spec": {
            "nodeSelector": {fake_nodes::LABEL: fake_nodes::LABEL_VALUE},
            "tolerations": [{"key": fake_nodes::ANNOTATION, "operator": "Equal", "value": fake_nodes::ANNOTATION_VALUE, "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "app", "image": format!("registry.local/drover/sample:{version}")}],
        },
    })
}

fn manifest(
    workload: Workload,
    (namespace, name): (&str, &str),
    replicas: u32,
    version: u32,
) -> Value {
    let mut pod = pod_template(version);
    pod["metadata"]["labels"]["bench"] = json!(name);
    let meta = json!({"name": name, "namespace": namespace});
    match workload {
        Workload::App => json!({
            "apiVersion": "drover.dev/v1alpha1", "kind": "App", "metadata": meta,
            "spec": {"replicas": replicas, "template": pod, "strategy": strategy()},
        }),
        Workload::Deployment => json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"bench": name}}, "template": pod, "strategy": strategy()},
        }),
        // Both roll one pod at a time (their default), highest ordinal first.
        Workload::StatefulApp(policy) => json!({
            "apiVersion": "drover.dev/v1alpha1", "kind": "StatefulApp", "metadata": meta,
            "spec": {"replicas": replicas, "template": pod, "podManagementPolicy": policy},
        }),
        Workload::StatefulSet(policy) => json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta,
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"bench": name}}, "template": pod, "podManagementPolicy": policy},
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
    Shape { replicas, apps }: Shape,
    run: usize,
    tick: f64,
) -> Result<Sample> {
    let ns = format!("bench-{}-{run}", workload.slug());
    fresh_namespace(kubectl, &ns)?;
    let objects = |version: u32| -> Vec<Value> {
        (0..apps)
            .map(|i| {
                let name = if apps == 1 {
                    "scale".to_string()
                } else {
                    format!("scale-{i}")
                };
                manifest(workload, (&ns, &name), replicas, version)
            })
            .collect()
    };
    let status = |ns: &str| Watch::start(kubectl, ns, workload.resource(), STATUS);
    if kind == Kind::Rollout {
        submit_all(kubectl, "apply", &objects(1))?;
        let mut watch = status(&ns)?;
        let ready = watch.wait_for_all(apps, patience(replicas * apps), |s| {
            s.ready >= replicas && s.updated >= replicas
        });
        drop(watch);
        ready.with_context(|| format!("{workload:?} in {ns} before its rollout"))?;
    }
    let pid = match workload.is_drovers() {
        true => host_pid(&CONTROLLER).context("the drover controller process is not running")?,
        false => process_pid("kube-controller-manager")
            .context("kube-controller-manager is not running")?,
    };
    let audit = AuditMark::now(&layout.audit_log());
    let peak = PeakRss::start(pid);
    // Started first: it lists what exists, then follows every change.
    let mut watch = status(&ns)?;
    let cpu_before = cpu_ticks(pid)?;
    let started = Instant::now();
    let version = match kind {
        Kind::Scale => 1,
        Kind::Rollout => 2,
    };
    submit_all(kubectl, "apply", &objects(version))?;
    let ready = watch.wait_for_all(apps, patience(replicas * apps), |s| match kind {
        Kind::Scale => s.ready >= replicas,
        // The watch started before the change: generation 1 is the rollout before.
        Kind::Rollout => {
            s.generation > 1
                && s.generation == s.observed_generation
                && s.updated == replicas
                && s.available == replicas
                && s.replicas == replicas
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = cpu_ticks(pid)?;
    let peak_rss_mib = peak.stop();
    drop(watch);
    ready.with_context(|| format!("{workload:?} in {ns}"))?;
    let writes = count_writes(&audit.read_since(&layout.audit_log())?, workload.users());

    delete_namespace(kubectl, &ns)?;
    let pods = f64::from(replicas * apps);
    let cpu_seconds = (cpu_after - cpu_before) as f64 / tick;
    Ok(Sample {
        seconds,
        pods_per_second: pods / seconds,
        writes,
        writes_per_pod: writes as f64 / pods,
        cpu_seconds,
        cpu_ms_per_pod: cpu_seconds * 1000.0 / pods,
        peak_rss_mib,
    })
}

/// How long `pods` pods may take to be Ready: at equal limits a controller creates at most
/// 20 a second, and its status writes share that rate.
fn patience(pods: u32) -> Duration {
    Duration::from_secs(900 + u64::from(pods) / 10)
}

/// What the status watch prints of a workload (or, for pods, of their readiness), one
/// line per change.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    generation: u32,
    observed_generation: u32,
    replicas: u32,
    ready: u32,
    updated: u32,
    available: u32,
}

/// The watch's columns for a workload: its name, then the fields of [`Seen`] in order.
const STATUS: &str = "NAME:.metadata.name,GEN:.metadata.generation,OBSERVED:.status.observedGeneration,REPLICAS:.status.replicas,READY:.status.readyReplicas,UPDATED:.status.updatedReplicas,AVAILABLE:.status.availableReplicas";
/// The watch's columns for a pod: its name, and 1 in `ready` once it is Ready.
const POD_READY: &str = "NAME:.metadata.name,GEN:.metadata.generation,OBSERVED:.metadata.generation,REPLICAS:.metadata.generation,READY:.status.conditions[?(@.type=='Ready')].status";

impl Seen {
    /// A line of the watch: the object's name and what it shows. Unset fields (`<none>`)
    /// are 0; `True` is 1.
    fn parse(line: &str) -> (String, Seen) {
        let mut fields = line.split_whitespace();
        let name = fields.next().unwrap_or_default().to_string();
        let n: Vec<u32> = fields
            .map(|f| match f {
                "True" => 1,
                f => f.parse().unwrap_or(0),
            })
            .collect();
        let at = |i: usize| n.get(i).copied().unwrap_or(0);
        let seen = Seen {
            generation: at(0),
            observed_generation: at(1),
            replicas: at(2),
            ready: at(3),
            updated: at(4),
            available: at(5),
        };
        (name, seen)
    }
}

/// `kubectl get -w` on every `resource` of a namespace, with `columns`: one process for the
/// whole run, so measuring costs the machine almost nothing. If the apiserver ends the
/// watch (it may, when a burst of thousands of pods loads it), the watch starts again: it
/// lists everything anew, and each object is judged by its latest line.
struct Watch<'a> {
    kubectl: &'a Kubectl,
    args: [String; 3],
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: std::path::PathBuf,
}

impl<'a> Watch<'a> {
    fn start(kubectl: &'a Kubectl, ns: &str, resource: &str, columns: &str) -> Result<Self> {
        let stderr = std::env::temp_dir().join(format!(
            "drover-bench-watch-{}-{ns}.err",
            std::process::id()
        ));
        let args = [ns.to_string(), resource.to_string(), columns.to_string()];
        let (child, lines) = Self::spawn(kubectl, &args, &stderr)?;
        Ok(Watch {
            kubectl,
            args,
            child,
            lines,
            stderr,
        })
    }

    fn spawn(
        kubectl: &Kubectl,
        [ns, resource, columns]: &[String; 3],
        stderr: &std::path::Path,
    ) -> Result<(Child, std::sync::mpsc::Receiver<String>)> {
        let mut child = kubectl
            .cmd()
            .args(["-n", ns, "get", resource, "--watch", "--request-timeout=0"])
            .args(["--no-headers", "-o", &format!("custom-columns={columns}")])
            .into_inner()
            .stdout(Stdio::piped())
            .stderr(fs::File::create(stderr)?)
            .spawn()?;
        let stdout = child.stdout.take().context("watch has no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok((child, rx))
    }

    /// Waits until `count` objects are `done`, each by its latest line.
    fn wait_for_all(
        &mut self,
        count: u32,
        timeout: Duration,
        done: impl Fn(&Seen) -> bool,
    ) -> Result<()> {
        use std::sync::mpsc::RecvTimeoutError;
        let deadline = Instant::now() + timeout;
        let mut finished = HashSet::new();
        let mut restarts = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let (name, seen) = Seen::parse(&line);
                    if done(&seen) {
                        finished.insert(name);
                    } else {
                        finished.remove(&name);
                    }
                    if finished.len() >= count as usize {
                        return Ok(());
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let why = fs::read_to_string(&self.stderr).unwrap_or_default();
                    restarts += 1;
                    if restarts > 20 {
                        bail!("the watch (kubectl get --watch) ended 20 times; last: {why}");
                    }
                    eprintln!("  the watch ended ({}); watching again", why.trim());
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    (self.child, self.lines) = Self::spawn(self.kubectl, &self.args, &self.stderr)?;
                }
                Err(RecvTimeoutError::Timeout) => bail!(
                    "{} of {count} done within {}s",
                    finished.len(),
                    timeout.as_secs()
                ),
            }
        }
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.stderr);
    }
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

/// A row of the report: its label and how to read it off a sample.
type Row = (&'static str, fn(&Sample) -> f64);

fn print_table(
    kind: Kind,
    pair: [Workload; 2],
    r: &ScenarioResult,
    (replicas, apps): (u32, u32),
    p_max: Option<f64>,
) {
    println!(
        "\n  {apps} × {replicas} replicas, median of {} runs",
        r.drover.len()
    );
    println!(
        "  {:<26} {:>20} {:>20} {:>14}",
        "",
        pair[0].title(),
        pair[1].title(),
        "drover / kcm"
    );
    let time: Row = match kind {
        Kind::Scale => ("time to all Ready (s)", |s| s.seconds),
        Kind::Rollout => ("rollout duration (s)", |s| s.seconds),
    };
    let rows: [Row; 6] = [
        time,
        ("pods per second", |s| s.pods_per_second),
        ("API writes per pod", |s| s.writes_per_pod),
        ("controller CPU (s)", |s| s.cpu_seconds),
        ("controller CPU per pod (ms)", |s| s.cpu_ms_per_pod),
        ("controller peak RSS (MiB)", |s| s.peak_rss_mib),
    ];
    for (name, get) in rows {
        let a = median(r.drover.iter().map(get));
        let d = median(r.stock.iter().map(get));
        println!("  {name:<26} {a:>20.2} {d:>20.2} {:>14.2}", a / d);
    }
    if let Some(p_max) = p_max {
        let a = median(r.drover.iter().map(|s| s.pods_per_second));
        let d = median(r.stock.iter().map(|s| s.pods_per_second));
        println!(
            "  {:<26} {:>20.2} {:>20.2}",
            "fraction of P_max",
            a / p_max,
            d / p_max
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_line() {
        assert_eq!(
            Seen::parse("scale-1   3   3   10   9   4   8"),
            (
                "scale-1".into(),
                Seen {
                    generation: 3,
                    observed_generation: 3,
                    replicas: 10,
                    ready: 9,
                    updated: 4,
                    available: 8
                }
            )
        );
        assert_eq!(
            Seen::parse("scale   1   <none>   <none>   <none>   <none>   <none>").1,
            Seen {
                generation: 1,
                ..Seen::default()
            }
        );
        // A pod's line: Ready is 1.
        assert_eq!(Seen::parse("ceiling-0   0   0   0   True").1.ready, 1);
        assert_eq!(Seen::parse("ceiling-0   0   0   0   False").1.ready, 0);
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
        let app = manifest(Workload::App, ("a", "scale-1"), 5, 2);
        let dep = manifest(Workload::Deployment, ("a", "scale-1"), 5, 2);
        assert_eq!(app["spec"]["strategy"], dep["spec"]["strategy"]);
        assert_eq!(app["spec"]["template"], dep["spec"]["template"]);
        assert_eq!(app["spec"]["replicas"], dep["spec"]["replicas"]);
        assert_eq!(app["metadata"]["namespace"], "a");
        assert_eq!(dep["metadata"]["namespace"], "a");
        assert_eq!(dep["spec"]["selector"]["matchLabels"]["bench"], "scale-1");
        assert_eq!(
            dep["spec"]["template"]["metadata"]["labels"]["bench"],
            "scale-1"
        );
    }

    #[test]
    fn a_statefulapp_and_a_statefulset_run_the_same_pods_with_the_same_policy() {
        let policy = Policy::OrderedReady;
        let app = manifest(Workload::StatefulApp(policy), ("a", "scale"), 5, 2);
        let set = manifest(Workload::StatefulSet(policy), ("a", "scale"), 5, 2);
        assert_eq!(app["spec"]["template"], set["spec"]["template"]);
        assert_eq!(app["spec"]["replicas"], set["spec"]["replicas"]);
        assert_eq!(app["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(set["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(app["spec"].get("updateStrategy"), None, "one pod at a time");
        assert_eq!(set["spec"].get("updateStrategy"), None, "one pod at a time");
        assert_eq!(Workload::StatefulSet(policy).slug(), "statefulset-ordered");
    }

    #[test]
    fn profiles_set_both_controllers() {
        assert_eq!(Profile::Equal.limits(), (KCM_LIMITS, KCM_LIMITS));
        assert_eq!(Profile::Shipped.limits(), (DROVER_LIMITS, KCM_LIMITS));
        assert_eq!(Profile::Raised.limits(), (RAISED_LIMITS, RAISED_LIMITS));
    }
}
