//! `cargo xtask`: drover's developer tasks — the local cluster built from upstream
//! sources, OCI images without Docker, and the test suite CI runs.

mod addons;
mod bench;
mod bench_scheduler;
mod build;
mod cluster;
mod cmd;
mod components;
mod config;
mod crd;
mod digest;
mod fake_nodes;
mod host;
mod image;
mod install;
mod kind;
mod kubectl;
mod layout;
mod network;
mod pki;
mod process;
mod teardown;
mod test;
mod versions;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "drover developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// The local cluster with drover installed and the sample App running.
    Up {
        /// Simulated (kwok) nodes to create beside the real node.
        #[arg(long, default_value_t = cluster::DEFAULT_FAKE_NODES)]
        fake_nodes: usize,
    },
    /// The local Kubernetes cluster built from upstream sources.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// The kind cluster: a control plane and workers, each a container with its own
    /// kubelet and containerd, built without a registry.
    Kind {
        #[command(subcommand)]
        action: kind::KindAction,
    },
    /// Benchmarks: drover side by side with the stock component doing the same job.
    Bench(bench::BenchArgs),
    /// Generate the chart's CRD YAML from the Rust types (`--check`: fail if stale).
    Crd(crd::CrdArgs),
    /// Build OCI images without Docker and import them into the cluster's containerd.
    Image(image::ImageArgs),
    /// The whole test suite, as CI runs it: lints, unit tests, end-to-end tests on the
    /// local cluster (brought up first).
    Test(test::TestArgs),
}

#[derive(Debug, Subcommand)]
enum ClusterAction {
    /// Build the pinned upstream components into the cache; skips what is built.
    Build,
    /// From nothing to a Ready cluster; reports status when it is already up.
    Up {
        /// Simulated (kwok) nodes to create beside the real node.
        #[arg(long, default_value_t = cluster::DEFAULT_FAKE_NODES)]
        fake_nodes: usize,
    },
    /// Stop every process of the cluster and remove what it set up.
    Down,
    /// Components, nodes and system pods, and what is left over when down.
    Status,
    /// Print (or follow) a component's log.
    Logs {
        /// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd,
        /// kubelet, kube-proxy or kwok.
        component: String,
        #[arg(short, long)]
        follow: bool,
        /// Lines from the end to show.
        #[arg(long, default_value_t = 200)]
        tail: usize,
    },
    /// Set the number of simulated (kwok) nodes of a running cluster.
    FakeNodes { count: usize },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Up { fake_nodes } => install::up(fake_nodes),
        Task::Cluster { action } => match action {
            ClusterAction::Build => build::build_all(&layout::Layout::detect()?),
            ClusterAction::Up { fake_nodes } => cluster::up(fake_nodes),
            ClusterAction::Down => cluster::down(),
            ClusterAction::Status => cluster::status(),
            ClusterAction::Logs {
                component,
                follow,
                tail,
            } => cluster::logs(&component, follow, tail),
            ClusterAction::FakeNodes { count } => cluster::set_fake_nodes(count),
        },
        Task::Kind { action } => kind::run(action),
        Task::Bench(args) => bench::run(args),
        Task::Crd(args) => crd::run(args),
        Task::Image(args) => image::run(args),
        Task::Test(args) => test::run(args),
    }
}
