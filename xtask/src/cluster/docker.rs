//! The Docker engine the kind nodes run on: the one that already answers on this
//! machine, or Debian's `dockerd` started here in its own session (there is no systemd).
//! A daemon started here leaves the host's firewall alone (`--iptables=false`,
//! `--ip-masq=false`: the network rule is drover's own, see `cluster::guard`) and, where the
//! sandbox leaves capabilities out of every bounding set, runs containers through
//! `cluster/kind/runc-capfilter` so that `--privileged` works.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, umount2};

use crate::cmd::{Cmd, cmd};
use crate::layout::Layout;
use crate::process;

/// The runtime name registered with a daemon started here.
const CAPFILTER_RUNTIME: &str = "drover-runc";
const CAPFILTER: &str = include_str!("../../../cluster/kind/runc-capfilter");
/// The highest capability number this machine's kernel headers know (CHECKPOINT_RESTORE).
const LAST_CAPABILITY: u32 = 40;

/// Debian's client where it is installed: a newer client elsewhere on PATH (some images
/// ship one without a daemon) need not speak Debian's daemon's API as kind expects.
pub fn client() -> &'static str {
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

pub fn docker() -> Cmd {
    cmd(client())
}

pub fn has_image(reference: &str) -> bool {
    docker().args(["image", "inspect", reference]).succeeds()
}

fn daemon_answers() -> bool {
    docker()
        .args(["info", "--format", "{{.ServerVersion}}"])
        .succeeds()
}

/// Capabilities missing from this process's bounding set, by number (CAP_SYS_RESOURCE
/// is 24).
pub fn missing_capabilities() -> Result<Vec<u32>> {
    let status = fs::read_to_string("/proc/self/status")?;
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .context("/proc/self/status has no CapBnd line")?;
    Ok(missing_from(u64::from_str_radix(bounding.trim(), 16)?))
}

fn missing_from(bounding: u64) -> Vec<u32> {
    (0..=LAST_CAPABILITY)
        .filter(|bit| bounding >> bit & 1 == 0)
        .collect()
}

/// A daemon that answers, started here if none does.
pub fn ensure(layout: &Layout) -> Result<()> {
    let missing = missing_capabilities()?;
    if daemon_answers() {
        if !missing.is_empty() && !default_runtime_filters_capabilities() {
            bail!(
                "the running Docker daemon cannot start privileged containers here: this \
                 sandbox leaves capabilities {missing:?} out of the bounding set. Stop that \
                 daemon and run again: drover starts Debian's dockerd with a runtime that \
                 drops them (cluster/kind/runc-capfilter)"
            );
        }
        return Ok(());
    }
    start(layout, &missing)
}

fn default_runtime_filters_capabilities() -> bool {
    docker()
        .args(["info", "--format", "{{.DefaultRuntime}}"])
        .output()
        .is_ok_and(|r| r.trim() == CAPFILTER_RUNTIME)
}

fn start(layout: &Layout, missing: &[u32]) -> Result<()> {
    let dir = layout.state.clone();
    fs::create_dir_all(&dir)?;
    fs::create_dir_all(&layout.logs)?;
    let mut args = vec![
        // Images (the node image above all) are kept with the rest of drover's cache.
        format!("--data-root={}", data_root(layout).display()),
        "--iptables=false".into(),
        "--ip-masq=false".into(),
        "--ip6tables=false".into(),
    ];
    if !missing.is_empty() {
        let wrapper = dir.join("runc-capfilter");
        fs::write(&wrapper, CAPFILTER)?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))?;
        args.push(format!(
            "--add-runtime={CAPFILTER_RUNTIME}={}",
            wrapper.display()
        ));
        args.push(format!("--default-runtime={CAPFILTER_RUNTIME}"));
        println!(
            "dockerd: capabilities {missing:?} are outside this sandbox's bounding set; \
             containers run through {}",
            wrapper.display()
        );
    }
    let log_path = layout.log("dockerd");
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    // `setsid` execs in place, so the PID is the daemon's.
    let child = Command::new("setsid")
        .arg("/usr/sbin/dockerd")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting dockerd")?;
    fs::write(dockerd_pid_file(layout), child.id().to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !daemon_answers() {
        if Instant::now() > deadline {
            bail!(
                "dockerd did not answer within 60s; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    println!(
        "dockerd started (pid {}, log {})",
        child.id(),
        log_path.display()
    );
    Ok(())
}

fn dockerd_pid_file(layout: &Layout) -> PathBuf {
    layout.state.join("dockerd.pid")
}

fn data_root(layout: &Layout) -> PathBuf {
    layout.cache.join("docker")
}

/// The PID of the dockerd started here, if it still runs.
pub fn started_daemon(layout: &Layout) -> Option<i32> {
    let pid: i32 = fs::read_to_string(dockerd_pid_file(layout))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    (exe == Path::new("/usr/sbin/dockerd")).then_some(pid)
}

/// Stops the dockerd started here (and its containerd with it); a daemon this machine
/// ran before is left alone.
pub fn stop_started(layout: &Layout) -> Result<()> {
    if let Some(pid) = started_daemon(layout) {
        process::terminate(pid, Duration::from_secs(30));
        println!("dockerd stopped (pid {pid})");
        clean_after_daemon(layout)?;
    }
    let _ = fs::remove_file(dockerd_pid_file(layout));
    Ok(())
}

/// What a stopped daemon leaves on the host: the bind mount of its data root onto itself
/// (made so that container mounts propagate), any mount below it or its run directory
/// that outlived a container, and its default bridge `docker0`.
fn clean_after_daemon(layout: &Layout) -> Result<()> {
    let root = data_root(layout);
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    let mut points: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(&root) || Path::new(p).starts_with("/run/docker"))
        .collect();
    // Deepest first; a point mounted twice is unmounted as often.
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        // EINVAL: already gone with a mount above it that was detached first.
        match umount2(point, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("unmounting {point}, left by dockerd"));
            }
        }
    }
    if Path::new("/sys/class/net/docker0").exists() {
        cmd("ip").args(["link", "delete", "docker0"]).run()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_missing_capabilities_from_the_bounding_set() {
        // This sandbox's CapBnd: everything but CAP_SYS_RESOURCE.
        assert_eq!(missing_from(0x0000_01ff_feff_ffff), vec![24]);
        assert!(missing_from(0x0000_01ff_ffff_ffff).is_empty());
    }
}
