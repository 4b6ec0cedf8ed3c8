//! Host daemons without systemd: started in their own session with `setsid`, tracked by
//! PID files, stopped by PID.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cluster::Node;
use crate::components::Component;
use crate::layout::Layout;

/// The PID of a component if its PID file names a live process running its binary.
pub fn running_pid(layout: &Layout, c: Component) -> Option<i32> {
    let pid: i32 = fs::read_to_string(layout.pid_file(c.name()))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let binary = c.binary(layout).ok()?;
    is_alive_running(pid, &binary).then_some(pid)
}

/// True when `pid` is a live (not zombie) process whose executable is `binary`.
fn is_alive_running(pid: i32, binary: &Path) -> bool {
    let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) else {
        return false;
    };
    // A rebuilt binary shows as "<path> (deleted)"; it is still ours.
    let exe = exe.to_string_lossy();
    let exe = exe.trim_end_matches(" (deleted)");
    exe == binary.to_string_lossy() && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Removes PID files whose process is gone (a crash, or a machine restart), so that
/// `up` starts those components again instead of taking them for ones that just died.
/// Returns the components whose files were removed.
pub fn forget_dead(layout: &Layout) -> Vec<Component> {
    Component::ALL
        .into_iter()
        .filter(|c| layout.pid_file(c.name()).exists() && running_pid(layout, *c).is_none())
        .inspect(|c| {
            let _ = fs::remove_file(layout.pid_file(c.name()));
        })
        .collect()
}

/// Starts a component in a session of its own, logging to its log file.
pub fn start(layout: &Layout, c: Component, node: &Node) -> Result<i32> {
    let binary = c.binary(layout)?;
    let args = c.args(layout, node);
    fs::create_dir_all(&layout.logs)?;
    fs::create_dir_all(layout.pid_file("").parent().context("pid dir")?)?;
    let log_path = layout.log(c.name());
    rotate_if_large(&log_path)?;
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    use std::io::Write;
    writeln!(
        log,
        "=== drover: starting {} {}",
        binary.display(),
        args.join(" ")
    )?;
    // `setsid` execs in place (the child is not a group leader), so the PID is the daemon's.
    let mut child = Command::new("setsid")
        .arg(&binary)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", c.name()))?;
    let pid = i32::try_from(child.id())?;
    // Until setsid has exec'd, the process is not yet the daemon.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_alive_running(pid, &binary) {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "{} exited at once ({status}); see {}",
                c.name(),
                log_path.display()
            );
        }
        if Instant::now() > deadline {
            anyhow::bail!("{} did not start within 10s", c.name());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    fs::write(layout.pid_file(c.name()), pid.to_string())?;
    Ok(pid)
}

/// Logs are appended across restarts; past this size the old one moves to `<log>.1`
/// (replacing an older one) so a long-lived cluster does not fill the disk.
const LOG_ROTATE_BYTES: u64 = 64 << 20;

fn rotate_if_large(log: &Path) -> Result<()> {
    if fs::metadata(log).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        let mut old = log.as_os_str().to_owned();
        old.push(".1");
        fs::rename(log, &old).with_context(|| format!("rotating {}", log.display()))?;
    }
    Ok(())
}

/// Stops a component by its PID file: SIGTERM, then SIGKILL after a grace period.
/// Returns whether a process was running.
pub fn stop(layout: &Layout, c: Component) -> Result<bool> {
    let pid_file = layout.pid_file(c.name());
    let was_running = match running_pid(layout, c) {
        Some(pid) => {
            terminate(pid, Duration::from_secs(15));
            true
        }
        None => false,
    };
    let _ = fs::remove_file(pid_file);
    Ok(was_running)
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
