//! drover's controllers. The `drover` binary parses its arguments and calls [`run`].

pub mod app;
pub mod engine;
pub mod rollout;
pub mod runtime;
pub mod scheduler;
pub mod stateful;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use drover_crds::names::reporter;
use kube::client::ClientBuilder;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, Config};
use tower::timeout::TimeoutLayer;
use tracing::{error, info};

use runtime::admin::{self, Admin};
use runtime::fence::{Fence, FenceLayer};
use runtime::leader::LeaseLock;
use runtime::logging::{self, LogFormat};
use runtime::metrics::Metrics;
use runtime::ratelimit::RateLimitLayer;

#[derive(Debug, Parser)]
#[command(name = "drover", version, about = "Kubernetes workload controllers")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as plain text or JSON; RUST_LOG filters them (default: info).
    #[arg(long, value_enum, default_value = "plain", global = true)]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the App controller.
    Controller(ControllerArgs),
    /// Run the scheduler: place pending pods that name it on nodes.
    Scheduler(SchedulerArgs),
}

/// What every component takes: its admin port, leader election and client limits.
#[derive(Debug, Args)]
struct Common {
    /// Serves /livez and /readyz (ready once the watches have synced, or while standing by
    /// for the lease), for the kubelet's probes.
    #[arg(long, default_value = "0.0.0.0:8081")]
    health_address: SocketAddr,
    /// Serves /metrics: an address (a loopback one keeps the metrics inside the pod, the
    /// health address shares its listener), or `none`.
    #[arg(long, default_value = "0.0.0.0:8080", value_parser = metrics_address)]
    metrics_address: MetricsAddress,
    /// Run only while holding a Lease, so several replicas can stand by.
    #[arg(long)]
    leader_elect: bool,
    #[arg(long, env = "POD_NAMESPACE", default_value = "drover-system")]
    leader_election_namespace: String,
    /// The Lease (default: drover-controller or drover-scheduler).
    #[arg(long)]
    lease_name: Option<String>,
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
    /// This process's name in the Lease and in Events (default: the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Average requests per second to the apiserver.
    #[arg(long, default_value_t = 50.0)]
    kube_api_qps: f64,
    /// Requests allowed in a burst above the average.
    #[arg(long, default_value_t = 100)]
    kube_api_burst: u32,
}

#[derive(Debug, Args)]
struct ControllerArgs {
    #[command(flatten)]
    common: Common,
    /// Watch this namespace only (default: all namespaces).
    #[arg(long, env = "DROVER_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Seconds a node may be NotReady before its pods are replaced on other nodes.
    #[arg(long, default_value_t = 30)]
    node_lost_grace_seconds: u64,
    /// Apps reconciled at the same time.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// The scheduler that places the pods of Apps with `placement.binPack`.
    #[arg(long, default_value = scheduler::NAME)]
    scheduler_name: String,
    /// The key of the digests of Secret contents (HMAC), the same for every run of the
    /// installation (the chart keeps it in Secret `<release>-digest-key`).
    #[arg(long, env = "DROVER_DIGEST_KEY", hide_env_values = true)]
    digest_key: Option<String>,
}

