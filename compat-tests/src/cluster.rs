//! A local multi-process distlog cluster under test control, started with
//! `scripts/local-cluster.sh` (node K on 127.0.0.K; all roles, or the roles
//! given to [`LocalCluster::up_with_roles`]).
//!
//! The cluster is always stopped when the [`LocalCluster`] is dropped, even
//! when the test panics (then the tail of every node's log is printed), so a
//! failing test never leaks a node.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;
use tempfile::TempDir;

use crate::http;
use crate::process::{locate_binary, tail_of_file};

/// How long `up` and `start` may take.
const START_DEADLINE: Duration = Duration::from_secs(90);

/// How [`LocalCluster::up_with`] places the nodes.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Each node in its own network namespace with its own address
    /// (`DISTLOG_NETNS=1` of the script), so the network between nodes can
    /// be cut ([`LocalCluster::netns`]). Needs root.
    pub netns: bool,
    /// (node, MiB): that node's data directory on a tmpfs of that size, a
    /// disk that really fills.
    pub small_disk: Option<(usize, u64)>,
    /// Where the cluster directory goes (default: the system temp dir).
    pub parent: Option<PathBuf>,
}

/// A running local cluster of `n` nodes.
pub struct LocalCluster {
    dir: TempDir,
    n: usize,
    bootstrap: String,
    /// `--roles` of each node (node K at K-1).
    roles: Vec<String>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("local-cluster.sh")
}

fn run_script(args: &[&str], extra: &str) -> anyhow::Result<String> {
    run_script_with_roles(args, extra, None, &ClusterOptions::default())
}

