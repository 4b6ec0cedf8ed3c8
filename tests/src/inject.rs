//! Faults put on drover and its control plane, as the fault and soak suites inject them:
//! crashes (SIGKILL) of drover's processes and of the kube-apiserver, cut connections, a
//! leader frozen past its lease. The kind nodes' containers are processes of this machine,
//! so all of it is done from the host.

use std::time::{Duration, Instant};

use crate::{docker, host_ok, kubectl, kubectl_ok};

/// drover's Deployments in `drover-system`, each selecting its pods by
/// `app.kubernetes.io/name=<deployment>`.
pub const CONTROLLER: &str = "drover";
pub const SCHEDULER: &str = "drover-scheduler";

/// Kills a pod of one of drover's Deployments outright (no graceful shutdown), as a crash
/// would.
pub fn kill(deployment: &str) {
    let pods: Vec<String> = kubectl_ok(&[
        "-n",
        "drover-system",
        "get",
        "pods",
        "-l",
        &format!("app.kubernetes.io/name={deployment}"),
        "-o",
        "name",
    ])
    .lines()
    .map(str::to_string)
    .collect();
    assert!(!pods.is_empty(), "{deployment} runs");
    kubectl_ok(&[
        "-n",
        "drover-system",
        "delete",
        "--grace-period=0",
        "--force",
        &pods[0],
    ]);
}

/// The host PIDs of drover's processes running `command` (`controller`, `scheduler`):
/// the kind nodes' containers are processes of this machine.
pub fn drover_processes(command: &str) -> Vec<u32> {
    host_processes(format!("/drover\0{command}\0").as_bytes())
}

/// The PIDs of this machine's processes whose command line starts with `prefix` (its
/// arguments NUL-separated).
fn host_processes(prefix: &[u8]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("reading /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(prefix))
        })
        .collect()
}

/// Cuts every established connection of drover's `command` processes to the apiserver
/// (`ss -K` in their network namespaces), as a network fault or a restarting apiserver
/// would: their watches end mid-stream with an error. Returns how many were cut (none
/// while the component is restarting: the caller checks restarts).
pub fn cut_connections(command: &str) -> usize {
    drover_processes(command)
        .iter()
        .map(|pid| {
            let pid = pid.to_string();
            let out = host_ok(
                "nsenter",
                &[
                    "-t",
                    &pid,
                    "-n",
                    "ss",
                    "-K",
                    "-tnH",
                    "state",
                    "established",
                    "( dport = :443 or dport = :6443 )",
                ],
            );
            out.lines().filter(|l| !l.trim().is_empty()).count()
        })
        .sum()
}

/// Kills the kube-apiserver (SIGKILL, as a crash would; the kind nodes' processes are
/// this machine's) and waits until it runs again and is ready.
///
/// Its kubelet restarts a crashed container after a back-off that doubles with every
/// crash, up to 5 minutes, and forgets it only after 10 quiet minutes: a soak's seventh
/// kill within half an hour waited out the full 5 minutes. When the kubelet holds it back
/// longer than a first restart would take, the static pod's manifest gets a new
/// annotation, which makes it a new pod, started at once (as an operator would restart it).
pub fn restart_apiserver() {
    let running = || host_processes(b"kube-apiserver\0");
    let before = running();
    assert_eq!(before.len(), 1, "one kube-apiserver runs: {before:?}");
    host_ok("kill", &["-KILL", &before[0].to_string()]);
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(180);
    let mut renewed = false;
    loop {
        let now = running();
        if !now.is_empty()
            && now != before
            && kubectl(&["get", "--raw", "/readyz"]).status.success()
        {
            return;
        }
        if !renewed && now.is_empty() && killed.elapsed() > Duration::from_secs(15) {
            renew_apiserver_pod();
            renewed = true;
        }
        assert!(
            Instant::now() < deadline,
            "the kube-apiserver is not back after 180 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Stamps the kube-apiserver's static pod manifest with a new annotation: the kubelet
/// sees a new pod and starts it without the crashed one's back-off.
fn renew_apiserver_pod() {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let script = format!(
        "sed -i -e '/drover.dev\\/renewed:/d' \
         -e 's/^  annotations:$/&\\n    drover.dev\\/renewed: \"{stamp}\"/' \
         /etc/kubernetes/manifests/kube-apiserver.yaml"
    );
    docker(&["exec", "drover-control-plane", "sh", "-c", &script]);
}

/// Waits until one of drover's Deployments is ready again.
pub fn wait_ready(deployment: &str) {
    kubectl_ok(&[
        "-n",
        "drover-system",
        "rollout",
        "status",
        &format!("deployment/{deployment}"),
        "--timeout=120s",
    ]);
}

/// The leases drover's components hold while they act.
pub const CONTROLLER_LEASE: &str = "drover-controller";
pub const SCHEDULER_LEASE: &str = SCHEDULER;

/// The pod a host process of a container runs in: kubelet gives the pod's name as its
/// hostname.
pub fn pod_of(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/root/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_string())
}

/// The pod and host PID of drover's `command` process (`controller`, `scheduler`) that
/// holds `lease` now; none while nobody leads or the holder is not running.
pub async fn leader(client: &kube::Client, command: &str, lease: &str) -> Option<(String, u32)> {
    let holder = crate::lease_holder(client, lease).await?;
    drover_processes(command)
        .into_iter()
        .find(|pid| pod_of(*pid).as_deref() == Some(holder.as_str()))
        .map(|pid| (holder, pid))
}

/// The pod IP of a host process of a container (the address of its network namespace's
/// `eth0`), which the apiserver's audit log shows as the source of its requests.
pub fn process_ip(pid: u32) -> String {
    let out = host_ok(
        "nsenter",
        &[
            "-t",
            &pid.to_string(),
            "-n",
            "ip",
            "-o",
            "-4",
            "addr",
            "show",
            "eth0",
        ],
    );
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .unwrap_or_else(|| panic!("no IPv4 address on eth0 of process {pid}: {out}"))
        .to_string()
}

/// Sends `signal` (`KILL`, `STOP`, `CONT`) to a host process.
pub fn signal(pid: u32, signal: &str) {
    host_ok("kill", &[&format!("-{signal}"), &pid.to_string()]);
}

/// Deletes a crashed pod of drover's, so its Deployment starts a fresh one at once: a
/// container restarted in place waits out the kubelet's crash backoff, which grows to
/// minutes over a soak's hundred crashes and would measure the kubelet, not drover.
pub fn replace_pod(pod: &str) {
    let _ = kubectl(&[
        "-n",
        "drover-system",
        "delete",
        "pod",
        pod,
        "--grace-period=0",
        "--force",
        "--wait=false",
    ]);
}

/// Sets the replicas of one of drover's Deployments and waits until they are all ready.
pub fn scale_component(deployment: &str, replicas: u32) {
    kubectl_ok(&[
        "-n",
        "drover-system",
        "scale",
        &format!("deployment/{deployment}"),
        &format!("--replicas={replicas}"),
    ]);
    wait_ready(deployment);
}
