//! `bench scheduler`: drover's scheduler against kube-scheduler on pools of simulated
//! nodes of the kind cluster, the same seeded mix of pod shapes for each, one after the
//! other. kube-scheduler runs as a host process of the benchmark's own with two profiles — its default
//! (`NodeResourcesFit` LeastAllocated, default `percentageOfNodesToScore`) and
//! MostAllocated scoring every node — with the same client limits as drover's scheduler:
//! as both ship (50/100), then raised (500/1000).
//!
//! Two ways pods arrive: streamed (created while the scheduler runs, by 16 kubectl
//! processes, about as fast as the apiserver takes them: latency under load) and as a
//! backlog (all created before the scheduler starts: its own throughput, and the packing
//! of many pods pending at once).
//!
//! Per run: pods/s (first to last binding), p50/p99 scheduling latency when streamed (pod
//! created to bound, from the apiserver's audit log), nodes used, nodes used ÷ a lower bound (the
//! most demanded resource's total over one node's allocatable), stranded capacity per
//! resource (free on used nodes that can no longer take the smallest pod of the mix),
//! the scheduler process's CPU seconds and peak memory. Writes `target/bench/
//! scheduler.json` and `scheduler.svg` (nodes used against pods placed).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use super::audit::AuditMark;
use super::measure::{PeakRss, clock_ticks, cpu_ticks, host_pid, median};
use super::setup::{
    BENCH_CPU, SCHEDULER, SHIPPED_CPU, delete_namespace, fresh_namespace, scale, set_limits,
    submit_all, wait_leading,
};
use crate::cluster;
use crate::cluster::fake_nodes;
use crate::cluster::install;
use crate::cluster::kubectl::Kubectl;
use crate::layout::Layout;

#[derive(Debug, Args)]
pub struct SchedulerBench {
    /// Node pool sizes; each is benchmarked separately.
    #[arg(long, value_delimiter = ',', default_values_t = [500usize, 1000])]
    nodes: Vec<usize>,
    /// Pods per run, as a share of what the pool could hold by CPU (percent).
    #[arg(long, default_value_t = 50)]
    fill_percent: u32,
    /// Seed of the pod shapes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runs per scheduler and scenario; the median is reported.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Only these schedulers (all when not given).
    #[arg(long, value_delimiter = ',', value_enum)]
    schedulers: Vec<Scheduler>,
    /// Only these arrivals (both when not given).
    #[arg(long, value_delimiter = ',', value_enum)]
    modes: Vec<Mode>,
    /// Only these client limits (both when not given).
    #[arg(long, value_delimiter = ',', value_enum)]
    limits: Vec<Limits>,
}

/// The client limits every scheduler runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Limits {
    /// As both ship: 50 QPS, burst 100.
    AsShipped,
    /// 500 QPS, burst 1000.
    Raised,
}

impl Limits {
    const ALL: [Limits; 2] = [Limits::AsShipped, Limits::Raised];

    fn label(self) -> &'static str {
        match self {
            Limits::AsShipped => "as shipped",
            Limits::Raised => "raised",
        }
    }

    fn qps_burst(self) -> (f64, u32) {
        match self {
            Limits::AsShipped => (50.0, 100),
            Limits::Raised => (500.0, 1000),
        }
    }
}

/// The chosen values, or all when none was.
fn chosen<T: Copy + PartialEq>(asked: &[T], all: &[T]) -> Vec<T> {
    all.iter()
        .copied()
        .filter(|v| asked.is_empty() || asked.contains(v))
        .collect()
}

/// Every simulated node of a pool: 4 CPUs, 16Gi, 110 pods.
const NODE_CPU_MILLI: u64 = 4000;
const NODE_MEMORY_MI: u64 = 16 * 1024;
const POOL_LABEL: &str = "drover.dev/bench-pool";
/// Pod shapes: CPU in millicores and memory in MiB, drawn independently.
const CPUS: [u64; 5] = [100, 250, 500, 1000, 2000];
const MEMORIES: [u64; 6] = [128, 256, 512, 1024, 2048, 4096];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
enum Scheduler {
    Drover,
    KubeDefault,
    KubeMostAllocated,
}

impl Scheduler {
    const ALL: [Scheduler; 3] = [
        Scheduler::Drover,
        Scheduler::KubeDefault,
        Scheduler::KubeMostAllocated,
    ];

