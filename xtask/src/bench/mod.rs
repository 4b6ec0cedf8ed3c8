//! Benchmarks: drover side by side with the stock component doing the same job, in one
//! run on the same cluster, reported as ratios.

pub mod audit;
mod measure;
mod scheduler;
mod setup;
mod workload;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// App vs Deployment: bring N replicas to Ready on simulated nodes.
    Scale(workload::Sizes),
    /// App vs Deployment: roll N replicas on simulated nodes to a new image.
    Rollout(workload::Sizes),
    /// StatefulApp vs StatefulSet (Parallel and OrderedReady): bring N replicas to Ready,
    /// then roll them to a new image, on simulated nodes.
    Stateful(workload::Sizes),
    /// drover's scheduler vs kube-scheduler: place a seeded mix of pods on node pools.
    Scheduler(scheduler::SchedulerBench),
}

/// The App against the Deployment.
const DEPLOYMENT: [workload::Workload; 2] =
    [workload::Workload::App, workload::Workload::Deployment];

pub fn run(args: BenchArgs) -> Result<()> {
    match args.bench {
        Bench::Scale(s) => workload::run(workload::Kind::Scale, DEPLOYMENT, &s),
        Bench::Rollout(s) => workload::run(workload::Kind::Rollout, DEPLOYMENT, &s),
        Bench::Stateful(s) => workload::run_stateful(&s),
        Bench::Scheduler(s) => scheduler::run(s),
    }
}
