//! Host processes without systemd: found through /proc, stopped by PID.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
pub fn terminate(pid: i32, grace: Duration) {
    let target = Pid::from_raw(pid);
    if kill(target, Signal::SIGTERM).is_err() {
        return;
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = kill(target, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && Path::new(&format!("/proc/{pid}")).exists()
        && !is_zombie(pid)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A live process on the host, with its executable and command line.
#[derive(Debug, Clone)]
pub struct HostProcess {
    pub pid: i32,
    pub exe: PathBuf,
    pub cmdline: String,
}

/// Every live process on the host (zombies excluded).
pub fn host_processes() -> Vec<HostProcess> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| !is_zombie(*pid))
        .filter_map(|pid| {
            let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            Some(HostProcess { pid, exe, cmdline })
        })
        .collect()
}
