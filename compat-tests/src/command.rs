//! Running external programs (kcat) with a hard deadline.
//!
//! Every process a test spawns must end by itself or be killed: a client that hangs on a broken
//! broker must fail the test, not hang CI.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// What a finished program printed and how it exited.
#[derive(Debug)]
pub struct CommandOutput {
    /// The exit status (a signal exit shows as a non-success status).
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr, as lossy UTF-8 for messages.
    pub stderr: String,
}

impl CommandOutput {
    /// stdout as lossy UTF-8.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `cmd` with `stdin` fed to it, and kills it if it is still running after `deadline`.
///
/// stdout and stderr are drained on their own threads so a chatty program cannot block on a full
/// pipe. A program killed at the deadline is an error that includes what it printed so far.
pub fn run_with_deadline(
    mut cmd: Command,
    stdin: Option<Vec<u8>>,
    deadline: Duration,
) -> anyhow::Result<CommandOutput> {
    let description = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("spawn {description}"))?;

    let stdin_writer = match (stdin, child.stdin.take()) {
        (Some(input), Some(mut pipe)) => Some(thread::spawn(move || {
            // A program that exits early closes its stdin; that surfaces through its exit status.
            let _ = pipe.write_all(&input);
        })),
        _ => None,
    };
    let mut stdout_pipe = child.stdout.take().context("stdout was piped")?;
    let mut stderr_pipe = child.stderr.take().context("stderr was piped")?;
    let stdout_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut buf);
        buf
    });
    let stderr_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf);
        buf
    });

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("wait for {description}"))?
        {
            break Some(status);
        }
        if started.elapsed() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    if let Some(writer) = stdin_writer {
        let _ = writer.join();
    }
    let stdout = stdout_reader.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr_reader.join().unwrap_or_default()).into_owned();
    match status {
        Some(status) => Ok(CommandOutput {
            status,
            stdout,
            stderr,
        }),
        None => bail!(
            "{description} did not finish within {deadline:?}; killed.\nstdout:\n{}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&stdout)
        ),
    }
}

/// A `kcat` command that runs on the librdkafka kcat was installed with (Debian's kcat: librdkafka
/// 2.0.2, an old client worth staying compatible with). `cargo test` puts the rdkafka crate's own
/// build of librdkafka (a newer one) on `LD_LIBRARY_PATH`, which a dynamically linked kcat would
/// The Python interpreter with kafka-python and aiokafka installed: `$DISTLOG_PYTHON`, or the
/// virtualenv `scripts/install-python-clients.sh` makes at `target/python-clients` (checked once;
/// panics with what to run when the clients are missing).
pub fn python_clients() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(find_python).clone()
}

fn find_python() -> PathBuf {
    let path = match std::env::var_os("DISTLOG_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target/python-clients/bin/python"),
    };
    let mut check = Command::new(&path);
    check.args(["-c", "import kafka, aiokafka"]);
    match run_with_deadline(check, None, Duration::from_secs(30)) {
        Ok(out) if out.status.success() => path,
        Ok(out) => panic!(
            "{} cannot import kafka-python and aiokafka ({}): {}\nrun scripts/install-deps.sh",
            path.display(),
            out.status,
            out.stderr
        ),
        Err(e) => panic!(
            "the Python clients are not installed ({}: {e:#}): run scripts/install-deps.sh \
             (or point DISTLOG_PYTHON at a python with kafka-python and aiokafka)",
            path.display()
        ),
    }
}

/// otherwise load instead.
pub fn kcat_command() -> Command {
    let mut cmd = Command::new("kcat");
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd
}

/// Whether kcat can run. Returns false (the caller skips) only when kcat is absent and
/// `DISTLOG_SKIP_KCAT=1`; panics when it is absent otherwise, since `scripts/install-deps.sh`
/// installs it.
pub fn kcat_available() -> bool {
    let mut version = kcat_command();
    version.arg("-V");
    let found = run_with_deadline(version, None, Duration::from_secs(10)).is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    if std::env::var("DISTLOG_SKIP_KCAT").as_deref() == Ok("1") {
        eprintln!("kcat not installed; skipped because DISTLOG_SKIP_KCAT=1");
        return false;
    }
    panic!("kcat is not installed: run scripts/install-deps.sh (or set DISTLOG_SKIP_KCAT=1 to skip)");
}

/// Runs `compat-tests/python/<script>` with the clients' interpreter ([`python_clients`]) and
/// `args`, killed after `deadline`, and returns the one JSON document it printed on stdout.
/// Panics when it cannot run, fails or prints no JSON, with its output and `context` (the
/// broker's log tail, say) in the message.
pub fn run_python_json(
    script: &str,
    args: &[&str],
    deadline: Duration,
    context: impl Fn() -> String,
) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join(script);
    let mut cmd = Command::new(python_clients());
    cmd.arg(&path)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = run_with_deadline(cmd, None, deadline)
        .unwrap_or_else(|e| panic!("{script} {args:?}: {e:#}\n---- context ----\n{}", context()));
    let stdout = out.stdout_text();
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}).\n---- stdout ----\n{stdout}\n---- stderr ----\n{}\n---- context ----\n{}",
        out.status,
        out.stderr,
        context()
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{script} {args:?} printed no JSON ({e}):\n{stdout}\n{}",
            out.stderr
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_feeds_stdin() {
        let out = run_with_deadline(
            Command::new("cat"),
            Some(b"hello\n".to_vec()),
            Duration::from_secs(5),
        )
        .expect("cat runs");
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hello\n");
    }

    #[test]
    fn kills_a_program_past_its_deadline() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let started = Instant::now();
        let err = run_with_deadline(cmd, None, Duration::from_millis(200)).expect_err("must time out");
        assert!(err.to_string().contains("did not finish"), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
