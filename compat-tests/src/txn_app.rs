//! The consume-transform-produce application (`distlog-txn-app`) as a child process, the input
//! it reads ([`fill_input`]), its command line ([`txn_app_args`]) and the exactly-once check of
//! its output ([`verify_exactly_once_output`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::kafka::{self, TestRecord};
use crate::txn::{read_to_end, values, Isolation};

/// The consume-transform-produce application (`distlog-txn-app`) in a child process: its stdout
/// (JSON lines) is collected, and it is killed and reaped when dropped.
pub struct TxnApp {
    child: Child,
    lines: Receiver<String>,
    /// Every JSON line it printed so far, in order.
    pub events: Vec<Value>,
}

impl fmt::Debug for TxnApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxnApp").field("pid", &self.child.id()).finish()
    }
}

impl TxnApp {
    /// Starts `binary` (the test's `env!("CARGO_BIN_EXE_distlog-txn-app")`) with `args`; its
    /// stderr is inherited.
    pub fn spawn(binary: &Path, args: &[String]) -> anyhow::Result<TxnApp> {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawn {}", binary.display()))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(TxnApp {
            child,
            lines: rx,
            events: Vec::new(),
        })
    }

    /// Reads the app's lines until `accept` takes one (returned), within `deadline`; an
    /// `"error"` event, the app's exit or the deadline is an error naming `what`.
    pub fn wait_for(
        &mut self,
        what: &str,
        deadline: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let remaining = deadline.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                bail!(
                    "the app did not report {what} within {deadline:?}; last events: {:?}",
                    self.recent()
                );
            }
            match self.lines.recv_timeout(remaining.min(Duration::from_millis(200))) {
                Ok(line) => {
                    let value: Value =
                        serde_json::from_str(&line).with_context(|| format!("the app printed {line:?}"))?;
                    self.events.push(value.clone());
                    if value["event"] == "error" {
                        bail!("the app failed: {value}");
                    }
                    if accept(&value) {
                        return Ok(value);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!(
                    "the app exited ({:?}) before reporting {what}; last events: {:?}",
                    self.child.try_wait(),
                    self.recent()
                ),
            }
        }
    }

    fn recent(&self) -> &[Value] {
        &self.events[self.events.len().saturating_sub(10)..]
    }

    /// The highest `total` of its `committed` events: records it committed since it started.
    pub fn committed_total(&self) -> u64 {
        self.events
            .iter()
            .filter(|v| v["event"] == "committed")
            .filter_map(|v| v["total"].as_u64())
            .max()
            .unwrap_or(0)
    }

    /// Kills the app with SIGKILL and reaps it.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("SIGKILL the app")?;
        self.child.wait().context("reap the app")?;
        Ok(())
    }

    /// Waits for the app to exit by itself within `deadline` and returns its status.
    pub fn wait_exit(&mut self, deadline: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("wait for the app")? {
                return Ok(status);
            }
            if started.elapsed() >= deadline {
                bail!("the app did not exit within {deadline:?}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TxnApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command line of `distlog-txn-app` for these topics, group and transactional id.
pub fn txn_app_args(
    bootstrap: &str,
    (input, output, group, transactional_id): (&str, &str, &str, &str),
    batch_size: usize,
    pause_before_commit_ms: u64,
    timeout_secs: u64,
) -> Vec<String> {
    [
        "--bootstrap",
        bootstrap,
        "--input",
        input,
        "--output",
        output,
        "--group",
        group,
        "--transactional-id",
        transactional_id,
        "--batch-size",
        &batch_size.to_string(),
        "--pause-before-commit-ms",
        &pause_before_commit_ms.to_string(),
        "--timeout-secs",
        &timeout_secs.to_string(),
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect()
}

/// Writes `m` unique input values `in-{i:05}` to `input` (value i to partition i % `partitions`,
/// keyed `k{partition}`) with an acks=all producer; returns each partition's values in order.
pub fn fill_input(
    bootstrap: &str,
    input: &str,
    partitions: i32,
    m: usize,
) -> anyhow::Result<BTreeMap<i32, Vec<String>>> {
    let mut per_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for i in 0..m {
        let p = i32::try_from(i).context("input size")? % partitions;
        per_partition.entry(p).or_default().push(format!("in-{i:05}"));
    }
    for (p, vals) in &per_partition {
        let records: Vec<TestRecord> = vals
            .iter()
            .map(|v| TestRecord {
                key: Some(format!("k{p}").into_bytes()),
                payload: Some(v.clone().into_bytes()),
                ..TestRecord::default()
            })
            .collect();
        let deliveries = kafka::produce_records(
            &kafka::producer_config(bootstrap, "all"),
            input,
            Some(*p),
            &records,
            Duration::from_secs(60),
        )?;
        if let Some(failed) = deliveries.iter().find(|d| d.result.is_err()) {
            bail!("input record not written: {failed:?}");
        }
    }
    Ok(per_partition)
}

/// The exactly-once check of a consume-transform-produce run: read read_committed, the output
/// holds `out-<v>` for every input value v exactly once, in input order per partition (the app
/// keeps partitions), and the group's committed offsets are the input's end offsets. Returns how
/// many records read_uncommitted sees in the output (more than the input when aborted
/// transactions left records behind).
pub fn verify_exactly_once_output(
    bootstrap: &str,
    input: &str,
    output: &str,
    group: &str,
    per_partition: &BTreeMap<i32, Vec<String>>,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let partitions: Vec<i32> = per_partition.keys().copied().collect();
    let out = read_to_end(bootstrap, output, &partitions, Isolation::ReadCommitted, timeout)
        .context("read the output read_committed")?;
    let mut seen: HashMap<String, Vec<(i32, i64)>> = HashMap::new();
    for (p, records) in &out {
        for r in records {
            let v = String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned();
            seen.entry(v).or_default().push((*p, r.offset));
        }
    }
    let duplicates: Vec<(&String, &Vec<(i32, i64)>)> = seen.iter().filter(|(_, at)| at.len() > 1).collect();
    if !duplicates.is_empty() {
        bail!(
            "{} output values appear more than once (value, (partition, offset)...): {:?}",
            duplicates.len(),
            &duplicates[..duplicates.len().min(10)]
        );
    }
    for (p, inputs) in per_partition {
        let expected: Vec<String> = inputs.iter().map(|v| format!("out-{v}")).collect();
        let got = values(out.get(p).map_or(&[][..], Vec::as_slice));
        let missing: Vec<&String> = expected
            .iter()
            .filter(|v| !seen.contains_key(v.as_str()))
            .collect();
        if !missing.is_empty() {
            bail!(
                "output partition {p} lacks {} of its {} inputs (lost), first: {:?}",
                missing.len(),
                expected.len(),
                &missing[..missing.len().min(10)]
            );
        }
        if got != expected {
            let first = got.iter().zip(&expected).position(|(a, b)| a != b);
            bail!(
                "output partition {p} is not its input in order: {} values for {}, first difference at {first:?}",
                got.len(),
                expected.len()
            );
        }
    }
    let committed = crate::group::committed_for_group(bootstrap, group, input, &partitions)?;
    let ends: BTreeMap<i32, Option<i64>> = per_partition
        .iter()
        .map(|(p, v)| (*p, i64::try_from(v.len()).ok()))
        .collect();
    if committed != ends {
        bail!("the group's committed offsets {committed:?} are not the input's end offsets {ends:?}");
    }
    let raw = read_to_end(
        bootstrap,
        output,
        &partitions,
        Isolation::ReadUncommitted,
        timeout,
    )
    .context("read the output read_uncommitted")?;
    Ok(raw.values().map(Vec::len).sum())
}