    fn scheduler_name(self) -> &'static str {
        match self {
            Scheduler::Drover => "drover-scheduler",
            Scheduler::KubeDefault => "bench-default",
            Scheduler::KubeMostAllocated => "bench-most-allocated",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Scheduler::Drover => "drover (bin-pack)",
            Scheduler::KubeDefault => "kube-scheduler default",
            Scheduler::KubeMostAllocated => "kube-scheduler MostAllocated/100%",
        }
    }
}

/// How a run's pods reach the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
enum Mode {
    /// Created while the scheduler runs.
    Stream,
    /// All created before the scheduler starts.
    Backlog,
}

impl Mode {
    const ALL: [Mode; 2] = [Mode::Stream, Mode::Backlog];

    fn label(self) -> &'static str {
        match self {
            Mode::Stream => "streamed",
            Mode::Backlog => "backlog",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Sample {
    pods: usize,
    pods_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    nodes_used: usize,
    lower_bound: usize,
    used_over_bound: f64,
    stranded_cpu_percent: f64,
    stranded_memory_percent: f64,
    cpu_seconds: f64,
    peak_rss_mib: f64,
    /// Distinct nodes used after each binding, in binding order (for the chart).
    #[serde(skip)]
    curve: Vec<usize>,
}

#[derive(Debug, Serialize)]
struct RunResult {
    nodes: usize,
    scenario: &'static str,
    mode: Mode,
    limits: (f64, u32),
    scheduler: Scheduler,
    samples: Vec<Sample>,
}

pub fn run(args: SchedulerBench) -> Result<()> {
    let layout = Layout::detect()?;
    let kubectl = cluster::kubectl(&layout)?;
    // Pools an interrupted run left would count as the cluster's own simulated nodes
    // (they carry the same label): they go first.
    kubectl
        .cmd()
        .args(["delete", "--raw"])
        .arg(format!("/api/v1/nodes?labelSelector={POOL_LABEL}"))
        .run()?;
    let (fake, _) = fake_nodes::observe(&kubectl).unwrap_or_default();
    install::cluster_with_drover(&layout, fake.len().max(fake_nodes::DEFAULT_COUNT))?;
    let tick = clock_ticks()?;
    let (scenarios, modes, schedulers) = (
        chosen(&args.limits, &Limits::ALL),
        chosen(&args.modes, &Mode::ALL),
        chosen(&args.schedulers, &Scheduler::ALL),
    );
    let mut results = vec![];
    for &nodes in &args.nodes {
        let pool = format!("p{nodes}");
        create_pool(&kubectl, &pool, nodes)?;
        let shapes = pod_shapes(args.seed, nodes, args.fill_percent);
        println!(
            "\n== {nodes} nodes (4 CPU, 16Gi), {} pods of a seeded mix (seed {})",
            shapes.len(),
            args.seed
        );
        for (scenario, limits) in scenarios.iter().map(|l| (l.label(), l.qps_burst())) {
            println!(
                "-- {scenario}: every scheduler at {}/{} qps/burst",
                limits.0, limits.1
            );
            set_limits(&layout, &SCHEDULER, limits, BENCH_CPU)?;
            for &mode in &modes {
                // Runs take turns (each scheduler's first, then each one's second...): what
                // a run leaves in the cluster (events, etcd history) weighs on all alike.
                let mut samples: Vec<Vec<Sample>> = vec![vec![]; schedulers.len()];
                for run in 0..args.runs {
                    for (&scheduler, samples) in schedulers.iter().zip(&mut samples) {
                        let s = measure(
                            &layout,
                            &kubectl,
                            &Run {
                                pool: &pool,
                                shapes: &shapes,
                                scheduler,
                                mode,
                                limits,
                                run,
                                tick,
                            },
                        )?;
                        println!(
                            "  {:<9} {:<34} {:>7.1} pods/s  p50 {:>7.0} ms  p99 {:>7.0} ms  {:>4} nodes ({:.3}× bound)  stranded cpu {:>4.1}% mem {:>4.1}%  {:.1} CPU s  {:.0} MiB",
                            mode.label(),
                            scheduler.label(),
                            s.pods_per_second,
                            s.p50_ms,
                            s.p99_ms,
                            s.nodes_used,
                            s.used_over_bound,
                            s.stranded_cpu_percent,
                            s.stranded_memory_percent,
                            s.cpu_seconds,
                            s.peak_rss_mib
                        );
                        samples.push(s);
                    }
                }
                for (&scheduler, samples) in schedulers.iter().zip(samples) {
                    results.push(RunResult {
                        nodes,
                        scenario,
                        mode,
                        limits,
                        scheduler,
                        samples,
                    });
                }
            }
        }
        delete_pool(&kubectl, &pool)?;
    }
    set_limits(&layout, &SCHEDULER, (50.0, 100), SHIPPED_CPU)?;
    print_summary(&results);
    let out = layout.repo.join("target/bench");
    fs::create_dir_all(&out)?;
    fs::write(
        out.join("scheduler.json"),
        serde_json::to_string_pretty(
            &json!({"bench": "scheduler", "seed": args.seed, "results": results}),
        )?,
    )?;
    fs::write(out.join("scheduler.svg"), chart(&results))?;
    println!(
        "\nwrote {} and scheduler.svg",
        out.join("scheduler.json").display()
    );
    Ok(())
}

/// The seeded mix: shapes drawn until their CPU reaches `fill_percent` of the pool's.
fn pod_shapes(seed: u64, nodes: usize, fill_percent: u32) -> Vec<(u64, u64)> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % n as u64).unwrap_or(0)
    };
    let budget = NODE_CPU_MILLI * nodes as u64 * u64::from(fill_percent) / 100;
    let mut shapes = vec![];
    let mut cpu = 0;
    while cpu < budget {
        let shape = (CPUS[next(CPUS.len())], MEMORIES[next(MEMORIES.len())]);
        cpu += shape.0;
        shapes.push(shape);
    }
    shapes
}

