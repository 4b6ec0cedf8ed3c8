//! What the benchmarks read of a process: its host PID, CPU time and memory; and the
//! median of runs.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use super::setup::DroverComponent;
use crate::cmd::cmd;
use crate::process;

/// A component's host PID (its container's process).
pub fn host_pid(component: &DroverComponent) -> Option<i32> {
    process::host_processes()
        .into_iter()
        .find(|p| p.cmdline.starts_with(component.command))
        .map(|p| p.pid)
}

/// The PID (as the host sees it) of the one process running the executable `name`, in
/// whichever node container it runs.
pub fn process_pid(name: &str) -> Option<i32> {
    process::host_processes()
        .into_iter()
        .find(|p| p.exe.file_name().is_some_and(|n| n == name))
        .map(|p| p.pid)
}

pub fn cpu_ticks(pid: i32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

pub fn rss_kib(pid: i32) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn clock_ticks() -> Result<f64> {
    Ok(cmd("getconf").arg("CLK_TCK").output()?.trim().parse()?)
}

pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A process's resident memory, sampled every 200 ms from `start` to `stop`.
pub struct PeakRss {
    peak: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    sampler: JoinHandle<()>,
}

impl PeakRss {
    pub fn start(pid: i32) -> Self {
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
        PeakRss {
            peak,
            done,
            sampler,
        }
    }

    /// The peak, in MiB.
    pub fn stop(self) -> f64 {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.sampler.join();
        self.peak.load(Ordering::Relaxed) as f64 / 1024.0
    }
}
