//! The cluster's host processes: what each one runs with, in start order.

use std::path::PathBuf;

use anyhow::Result;

use crate::cluster::Node;
use crate::layout::Layout;
use crate::network;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Etcd,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Containerd,
    Kubelet,
    KubeProxy,
    Kwok,
}

impl Component {
    /// Start order; `down` stops them in reverse.
    pub const ALL: [Component; 8] = [
        Component::Etcd,
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
        Component::Containerd,
        Component::Kubelet,
        Component::KubeProxy,
        Component::Kwok,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
            Component::Containerd => "containerd",
            Component::Kubelet => "kubelet",
            Component::KubeProxy => "kube-proxy",
            Component::Kwok => "kwok",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn binary(self, layout: &Layout) -> Result<PathBuf> {
        match self {
            Component::Containerd => Ok(PathBuf::from("/usr/bin/containerd")),
            other => layout.bin(other.name()),
        }
    }

    /// An HTTP(S) endpoint that answers 200 once the component is healthy, when it has one
    /// that needs no credentials.
    pub fn health_url(self) -> Option<&'static str> {
        match self {
            Component::Etcd => Some("http://127.0.0.1:2381/health"),
            Component::KubeControllerManager => Some("https://127.0.0.1:10257/healthz"),
            Component::KubeScheduler => Some("https://127.0.0.1:10259/healthz"),
            Component::Kubelet => Some("http://127.0.0.1:10248/healthz"),
            Component::KubeProxy => Some("http://127.0.0.1:10256/healthz"),
            Component::Kwok => Some("http://127.0.0.1:10247/healthz"),
            Component::KubeApiserver | Component::Containerd => None,
        }
    }