/// Run the script; `roles` (one `--roles` value per node, space-separated)
/// goes to `up` as `DISTLOG_NODE_ROLES` (unset: every node runs every role).
fn run_script_with_roles(
    args: &[&str],
    extra: &str,
    roles: Option<&str>,
    opts: &ClusterOptions,
) -> anyhow::Result<String> {
    let mut cmd = Command::new("timeout");
    cmd.arg(START_DEADLINE.as_secs().to_string())
        .arg(script())
        .args(args)
        .env("DISTLOG_BIN", locate_binary()?)
        .env("DISTLOG_EXTRA_ARGS", extra)
        .env("READY_TIMEOUT", "60");
    match roles {
        Some(r) => cmd.env("DISTLOG_NODE_ROLES", r),
        None => cmd.env_remove("DISTLOG_NODE_ROLES"),
    };
    if opts.netns {
        cmd.env("DISTLOG_NETNS", "1");
    } else {
        cmd.env_remove("DISTLOG_NETNS");
    }
    match opts.small_disk {
        Some((k, mb)) => cmd.env("DISTLOG_SMALL_DISK", format!("{k}:{mb}")),
        None => cmd.env_remove("DISTLOG_SMALL_DISK"),
    };
    let out = cmd.output().context("run scripts/local-cluster.sh")?;
    if !out.status.success() {
        bail!(
            "local-cluster.sh {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl LocalCluster {
    /// Start `n` nodes with `extra` flags on every node, wait until ready.
    pub fn up(n: usize, extra: &str) -> anyhow::Result<LocalCluster> {
        Self::start_cluster(n, extra, None, &ClusterOptions::default())
    }

    /// [`up`](Self::up) with the nodes placed as `opts` says.
    pub fn up_with(n: usize, extra: &str, opts: &ClusterOptions) -> anyhow::Result<LocalCluster> {
        Self::start_cluster(n, extra, None, opts)
    }

    /// Start one node per entry of `roles` (its `--roles`, e.g. the split
    /// topology `["meta,bookie", "meta,bookie", "meta,bookie", "broker",
    /// "broker"]`) with `extra` flags on every node, and wait until the
    /// metadata group has a leader and every broker and bookie node is
    /// live. The meta nodes are the Raft voters; the others join as
    /// learners. [`bootstrap`](Self::bootstrap) lists the broker nodes.
    pub fn up_with_roles(roles: &[&str], extra: &str) -> anyhow::Result<LocalCluster> {
        if roles.is_empty()
            || roles
                .iter()
                .any(|r| r.is_empty() || r.contains(char::is_whitespace))
        {
            bail!("up_with_roles: one non-empty --roles value per node, got {roles:?}");
        }
        Self::start_cluster(roles.len(), extra, Some(roles), &ClusterOptions::default())
    }

    fn start_cluster(
        n: usize,
        extra: &str,
        roles: Option<&[&str]>,
        opts: &ClusterOptions,
    ) -> anyhow::Result<LocalCluster> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("distlog-cluster-");
        let dir = match &opts.parent {
            Some(parent) => builder.tempdir_in(parent)?,
            None => builder.tempdir()?,
        };
        let path = dir.path().to_str().context("utf-8 temp dir")?.to_string();
        let roles_env = roles.map(|r| r.join(" "));
        let up = ["up", &n.to_string(), &path];
        let out = match run_script_with_roles(&up, extra, roles_env.as_deref(), opts) {
            Ok(out) => out,
            Err(e) => {
                let _ = run_script(&["down", &path], "");
                return Err(e);
            }
        };
        let bootstrap = out.lines().last().unwrap_or_default().to_string();
        let roles = match roles {
            Some(r) => r.iter().map(|s| s.to_string()).collect(),
            None => vec!["all".to_string(); n],
        };
        Ok(LocalCluster {
            dir,
            n,
            bootstrap,
            roles,
        })
    }

    /// The Kafka bootstrap list: every broker node's Kafka address.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The nodes (1-based) whose roles include `role` (`meta`, `bookie`
    /// or `broker`).
    pub fn nodes_with_role(&self, role: &str) -> Vec<usize> {
        self.roles
            .iter()
            .enumerate()
            .filter(|(_, r)| r.as_str() == "all" || r.split(',').any(|x| x.trim() == role))
            .map(|(i, _)| i + 1)
            .collect()
    }

    /// Node `k`'s data directory (`--data-dir`): `meta/` and, on a bookie
    /// node, `bookie/`.
    pub fn data_dir(&self, k: usize) -> PathBuf {
        self.dir.path().join(format!("node{k}")).join("data")
    }

    /// Number of nodes.
    pub fn size(&self) -> usize {
        self.n
    }

    /// The cluster's directory (the script's DIR).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Node `k`'s address (127.0.0.K, or its namespace's address).
    pub fn host(&self, k: usize) -> anyhow::Result<String> {
        self.node_file(k, "host")
    }

    /// Node `k`'s network namespace, when the cluster was started with
    /// [`ClusterOptions::netns`] (`None` otherwise).
    pub fn netns(&self, k: usize) -> Option<String> {
        let line = std::fs::read_to_string(self.dir.path().join("netns")).ok()?;
        let id = line.split_whitespace().next()?;
        Some(format!("dl{id}n{k}"))
    }

    fn node_file(&self, k: usize, name: &str) -> anyhow::Result<String> {
        let p = self.dir.path().join(format!("node{k}")).join(name);
        Ok(std::fs::read_to_string(&p)
            .with_context(|| format!("read {}", p.display()))?
            .trim()
            .to_string())
    }

    /// Process id of node `k`.
    pub fn pid(&self, k: usize) -> anyhow::Result<i32> {
        Ok(self.node_file(k, "pid")?.parse()?)
    }

    /// Send `signal` (e.g. "KILL", "STOP", "CONT") to node `k`; for STOP,
    /// returns once every thread of the process is stopped.
    pub fn signal(&self, k: usize, signal: &str) -> anyhow::Result<()> {
        let pid = self.pid(k)?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{signal} node {k} failed");
        }
        if signal == "STOP" {
            let deadline = Instant::now() + Duration::from_secs(10);
            while process_state(pid).as_deref() != Some("T") {
                if Instant::now() >= deadline {
                    bail!("node {k} (pid {pid}) not stopped 10 s after SIGSTOP");
                }
                thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(())
    }

    /// Whether node `k`'s recorded process still runs (not gone, not a
    /// zombie).
    pub fn is_running(&self, k: usize) -> bool {
        self.pid(k)
            .is_ok_and(|pid| !matches!(process_state(pid).as_deref(), None | Some("Z") | Some("X")))
    }

    /// `kill -9` node `k`, returning once the process and all its threads are
    /// gone (a zombie or reaped): nothing it does can be mistaken for after its
    /// death, and its ports are free for a restart.
    pub fn kill9(&self, k: usize) -> anyhow::Result<()> {
        let pid = self.pid(k)?;
        self.signal(k, "KILL")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if process_gone(pid) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("node {k} (pid {pid}) still alive 10 s after SIGKILL");
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Start node `k` again with its original flags; waits for `/health`.
    pub fn start(&self, k: usize) -> anyhow::Result<()> {
        let path = self.dir.path().to_str().context("utf-8")?.to_string();
        run_script(&["start", &path, &k.to_string()], "").map(|_| ())
    }

    /// Start several nodes at once (they may need each other to elect a
    /// metadata leader); waits for each one's `/health`.
    pub fn start_many(&self, nodes: &[usize]) -> anyhow::Result<()> {
        let path = self.dir.path().to_str().context("utf-8")?.to_string();
        let ks: Vec<String> = nodes.iter().map(|k| k.to_string()).collect();
        let mut args = vec!["start", path.as_str()];
        args.extend(ks.iter().map(String::as_str));
        run_script(&args, "").map(|_| ())
    }

    /// GET `path` from node `k`'s HTTP port as JSON.
    pub fn get_json(&self, k: usize, path: &str) -> anyhow::Result<Value> {
        let addr = self.node_file(k, "http")?.parse()?;
        let resp = http::get(addr, path, Duration::from_secs(5))?;
        if resp.status != 200 {
            bail!("GET {path} on node {k}: {} {}", resp.status, resp.body);
        }
        Ok(serde_json::from_str(&resp.body)?)
    }

    /// GET `path` (e.g. `/metrics`) from node `k`'s HTTP port as text.
    pub fn get_text(&self, k: usize, path: &str) -> anyhow::Result<String> {
        let addr = self.node_file(k, "http")?.parse()?;
        let resp = http::get(addr, path, Duration::from_secs(5))?;
        if resp.status != 200 {
            bail!("GET {path} on node {k}: {} {}", resp.status, resp.body);
        }
        Ok(resp.body)
    }

    /// The first of `nodes` that answers `path`.
    pub fn get_json_any(&self, nodes: &[usize], path: &str) -> anyhow::Result<Value> {
        let mut last = None;
        for k in nodes {
            match self.get_json(*k, path) {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no node to ask")))
    }

    /// The owner (partition leader) of `topic`/`partition` as the metadata
    /// of the first answering node in `ask` says.
    pub fn owner(&self, ask: &[usize], topic: &str, partition: u64) -> anyhow::Result<Option<usize>> {
        let v = self.get_json_any(ask, "/admin/topics")?;
        let t = v["topics"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["name"] == topic))
            .with_context(|| format!("topic {topic} not in /admin/topics"))?;
        Ok(t["partitions"][partition as usize]["owner"]
            .as_u64()
            .map(|o| o as usize))
    }

    /// Wait until `topic`/`partition` has an owner among `live`.
    pub fn wait_owner(
        &self,
        live: &[usize],
        topic: &str,
        partition: u64,
        within: Duration,
    ) -> anyhow::Result<usize> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.owner(live, topic, partition);
            if let Ok(Some(o)) = seen {
                if live.contains(&o) {
                    return Ok(o);
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "{topic}-{partition} got no live owner among {live:?} within {within:?} (last seen: {seen:?})"
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The metadata Raft leader as node `k` sees it.
    pub fn raft_leader(&self, k: usize) -> anyhow::Result<Option<usize>> {
        let v = self.get_json(k, "/admin/cluster")?;
        Ok(v["raft"]["leader"].as_u64().map(|l| l as usize))
    }

    /// Tail of node `k`'s log.
    pub fn log_tail(&self, k: usize, lines: usize) -> String {
        tail_of_file(&self.dir.path().join(format!("node{k}")).join("log"), lines)
    }
}

/// Whether `pid` has released everything it held: it is gone, or it is a zombie with no thread
/// left. A killed process's main thread turns zombie while its other threads may still be exiting
/// and holding the process's sockets: a node restarted at that moment finds its ports in use.
fn process_gone(pid: i32) -> bool {
    match process_state(pid).as_deref() {
        None | Some("X") => true,
        Some("Z") => std::fs::read_dir(format!("/proc/{pid}/task")).map_or(true, |tasks| tasks.count() <= 1),
        Some(_) => false,
    }
}

/// The state letter of process `pid` from /proc (`None`: gone).
fn process_state(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_string)
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if thread::panicking() {
            for k in 1..=self.n {
                eprintln!("---- tail of node {k}'s log ----\n{}", self.log_tail(k, 40));
            }
        }
        if let Some(path) = self.dir.path().to_str() {
            if let Err(e) = run_script(&["down", path], "") {
                eprintln!("stopping the local cluster failed: {e:#}");
            }
            if thread::panicking() && std::env::var_os("DISTLOG_KEEP_CLUSTER").is_some() {
                let kept = self.dir.path().with_extension("kept");
                let _ = std::fs::rename(self.dir.path(), &kept);
                eprintln!("cluster data kept in {}", kept.display());
            }
        }
    }
}
