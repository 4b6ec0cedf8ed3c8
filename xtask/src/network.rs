//! The cluster's address plan and the network rule: no packet of the cluster leaves the
//! machine.
//!
//! - Every cluster range (services, pods, kwok's fake pods and nodes) is routed into a
//!   bridge with no ports (the sink) before any component starts, so a packet for those
//!   ranges that no kube-proxy rule rewrites goes nowhere instead of to the default
//!   gateway. Host-originated Service traffic still works: nat/OUTPUT rewrites the
//!   destination and the kernel re-routes the packet.
//! - An nftables table hooked into `forward` ahead of iptables (priority -10) drops
//!   anything a pod sends out of the pod bridge, so no rule added later by kube-proxy or
//!   CNI can let pod traffic reach the uplink.
//! - Pods get routes to cluster ranges and the node only (no default route), and a
//!   resolver that knows the cluster DNS only; CoreDNS forwards nothing upstream.

use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};

use crate::cmd::cmd;

pub const SERVICE_CIDR: &str = "10.96.0.0/16";
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";
pub const DNS_SERVICE_IP: &str = "10.96.0.10";
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// Every pod of the cluster.
pub const POD_CIDR: &str = "10.244.0.0/16";
/// The real node's pods, on the pod bridge.
pub const NODE_POD_CIDR: &str = "10.244.0.0/24";
pub const POD_GATEWAY: &str = "10.244.0.1";
/// Addresses kwok gives pods on simulated nodes; nothing answers there.
pub const KWOK_POD_CIDR: &str = "10.250.0.0/16";
/// The address kwok reports for its simulated nodes.
pub const KWOK_NODE_IP: &str = "10.251.0.1";
/// Covers both kwok ranges.
pub const KWOK_RANGE: &str = "10.250.0.0/15";
pub const POD_BRIDGE: &str = "drover0";
pub const SINK_BRIDGE: &str = "drover-sink";
/// The nftables table (family `inet`) that drops pod traffic leaving the pod bridge.
pub const GUARD_TABLE: &str = "drover-guard";

/// Every range whose packets must stay on the machine.
pub const SINK_ROUTES: [&str; 3] = [SERVICE_CIDR, POD_CIDR, KWOK_RANGE];

/// The node's own address and the interface it is on.
#[derive(Debug, Clone)]
pub struct NodeAddress {
    pub ip: Ipv4Addr,
    pub uplink: String,
}

impl NodeAddress {
    /// The address the host would use for outside traffic (a route lookup: no packet is
    /// sent), or its first global address when it has no default route.
    pub fn detect() -> Result<Self> {
        if let Ok(out) = cmd("ip")
            .args(["-4", "-o", "route", "get", "203.0.113.1"])
            .output()
            && let Some(found) = Self::parse_route_get(&out)
            && !found.ip.is_loopback()
        {
            return Ok(found);
        }
        let out = cmd("ip")
            .args(["-4", "-o", "addr", "show", "scope", "global"])
            .output()?;
        for line in out.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let (Some(dev), Some(pos)) =
                (fields.get(1), fields.iter().position(|f| *f == "inet"))
                && let Some(ip) = fields.get(pos + 1).and_then(|a| a.split('/').next())
                && !dev.starts_with("drover")
                && !dev.starts_with("veth")
                && let Ok(ip) = ip.parse()
            {
                return Ok(Self {
                    ip,
                    uplink: dev.to_string(),
                });
            }
        }
        bail!("this host has no global IPv4 address for the node to use")
    }

    fn parse_route_get(out: &str) -> Option<Self> {
        let fields: Vec<&str> = out.split_whitespace().collect();
        let after = |key: &str| {
            fields
                .iter()
                .position(|f| *f == key)
                .and_then(|i| fields.get(i + 1))
        };
        Some(Self {
            ip: after("src")?.parse().ok()?,
            uplink: after("dev")?.to_string(),
        })
    }
}

pub fn link_exists(name: &str) -> bool {
    cmd("ip").args(["link", "show", "dev", name]).succeeds()
}

