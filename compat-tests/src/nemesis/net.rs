//! Network faults between nodes that live in their own network namespaces
//! (`scripts/local-cluster.sh` with `DISTLOG_NETNS=1`).
//!
//! A cut is a set of firewall rules inside the receiving node's namespace,
//! `iptables -A INPUT -s <sender> -j DROP`, each tagged with its fault's
//! id, so overlapping faults heal independently and nothing outside the
//! test's namespaces is touched (the namespaces, and their rules, go away
//! with the cluster). Traffic between the test's clients (on this host) and
//! the nodes is never cut.

use std::process::Command;

use anyhow::{bail, Context};

use crate::cluster::LocalCluster;

/// Drop packets from each node of `from` arriving at each node of `to`,
/// tagged `tag`.
pub fn drop_between(c: &LocalCluster, from: &[usize], to: &[usize], tag: &str) -> anyhow::Result<()> {
    for &dst in to {
        for &src in from {
            if src != dst {
                rule(c, "-A", src, dst, tag)?;
            }
        }
    }
    Ok(())
}

/// Undo [`drop_between`] with the same arguments. A rule already gone is
/// not an error.
pub fn heal_between(c: &LocalCluster, from: &[usize], to: &[usize], tag: &str) -> anyhow::Result<()> {
    let mut first_error = None;
    for &dst in to {
        for &src in from {
            if src != dst {
                while rule(c, "-C", src, dst, tag).is_ok() {
                    if let Err(e) = rule(c, "-D", src, dst, tag) {
                        first_error.get_or_insert(e);
                        break;
                    }
                }
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Remove every rule in every node's namespace.
pub fn heal_all(c: &LocalCluster) -> anyhow::Result<()> {
    for k in 1..=c.size() {
        let ns = c.netns(k).context("the cluster has no network namespaces")?;
        iptables(&ns, &["-F", "INPUT"])?;
    }
    Ok(())
}

/// `iptables <op> INPUT -s <src's address> -j DROP` in `dst`'s namespace.
fn rule(c: &LocalCluster, op: &str, src: usize, dst: usize, tag: &str) -> anyhow::Result<()> {
    let ns = c
        .netns(dst)
        .context("network faults need a cluster in network namespaces (DISTLOG_NETNS=1)")?;
    let src_addr = c.host(src)?;
    let comment = format!("distlog-nemesis-{tag}");
    iptables(
        &ns,
        &[
            op,
            "INPUT",
            "-s",
            &src_addr,
            "-m",
            "comment",
            "--comment",
            &comment,
            "-j",
            "DROP",
        ],
    )
}

fn iptables(ns: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("timeout")
        .args(["10", "ip", "netns", "exec", ns, "iptables", "-w", "5"])
        .args(args)
        .output()
        .context("run iptables")?;
    if !out.status.success() {
        bail!(
            "iptables {args:?} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
