//! A real `distlog server` process under test control.
//!
//! Each test starts its own broker on free loopback ports with its own data directory, so tests
//! run in parallel without sharing anything. The process is always killed and reaped when the
//! [`DistlogProcess`] is dropped, even when the test panics, so a failing test never leaks a broker.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tempfile::TempDir;

use crate::http::{self, HttpResponse};

/// How long a broker may take from spawn to answering `/health` with 200.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// How many times a start is retried with fresh ports when the broker fails to bind.
const BIND_ATTEMPTS: usize = 4;

/// How start-up and restarts are configured.
#[derive(Debug, Clone, Default)]
pub struct DistlogOptions {
    /// `--node-id`; the broker's default (1) when `None`.
    pub node_id: Option<u32>,
    /// Use this data directory instead of a fresh temporary one (for restart scenarios that
    /// outlive a single [`DistlogProcess`]). The log file goes into its parent directory.
    pub data_dir: Option<PathBuf>,
    /// Extra command-line arguments appended after the standard flags.
    pub extra_args: Vec<String>,
    /// Extra environment variables for the process (e.g. `DISTLOG_*` settings, `RUST_LOG`).
    pub env: Vec<(String, String)>,
    /// Named listeners instead of the one Kafka listener: the values of `--listeners` and
    /// `--advertised-listeners`, in which `{kafka}` stands for the picked Kafka port (the
    /// first listener should bind it, so [`DistlogProcess::bootstrap`] still reaches it).
    pub listeners: Option<(String, String)>,
}

/// The loopback ports one incarnation of the broker listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Kafka protocol listener (also the advertised port).
    pub kafka: u16,
    /// HTTP listener (`/health`, `/metrics`, `/admin/*`).
    pub http: u16,
    /// Raft listener.
    pub raft: u16,
}

impl Ports {
    /// Picks three distinct free ports by binding 127.0.0.1:0; the listeners are held until all
    /// three are chosen so the kernel cannot hand out the same port twice.
    pub fn pick() -> anyhow::Result<Ports> {
        let listeners = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()
            .context("bind 127.0.0.1:0 to pick free ports")?;
        let port = |i: usize| -> anyhow::Result<u16> { Ok(listeners[i].local_addr()?.port()) };
        Ok(Ports {
            kafka: port(0)?,
            http: port(1)?,
            raft: port(2)?,
        })
    }

    /// True if all three ports can be bound right now (used to reuse ports across a restart).
    fn all_free(&self) -> bool {
        [self.kafka, self.http, self.raft]
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
    }
}

/// A running (or stopped, awaiting restart) `distlog server` child process.
#[derive(Debug)]
pub struct DistlogProcess {
    child: Option<Child>,
    ports: Ports,
    options: DistlogOptions,
    data_dir: PathBuf,
    log_path: PathBuf,
    binary: PathBuf,
    // Dropped last (after the child is killed in `Drop`), removing the data and log.
    _tempdir: Option<TempDir>,
}

