//! The network rule on the kind cluster, held by the host: nothing sent from a docker
//! network (the node containers, and the pods behind them) is forwarded off it. The
//! daemon started here programs no firewall rules of its own, so without this a node
//! could reach the uplink unmasqueraded. Traffic among the nodes stays on their bridge,
//! and the host still reaches them (that is not forwarding).
//!
//! The nodes' resolver, Docker's embedded DNS, sends queries for other names than the
//! nodes' from the node's network namespace: this rule drops them too. Inside the
//! cluster the rule has two more parts: pods get routes to cluster ranges only (the CNI
//! configuration, `cluster/kind/cni.yaml`), and CoreDNS forwards nothing (`cluster::up`).

use anyhow::{Context, Result};

use crate::cmd::cmd;

/// The nftables table (family `inet`) that holds the rule.
pub const TABLE: &str = "drover-kind-guard";

/// The rule's chain; the drops match Docker's default bridge and its user networks.
fn chain() -> String {
    "\tchain forward {\n\
     \t\ttype filter hook forward priority -10; policy accept;\n\
     \t\tiifname \"br-*\" oifname != \"br-*\" counter drop\n\
     \t\tiifname \"docker0\" oifname != \"docker0\" counter drop\n\
     \t}\n"
        .to_string()
}

/// Creates or replaces the table at once: `add` then `delete` in one script replaces an
/// existing table atomically, so the rule never lapses.
pub fn install() -> Result<()> {
    let script = format!(
        "add table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n{}}}\n",
        chain()
    );
    let path = std::env::temp_dir().join(format!("{TABLE}.nft"));
    std::fs::write(&path, script)?;
    let result = cmd("nft").arg("-f").arg(&path).run();
    let _ = std::fs::remove_file(path);
    result.with_context(|| format!("installing nftables table inet {TABLE}"))
}

pub fn remove() -> Result<()> {
    if cmd("nft").args(["list", "table", "inet", TABLE]).succeeds() {
        cmd("nft").args(["delete", "table", "inet", TABLE]).run()?;
    }
    Ok(())
}

/// What is wrong with the host's part of the rule; empty when it holds.
pub fn problems() -> Vec<String> {
    let table = cmd("nft")
        .args(["list", "table", "inet", TABLE])
        .output()
        .unwrap_or_default();
    let holds = [
        "iifname \"br-*\" oifname != \"br-*\"",
        "iifname \"docker0\"",
    ]
    .iter()
    .all(|rule| table.contains(rule));
    if holds {
        vec![]
    } else {
        vec![format!(
            "nftables table inet {TABLE} is missing its drop rules"
        )]
    }
}
