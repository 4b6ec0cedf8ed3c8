//! The pinned upstream versions, read from `cluster/versions.toml` (the one place they live).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// Every component `build_all` builds, in build order.
pub const COMPONENTS: [&str; 12] = [
    "kubernetes",
    "etcd",
    "kwok",
    "helm",
    "coredns",
    "metrics-server",
    "kind",
    "flannel",
    "local-path-provisioner",
    "external-provisioner",
    "external-resizer",
    "external-snapshotter",
];

/// The component that provides a binary.
pub fn component_of_binary(binary: &str) -> Result<&'static str> {
    Ok(match binary {
        "kube-apiserver"
        | "kube-controller-manager"
        | "kube-scheduler"
        | "kubelet"
        | "kube-proxy"
        | "kubectl"
        | "kubeadm" => "kubernetes",
        "etcd" | "etcdctl" => "etcd",
        "kwok" => "kwok",
        "helm" => "helm",
        "coredns" => "coredns",
        "metrics-server" => "metrics-server",
        "kind" => "kind",
        "flanneld" => "flannel",
        "local-path-provisioner" => "local-path-provisioner",
        "csi-provisioner" => "external-provisioner",
        "csi-resizer" => "external-resizer",
        "csi-snapshotter" | "snapshot-controller" => "external-snapshotter",
        other => bail!("no component builds a binary named {other:?}"),
    })
}

/// One pinned Go module.
#[derive(Debug, Clone, Deserialize)]
pub struct Pin {
    pub module: String,
    pub version: String,
}

#[derive(Debug, Clone)]
pub struct Versions {
    pins: BTreeMap<String, Pin>,
}

impl Versions {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    fn parse(text: &str) -> Result<Self> {
        let pins: BTreeMap<String, Pin> = toml::from_str(text)?;
        for (name, pin) in &pins {
            if !pin.version.starts_with('v') {
                bail!(
                    "{name}: version {:?} must be a Go module version like v1.2.3",
                    pin.version
                );
            }
        }
        Ok(Self { pins })
    }

    pub fn get(&self, component: &str) -> Result<&Pin> {
        self.pins
            .get(component)
            .with_context(|| format!("cluster/versions.toml has no [{component}] entry"))
    }

    /// `(major, minor)` of a `vMAJOR.MINOR.PATCH` version.
    pub fn major_minor(version: &str) -> Result<(u32, u32)> {
        let mut parts = version.trim_start_matches('v').split('.');
        let mut next = |what| -> Result<u32> {
            parts
                .next()
                .with_context(|| format!("{version}: no {what} number"))?
                .parse()
                .with_context(|| format!("{version}: {what} is not a number"))
        };
        Ok((next("major")?, next("minor")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_file_parses_and_names_every_component() {
        let versions =
            Versions::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster/versions.toml"))
                .unwrap();
        for name in COMPONENTS {
            versions.get(name).unwrap();
        }
    }

    #[test]
    fn rejects_versions_without_v() {
        let err = Versions::parse(
            "[etcd]\nmodule = \"go.etcd.io/etcd/server/v3\"\nversion = \"3.6.1\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("etcd"), "{err}");
    }

    #[test]
    fn major_minor_of_kubernetes_version() {
        assert_eq!(Versions::major_minor("v1.34.12").unwrap(), (1, 34));
        assert!(Versions::major_minor("vx.1").is_err());
    }
}
