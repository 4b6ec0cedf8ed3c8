//! Where everything lives on the host: the build cache (kept between runs, outside the
//! repository), the cluster's state (removed by `cluster down`) and the logs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::versions::Versions;

/// Every path the xtask reads or writes outside the repository.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The repository root.
    pub repo: PathBuf,
    /// Build cache: Go module and build caches, built binaries, image archives.
    pub cache: PathBuf,
    /// The running cluster's state: PKI, configs, etcd data, kubelet root, containerd root.
    pub state: PathBuf,
    /// Runtime files under /run: containerd's socket and state.
    pub run: PathBuf,
    /// Component logs; kept after `down` so a failure can still be read.
    pub logs: PathBuf,
    pub versions: Versions,
}

impl Layout {
    pub fn detect() -> Result<Self> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask is not inside the workspace")?
            .to_path_buf();
        let cache = std::env::var_os("DROVER_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/cache/drover"));
        let versions = Versions::load(&repo.join("cluster/versions.toml"))?;
        Ok(Self {
            repo,
            cache,
            state: PathBuf::from("/var/lib/drover/cluster"),
            run: PathBuf::from("/run/drover"),
            logs: PathBuf::from("/var/log/drover"),
            versions,
        })
    }

    pub fn go_mod_cache(&self) -> PathBuf {
        self.cache.join("go/mod")
    }

    pub fn go_build_cache(&self) -> PathBuf {
        self.cache.join("go/build")
    }

    /// Consumer module sources for one component build.
    pub fn build_src(&self, component: &str, version: &str) -> PathBuf {
        self.cache
            .join("src")
            .join(format!("{component}-{version}"))
    }

    /// Built binaries of one component at one version.
    pub fn build_bin(&self, component: &str, version: &str) -> PathBuf {
        self.cache
            .join("bin")
            .join(format!("{component}-{version}"))
    }

    pub fn build_log(&self, component: &str) -> PathBuf {
        self.cache
            .join("logs")
            .join(format!("build-{component}.log"))
    }

    pub fn images(&self) -> PathBuf {
        self.cache.join("images")
    }

    /// The path of a built binary, by binary name (e.g. `kubectl`, `etcd`).
    pub fn bin(&self, binary: &str) -> Result<PathBuf> {
        let component = crate::build::component_of_binary(binary)?;
        let pin = self.versions.get(component)?;
        Ok(self.build_bin(component, &pin.version).join(binary))
    }

    /// Cargo's target directory for this repository.
    pub fn target_dir(&self) -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.repo.join("target"))
    }

    /// Symlinks to the cluster's client binaries, and the kubectl plugin; the directory
    /// users put on PATH.
    pub fn client_bin_dir(&self) -> PathBuf {
        self.state.join("bin")
    }

    pub fn pki(&self) -> PathBuf {
        self.state.join("pki")
    }

    pub fn kubeconfig(&self, user: &str) -> PathBuf {
        self.state.join(format!("{user}.kubeconfig"))
    }

    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.kubeconfig("admin")
    }

    pub fn config(&self, file: &str) -> PathBuf {
        self.state.join("config").join(file)
    }

    pub fn pid_file(&self, component: &str) -> PathBuf {
        self.state.join("pids").join(format!("{component}.pid"))
    }

    pub fn log(&self, component: &str) -> PathBuf {
        self.logs.join(format!("{component}.log"))
    }

    /// The apiserver's audit log (writes only).
    pub fn audit_log(&self) -> PathBuf {
        self.logs.join("audit.log")
    }

    pub fn etcd_data(&self) -> PathBuf {
        self.state.join("etcd")
    }

    pub fn kubelet_root(&self) -> PathBuf {
        self.state.join("kubelet")
    }

    pub fn pod_logs(&self) -> PathBuf {
        self.state.join("pod-logs")
    }

    pub fn containerd_root(&self) -> PathBuf {
        self.state.join("containerd")
    }

    pub fn containerd_state(&self) -> PathBuf {
        self.run.join("containerd")
    }

    pub fn containerd_socket(&self) -> PathBuf {
        self.containerd_state().join("containerd.sock")
    }

    pub fn cni_conf_dir(&self) -> PathBuf {
        self.state.join("cni/net.d")
    }

    pub fn cni_ipam_dir(&self) -> PathBuf {
        self.state.join("cni/networks")
    }

    /// The kind cluster's files on the host: its kubeconfig, kind's configuration, the
    /// runtime wrapper and PID of a dockerd started here.
    pub fn kind_state(&self) -> PathBuf {
        PathBuf::from("/var/lib/drover/kind")
    }

    pub fn kind_kubeconfig(&self) -> PathBuf {
        self.kind_state().join("kubeconfig")
    }

    /// Marker files recording what `up` changed on the host, so `down` undoes exactly that.
    pub fn host_marker(&self, what: &str) -> PathBuf {
        self.state.join("host").join(what)
    }
}