    pub fn args(self, layout: &Layout, node: &Node) -> Vec<String> {
        let pki = |f: &str| layout.pki().join(f).display().to_string();
        let kubeconfig = |u: &str| layout.kubeconfig(u).display().to_string();
        let config = |f: &str| layout.config(f).display().to_string();
        let v: Vec<String> = match self {
            Component::Etcd => vec![
                "--name=drover".into(),
                format!("--data-dir={}", layout.etcd_data().display()),
                "--listen-client-urls=http://127.0.0.1:2379".into(),
                "--advertise-client-urls=http://127.0.0.1:2379".into(),
                "--listen-peer-urls=http://127.0.0.1:2380".into(),
                "--initial-advertise-peer-urls=http://127.0.0.1:2380".into(),
                "--initial-cluster=drover=http://127.0.0.1:2380".into(),
                "--initial-cluster-state=new".into(),
                "--listen-metrics-urls=http://127.0.0.1:2381".into(),
                "--log-level=warn".into(),
            ],
            Component::KubeApiserver => vec![
                format!("--advertise-address={}", node.ip),
                "--bind-address=0.0.0.0".into(),
                "--secure-port=6443".into(),
                "--etcd-servers=http://127.0.0.1:2379".into(),
                format!("--service-cluster-ip-range={}", network::SERVICE_CIDR),
                format!("--tls-cert-file={}", pki("apiserver.crt")),
                format!("--tls-private-key-file={}", pki("apiserver.key")),
                format!("--client-ca-file={}", pki("ca.crt")),
                format!(
                    "--kubelet-client-certificate={}",
                    pki("apiserver-kubelet-client.crt")
                ),
                format!(
                    "--kubelet-client-key={}",
                    pki("apiserver-kubelet-client.key")
                ),
                format!("--kubelet-certificate-authority={}", pki("ca.crt")),
                "--kubelet-preferred-address-types=InternalIP,Hostname".into(),
                format!(
                    "--service-account-issuer=https://kubernetes.default.svc.{}",
                    network::CLUSTER_DOMAIN
                ),
                format!("--service-account-key-file={}", pki("sa.pub")),
                format!("--service-account-signing-key-file={}", pki("sa.key")),
                "--authorization-mode=Node,RBAC".into(),
                "--enable-admission-plugins=NodeRestriction".into(),
                "--allow-privileged=true".into(),
                // The aggregation layer, for metrics.k8s.io.
                format!(
                    "--requestheader-client-ca-file={}",
                    pki("front-proxy-ca.crt")
                ),
                "--requestheader-allowed-names=front-proxy-client".into(),
                "--requestheader-username-headers=X-Remote-User".into(),
                "--requestheader-group-headers=X-Remote-Group".into(),
                "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
                format!("--proxy-client-cert-file={}", pki("front-proxy-client.crt")),
                format!("--proxy-client-key-file={}", pki("front-proxy-client.key")),
                // Reach aggregated APIs at their pod IPs rather than through a ClusterIP.
                "--enable-aggregator-routing=true".into(),
                format!("--audit-policy-file={}", config("audit-policy.yaml")),
                format!("--audit-log-path={}", layout.audit_log().display()),
                "--audit-log-maxsize=200".into(),
                "--audit-log-maxbackup=1".into(),
                "--v=1".into(),
            ],
            Component::KubeControllerManager => vec![
                format!("--kubeconfig={}", kubeconfig("controller-manager")),
                format!(
                    "--authentication-kubeconfig={}",
                    kubeconfig("controller-manager")
                ),
                format!(
                    "--authorization-kubeconfig={}",
                    kubeconfig("controller-manager")
                ),
                "--bind-address=127.0.0.1".into(),
                "--leader-elect=false".into(),
                "--use-service-account-credentials=true".into(),
                format!("--service-account-private-key-file={}", pki("sa.key")),
                format!("--root-ca-file={}", pki("ca.crt")),
                format!("--cluster-signing-cert-file={}", pki("ca.crt")),
                format!("--cluster-signing-key-file={}", pki("ca.key")),
                format!("--service-cluster-ip-range={}", network::SERVICE_CIDR),
                format!("--cluster-cidr={}", network::POD_CIDR),
                // The real node's CNI range is static, and a /16 could not give a /24 to
                // each of a thousand simulated nodes.
                "--allocate-node-cidrs=false".into(),
                "--controllers=*,bootstrapsigner,tokencleaner".into(),
                "--v=1".into(),
            ],
            Component::KubeScheduler => vec![
                format!("--config={}", config("kube-scheduler.yaml")),
                format!("--authentication-kubeconfig={}", kubeconfig("scheduler")),
                format!("--authorization-kubeconfig={}", kubeconfig("scheduler")),
                "--bind-address=127.0.0.1".into(),
                "--v=1".into(),
            ],
            Component::Containerd => vec![format!("--config={}", config("containerd.toml"))],
            Component::Kubelet => vec![
                format!("--config={}", config("kubelet.yaml")),
                format!("--kubeconfig={}", kubeconfig("kubelet")),
                format!("--root-dir={}", layout.kubelet_root().display()),
                format!("--hostname-override={}", node.name),
                format!("--node-ip={}", node.ip),
                "--v=1".into(),
            ],
            Component::KubeProxy => vec![
                format!("--config={}", config("kube-proxy.yaml")),
                "--v=1".into(),
            ],
            Component::Kwok => vec![
                format!("--kubeconfig={}", kubeconfig("admin")),
                format!("--config={}", config("kwok.yaml")),
                // Only nodes marked as simulated: never the real kubelet's node.
                "--manage-all-nodes=false".into(),
                format!(
                    "--manage-nodes-with-annotation-selector={}={}",
                    crate::fake_nodes::ANNOTATION,
                    crate::fake_nodes::ANNOTATION_VALUE
                ),
                "--node-lease-duration-seconds=40".into(),
                format!("--cidr={}", network::KWOK_POD_CIDR),
                format!("--node-ip={}", network::KWOK_NODE_IP),
                "--server-address=127.0.0.1:10247".into(),
            ],
        };
        v
    }
}
