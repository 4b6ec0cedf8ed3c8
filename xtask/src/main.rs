//! `cargo xtask`: drover's developer tasks — the local kind cluster with its components
//! built from upstream sources, OCI images without a registry, benchmarks, and the test
//! suite CI runs.

mod bench;
mod cluster;
mod cmd;
mod components;
mod crd;
mod digest;
mod image;
mod layout;
mod process;
mod test;
mod versions;

use anyhow::Result;
use clap::{Parser, Subcommand};

use layout::Layout;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "drover developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// The local kind cluster with drover installed and the sample App running.
    Up(cluster::UpArgs),
    /// Remove the kind cluster and everything `up` started.
    Down,
    /// The parts of the local cluster.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Benchmarks: drover side by side with the stock component doing the same job.
    Bench(bench::BenchArgs),
    /// Generate the chart's CRD YAML from the Rust types (`--check`: fail if stale).
    Crd(crd::CrdArgs),
    /// Build OCI images without a registry and load them into the kind cluster's nodes.
    Image(image::ImageArgs),
    /// The whole test suite, as CI runs it: lints, unit tests, end-to-end tests on the
    /// local cluster (brought up first).
    Test(test::TestArgs),
}

#[derive(Debug, Subcommand)]
enum ClusterAction {
    /// Build the pinned upstream components into the cache; skips what is built.
    Build,
    /// Build the node image (and everything it holds) without creating a cluster.
    NodeImage,
    /// Nodes, system pods and the network rule.
    Status,
    /// Set the number of simulated (kwok) nodes of the running cluster.
    FakeNodes { count: usize },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Up(args) => cluster::up(&Layout::detect()?, &args),
        Task::Down => cluster::down(&Layout::detect()?),
        Task::Cluster { action } => {
            let layout = Layout::detect()?;
            match action {
                ClusterAction::Build => components::build_all(&layout),
                ClusterAction::NodeImage => cluster::node_image(&layout).map(drop),
                ClusterAction::Status => cluster::status(&layout),
                ClusterAction::FakeNodes { count } => {
                    cluster::set_fake_nodes(&cluster::kubectl(&layout)?, count)
                }
            }
        }
        Task::Bench(args) => bench::run(args),
        Task::Crd(args) => crd::run(args),
        Task::Image(args) => {
            let archives = image::build_named(&Layout::detect()?, &args.names())?;
            if args.no_load {
                return Ok(());
            }
            cluster::load_images(&archives)
        }
        Task::Test(args) => test::run(args),
    }
}