impl DistlogProcess {
    /// Starts a broker and waits until `/health` answers 200 (at most [`STARTUP_DEADLINE`]).
    ///
    /// Ports are picked fresh; if the broker exits because a port was taken in the meantime, the
    /// start is retried with new ports. On any failure the error includes the tail of the
    /// broker's log.
    pub fn start(options: DistlogOptions) -> anyhow::Result<DistlogProcess> {
        let binary = locate_binary()?;
        let (tempdir, data_dir) = match &options.data_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let tmp = tempfile::Builder::new().prefix("distlog-compat-").tempdir()?;
                let data = tmp.path().join("data");
                (Some(tmp), data)
            }
        };
        let parent = data_dir
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let log_path = parent.join("distlog.log");
        let mut process = DistlogProcess {
            child: None,
            ports: Ports::pick()?,
            options,
            data_dir,
            log_path,
            binary,
            _tempdir: tempdir,
        };
        process.spawn_until_healthy(false)?;
        Ok(process)
    }

    /// Starts a broker with default options (fresh data directory).
    pub fn start_default() -> anyhow::Result<DistlogProcess> {
        Self::start(DistlogOptions::default())
    }

    /// Restarts the broker on the same data directory and waits for `/health`.
    ///
    /// A still-running process is first stopped with [`terminate`](Self::terminate). The previous
    /// ports are reused when they are free (so clients created before the restart reconnect);
    /// otherwise fresh ones are picked, and callers must use the new [`bootstrap`](Self::bootstrap).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            self.terminate(Duration::from_secs(10))?;
        }
        self.spawn_until_healthy(true)
    }

    fn spawn_until_healthy(&mut self, prefer_same_ports: bool) -> anyhow::Result<()> {
        let mut last_error = None;
        for attempt in 0..BIND_ATTEMPTS {
            // The first start uses the ports picked in `start`; a restart keeps its ports if they
            // are still free; every retry after a bind failure picks new ones.
            if attempt > 0 || (prefer_same_ports && !self.ports.all_free()) {
                self.ports = Ports::pick()?;
            }
            self.spawn()?;
            match self.wait_healthy() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let exited = !self.is_running();
                    let tail = self.log_tail(60);
                    let bind_failure = exited && tail.to_lowercase().contains("in use");
                    self.kill_and_reap();
                    if !bind_failure {
                        return Err(self.start_failure(e, &tail));
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(anyhow!(
            "distlog could not bind its ports after {BIND_ATTEMPTS} attempts: {:#}; log tail:\n{}",
            last_error.unwrap_or_else(|| anyhow!("no attempt made")),
            self.log_tail(60)
        ))
    }

    /// Builds the error for a failed start: the cause, the binary, and the broker's log tail.
    fn start_failure(&self, cause: anyhow::Error, tail: &str) -> anyhow::Error {
        let tail = if tail.trim().is_empty() {
            "(the log is empty; if the binary is stale, rebuild it with `cargo build -p distlog-broker`)"
        } else {
            tail
        };
        anyhow!(
            "{} failed to start: {cause:#}\n---- tail of {} ----\n{tail}\n---- end of log ----",
            self.binary.display(),
            self.log_path.display()
        )
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("create data dir {}", self.data_dir.display()))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("open log file {}", self.log_path.display()))?;
        let log_err = log.try_clone()?;
        let kafka = format!("127.0.0.1:{}", self.ports.kafka);
        let mut cmd = Command::new(&self.binary);
        // The broker reads DISTLOG_* settings from the environment; a developer's shell must not
        // change what a test runs. Only the options' own env reaches the process.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DISTLOG_") {
                cmd.env_remove(&key);
            }
        }
        cmd.arg("server");
        if let Some(id) = self.options.node_id {
            cmd.arg("--node-id").arg(id.to_string());
        }
        cmd.arg("--data-dir").arg(&self.data_dir);
        match &self.options.listeners {
            Some((bound, advertised)) => {
                let port = self.ports.kafka.to_string();
                cmd.arg("--listeners")
                    .arg(bound.replace("{kafka}", &port))
                    .arg("--advertised-listeners")
                    .arg(advertised.replace("{kafka}", &port));
            }
            None => {
                cmd.arg("--kafka-listen")
                    .arg(&kafka)
                    .arg("--advertised-kafka")
                    .arg(&kafka);
            }
        }
        cmd.arg("--http-listen")
            .arg(format!("127.0.0.1:{}", self.ports.http))
            .arg("--raft-listen")
            .arg(format!("127.0.0.1:{}", self.ports.raft))
            .args(&self.options.extra_args)
            .envs(self.options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut last = String::from("no attempt yet");
        while started.elapsed() < STARTUP_DEADLINE {
            if let Some(status) = self.try_wait()? {
                bail!("distlog exited before becoming healthy: {status}");
            }
            match http::get(self.http_addr(), "/health", Duration::from_secs(2)) {
                Ok(HttpResponse { status: 200, .. }) => return Ok(()),
                Ok(r) => last = format!("/health answered {}: {}", r.status, r.body.trim()),
                Err(e) => last = format!("{e:#}"),
            }
            thread::sleep(Duration::from_millis(50));
        }
        bail!("distlog was not healthy within {STARTUP_DEADLINE:?} (last: {last})")
    }

    /// `127.0.0.1:<kafka port>`, the `bootstrap.servers` value for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.ports.kafka)
    }

    /// The Kafka listener's address.
    pub fn kafka_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.kafka))
    }

    /// The HTTP listener's address.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.http))
    }

    /// The ports of the current incarnation.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// The data directory (stable across restarts).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The log file receiving the broker's stdout and stderr (appended across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The OS process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// GET `path` on the HTTP port (5 s timeout).
    pub fn http_get(&self, path: &str) -> anyhow::Result<HttpResponse> {
        http::get(self.http_addr(), path, Duration::from_secs(5))
    }

    /// True while the child process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    /// Non-blocking check for exit. `Ok(None)` means still running; a reaped or never-started
    /// process reports an error.
    fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => Ok(child.try_wait()?),
            None => bail!("no distlog process (already stopped)"),
        }
    }

    /// Waits up to `within` for the broker to exit on its own and reaps it;
    /// an error if it is still running then (it is left running).
    pub fn wait_for_exit(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("distlog still running {within:?} later");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker with SIGKILL (no chance to flush or clean up) and reaps it.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        use std::os::unix::process::ExitStatusExt;
        let mut child = self.child.take().context("kill9: distlog is not running")?;
        if let Some(status) = child.try_wait()? {
            bail!(
                "kill9: distlog had already exited ({status}); log tail:\n{}",
                self.log_tail(60)
            );
        }
        // Child::kill sends SIGKILL on Unix.
        child.kill().context("send SIGKILL")?;
        let status = child.wait().context("reap after SIGKILL")?;
        ensure_killed_by(status.signal(), libc::SIGKILL)?;
        Ok(())
    }

    /// Sends SIGTERM and waits up to `deadline` for exit; past the deadline the broker is killed
    /// with SIGKILL and an error is returned. Returns the exit status of a clean stop.
    pub fn terminate(&mut self, deadline: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("terminate: distlog is not running")?;
        if let Some(status) = child.try_wait()? {
            bail!(
                "terminate: distlog had already exited ({status}); log tail:\n{}",
                self.log_tail(60)
            );
        }
        let pid = libc::pid_t::try_from(child.id()).context("pid fits pid_t")?;
        // SAFETY: kill(2) with a pid we own and have not reaped yet.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            let _ = child.kill();
            let _ = child.wait();
            bail!("send SIGTERM: {err}");
        }
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "distlog did not exit within {deadline:?} of SIGTERM (killed); log tail:\n{}",
                    self.log_tail(60)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `lines` lines of the broker's log file (empty if there is none yet).
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of_file(&self.log_path, lines)
    }

    fn kill_and_reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for DistlogProcess {
    fn drop(&mut self) {
        let died_unexpectedly = match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(status),
            _ => None,
        };
        self.kill_and_reap();
        if thread::panicking() || died_unexpectedly.is_some() {
            let why = match died_unexpectedly {
                Some(status) => format!("distlog exited unexpectedly ({status})"),
                None => "test failed".to_string(),
            };
            eprintln!(
                "---- {why}; tail of {} ----\n{}\n---- end of distlog log ----",
                self.log_path.display(),
                self.log_tail(80)
            );
        }
    }
}

