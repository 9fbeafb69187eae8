//! `distlog-chaos`: the reliability campaign. Runs trials of the queue
//! workload against a cluster in network namespaces under randomized fault
//! schedules, checks each with the queue checker, and prints the campaign
//! table. Run it through `scripts/chaos.sh` (which builds it and the
//! broker, and cleans up after an interrupted run). Needs root (network
//! namespaces, iptables, tmpfs).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use clap::Parser;
use distlog_compat_tests::nemesis::Fault;
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
    let mut reports = Vec::new();
    for i in 0..args.trials {
        let nodes = if args.five_every > 0 && (i + 1) % args.five_every == 0 {
            5
        } else {
            args.nodes
        };
        let cfg = TrialConfig {
            seed: first + i,
            nodes,
            duration: Duration::from_secs(args.duration),
            recovery_bound: Duration::from_secs(args.recovery_bound),
            partitions: args.partitions,
            work_dir: args.work_dir.clone(),
        };
        println!(
            "trial {}/{} · seed {} · {nodes} nodes",
            i + 1,
            args.trials,
            cfg.seed
        );
        let _ = std::io::stdout().flush();
        match run_trial(&cfg) {
            Ok(r) => {
                let faults: Vec<String> = r.applied.iter().map(|(k, n)| format!("{k}×{n}")).collect();
                println!(
                    "  {} · {} acknowledged writes checked · faults {} · {:.0} s",
                    if r.passed() { "PASS" } else { "FAIL" },
                    r.acked,
                    faults.join(" "),
                    r.took.as_secs_f64()
                );
                println!("{}", r.describe());
                reports.push(r);
            }
            Err(e) => {
                println!("  FAIL (the trial could not run): {e:#}");
                println!(
                    "  replay: scripts/chaos.sh --seed {} --nodes {nodes} --duration {}",
                    cfg.seed, args.duration
                );
                reports.push(TrialReport {
                    schedule: distlog_compat_tests::nemesis::Schedule::generate(
                        cfg.seed,
                        nodes,
                        cfg.duration,
                    ),
                    config: cfg,
                    history: Vec::new(),
                    applied: BTreeMap::new(),
                    sent: 0,
                    acked: 0,
                    final_records: 0,
                    client_errors: BTreeMap::new(),
                    anomalies: Vec::new(),
                    harness_errors: vec![format!("{e:#}")],
                    took: Duration::ZERO,
                });
            }
        }
        let _ = std::io::stdout().flush();
    }
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
