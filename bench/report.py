#!/usr/bin/env python3
"""Turns the benchmark's JSON lines (one per distlog-bench run) and the fio/iperf3 JSON into the
markdown results table of bench/results/latest.md. Used by bench/run.sh."""
import argparse
import json
import statistics


def load_json(path):
    try:
        with open(path) as f:
            text = f.read()
        # fio may print warnings before its JSON.
        return json.loads(text[text.index("{"):])
    except Exception:
        return None


def main():
    ap = argparse.ArgumentParser()
    for a in ("results", "facts", "fio-write", "fio-read", "iperf", "fio-bs", "fio-bs-source", "settings", "groups"):
        ap.add_argument("--" + a, default="")
    ap.add_argument("--elapsed", type=int, default=0)
    args = ap.parse_args()
    groups = set((args.groups or "idle main idem transactions rebuild retention machine").split())

    lines = []
    with open(args.results) as f:
        for raw in f:
            raw = raw.strip()
            if raw:
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    pass
    facts = load_json(args.facts) or {}
    for l in lines:
        # Little's law: a full-speed producer with a bounded window waits about window/throughput.
        if l.get("mb_per_s") and l.get("window_kbytes") and l.get("ack_p50_ms") is not None:
            l["window_ms"] = l["window_kbytes"] * 1024 / (l["mb_per_s"] * 1e6) * 1000

    def runs(scenario):
        return [l for l in lines if l.get("scenario") == scenario and "error" not in l]

    def errors(scenario):
        return [l["error"] for l in lines if l.get("scenario") == scenario and "error" in l]

    def vals(scenario, key):
        return [l[key] for l in runs(scenario) if isinstance(l.get(key), (int, float))]

    def med(scenario, key):
        v = vals(scenario, key)
        return statistics.median(v) if v else None

    # Machine limits.
    fw, fr, ip = load_json(args.fio_write), load_json(args.fio_read), load_json(args.iperf)
    fio_write_mb = fio_sync_p50 = fio_sync_p99 = fio_read_mb = iperf_mb = None
    try:
        job = fw["jobs"][0]
        fio_write_mb = job["write"]["bw_bytes"] / 1e6
        pct = job["sync"]["lat_ns"]["percentile"]
        fio_sync_p50 = pct["50.000000"] / 1e6
        fio_sync_p99 = pct["99.000000"] / 1e6
    except Exception:
        pass
    try:
        fio_read_mb = fr["jobs"][0]["read"]["bw_bytes"] / 1e6
    except Exception:
        pass
    try:
        iperf_mb = ip["end"]["sum_received"]["bits_per_second"] / 8 / 1e6
    except Exception:
        pass

    out = []
    w = out.append
    w("# distlog benchmark results")
    w("")
    w(f"- date: {facts.get('date', '?')}, commit `{facts.get('commit', '?')}`, total run time {args.elapsed} s")
    w(f"- machine: {facts.get('nproc', '?')} CPUs ({facts.get('cpu', '?')}), {facts.get('mem_gib', '?')} GiB RAM, "
      f"kernel {facts.get('kernel', '?')}, data dir filesystem {facts.get('fs', '?')}")
    w(f"- load average at start: {' '.join(facts.get('loadavg_start', []))} (client, broker and any other work "
      f"share these CPUs; the load generator runs on the same machine)")
    tools = [facts.get(k, "?") for k in ("rustc", "fio", "iperf3")] + ["librdkafka via rdkafka 0.39"]
    w(f"- tools: {', '.join(t for t in tools if t)}")
    w(f"- settings: {args.settings}")
    w("")
    w("| scenario | figure | min | median | max | target | ratio | result |")
    w("| --- | --- | ---: | ---: | ---: | --- | ---: | --- |")

    def fmt(x, digits=None):
        if x is None:
            return "—"
        if x == 0:
            x = 0.0  # no "-0.00"
        if digits is None:
            digits = 0 if abs(x) >= 1000 else (1 if abs(x) >= 10 else 2)
        return f"{x:,.{digits}f}"

    def ran(scenario):
        return any(l.get("scenario") == scenario for l in lines)

    def row(scenario, title, key, scale=1.0, target=None, ratio=None, ok=None, digits=None):
        if not ran(scenario):
            return  # not part of this run (BENCH_ONLY)
        v = [x * scale for x in vals(scenario, key)]
        if not v:
            errs = errors(scenario)
            note = ("error: " + errs[0][:80].replace("|", "/")) if errs else "no data"
            w(f"| {scenario} | {title} | — | — | — | {target or ''} | | {note} |")
            return
        result = "" if ok is None else ("PASS" if ok else "FAIL")
        w(f"| {scenario} | {title} | {fmt(min(v), digits)} | {fmt(statistics.median(v), digits)} | "
          f"{fmt(max(v), digits)} | {target or ''} | {'' if ratio is None else fmt(ratio, 2)} | {result} |")

    def single(scenario, title, value, target=None, ratio=None, ok=None, digits=None):
        if scenario == "s7-machine" and "machine" not in groups:
            return
        result = "" if ok is None else ("PASS" if ok else "FAIL")
        w(f"| {scenario} | {title} | | {fmt(value, digits)} | | {target or ''} | "
          f"{'' if ratio is None else fmt(ratio, 2)} | {result} |")

    def produce_rows(s, targets=False):
        mb = med(s, "mb_per_s")
        ratio = ok = None
        if targets and mb is not None and fio_write_mb:
            ratio = mb / fio_write_mb
            ok = ratio >= 0.5
        row(s, "msgs/s", "msgs_per_s")
        row(s, "MB/s", "mb_per_s", target="≥ 50% of fio fdatasync write MB/s" if targets else None,
            ratio=ratio, ok=ok)
        row(s, "ack p50 ms", "ack_p50_ms")
        p99 = med(s, "ack_p99_ms")
        ratio = ok = target = None
        if targets and p99 is not None and fio_sync_p99 is not None:
            linger = (runs(s) or [{}])[0].get("linger_ms", 5)
            bound = 5 * fio_sync_p99 + linger
            target = f"< 5 × fdatasync p99 + linger = {bound:.2f} ms"
            ratio, ok = p99 / bound, p99 < bound
        row(s, "ack p99 ms", "ack_p99_ms", target=target, ratio=ratio, ok=ok)
        row(s, "ack p999 ms", "ack_p999_ms")
        row(s, "window ÷ throughput ms (queueing floor)", "window_ms")
        row(s, "broker CPU ms per MB", "broker_cpu_ms_per_mb")
        row(s, "broker CPU utilisation (cores)", "broker_cpu_util")
        row(s, "fsyncs/s", "fsyncs_per_s")
        row(s, "bytes per fsync", "bytes_per_fsync")
        row(s, "broker RSS after, MiB", "broker_rss_mib")
        row(s, "load generator CPU utilisation (cores)", "client_cpu_util")

    produce_rows("s1-produce-1p", targets=True)
    produce_rows("s2-produce-16p")
    m = med("s3-produce-100b", "msgs_per_s")
    row("s3-produce-100b", "msgs/s", "msgs_per_s", target="≥ 300,000 msgs/s",
        ratio=None if m is None else m / 300000, ok=None if m is None else m >= 300000)
    row("s3-produce-100b", "MB/s", "mb_per_s")
    row("s3-produce-100b", "ack p99 ms", "ack_p99_ms")
    row("s3-produce-100b", "window ÷ throughput ms (queueing floor)", "window_ms")
    row("s3-produce-100b", "load generator CPU utilisation (cores)", "client_cpu_util")
    row("s3-produce-100b", "broker CPU ms per MB", "broker_cpu_ms_per_mb")
    row("s3-produce-100b", "broker CPU utilisation (cores)", "broker_cpu_util")
    row("s3-produce-100b", "fsyncs/s", "fsyncs_per_s")
    row("s3-produce-100b", "broker RSS after, MiB", "broker_rss_mib")
    row("s4-fill", "fill MB/s (16 MiB window)", "mb_per_s")

    c = med("s4-catch-up", "mb_per_s")
    limits = [x for x in (iperf_mb, fio_read_mb) if x]
    lim = min(limits) if limits else None
    row("s4-catch-up", "MB/s (from the beginning)", "mb_per_s",
        target=None if lim is None else f"≥ 60% of min(loopback, disk read) = {0.6 * lim:,.0f} MB/s",
        ratio=None if (c is None or not lim) else c / lim, ok=None if (c is None or not lim) else c >= 0.6 * lim)
    row("s4-catch-up", "msgs/s", "msgs_per_s")
    row("s4-catch-up", "broker disk reads, MB", "disk_read_mb")
    row("s4-catch-up", "broker CPU ms per MB", "broker_cpu_ms_per_mb")
    row("s4-catch-up", "load generator CPU utilisation (cores)", "client_cpu_util")
    row("s4-tail", "consumer MB/s while producing", "mb_per_s")
    row("s4-tail", "producer MB/s", "producer_mb_per_s")
    row("s4-tail", "consumer drain after last ack, ms", "drain_ms_after_last_ack")
    row("s4-tail", "broker CPU ms per MB produced (and consumed)", "broker_cpu_ms_per_mb")
    row("s5-e2e", "achieved msgs/s", "achieved_rate")
    row("s5-e2e", "e2e p50 ms", "e2e_p50_ms")
    row("s5-e2e", "e2e p99 ms", "e2e_p99_ms")
    row("s5-e2e", "e2e p999 ms", "e2e_p999_ms")
    row("s5-e2e", "ack p99 ms", "ack_p99_ms")
    row("s5-e2e", "fsyncs/s", "fsyncs_per_s")
    row("s6-fan-out", "single consumer MB/s", "single_mb_per_s")
    row("s6-fan-out", "aggregate MB/s", "aggregate_mb_per_s")
    sp = med("s6-fan-out", "speedup")
    row("s6-fan-out", "aggregate ÷ single", "speedup", target="≥ 4 ×",
        ratio=None if sp is None else sp / 4, ok=None if sp is None else sp >= 4)
    agg = med("s6-fan-out", "aggregate_mb_per_s")
    if agg is not None and iperf_mb:
        single("s6-fan-out", "aggregate ÷ loopback TCP (context)", agg / iperf_mb, digits=2)
    row("s6-fan-out", "broker disk reads, MB", "disk_read_mb")
    row("s6-fan-out", "broker tail-cache hit %", "tail_cache_hit_pct")
    row("s6-fan-out", "broker CPU ms per MB sent", "broker_cpu_ms_per_mb")
    row("s6-fan-out", "broker CPU utilisation (cores)", "broker_cpu_util")
    row("s6-fan-out", "load generator CPU utilisation (cores)", "client_cpu_util")
    rss = med("idle-rss", "rss_mib")
    row("idle-rss", "RSS MiB, idle, every partition written once", "rss_mib", target="< 300 MB",
        ratio=None if rss is None else rss * 1.048576 / 300, ok=None if rss is None else rss * 1.048576 < 300)
    row("idle-rss", "RSS MiB before creating the topic", "rss_before_mib")
    row("idle-rss", "RSS MiB, partitions created, never written", "rss_created_mib")
    row("idle-rss", "open segments: created / written once", "active_segments_created", digits=0)
    row("idle-rss", "open segments after writing one message each", "active_segments", digits=0)
    for s in ("s8-idem-1p", "s8-idem-1p-mif5", "s8-idem-16p", "s8-idem-16p-mif5"):
        o = med(s, "overhead_pct")
        row(s, "plain MB/s", "plain_mb_per_s")
        row(s, "idempotent MB/s", "idem_mb_per_s")
        row(s, "plain msgs/s", "plain_msgs_per_s")
        row(s, "idempotent msgs/s", "idem_msgs_per_s")
        row(s, "overhead % ((plain − idem) ÷ plain, MB/s)", "overhead_pct", target="≤ 5%",
            ratio=None if o is None else o / 5, ok=None if o is None else o <= 5)
        row(s, "plain ack p99 ms", "plain_ack_p99_ms")
        row(s, "idempotent ack p99 ms", "idem_ack_p99_ms")
        row(s, "plain broker CPU ms per MB", "plain_broker_cpu_ms_per_mb")
        row(s, "idempotent broker CPU ms per MB", "idem_broker_cpu_ms_per_mb")
        row(s, "plain bytes per produce request", "plain_bytes_per_request")
        row(s, "idempotent bytes per produce request", "idem_bytes_per_request")
        row(s, "plain load generator CPU utilisation (cores)", "plain_client_cpu_util")
        row(s, "idempotent load generator CPU utilisation (cores)", "idem_client_cpu_util")
        row(s, "plain first ack ms (start-up, before the measured window)", "plain_first_ack_ms")
        row(s, "idempotent first ack ms (start-up: producer id)", "idem_first_ack_ms")
        row(s, "idempotent duplicate batches", "idem_duplicate_batches", digits=0)
    s = "s11-transactions"
    counts = sorted({n for l in runs(s) for n in l.get("producers", []) if isinstance(n, int)}) or [1, 8]
    for n in counts:
        row(s, f"{n} producer(s): transactional MB/s", f"txn_{n}p_mb_per_s")
        row(s, f"{n} producer(s): idempotent MB/s", f"idem_{n}p_mb_per_s")
        row(s, f"{n} producer(s): transactional msgs/s", f"txn_{n}p_msgs_per_s")
        row(s, f"{n} producer(s): idempotent msgs/s", f"idem_{n}p_msgs_per_s")
        row(s, f"{n} producer(s): transactional ÷ idempotent (MB/s = msgs/s)", f"ratio_{n}p", digits=2)
        row(s, f"{n} producer(s): transactions/s", f"txn_{n}p_txns_per_s")
        row(s, f"{n} producer(s): commit_transaction p50 ms (flush + EndTxn)", f"txn_{n}p_commit_p50_ms")
        row(s, f"{n} producer(s): commit_transaction p99 ms", f"txn_{n}p_commit_p99_ms")
        row(s, f"{n} producer(s): transactional broker CPU ms per MB", f"txn_{n}p_broker_cpu_ms_per_mb")
        row(s, f"{n} producer(s): idempotent broker CPU ms per MB", f"idem_{n}p_broker_cpu_ms_per_mb")
        row(s, f"{n} producer(s): transactional load generator CPU (cores)", f"txn_{n}p_client_cpu_util")
        row(s, f"{n} producer(s): idempotent load generator CPU (cores)", f"idem_{n}p_client_cpu_util")
    row(s, "read_committed e2e p50 ms (send → read, commit included)", "lat_e2e_p50_ms")
    row(s, "read_committed e2e p99 ms", "lat_e2e_p99_ms")
    row(s, "read_committed e2e max ms", "lat_e2e_max_ms")
    row(s, "commit returned → first message read, p50 ms", "lat_visible_after_commit_p50_ms")
    row(s, "commit returned → first message read, p99 ms", "lat_visible_after_commit_p99_ms")
    row(s, "commit called → first message read, p50 ms", "lat_visible_after_commit_call_p50_ms")
    row(s, "commit called → first message read, p99 ms", "lat_visible_after_commit_call_p99_ms")
    row(s, "commit_transaction p50 ms (10-message transactions)", "lat_commit_p50_ms")
    row(s, "commit_transaction p99 ms (10-message transactions)", "lat_commit_p99_ms")
    row(s, "transactions read before their commit returned", "lat_seen_before_commit_returned", digits=0)
    for mode in ("replay", "snapshot"):
        s = f"s9-rebuild-{mode}"
        row(s, "producers", "producers", digits=0)
        row(s, "state rebuild ms (log took_ms)", "rebuild_took_ms")
        row(s, "state rebuild ms (/metrics rebuild_seconds_sum)", "rebuild_metric_ms")
        row(s, "snapshot bytes read", "rebuild_snapshot_bytes", digits=0)
        row(s, "entries replayed", "rebuild_replayed_entries", digits=0)
        row(s, "restart → first idempotent produce acked, ms", "restart_to_first_produce_ms")
        row(s, "SIGTERM → exit, ms", "stop_ms")
        row(s, "producers in the state after the rebuild", "producers_active_after", digits=0)
        row(s, "segment rolls during the fill", "segment_rolls", digits=0)
        row(s, "fill batches/s (pipelined raw produce)", "fill_batches_per_s")
        row(s, "broker RSS after the rebuild, MiB", "rss_after_rebuild_mib")
    s = "s10-retention"
    row(s, "GiB filled (expired records, spread over the partitions)", "fill_gib", digits=2)
    row(s, "partitions filled", "partitions", digits=0)
    row(s, "fill MB/s (pipelined raw produce, acks=all)", "fill_mb_per_s")
    row(s, "retention: first truncation → fill's ledger files freed, s", "free_secs", digits=2)
    row(s, "retention: first truncation → last ledger delete (log), s", "free_secs_log", digits=2)
    row(s, "retention: metadata step (first → last truncation line), s", "metadata_step_secs", digits=2)
    row(s, "GiB/s freed", "freed_gib_per_s", digits=2)
    row(s, "segments dropped (/metrics)", "truncated_segments", digits=0)
    row(s, "bytes truncated (/metrics)", "truncated_bytes", digits=0)
    row(s, "check rounds that truncated", "check_rounds_that_truncated", digits=0)
    row(s, "load ack p50 ms, during the truncation", "during_p50_ms")
    row(s, "load ack p99 ms, during the truncation", "during_p99_ms")
    row(s, "load ack p99.9 ms, during the truncation", "during_p999_ms")
    row(s, "load ack max ms, during the truncation", "during_max_ms")
    row(s, "load ack p50 ms, as long after it", "after_p50_ms")
    row(s, "load ack p99 ms, as long after it", "after_p99_ms")
    row(s, "load ack p99.9 ms, as long after it", "after_p999_ms")
    row(s, "load ack max ms, as long after it", "after_max_ms")
    row(s, "load ack p99 ms, before the first check", "before_p99_ms")
    row(s, "load failures", "load_failures", digits=0)
    single("s7-machine", f"fio write MB/s, fdatasync every {args.fio_bs} B", fio_write_mb)
    single("s7-machine", "fio fdatasync p50 ms", fio_sync_p50, digits=3)
    single("s7-machine", "fio fdatasync p99 ms", fio_sync_p99, digits=3)
    single("s7-machine", "fio sequential read MB/s (direct, 1 MiB, QD 8)", fio_read_mb)
    single("s7-machine", "iperf3 loopback MB/s (1 stream)", iperf_mb)
    w("")
    caches = [l for l in lines if l.get("scenario") == "cache"]
    if caches:
        dropped = all(l.get("drop_caches") for l in caches)
        res = ", ".join(f"{l.get('resident_mib')}" for l in caches)
        w(f"Catch-up reads: `echo 3 > /proc/sys/vm/drop_caches` before each run "
          f"{'worked' if dropped else 'was NOT possible (no privilege); the data files were evicted with posix_fadvise(DONTNEED) instead'}; "
          f"data-dir bytes still in the page cache when each run started (fincore): {res} MiB.")
    if "machine" in groups:
        w(f"fio write size: {args.fio_bs} bytes ({args.fio_bs_source}); fio appends to a new file "
          f"(fallocate=none, ioengine=sync, fdatasync=1).")
    w("Ratios use medians.")
    w("Ack latency = produce() call → delivery report, with the in-flight window above "
      "(queue.buffering.max.kbytes / .messages bound both queued and in-flight messages).")
    if any(str(l.get("scenario", "")).startswith("s9-") for l in lines):
        w("Scenario 9: its own broker per run (--log-level info --log-format json); ids from InitProducerId, "
          "batches written in rounds by pipelined raw Produce requests; SIGTERM, restart on the same data dir "
          "and ports, then producer 0's next batch is retried from the spawn on until acknowledged (a lost state "
          "would refuse it), and the last producer's last batch is retried and must be answered as a duplicate. "
          "Rebuild figures: the new incarnation's \"stream state rebuilt\" log line and /metrics.")
    w("")
    idem = [l for l in lines if str(l.get("scenario", "")).startswith("s8-") and "error" not in l]
    if idem:
        w("Scenario 8, every run (each run measures both producers back to back on fresh topics, after a "
          "warm-up; overhead = (plain − idem) ÷ plain of MB/s; `-mif5`: max.in.flight.requests.per.connection=5 "
          "on both producers, the cap librdkafka puts on an idempotent one, so that only idempotence differs):")
        w("")
        w("| scenario | run | order | plain MB/s | idem MB/s | plain msgs/s | idem msgs/s | overhead % "
          "| broker CPU ms/MB plain / idem | client CPU cores plain / idem | load avg 1 min |")
        w("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for l in sorted(idem, key=lambda l: (l["scenario"], l.get("run", 0))):
            w(f"| {l['scenario']} | {l.get('run')} | {l.get('order', '?')} | {fmt(l.get('plain_mb_per_s'))} | "
              f"{fmt(l.get('idem_mb_per_s'))} | {fmt(l.get('plain_msgs_per_s'))} | {fmt(l.get('idem_msgs_per_s'))} | "
              f"{fmt(l.get('overhead_pct'))} | {fmt(l.get('plain_broker_cpu_ms_per_mb'))} / "
              f"{fmt(l.get('idem_broker_cpu_ms_per_mb'))} | {fmt(l.get('plain_client_cpu_util'))} / "
              f"{fmt(l.get('idem_client_cpu_util'))} | {fmt(l.get('plain_loadavg_1m'))} |")
        w("")
    txn = [l for l in lines if l.get("scenario") == "s11-transactions" and "error" not in l]
    if txn:
        counts = sorted({n for l in txn for n in l.get("producers", []) if isinstance(n, int)})
        w("Scenario 11, every run (per producer count, the transactional and the idempotent producers back to back "
          "on fresh topics of 8 partitions, producer i writing partition i, the leg's in-flight window split evenly "
          "over its producers; transactions of "
          f"{txn[0].get('txn_messages', '?')} messages; ratio = transactional ÷ idempotent; then "
          f"{txn[0].get('lat_txns', '?')} transactions of {txn[0].get('lat_txn_messages', '?')} messages read by a "
          "read_committed consumer):")
        w("")
        head = "| run | order | " + " | ".join(
            f"{n}p txn MB/s | {n}p idem MB/s | {n}p txn msgs/s | {n}p idem msgs/s | {n}p ratio" for n in counts)
        w(head + " | e2e p50 / p99 / max ms | after commit p50 / p99 ms | load avg 1 min |")
        w("| ---: | --- | " + " | ".join("---: | ---: | ---: | ---: | ---:" for _ in counts) + " | ---: | ---: | ---: |")
        for l in sorted(txn, key=lambda l: l.get("run", 0)):
            cells = " | ".join(
                f"{fmt(l.get(f'txn_{n}p_mb_per_s'))} | {fmt(l.get(f'idem_{n}p_mb_per_s'))} | "
                f"{fmt(l.get(f'txn_{n}p_msgs_per_s'))} | {fmt(l.get(f'idem_{n}p_msgs_per_s'))} | "
                f"{fmt(l.get(f'ratio_{n}p'), 2)}" for n in counts)
            load = l.get(f"txn_{counts[0]}p_loadavg_1m") if counts else None
            w(f"| {l.get('run')} | {l.get('order', '?')} | {cells} | {fmt(l.get('lat_e2e_p50_ms'))} / "
              f"{fmt(l.get('lat_e2e_p99_ms'))} / {fmt(l.get('lat_e2e_max_ms'))} | "
              f"{fmt(l.get('lat_visible_after_commit_p50_ms'))} / {fmt(l.get('lat_visible_after_commit_p99_ms'))} | "
              f"{fmt(load)} |")
        w("")
    all_errors = [(l.get("scenario"), l.get("run"), l["error"]) for l in lines if "error" in l]
    if all_errors:
        w("Errors:")
        for s, r, e in all_errors:
            w(f"- {s} run {r}: {e}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