fn ensure_killed_by(signal: Option<i32>, expected: i32) -> anyhow::Result<()> {
    match signal {
        Some(s) if s == expected => Ok(()),
        other => bail!("process ended by {other:?}, expected signal {expected}"),
    }
}

/// Reads the last `lines` lines of a file, looking at no more than its last 64 KiB.
pub fn tail_of_file(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(64 * 1024);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    if file.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Finds the `distlog` binary.
///
/// Order: `$DISTLOG_BIN`; the profile directory this test executable was built into (found by
/// walking up from it, e.g. `target/debug/deps/x` → `target/debug/distlog`); then
/// `$CARGO_TARGET_DIR` or `<workspace>/target` with this build's profile, then the other profile.
pub fn locate_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("DISTLOG_BIN") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("DISTLOG_BIN={} does not exist", path.display());
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(3) {
            candidates.push(dir.join("distlog"));
        }
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"),
        PathBuf::from,
    );
    let (this, other) = if cfg!(debug_assertions) {
        ("debug", "release")
    } else {
        ("release", "debug")
    };
    candidates.push(target_dir.join(this).join("distlog"));
    candidates.push(target_dir.join(other).join("distlog"));
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    bail!(
        "the distlog binary was not found (looked at: {}). Run `cargo build -p distlog-broker` \
         (or `scripts/test.sh`), or point DISTLOG_BIN at a built binary.",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_three_distinct_ports() {
        let p = Ports::pick().expect("ports");
        assert!(p.kafka != p.http && p.http != p.raft && p.kafka != p.raft);
        assert!(p.all_free());
    }

    #[test]
    fn tails_the_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\nd\n").expect("write");
        assert_eq!(tail_of_file(&path, 2), "c\nd");
        assert_eq!(tail_of_file(&dir.path().join("missing"), 2), "");
    }
}
