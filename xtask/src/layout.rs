//! Where everything lives on the host: the build cache (kept between runs, outside the
//! repository), the kind cluster's files on the host, and the logs.

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
    /// The kind cluster's files on the host: its kubeconfig, kind's configuration, the
    /// audit policy, the runtime wrapper and PID of a dockerd started here.
    pub state: PathBuf,
    /// Runtime files under /run: the node image build's containerd.
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
            state: PathBuf::from("/var/lib/drover/kind"),
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
        let component = crate::versions::component_of_binary(binary)?;
        let pin = self.versions.get(component)?;
        Ok(self.build_bin(component, &pin.version).join(binary))
    }

    /// Cargo's target directory for this repository.
    pub fn target_dir(&self) -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.repo.join("target"))
    }

    /// Symlinks to the cluster's client binaries; the directory users put on PATH.
    pub fn client_bin_dir(&self) -> PathBuf {
        PathBuf::from("/var/lib/drover/bin")
    }

    pub fn log(&self, component: &str) -> PathBuf {
        self.logs.join(format!("{component}.log"))
    }

    /// The cluster's admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.state.join("kubeconfig")
    }

    /// The apiserver's audit log (writes only), bind-mounted from the control-plane node;
    /// rotated files sit beside it.
    pub fn audit_log(&self) -> PathBuf {
        self.logs.join("kind-audit/audit.log")
    }

    /// Marker files recording what `up` changed on the host, so `down` undoes exactly that.
    pub fn host_marker(&self, what: &str) -> PathBuf {
        self.state.join("host").join(what)
    }
}