/// The fewest nodes that could hold the pods: the most demanded resource's total over a
/// node's allocatable, or 110 pods per node.
fn lower_bound(shapes: &[(u64, u64)]) -> usize {
    let cpu: u64 = shapes.iter().map(|s| s.0).sum();
    let memory: u64 = shapes.iter().map(|s| s.1).sum();
    let by_pods = shapes.len().div_ceil(110) as u64;
    usize::try_from(
        cpu.div_ceil(NODE_CPU_MILLI)
            .max(memory.div_ceil(NODE_MEMORY_MI))
            .max(by_pods),
    )
    .unwrap_or(usize::MAX)
}

fn node_name(pool: &str, i: usize) -> String {
    format!("bench-{pool}-{i}")
}

fn create_pool(kubectl: &Kubectl, pool: &str, count: usize) -> Result<()> {
    let resources = json!({"cpu": "4", "memory": "16Gi", "pods": "110"});
    let nodes: Vec<Value> = (0..count)
        .map(|i| {
            let name = node_name(pool, i);
            json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "annotations": {fake_nodes::ANNOTATION: fake_nodes::ANNOTATION_VALUE},
                    // The simulated nodes' label keeps node agents (flannel) off, as
                    // on the cluster's own: their requests would take room from the mix.
                    "labels": {"kubernetes.io/hostname": name, POOL_LABEL: pool,
                        fake_nodes::LABEL: fake_nodes::LABEL_VALUE}},
                "spec": {"providerID": format!("kwok://{name}"),
                    "taints": [{"key": fake_nodes::ANNOTATION, "value": fake_nodes::ANNOTATION_VALUE, "effect": "NoSchedule"}]},
                "status": {"allocatable": resources, "capacity": resources},
            })
        })
        .collect();
    for chunk in nodes.chunks(250) {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": chunk});
        kubectl.apply("bench-pool", &serde_json::to_string(&list)?)?;
    }
    // Ready, and untainted by the node lifecycle controller, which lifts its `not-ready`
    // taint from new nodes a few a second: a run started before would see part of the
    // pool, and the first scheduler to run a pool different nodes than the later ones.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let list = kubectl.json(&["get", "nodes", "-l", &format!("{POOL_LABEL}={pool}")])?;
        let ready = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| {
                let only_ours = n["spec"]["taints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|t| t["key"] == fake_nodes::ANNOTATION);
                crate::cluster::kubectl::condition_true(n, "Ready") && only_ours
            })
            .count();
        if ready == count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{ready} of {count} nodes of pool {pool} Ready and untainted after 600s");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn delete_pool(kubectl: &Kubectl, pool: &str) -> Result<()> {
    kubectl
        .cmd()
        .args(["delete", "--raw"])
        .arg(format!("/api/v1/nodes?labelSelector={POOL_LABEL}%3D{pool}"))
        .run()?;
    Ok(())
}

