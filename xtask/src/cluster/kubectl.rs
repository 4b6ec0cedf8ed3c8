//! The cluster's own kubectl, as the admin, for bootstrapping and readiness checks.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cmd::{Cmd, cmd};
use crate::layout::Layout;

#[derive(Debug, Clone)]
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// kubectl of the kind cluster, as its admin.
    pub fn new(layout: &Layout) -> Result<Self> {
        Ok(Self {
            binary: layout.bin("kubectl")?,
            kubeconfig: layout.kubeconfig(),
        })
    }

    pub fn cmd(&self) -> Cmd {
        cmd(&self.binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=20s")
    }

    /// `kubectl <args> -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> Result<Value> {
        let out = self.cmd().args(args).args(["-o", "json"]).output()?;
        serde_json::from_str(&out).with_context(|| format!("kubectl {}: not JSON", args.join(" ")))
    }

    /// Applies a manifest given as text (server-side, so repeated applies change nothing).
    pub fn apply(&self, name: &str, manifest: &str) -> Result<()> {
        let dir = std::env::temp_dir().join("drover-xtask");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, manifest)?;
        self.cmd()
            .args([
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=drover-xtask",
                "-f",
            ])
            .arg(&path)
            .run()
            .with_context(|| format!("applying {name}"))?;
        let _ = std::fs::remove_file(path);
        Ok(())
    }

    /// True when `/readyz` of the apiserver answers ok.
    pub fn apiserver_ready(&self) -> bool {
        self.cmd().args(["get", "--raw", "/readyz"]).succeeds()
    }
}

/// True when an object's `status.conditions` has `type` with status "True".
pub fn condition_true(obj: &Value, type_: &str) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == type_ && c["status"] == "True")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_conditions() {
        let node = json!({"status": {"conditions": [
            {"type": "MemoryPressure", "status": "False"},
            {"type": "Ready", "status": "True"},
        ]}});
        assert!(condition_true(&node, "Ready"));
        assert!(!condition_true(&node, "MemoryPressure"));
        assert!(!condition_true(&json!({}), "Ready"));
    }
}
