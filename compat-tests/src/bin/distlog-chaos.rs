//! `distlog-chaos`: the reliability campaign. Runs trials of the queue
//! workload against a cluster in network namespaces under randomized fault
//! schedules, checks each with the queue checker, and prints the campaign
//! table. Run it through `scripts/chaos.sh` (which builds it and the
//! broker, and cleans up after an interrupted run). Needs root (network
//! namespaces, iptables, tmpfs).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use clap::Parser;
use distlog_compat_tests::nemesis::{Fault, Schedule};
use distlog_compat_tests::queue::{run_trial, TrialConfig, TrialReport};

#[derive(Parser, Debug)]
#[command(about = "Randomized fault trials with a Jepsen-style checker")]
struct Args {
    /// Seed of the first trial (trial i uses seed + i); random by default.
    #[arg(long)]
    seed: Option<u64>,
    /// How many trials.
    #[arg(long, default_value_t = 1)]
    trials: u64,
    /// Cluster size: 3 or 5.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Every Nth trial runs on 5 nodes instead (0: never).
    #[arg(long, default_value_t = 0)]
    five_every: u64,
    /// Seconds of faults per trial.
    #[arg(long, default_value_t = 45)]
    duration: u64,
    /// Seconds within which writes must be acknowledged again after healing.
    #[arg(long, default_value_t = 30)]
    recovery_bound: u64,
    /// Partitions of the workload's topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Where clusters run and failed trials' logs are kept.
    #[arg(long, default_value = "target/chaos")]
    work_dir: PathBuf,
    /// Trials run at once (each on its own cluster).
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// Append the campaign table (markdown) to this file too.
    #[arg(long)]
    table: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if ![3, 5].contains(&args.nodes) {
        bail!("--nodes must be 3 or 5");
    }
    let first = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_000)
    });
    let configs: Vec<TrialConfig> = (0..args.trials)
        .map(|i| TrialConfig {
            seed: first + i,
            nodes: if args.five_every > 0 && (i + 1) % args.five_every == 0 {
                5
            } else {
                args.nodes
            },
            duration: Duration::from_secs(args.duration),
            recovery_bound: Duration::from_secs(args.recovery_bound),
            partitions: args.partitions,
            work_dir: args.work_dir.clone(),
        })
        .collect();
    // Trials are independent (each cluster has its own namespaces and
    // subnet): `--parallel` workers take them in seed order.
    let next = Mutex::new(configs.into_iter().enumerate());
    let reports = Mutex::new(Vec::new());
    let total = args.trials;
    thread::scope(|scope| {
        for _ in 0..args.parallel.max(1) {
            scope.spawn(|| loop {
                let Some((i, cfg)) = next.lock().unwrap_or_else(|e| e.into_inner()).next() else {
                    return;
                };
                let report = run_one(&cfg);
                let mut out = format!(
                    "trial {}/{total} · seed {} · {} nodes\n",
                    i + 1,
                    cfg.seed,
                    cfg.nodes
                );
                let faults: Vec<String> = report.applied.iter().map(|(k, n)| format!("{k}×{n}")).collect();
                out.push_str(&format!(
                    "  {} · {} acknowledged writes checked · faults {} · {:.0} s\n",
                    if report.passed() { "PASS" } else { "FAIL" },
                    report.acked,
                    faults.join(" "),
                    report.took.as_secs_f64()
                ));
                out.push_str(&report.describe());
                // One trial's account at a time, whole.
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{out}");
                let _ = stdout.flush();
                drop(stdout);
                reports.lock().unwrap_or_else(|e| e.into_inner()).push(report);
            });
        }
    });
    let mut reports = reports.into_inner().unwrap_or_else(|e| e.into_inner());
    reports.sort_by_key(|r| r.config.seed);
    let table = campaign_table(&reports);
    println!("\n{table}");
    if let Some(path) = &args.table {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        writeln!(f, "{table}")?;
    }
    let failed: Vec<u64> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.config.seed)
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} trials failed (seeds {failed:?})",
            failed.len(),
            reports.len()
        );
    }
    Ok(())
}

/// Run one trial; a trial that could not run is reported as failed by
/// its harness.
fn run_one(cfg: &TrialConfig) -> TrialReport {
    run_trial(cfg).unwrap_or_else(|e| TrialReport {
        schedule: Schedule::generate(cfg.seed, cfg.nodes, cfg.duration),
        config: cfg.clone(),
        history: Vec::new(),
        applied: BTreeMap::new(),
        sent: 0,
        acked: 0,
        final_records: 0,
        polled: 0,
        group: (0, 0, 0),
        client_errors: BTreeMap::new(),
        anomalies: Vec::new(),
        harness_errors: vec![format!("the trial could not run: {e:#}")],
        took: Duration::ZERO,
    })
}

/// The campaign table: trials, faults per kind, acknowledged writes
/// checked, anomalies per kind.
fn campaign_table(reports: &[TrialReport]) -> String {
    let mut faults: BTreeMap<&str, usize> = Fault::KINDS.iter().map(|k| (*k, 0)).collect();
    let mut anomalies: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reports {
        for (k, n) in &r.applied {
            *faults.entry(k).or_default() += n;
        }
        for a in &r.anomalies {
            *anomalies.entry(a.name()).or_default() += 1;
        }
    }
    let passed = reports.iter().filter(|r| r.passed()).count();
    let harness = reports.iter().filter(|r| !r.harness_errors.is_empty()).count();
    let mut out = String::from("| measure | value |\n|---|---|\n");
    out.push_str(&format!(
        "| trials run | {} ({} passed) |\n",
        reports.len(),
        passed
    ));
    out.push_str(&format!(
        "| trials on 3 / 5 nodes | {} / {} |\n",
        reports.iter().filter(|r| r.config.nodes == 3).count(),
        reports.iter().filter(|r| r.config.nodes == 5).count()
    ));
    for (k, n) in &faults {
        out.push_str(&format!("| faults injected: {k} | {n} |\n"));
    }
    out.push_str(&format!(
        "| acknowledged writes checked | {} |\n",
        reports.iter().map(|r| r.acked).sum::<usize>()
    ));
    out.push_str(&format!(
        "| records in final reads | {} |\n",
        reports.iter().map(|r| r.final_records).sum::<usize>()
    ));
    if anomalies.is_empty() {
        out.push_str("| anomalies | 0 |\n");
    }
    for (k, n) in &anomalies {
        out.push_str(&format!("| anomalies: {k} | {n} |\n"));
    }
    out.push_str(&format!("| trials with harness errors | {harness} |\n"));
    out
}
