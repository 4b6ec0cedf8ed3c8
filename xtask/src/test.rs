//! `cargo xtask test`: everything CI checks, in order — formatting, lints, unit tests,
//! then the end-to-end suites on the kind cluster (brought up first, from nothing if
//! need be, with drover installed from this tree). The chart suite reinstalls drover and
//! the lifecycle suite takes the cluster down and up, so they run last.

use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::cluster;
use crate::cluster::fake_nodes;
use crate::cluster::install;
use crate::cmd::{Cmd, cargo, go};
use crate::crd;
use crate::layout::Layout;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Simulated nodes for the cluster, if this run brings it up.
    #[arg(long, default_value_t = fake_nodes::DEFAULT_COUNT)]
    fake_nodes: usize,
    /// Only the soak suite, at its full fault counts (about 45 minutes), its report
    /// printed; the cluster is brought up first if need be.
    #[arg(long)]
    soak: bool,
}

/// The end-to-end suites of `tests/`, in the order they run, and whether the tests of
/// each take turns (a suite that stops or drains workers would take others' pods along).
const E2E_SUITES: [(&str, bool); 12] = [
    ("cluster", false),
    ("nodes", true),
    ("app", false),
    ("rollout", false),
    ("rollback", false),
    ("scheduler", false),
    ("stateful", false),
    // Alone: it measures the longest outage a client of the example sees.
    ("etcd", false),
    // It cuts connections, stops components and measures the controller's memory.
    ("faults", true),
    // Its quick profile; `--soak` runs the full one.
    ("soak", true),
    ("chart", false),
    ("lifecycle", false),
];

pub fn run(args: TestArgs) -> Result<()> {
    let started = Instant::now();
    let layout = Layout::detect()?;
    let step = |name: &str| println!("\n==> {name} ({}s)", started.elapsed().as_secs());
    if args.soak {
        step("cluster up, drover installed");
        install::cluster_with_drover(&layout, args.fake_nodes)?;
        step("soak, full profile");
        suite(&layout, &args, "soak", true)?
            .env("DROVER_SOAK", "full")
            .args(["--nocapture"])
            .run_inherit()?;
        println!("\nthe soak passed in {}s", started.elapsed().as_secs());
        return Ok(());
    }

    step("cargo fmt --check");
    cargo()
        .current_dir(&layout.repo)
        .args(["fmt", "--all", "--", "--check"])
        .run_inherit()?;
    step("CRD YAML up to date");
    crd::check()?;
    step("cargo clippy");
    cargo()
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
    cargo()
        .current_dir(&layout.repo)
        // Every crate's own tests (the end-to-end crate's helpers included); the
        // end-to-end suites run against the cluster below.
        .args(["test", "--workspace", "--lib", "--bins"])
        .run_inherit()?;
    // The cluster's volume driver (Go).
    go(&layout, &layout.repo.join("cluster/csi"))
        .args(["test", "./..."])
        .run_inherit()?;
    // What the scheduler keeps per pod, measured with a counting allocator of its own.
    cargo()
        .current_dir(&layout.repo)
        .args([
            "test",
            "-p",
            "drover-controllers",
            "--test",
            "pod_cache_size",
            "--",
            "--nocapture",
        ])
        .run_inherit()?;

    step("cluster up, drover installed");
    // A cluster that was already up (a benchmark's, a user's) gets the simulated nodes
    // the suites expect.
    install::cluster_with_drover(&layout, args.fake_nodes)?;

    for (name, one_at_a_time) in E2E_SUITES {
        step(&format!("end-to-end: {name}"));
        suite(&layout, &args, name, one_at_a_time)?.run_inherit()?;
    }
    println!("\nall tests passed in {}s", started.elapsed().as_secs());
    Ok(())
}

/// `cargo test` of one end-to-end suite against the cluster, with what the suites need to
/// know about it; arguments added after it go to the test harness.
fn suite(layout: &Layout, args: &TestArgs, name: &str, one_at_a_time: bool) -> Result<Cmd> {
    let path = format!(
        "{}:{}",
        layout.client_bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // `--workspace` as for the unit tests: the same packages give the same features, so
    // the dependencies built for those are reused (`-p drover-e2e` alone would rebuild
    // tokio, kube and forty more with fewer features).
    let mut test =
        cargo()
            .current_dir(&layout.repo)
            .args(["test", "--workspace", "--test", name, "--"]);
    if one_at_a_time {
        test = test.args(["--test-threads=1"]);
    }
    // Output captured: the harness repeats a failed test's output and message at the end
    // of the log, where they are read first.
    Ok(test
        .env("KUBECONFIG", layout.kubeconfig())
        .env("PATH", &path)
        .env("DROVER_XTASK", std::env::current_exe()?)
        .env("DROVER_FAKE_NODES", args.fake_nodes.to_string())
        .env(
            "DROVER_KIND_NODES",
            (cluster::DEFAULT_WORKERS + 1).to_string(),
        )
        .env("DROVER_AUDIT_LOG", layout.audit_log()))
}