/// Installs the sink routes and the forward guard; idempotent.
pub fn install_guard() -> Result<()> {
    if !link_exists(SINK_BRIDGE) {
        cmd("ip")
            .args(["link", "add", SINK_BRIDGE, "type", "bridge"])
            .run()?;
    }
    cmd("ip").args(["link", "set", SINK_BRIDGE, "up"]).run()?;
    for range in SINK_ROUTES {
        cmd("ip")
            .args(["route", "replace", range, "dev", SINK_BRIDGE])
            .run()
            .with_context(|| format!("routing {range} into the sink"))?;
    }
    replace_nft_table(
        GUARD_TABLE,
        &format!(
            "\tchain forward {{\n\
             \t\ttype filter hook forward priority -10; policy accept;\n\
             \t\tiifname \"{POD_BRIDGE}\" oifname != \"{POD_BRIDGE}\" counter drop\n\
             \t}}\n"
        ),
    )
    .context("installing the nftables forward guard")
}

/// Creates or replaces the nftables table `inet <name>` with `body` (its chains), at
/// once: `add` then `delete` in one script replaces an existing table atomically.
pub fn replace_nft_table(name: &str, body: &str) -> Result<()> {
    let script = format!(
        "add table inet {name}\ndelete table inet {name}\ntable inet {name} {{\n{body}}}\n"
    );
    let path = std::env::temp_dir().join(format!("{name}.nft"));
    std::fs::write(&path, script)?;
    let result = cmd("nft").arg("-f").arg(&path).run();
    let _ = std::fs::remove_file(path);
    result.with_context(|| format!("installing nftables table inet {name}"))
}

/// Deletes the nftables table `inet <name>` if it exists.
pub fn delete_nft_table(name: &str) -> Result<()> {
    if cmd("nft").args(["list", "table", "inet", name]).succeeds() {
        cmd("nft").args(["delete", "table", "inet", name]).run()?;
    }
    Ok(())
}

/// Removes the sink (its routes go with it) and the guard table.
pub fn remove_guard() -> Result<()> {
    delete_nft_table(GUARD_TABLE)?;
    delete_link(SINK_BRIDGE)
}

pub fn delete_link(name: &str) -> Result<()> {
    if link_exists(name) {
        cmd("ip").args(["link", "delete", name]).run()?;
    }
    Ok(())
}

/// What is wrong with the network rule right now; empty when it holds.
pub fn guard_problems() -> Vec<String> {
    let mut problems = vec![];
    for range in SINK_ROUTES {
        let ok = cmd("ip")
            .args(["-4", "route", "show", "exact", range])
            .output()
            .is_ok_and(|out| out.contains(&format!("dev {SINK_BRIDGE}")));
        if !ok {
            problems.push(format!("{range} is not routed into {SINK_BRIDGE}"));
        }
    }
    let table = cmd("nft")
        .args(["list", "table", "inet", GUARD_TABLE])
        .output()
        .unwrap_or_default();
    if !table.contains(&format!(
        "iifname \"{POD_BRIDGE}\" oifname != \"{POD_BRIDGE}\""
    )) {
        problems.push(format!(
            "nftables table inet {GUARD_TABLE} is missing its drop rule"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_route_lookup() {
        let out = "203.0.113.1 via 192.0.2.1 dev eth0 src 192.0.2.2 uid 0 \\    cache";
        let a = NodeAddress::parse_route_get(out).unwrap();
        assert_eq!(a.ip, Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(a.uplink, "eth0");
    }

    #[test]
    fn sink_covers_every_cluster_range() {
        for ip in [
            KUBERNETES_SERVICE_IP,
            DNS_SERVICE_IP,
            POD_GATEWAY,
            KWOK_NODE_IP,
            "10.250.3.4",
        ] {
            let ip: Ipv4Addr = ip.parse().unwrap();
            assert!(
                SINK_ROUTES.iter().any(|r| contains(r, ip)),
                "{ip} is outside every sink route"
            );
        }
    }

    fn contains(cidr: &str, ip: Ipv4Addr) -> bool {
        let (net, len) = cidr.split_once('/').unwrap();
        let net: Ipv4Addr = net.parse().unwrap();
        let mask = u32::MAX
            .checked_shl(32 - len.parse::<u32>().unwrap())
            .unwrap_or(0);
        u32::from(net) & mask == u32::from(ip) & mask
    }
}