#[derive(Debug, Args)]
struct SchedulerArgs {
    #[command(flatten)]
    common: Common,
    /// Pods whose spec.schedulerName is this are placed by this scheduler.
    #[arg(long, default_value = scheduler::NAME)]
    scheduler_name: String,
    /// Pack pods onto the fullest nodes that fit, or spread them over the emptiest.
    #[arg(long, value_enum, default_value = "bin-pack")]
    policy: PolicyArg,
    /// Weight of CPU in the node score.
    #[arg(long, default_value_t = 1)]
    cpu_weight: u32,
    /// Weight of memory in the node score.
    #[arg(long, default_value_t = 1)]
    memory_weight: u32,
    /// Weight of ephemeral storage in the node score.
    #[arg(long, default_value_t = 0)]
    ephemeral_storage_weight: u32,
    /// Bindings in flight at once.
    #[arg(long, default_value_t = 32)]
    binds_in_flight: usize,
    /// Bin packing: how long (milliseconds) a pod may wait, while more pods keep arriving,
    /// to be placed with them; 0 binds each pod as soon as it is placed.
    #[arg(long, default_value_t = 1000)]
    pack_wait_ms: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PolicyArg {
    BinPack,
    Spread,
}

pub async fn run(cli: Cli) -> Result<()> {
    logging::init(cli.log_format);
    match cli.command {
        Command::Controller(args) => {
            let Some(key) = args.digest_key.filter(|k| !k.is_empty()) else {
                anyhow::bail!(
                    "DROVER_DIGEST_KEY is not set: the chart sets it from Secret \
                     <release>-digest-key; elsewhere set it to a random string kept across runs"
                );
            };
            let digester = rollout::config::Digester::new(key.as_bytes());
            let node_lost_grace = Duration::from_secs(args.node_lost_grace_seconds);
            let stateful = stateful::Config {
                digester: digester.clone(),
                namespace: args.namespace.clone(),
                node_lost_grace,
                concurrency: args.concurrency,
            };
            let config = app::Config {
                digester,
                namespace: args.namespace,
                node_lost_grace,
                concurrency: args.concurrency,
                scheduler_name: args.scheduler_name,
            };
            serve(
                args.common,
                "controller",
                (reporter::APP, Events::SharedClient),
                |c, m, r, rec| async move {
                    // Both workload controllers; ready once both have synced.
                    let apps = Arc::new(AtomicBool::new(false));
                    let stateful_apps = Arc::new(AtomicBool::new(false));
                    let ready = all_ready(r, [apps.clone(), stateful_apps.clone()]);
                    tokio::try_join!(
                        app::run(c.clone(), config, m.clone(), apps, rec.clone()),
                        stateful::run(c, stateful, m, stateful_apps, rec),
                        ready,
                    )
                    .map(drop)
                },
            )
            .await
        }
        Command::Scheduler(args) => {
            let config = scheduler::run::Config {
                name: args.scheduler_name,
                policy: match args.policy {
                    PolicyArg::BinPack => scheduler::Policy::BinPack,
                    PolicyArg::Spread => scheduler::Policy::Spread,
                },
                weights: scheduler::Weights {
                    cpu: args.cpu_weight,
                    memory: args.memory_weight,
                    ephemeral: args.ephemeral_storage_weight,
                },
                binds_in_flight: args.binds_in_flight,
                pack_wait: Duration::from_millis(args.pack_wait_ms),
            };
            serve(
                args.common,
                "scheduler",
                (reporter::SCHEDULER, Events::OwnClient),
                |c, m, r, rec| scheduler::run::run(c, config, m, r, rec),
            )
            .await
        }
    }
}

/// Sets `ready` once every one of `parts` is.
async fn all_ready<const N: usize>(
    ready: Arc<AtomicBool>,
    parts: [Arc<AtomicBool>; N],
) -> Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    while !parts.iter().all(|p| p.load(Relaxed)) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ready.store(true, Relaxed);
    Ok(())
}

/// A client of the apiserver with its own limits; its writes pass `fence`.
async fn client(qps: f64, burst: u32, fence: Fence) -> Result<Client> {
    let mut config = Config::infer()
        .await
        .context("no cluster configuration (in-cluster or KUBECONFIG)")?;
    // No blind retries inside the client: a refused eviction (429 from a disruption
    // budget) must come back at once, and every other failure is retried by the
    // reconcile with its own backoff, without holding the App's reconcile meanwhile.
    config.default_retry = false;
    Ok(ClientBuilder::try_from(config)?
        // Inside the rate limit: the time counts from when the request is sent, not from
        // when it queued for a token.
        .with_layer(&TimeoutLayer::new(REQUEST_TIMEOUT))
        .with_layer(&RateLimitLayer::new(qps, burst))
        // Outermost: a write refused by the fence takes no rate-limit token.
        .with_layer(&FenceLayer(fence))
        .build())
}