/// The benchmark's own kube-scheduler: both profiles, the scenario's client limits.
struct KubeScheduler {
    child: Child,
}

impl KubeScheduler {
    fn start(layout: &Layout, (qps, burst): (f64, u32)) -> Result<Self> {
        // kube-scheduler's own identity (`system:kube-scheduler`, as the cluster's runs),
        // so priority and fairness treat it as they treat the stock scheduler.
        let kubeconfig = cluster::component_kubeconfig(layout, "scheduler")?;
        let config = layout.state.join("bench-kube-scheduler.yaml");
        fs::write(
            &config,
            format!(
                r#"apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
  qps: {qps}
  burst: {burst}
leaderElection:
  leaderElect: false
profiles:
  - schedulerName: bench-default
  - schedulerName: bench-most-allocated
    percentageOfNodesToScore: 100
    pluginConfig:
      - name: NodeResourcesFit
        args:
          scoringStrategy:
            type: MostAllocated
            resources: [{{name: cpu, weight: 1}}, {{name: memory, weight: 1}}]
"#,
                kubeconfig = kubeconfig.display()
            ),
        )?;
        let log = fs::File::create(layout.log("bench-kube-scheduler"))?;
        let child = Command::new(layout.bin("kube-scheduler")?)
            .arg(format!("--config={}", config.display()))
            .arg(format!(
                "--authentication-kubeconfig={}",
                kubeconfig.display()
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                kubeconfig.display()
            ))
            .args(["--bind-address=127.0.0.1", "--secure-port=10269", "--v=1"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the benchmark's kube-scheduler")?;
        // Give it time to sync its informers before pods arrive.
        std::thread::sleep(Duration::from_secs(5));
        let mut child = child;
        if let Some(status) = child.try_wait()? {
            bail!(
                "the benchmark's kube-scheduler exited ({status}); see {}",
                layout.log("bench-kube-scheduler").display()
            );
        }
        Ok(Self { child })
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(0)
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one run measures.
struct Run<'a> {
    pool: &'a str,
    shapes: &'a [(u64, u64)],
    scheduler: Scheduler,
    mode: Mode,
    limits: (f64, u32),
    run: usize,
    tick: f64,
}

/// The scheduler of a run, once started: its process, and the benchmark's kube-scheduler
/// to stop afterwards.
struct Started {
    pid: i32,
    kube: Option<KubeScheduler>,
}

impl Started {
    fn start(layout: &Layout, kubectl: &Kubectl, r: &Run) -> Result<Self> {
        match r.scheduler {
            Scheduler::Drover => {
                scale(kubectl, &SCHEDULER, 1)?;
                wait_leading(kubectl, &SCHEDULER)?;
                let pid = host_pid(&SCHEDULER).context("drover's scheduler is not running")?;
                Ok(Self { pid, kube: None })
            }
            _ => {
                let kube = KubeScheduler::start(layout, r.limits)?;
                Ok(Self {
                    pid: kube.pid(),
                    kube: Some(kube),
                })
            }
        }
    }

    fn stop(self) {
        if let Some(kube) = self.kube {
            kube.stop();
        }
    }
}

/// One run: a fresh namespace, every pod created at once (`SUBMITTERS` kubectl processes)
/// while the scheduler runs or before it starts, timed until all are bound; then the
/// namespace goes.
fn measure(layout: &Layout, kubectl: &Kubectl, r: &Run) -> Result<Sample> {
    let ns = format!(
        "bench-sched-{}-{}-{:?}-{}",
        r.pool,
        r.scheduler.scheduler_name(),
        r.mode,
        r.run
    )
    .to_lowercase();
    fresh_namespace(kubectl, &ns)?;
    let pods: Vec<Value> = r
        .shapes
        .iter()
        .enumerate()
        .map(|(i, (cpu, memory))| {
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("p-{i}"), "namespace": ns},
                "spec": {
                    "schedulerName": r.scheduler.scheduler_name(),
                    "nodeSelector": {POOL_LABEL: r.pool},
                    "tolerations": [{"key": fake_nodes::ANNOTATION, "operator": "Equal", "value": fake_nodes::ANNOTATION_VALUE, "effect": "NoSchedule"}],
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": "registry.local/drover/sample:1",
                        "resources": {"requests": {"cpu": format!("{cpu}m"), "memory": format!("{memory}Mi")}}}],
                },
            })
        })
        .collect();
    let audit = AuditMark::now(&layout.audit_log());
    if r.scheduler == Scheduler::Drover && r.mode == Mode::Backlog {
        scale(kubectl, &SCHEDULER, 0)?;
    }
    let streamed = match r.mode {
        Mode::Stream => Some(Started::start(layout, kubectl, r)?),
        Mode::Backlog => None,
    };
    // Streamed, the process's CPU from the first pod on; as a backlog, all of it (from
    // its start: the work happens while it syncs).
    let cpu_before = match &streamed {
        Some(started) => cpu_ticks(started.pid)?,
        None => 0,
    };
    submit_all(kubectl, "create", &pods)?;
    let started = match streamed {
        Some(started) => started,
        None => Started::start(layout, kubectl, r)?,
    };
    let pid = started.pid;
    let peak = PeakRss::start(pid);
    let waited = wait_all_bound(kubectl, &ns);
    let cpu_after = cpu_ticks(pid);
    let peak_rss_mib = peak.stop();
    started.stop();
    waited?;
    let cpu_after = cpu_after?;

    let mut sample = analyse(&audit.read_since(&layout.audit_log())?, &ns, r.shapes)?;
    if r.mode == Mode::Backlog {
        // Creation to binding includes the wait for the scheduler to start.
        sample.p50_ms = f64::NAN;
        sample.p99_ms = f64::NAN;
    }
    delete_namespace(kubectl, &ns)?;
    Ok(Sample {
        cpu_seconds: cpu_after.saturating_sub(cpu_before) as f64 / r.tick,
        peak_rss_mib,
        ..sample
    })
}

