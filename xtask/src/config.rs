//! Configuration files of the cluster's components, written into the state directory.

use std::fs;

use anyhow::{Context, Result};

use crate::cluster::Node;
use crate::image::PAUSE_IMAGE;
use crate::layout::Layout;
use crate::network;

/// Writes every component's config file, in step with this code. A file whose content
/// is unchanged is not touched: kube-proxy exits when its config file changes.
pub fn write_all(layout: &Layout, node: &Node) -> Result<()> {
    fs::create_dir_all(layout.config(""))?;
    fs::create_dir_all(layout.cni_conf_dir())?;
    write(layout, "containerd.toml", &containerd(layout))?;
    write_if_changed(
        &layout.cni_conf_dir().join("10-drover.conflist"),
        &cni(layout, node)?,
    )?;
    write(layout, "kubelet.yaml", &kubelet(layout))?;
    write(layout, "kube-proxy.yaml", &kube_proxy(layout, node))?;
    write(layout, "kube-scheduler.yaml", &kube_scheduler(layout))?;
    write(layout, "pod-resolv.conf", POD_RESOLV_CONF)?;
    write(layout, "kwok.yaml", &kwok_stages(layout)?)?;
    write(layout, "audit-policy.yaml", AUDIT_POLICY)?;
    Ok(())
}

/// The apiserver records who wrote what (metadata only, no bodies, no reads): benchmarks
/// count each controller's writes from it.
const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
"#;

fn write(layout: &Layout, name: &str, content: &str) -> Result<()> {
    write_if_changed(&layout.config(name), content)
}

fn write_if_changed(path: &std::path::Path, content: &str) -> Result<()> {
    if fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    fs::write(path, content).with_context(|| format!("writing {}", path.display()))
}

/// The resolver the kubelet hands to pods that do not use cluster DNS (and the base of
/// those that do): no nameserver, so no pod can resolve through the host's resolver.
const POD_RESOLV_CONF: &str = "# drover: pods resolve through cluster DNS only\n";

fn containerd(layout: &Layout) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"

[grpc]
  address = "{socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # hugetlb is not mounted on the development VMs.
  disable_hugetlb_controller = true
  tolerate_missing_hugetlb_controller = true
  # The development VMs have no CAP_SYS_RESOURCE, so nothing may lower oom_score_adj
  # below 0 and runc fails on the kubelet's -998 for sandboxes: clamp to what is allowed.
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # No systemd on the host: cgroupfs, as the kubelet is told too.
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
"#,
        root = layout.containerd_root().display(),
        state = layout.containerd_state().display(),
        socket = layout.containerd_socket().display(),
        cni = layout.cni_conf_dir().display(),
    )
}

fn cni(layout: &Layout, node: &Node) -> Result<String> {
    let mtu: u32 = fs::read_to_string(format!("/sys/class/net/{}/mtu", node.uplink))
        .ok()
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or(1500);
    // Routes to cluster ranges and the node only: a pod has no route off the machine.
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "drover-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": network::POD_BRIDGE,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "mtu": mtu,
                "ipam": {
                    "type": "host-local",
                    "dataDir": layout.cni_ipam_dir(),
                    "ranges": [[{"subnet": network::NODE_POD_CIDR, "gateway": network::POD_GATEWAY}]],
                    "routes": [
                        {"dst": network::POD_CIDR},
                        {"dst": network::SERVICE_CIDR},
                        {"dst": format!("{}/32", node.ip)},
                    ],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    Ok(serde_json::to_string_pretty(&conf)?)
}

fn kubelet(layout: &Layout) -> String {
    let pki = layout.pki();
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://{socket}
# No systemd on the host; cgroup v1 is still allowed in 1.34 but set explicitly, as the
# default flips in 1.35.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {pki}/ca.crt}}
authorization: {{mode: Webhook}}
tlsCertFile: {pki}/kubelet-serving.crt
tlsPrivateKeyFile: {pki}/kubelet-serving.key
rotateCertificates: false
serverTLSBootstrap: false
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
clusterDNS: [{dns}]
clusterDomain: {domain}
resolvConf: {resolv}
podLogsDir: {pod_logs}
serializeImagePulls: false
# Images are imported, never pulled: garbage collection would delete what cannot come back.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "200Mi"
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
maxPods: 110
"#,
        socket = layout.containerd_socket().display(),
        pki = pki.display(),
        dns = network::DNS_SERVICE_IP,
        domain = network::CLUSTER_DOMAIN,
        resolv = layout.config("pod-resolv.conf").display(),
        pod_logs = layout.pod_logs().display(),
    )
}

fn kube_proxy(layout: &Layout, node: &Node) -> String {
    format!(
        r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: {kubeconfig}
hostnameOverride: {node}
clusterCIDR: {pods}
nodePortAddresses: [primary]
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
iptables:
  minSyncPeriod: 1s
# Leave the host's conntrack settings alone.
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
"#,
        kubeconfig = layout.kubeconfig("kube-proxy").display(),
        node = node.name,
        pods = network::POD_CIDR,
    )
}

/// kwok's own default stages, the set kwokctl configures: nodes initialise and keep a
/// lease; pods become Ready, complete, and go away when deleted. Read from the pinned
/// kwok module in the Go module cache.
const KWOK_STAGES: [&str; 5] = [
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
];

fn kwok_stages(layout: &Layout) -> Result<String> {
    let pin = layout.versions.get("kwok")?;
    let module_dir = layout
        .go_mod_cache()
        .join(format!("{}@{}", pin.module, pin.version));
    let mut docs = vec![];
    for stage in KWOK_STAGES {
        let path = module_dir.join("kustomize/stage").join(stage);
        let text = fs::read_to_string(&path).with_context(|| {
            format!(
                "reading kwok's stage {}: run `cargo xtask cluster build`",
                path.display()
            )
        })?;
        docs.push(text.trim().trim_start_matches("---").trim().to_string());
    }
    Ok(docs.join("\n---\n") + "\n")
}

fn kube_scheduler(layout: &Layout) -> String {
    format!(
        r#"apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
leaderElection:
  leaderElect: false
"#,
        kubeconfig = layout.kubeconfig("scheduler").display(),
    )
}
