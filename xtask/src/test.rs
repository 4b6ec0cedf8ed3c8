//! `cargo xtask test`: everything CI checks, in order — formatting, lints, unit tests,
//! then the end-to-end suites on the local cluster (brought up first, from nothing if
//! need be, with drover installed from this tree). The chart suite reinstalls drover and
//! the lifecycle suite takes the cluster down and up, so they run last.

use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::cluster;
use crate::cmd::cmd;
use crate::crd;
use crate::install;
use crate::kind;
use crate::layout::Layout;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Simulated nodes for the cluster, if this run brings it up.
    #[arg(long, default_value_t = cluster::DEFAULT_FAKE_NODES)]
    fake_nodes: usize,
}

/// The end-to-end suites of `tests/`, in the order they run.
const E2E_SUITES: [&str; 7] = [
    "cluster",
    "app",
    "rollout",
    "rollback",
    "scheduler",
    "chart",
    "lifecycle",
];

pub fn run(args: TestArgs) -> Result<()> {
    let started = Instant::now();
    let layout = Layout::detect()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let step = |name: &str| println!("\n==> {name} ({}s)", started.elapsed().as_secs());

    step("cargo fmt --check");
    cmd(&cargo)
        .current_dir(&layout.repo)
        .args(["fmt", "--all", "--", "--check"])
        .run_inherit()?;
    step("CRD YAML up to date");
    crd::check()?;
    step("cargo clippy");
    cmd(&cargo)
        .current_dir(&layout.repo)
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .run_inherit()?;
    step("unit tests");
    cmd(&cargo)
        .current_dir(&layout.repo)
        // Every crate's own tests (the end-to-end crate's helpers included); the
        // end-to-end suites run against the cluster below.
        .args(["test", "--workspace", "--lib", "--bins"])
        .run_inherit()?;

    step("cluster up");
    cluster::up(args.fake_nodes)?;
    // A cluster that was already up may have another number of simulated nodes (a
    // benchmark, a user): the suites expect the one asked for.
    cluster::set_fake_nodes(args.fake_nodes)?;
    step("install drover");
    install::install_drover(&layout)?;

    let xtask = std::env::current_exe()?;
    let path = format!(
        "{}:{}",
        layout.client_bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for suite in E2E_SUITES {
        step(&format!("end-to-end: {suite}"));
        // Output captured: the harness repeats a failed test's output and message at the
        // end of the log, where they are read first.
        cmd(&cargo)
            .current_dir(&layout.repo)
            .args(["test", "-p", "drover-e2e", "--test", suite])
            .env("KUBECONFIG", layout.admin_kubeconfig())
            .env("PATH", &path)
            .env("DROVER_XTASK", &xtask)
            .env("DROVER_FAKE_NODES", args.fake_nodes.to_string())
            .env("DROVER_AUDIT_LOG", layout.audit_log())
            .run_inherit()?;
    }

    // The kind cluster runs beside the host-process one until it carries every suite.
    step("kind cluster up");
    let workers = kind::DEFAULT_WORKERS;
    kind::cluster_up(
        &layout,
        &kind::UpArgs {
            workers,
            node_image: None,
        },
    )?;
    step("install drover on kind");
    install::install_drover_on(&layout, &layout.kind_kubeconfig(), &kind::load_images)?;
    step("end-to-end: kind");
    cmd(&cargo)
        .current_dir(&layout.repo)
        // One at a time: a test stops a worker, which would take others' pods with it.
        .args([
            "test",
            "-p",
            "drover-e2e",
            "--test",
            "kind",
            "--",
            "--test-threads=1",
        ])
        .env("KUBECONFIG", layout.kind_kubeconfig())
        .env("PATH", &path)
        .env("DROVER_KIND_NODES", (workers + 1).to_string())
        .run_inherit()?;
    println!("\nall tests passed in {}s", started.elapsed().as_secs());
    Ok(())
}