fn wait_all_bound(kubectl: &Kubectl, ns: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let pending = kubectl
            .cmd()
            .args([
                "-n",
                ns,
                "get",
                "pods",
                "--field-selector=spec.nodeName=",
                "-o",
                "name",
            ])
            .output()?;
        if pending.trim().is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("pods of {ns} still pending after 900s");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Reads the run's pod creations and bindings off the audit log.
fn analyse(audit: &str, ns: &str, shapes: &[(u64, u64)]) -> Result<Sample> {
    let needle = format!("\"namespace\":\"{ns}\"");
    let mut created: HashMap<String, f64> = HashMap::new();
    let mut bound: Vec<(f64, String, String)> = vec![];
    for line in audit.lines().filter(|l| l.contains(&needle)) {
        let Ok(e) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let o = &e["objectRef"];
        if e["stage"] != "ResponseComplete" || e["verb"] != "create" || o["resource"] != "pods" {
            continue;
        }
        let code = e["responseStatus"]["code"].as_i64().unwrap_or(0);
        if !(200..300).contains(&code) {
            continue;
        }
        let at = timestamp(e["stageTimestamp"].as_str().unwrap_or_default())?;
        let name = o["name"].as_str().unwrap_or_default().to_string();
        if o["subresource"] == "binding" {
            let node = e["requestURI"].as_str().unwrap_or_default().to_string();
            bound.push((at, name, node));
        } else if o["subresource"].is_null() {
            created.insert(name, at);
        }
    }
    bound.sort_by(|a, b| a.0.total_cmp(&b.0));
    // The node of each binding is not in the audit record: read it off the pods.
    let placements = placements(ns)?;
    let mut latencies: Vec<f64> = bound
        .iter()
        .filter_map(|(at, name, _)| created.get(name).map(|c| (at - c) * 1000.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let span = match (bound.first(), bound.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => b.0 - a.0,
        _ => f64::NAN,
    };
    let mut seen = HashSet::new();
    let curve: Vec<usize> = bound
        .iter()
        .map(|(_, name, _)| {
            if let Some(node) = placements.get(name) {
                seen.insert(node.clone());
            }
            seen.len()
        })
        .collect();
    let index: HashMap<String, usize> = (0..shapes.len()).map(|i| (format!("p-{i}"), i)).collect();
    let mut used: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (pod, node) in &placements {
        if let Some(&i) = index.get(pod) {
            let u = used.entry(node.as_str()).or_default();
            u.0 += shapes[i].0;
            u.1 += shapes[i].1;
        }
    }
    let smallest = (CPUS[0], MEMORIES[0]);
    let (mut stranded_cpu, mut stranded_memory) = (0u64, 0u64);
    for (cpu, memory) in used.values() {
        let free = (
            NODE_CPU_MILLI.saturating_sub(*cpu),
            NODE_MEMORY_MI.saturating_sub(*memory),
        );
        if free.0 < smallest.0 || free.1 < smallest.1 {
            stranded_cpu += free.0;
            stranded_memory += free.1;
        }
    }
    let nodes_used = used.len();
    let bound_nodes = lower_bound(shapes);
    Ok(Sample {
        pods: bound.len(),
        pods_per_second: (bound.len().saturating_sub(1)) as f64 / span,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        nodes_used,
        lower_bound: bound_nodes,
        used_over_bound: nodes_used as f64 / bound_nodes as f64,
        stranded_cpu_percent: 100.0 * stranded_cpu as f64
            / (nodes_used as u64 * NODE_CPU_MILLI).max(1) as f64,
        stranded_memory_percent: 100.0 * stranded_memory as f64
            / (nodes_used as u64 * NODE_MEMORY_MI).max(1) as f64,
        cpu_seconds: 0.0,
        peak_rss_mib: 0.0,
        curve,
    })
}

/// Pod name → node, for the run's namespace.
fn placements(ns: &str) -> Result<HashMap<String, String>> {
    let layout = Layout::detect()?;
    let kubectl = cluster::kubectl(&layout)?;
    let out = kubectl
        .cmd()
        .args([
            "-n",
            ns,
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{\"\\n\"}{end}",
        ])
        .output()?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(p, n)| (p.to_string(), n.to_string()))
        .collect())
}

/// Seconds since the epoch of a UTC RFC 3339 timestamp as audit records write them
/// (`2026-11-24T08:11:58.716755Z`).
fn timestamp(s: &str) -> Result<f64> {
    let bad = || anyhow::anyhow!("timestamp {s:?}");
    let (date, time) = s.trim_end_matches('Z').split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<f64> = hms
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [y, m, day] = d[..] else {
        return Err(bad());
    };
    let [hh, mm, ss] = t[..] else {
        return Err(bad());
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let fraction: f64 = format!("0.{fraction}").parse().map_err(|_| bad())?;
    Ok(days as f64 * 86_400.0 + hh * 3600.0 + mm * 60.0 + ss + fraction)
}

/// A row of the summary: its label and how to read it off a sample.
type Row = (&'static str, fn(&Sample) -> f64);

fn print_summary(results: &[RunResult]) {
    println!("\nmedians; ratios are drover ÷ the kube-scheduler profile");
    let mut by_key: BTreeMap<(usize, &str, Mode), Vec<&RunResult>> = BTreeMap::new();
    for r in results {
        by_key
            .entry((r.nodes, r.scenario, r.mode))
            .or_default()
            .push(r);
    }
    for ((nodes, scenario, mode), runs) in by_key {
        println!("\n  {nodes} nodes, {scenario}, {}", mode.label());
        let m = |r: &RunResult, f: fn(&Sample) -> f64| median(r.samples.iter().map(f));
        let rows: [Row; 7] = [
            ("pods/s", |s| s.pods_per_second),
            ("p50 latency (ms)", |s| s.p50_ms),
            ("p99 latency (ms)", |s| s.p99_ms),
            ("nodes used", |s| s.nodes_used as f64),
            ("nodes used / lower bound", |s| s.used_over_bound),
            ("stranded cpu (%)", |s| s.stranded_cpu_percent),
            ("stranded memory (%)", |s| s.stranded_memory_percent),
        ];
        print!("  {:<26}", "");
        for r in &runs {
            print!(" {:>34}", r.scheduler.label());
        }
        println!();
        let drover = runs.iter().find(|r| r.scheduler == Scheduler::Drover);
        for (label, f) in rows {
            print!("  {label:<26}");
            for r in &runs {
                let v = m(r, f);
                match drover.filter(|d| d.scheduler != r.scheduler) {
                    _ if v.is_nan() => print!(" {:>34}", "-"),
                    Some(d) => print!(" {:>22.2} ({:>5.2}×)", v, m(d, f) / v),
                    None => print!(" {v:>34.2}"),
                }
            }
            println!();
        }
    }
}

/// An SVG of nodes used against pods placed, one line per scheduler, one panel per
/// pool and scenario (columns) and way of arrival (rows), from the first run of each.
fn chart(results: &[RunResult]) -> String {
    let panels: Vec<(usize, &str)> = {
        let mut v: Vec<(usize, &str)> = results.iter().map(|r| (r.nodes, r.scenario)).collect();
        v.dedup();
        v
    };
    let (w, h, pad) = (460.0, 300.0, 50.0);
    let colors = ["#d62728", "#1f77b4", "#2ca02c"];
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">"#,
        w * panels.len() as f64,
        (h + 40.0) * Mode::ALL.len() as f64
    );
    for (row, mode) in Mode::ALL.into_iter().enumerate() {
        let y0 = (h + 40.0) * row as f64;
        for (p, (nodes, scenario)) in panels.iter().enumerate() {
            let x0 = w * p as f64;
            let runs: Vec<&RunResult> = results
                .iter()
                .filter(|r| r.nodes == *nodes && r.scenario == *scenario && r.mode == mode)
                .collect();
            let max_pods = runs
                .iter()
                .filter_map(|r| r.samples.first())
                .map(|s| s.curve.len())
                .max()
                .unwrap_or(1)
                .max(1) as f64;
            let max_nodes = *nodes as f64;
            svg += &format!(
                r##"<text x="{}" y="{}">{nodes} nodes, {scenario}, {}: nodes used vs pods placed</text><rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
                x0 + pad,
                y0 + 20.0,
                mode.label(),
                x0 + pad,
                y0 + 30.0,
                w - 2.0 * pad,
                h - pad
            );
            for (i, r) in runs.iter().enumerate() {
                let Some(s) = r.samples.first() else { continue };
                let step = (s.curve.len() / 400).max(1);
                let points: Vec<String> = s
                    .curve
                    .iter()
                    .enumerate()
                    .step_by(step)
                    .map(|(k, &n)| {
                        format!(
                            "{:.1},{:.1}",
                            x0 + pad + (w - 2.0 * pad) * (k as f64 + 1.0) / max_pods,
                            y0 + 30.0 + (h - pad) * (1.0 - n as f64 / max_nodes)
                        )
                    })
                    .collect();
                let color = colors[i % colors.len()];
                svg += &format!(
                    r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/><text x="{}" y="{}" fill="{color}">{}</text>"#,
                    points.join(" "),
                    x0 + pad + 8.0,
                    y0 + 50.0 + 16.0 * i as f64,
                    r.scheduler.label()
                );
            }
            svg += &format!(
                r#"<text x="{}" y="{}">pods placed (max {max_pods})</text><text x="{}" y="{}">0</text><text x="{}" y="{}">{nodes}</text>"#,
                x0 + pad,
                y0 + h + 5.0,
                x0 + pad - 15.0,
                y0 + h - pad + 30.0,
                x0 + 5.0,
                y0 + 40.0
            );
        }
    }
    svg + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_mix_is_seeded_and_fills_the_asked_share() {
        let a = pod_shapes(7, 100, 50);
        assert_eq!(a, pod_shapes(7, 100, 50));
        assert_ne!(a, pod_shapes(8, 100, 50));
        let cpu: u64 = a.iter().map(|s| s.0).sum();
        assert!((200_000..200_000 + 2000).contains(&cpu), "{cpu}");
    }

    #[test]
    fn audit_timestamps_parse_to_epoch_seconds() {
        assert_eq!(timestamp("1970-01-02T00:00:01.5Z").unwrap(), 86_401.5);
        let a = timestamp("2026-11-24T23:59:59.999000Z").unwrap();
        let b = timestamp("2026-11-25T00:00:00.001000Z").unwrap();
        assert!((b - a - 0.002).abs() < 1e-6);
        assert!(timestamp("yesterday").is_err());
    }

    #[test]
    fn the_lower_bound_is_the_most_demanded_resource() {
        // 3 CPUs and 40Gi: memory needs 3 nodes of 16Gi.
        assert_eq!(lower_bound(&[(1000, 20 * 1024), (2000, 20 * 1024)]), 3);
        assert_eq!(lower_bound(&[(2000, 128), (2000, 128), (100, 128)]), 2);
    }
}