/// Every request's answer must begin (its headers arrive; a watch's come at once) within
/// this long: a connection that died without a word (a peer gone, a cut nobody reported) fails the
/// request, which its caller retries, instead of holding a reconcile or a watch forever.
/// Watches that go quiet are ended by the watcher's own idle timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The lease client's limits: a renewal is two requests every few seconds.
const LEASE_QPS: f64 = 5.0;
const LEASE_BURST: u32 = 10;

/// How a component's Events reach the apiserver.
enum Events {
    /// Within the component's own client limits.
    SharedClient,
    /// Through a client of their own with the same limits, as kube-scheduler's do, so
    /// publishing them never delays the component's own writes (bindings).
    OwnClient,
}

/// Runs a component: admin server, the lease (`drover-<component>` unless named) when
/// asked for, then `work` until it ends or the lease is lost. `reporter` signs its Events.
async fn serve<F, Fut>(
    args: Common,
    component: &str,
    (reporter, events): (&str, Events),
    work: F,
) -> Result<()>
where
    F: FnOnce(Client, Arc<Metrics>, Arc<AtomicBool>, Recorder) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let identity = match args.identity {
        Some(id) => id,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "drover".into()),
    };
    info!(version = env!("CARGO_PKG_VERSION"), %identity, "starting drover {component}");
    let lease_name = args
        .lease_name
        .unwrap_or_else(|| format!("drover-{component}"));
    // The lease has a client of its own: a renewal must not queue behind the component's
    // requests in their rate limit. Its writes are not fenced; the component's are.
    let lease = if args.leader_elect {
        Some(LeaseLock::new(
            self::client(LEASE_QPS, LEASE_BURST, Fence::open()).await?,
            &args.leader_election_namespace,
            &lease_name,
            &identity,
            Duration::from_secs(args.lease_duration_seconds),
        ))
    } else {
        None
    };
    let fence = lease.as_ref().map_or_else(Fence::open, LeaseLock::fence);
    let client = client(args.kube_api_qps, args.kube_api_burst, fence.clone()).await?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let admin_server = tokio::spawn(admin::serve(
        args.health_address,
        args.metrics_address.0,
        Admin {
            metrics: metrics.clone(),
            ready: ready.clone(),
            stuck_after: admin::STUCK_AFTER,
        },
    ));

    if let Some(lease) = &lease {
        // A replica standing by is healthy: ready while it waits, then ready again once
        // the leader's watches have synced.
        ready.store(true, std::sync::atomic::Ordering::Relaxed);
        lease.acquire().await;
        ready.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    let events_client = match events {
        Events::SharedClient => client.clone(),
        Events::OwnClient => self::client(args.kube_api_qps, args.kube_api_burst, fence).await?,
    };
    let recorder = Recorder::new(
        events_client,
        Reporter {
            controller: reporter.into(),
            instance: Some(identity),
        },
    );
    let work = work(client, metrics, ready, recorder);
    let lost = async {
        match &lease {
            Some(lease) => lease.hold().await,
            None => future_never().await,
        }
    };
    tokio::select! {
        result = work => {
            result?;
            if let Some(lease) = &lease {
                lease.release().await;
            }
        }
        () = lost => {
            error!("lost the leader lease; stopping so that only the leader acts");
            std::process::exit(1);
        }
        served = admin_server => {
            served.context("admin server task")?.context("admin server")?;
        }
    }
    info!("stopped");
    Ok(())
}

/// Where metrics are served, if anywhere.
#[derive(Debug, Clone, Copy)]
struct MetricsAddress(Option<SocketAddr>);

fn metrics_address(value: &str) -> Result<MetricsAddress, String> {
    if value == "none" {
        return Ok(MetricsAddress(None));
    }
    value
        .parse()
        .map(|addr| MetricsAddress(Some(addr)))
        .map_err(|e| format!("{e}: give an address such as 0.0.0.0:8080, or none"))
}

async fn future_never() {
    std::future::pending::<()>().await;
}
