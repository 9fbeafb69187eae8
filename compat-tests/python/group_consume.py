#!/usr/bin/env python3
"""Consume a topic as a member of a Kafka consumer group with kafka-python or aiokafka.

Driven by compat-tests/tests/python_clients.rs against a real distlog broker. The consumer
subscribes to one topic with `group_id` set, `auto_offset_reset=earliest` and auto commit off, so
its start position comes from the group's committed offsets (OffsetFetch) and only its own
synchronous commits (OffsetCommit) move them. After every non-empty batch it commits
synchronously.

Two ways to end a run:

* `--expect N`: consume until N records arrived, then keep polling for `--quiet-s` seconds (so
  extra records would be seen too); with N = 0 the quiet period starts once the consumer has an
  assignment and knows its positions.
* `--stop-file PATH`: consume until PATH exists (for several members run by one test, which
  watches their `--status-file`s and decides when everything has been consumed).

Then it commits synchronously once more (lone members only: see final_commit_needed), reads back the committed offsets of every partition of the topic
(OffsetFetch), closes (LeaveGroup) and prints ONE JSON document to stdout:

    {"client": "kafka-python", "version": "3.0.12", "group": ..., "topic": ...,
     "records": [{"partition": 0, "offset": 0, "key": "6b2d30", "value": "..."}, ...],
     "assignment": [0, 1, 2], "assignments": [[0, 1, 2]],
     "committed": {"0": 1000, "1": 1000, "2": 1000}, "positions": {"0": 1000, ...},
     "elapsed_s": 1.5}

Keys and values are lowercase hex (null for a null key or value). Records are in the order the
client returned them. The exit status is 0 on success, 2 on timeout and 1 on any other error; the
JSON document is printed in every case where the consumer got that far, for diagnosis. Logging
(INFO, or DEBUG with --debug) goes to stderr; the line "group_consume: closing the consumer"
marks the start of a successful run's close.
"""

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import traceback

EXIT_TIMEOUT = 2

# Logged (INFO, logger "group_consume") right before the consumer is closed after a successful
# run. The test judges the client's ERROR lines only up to this line: while closing, a client may
# log errors of its own shutdown (kafka-python 3 races its socket teardown against its network
# thread) that say nothing about the broker.
CLOSING = "closing the consumer"


class Timeout(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--client", required=True, choices=["kafka-python", "aiokafka"])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    end = p.add_mutually_exclusive_group(required=True)
    end.add_argument("--expect", type=int, help="stop after this many records (then --quiet-s)")
    end.add_argument("--stop-file", help="stop once this file exists")
    p.add_argument("--quiet-s", type=float, default=2.0,
                   help="with --expect: keep polling this long after the last expected record")
    p.add_argument("--timeout-s", type=float, default=60.0, help="overall deadline")
    p.add_argument("--status-file", help="keep {assignment, consumed} here, replaced atomically")
    p.add_argument("--client-id", default=None)
    p.add_argument("--session-timeout-ms", type=int, default=10000)
    p.add_argument("--debug", action="store_true", help="DEBUG logging of the client to stderr")
    return p.parse_args(argv)


def hexify(b):
    return None if b is None else bytes(b).hex()


class Run:
    """What one consumer run saw, shared by both client drivers."""

    def __init__(self, args, client, version):
        self.args = args
        self.started = time.monotonic()
        self.deadline = self.started + args.timeout_s
        self.records = []
        self.assignments = []
        self.assignment = []
        self.committed = {}
        self.positions = {}
        self.error = None
        self.final_assignment = None
        self.client = client
        self.version = version
        self._last_status = None

    def remaining_s(self):
        return self.deadline - time.monotonic()

    def check_deadline(self, what):
        if self.remaining_s() <= 0:
            raise Timeout(
                f"timed out after {self.args.timeout_s}s {what} "
                f"(consumed {len(self.records)}, assignment {self.assignment})"
            )

    def on_assigned(self, partitions):
        parts = sorted(tp.partition for tp in partitions if tp.topic == self.args.topic)
        self.assignment = parts
        self.assignments.append(parts)
        logging.info("assigned %s", parts)
        self.write_status()

    def freeze(self):
        """Keeps the assignment held at the end, before close() revokes it."""
        if self.final_assignment is None:
            self.final_assignment = list(self.assignment)

    def on_revoked(self, partitions):
        logging.info("revoked %s", sorted(tp.partition for tp in partitions))
        self.assignment = []
        self.write_status()

    def add(self, partition, offset, key, value):
        self.records.append(
            {"partition": partition, "offset": offset, "key": hexify(key), "value": hexify(value)}
        )

    def write_status(self):
        path = self.args.status_file
        if not path:
            return
        status = {"assignment": self.assignment, "consumed": len(self.records)}
        if status == self._last_status:
            return
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(status, f)
        os.replace(tmp, path)
        self._last_status = status

    def final_commit_needed(self):
        # Every batch was committed when it arrived. A lone member (--expect) commits once more
        # anyway; members stopped together (--stop-file) do not, since the first to leave starts
        # a rebalance that may reject the other's redundant commit.
        return self.args.stop_file is None

    def stop_requested(self):
        return self.args.stop_file is not None and os.path.exists(self.args.stop_file)

    def document(self):
        doc = {
            "client": self.client,
            "version": self.version,
            "group": self.args.group,
            "topic": self.args.topic,
            "records": self.records,
            "assignment": self.assignment if self.final_assignment is None else self.final_assignment,
            "assignments": self.assignments,
            "committed": {str(p): o for p, o in sorted(self.committed.items())},
            "positions": {str(p): o for p, o in sorted(self.positions.items())},
            "elapsed_s": round(time.monotonic() - self.started, 3),
        }
        if self.error is not None:
            doc["error"] = self.error
        return doc


class Progress:
    """Decides when a run is done: N records plus a quiet period, or the stop file."""

    def __init__(self, run):
        self.run = run
        self.quiet_since = None

    def done(self, ready):
        """`ready`: the consumer has an assignment and knows its positions."""
        run = self.run
        if run.args.stop_file is not None:
            return run.stop_requested()
        if not ready or len(run.records) < run.args.expect:
            return False
        now = time.monotonic()
        if self.quiet_since is None:
            self.quiet_since = now
        return now - self.quiet_since >= run.args.quiet_s


# ---------------------------------------------------------------------------------------------
# kafka-python


def run_kafka_python(args):
    import kafka
    from kafka import KafkaConsumer, TopicPartition
    from kafka.consumer.subscription_state import ConsumerRebalanceListener

    run = Run(args, "kafka-python", kafka.__version__)

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            run.on_revoked(revoked)

        def on_partitions_assigned(self, assigned):
            run.on_assigned(assigned)

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        client_id=args.client_id or f"distlog-compat-{os.getpid()}",
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=args.session_timeout_ms,
        heartbeat_interval_ms=1000,
        max_poll_interval_ms=30000,
        request_timeout_ms=30000,
        fetch_max_wait_ms=100,
        retry_backoff_ms=50,
        reconnect_backoff_ms=50,
        reconnect_backoff_max_ms=500,
    )
    try:
        consumer.subscribe([args.topic], listener=Listener())
        # Know the topic's partitions before the first JoinGroup. Otherwise the first leader
        # assigns from empty metadata and rejoins as soon as the metadata arrives, and in
        # kafka-python 3.0.12 a poll() whose timeout expires inside that second join drops its
        # SyncGroup result: the member never applies its assignment and never heartbeats again
        # (a client race: join_group_async() re-checks need_rejoin(), which the completed
        # assignment already satisfied, instead of collecting the finished join task).
        consumer.partitions_for_topic(args.topic)
        progress = Progress(run)
        ready = False
        while True:
            run.check_deadline("consuming")
            batch = consumer.poll(timeout_ms=100, max_records=500)
            got = 0
            for tp, msgs in sorted(batch.items()):
                for m in msgs:
                    run.add(tp.partition, m.offset, m.key, m.value)
                    got += 1
            if got:
                consumer.commit()
            if not ready and run.assignment:
                # position() resolves each assigned partition's start (the committed offset
                # through OffsetFetch, or earliest through ListOffsets) before the quiet period.
                for p in run.assignment:
                    consumer.position(TopicPartition(args.topic, p), timeout_ms=10000)
                ready = True
            run.write_status()
            if progress.done(ready):
                break
        if run.final_commit_needed():
            consumer.commit()
        assigned = [TopicPartition(args.topic, p) for p in run.assignment]
        for tp in assigned:
            run.positions[tp.partition] = consumer.position(tp, timeout_ms=10000)
        for p in sorted(consumer.partitions_for_topic(args.topic) or []):
            run.committed[p] = consumer.committed(TopicPartition(args.topic, p), timeout_ms=10000)
    except BaseException:
        run.freeze()
        consumer.close(autocommit=False, timeout_ms=5000)
        run.write_status()
        raise_with(run)
    run.freeze()
    logging.getLogger("group_consume").info(CLOSING)
    consumer.close(autocommit=False, timeout_ms=10000)
    return run


# ---------------------------------------------------------------------------------------------
# aiokafka


def run_aiokafka(args):
    return asyncio.run(run_aiokafka_async(args))


async def run_aiokafka_async(args):
    import aiokafka
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

    run = Run(args, "aiokafka", aiokafka.__version__)

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            run.on_revoked(revoked)

        def on_partitions_assigned(self, assigned):
            run.on_assigned(assigned)

    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        client_id=args.client_id or f"distlog-compat-{os.getpid()}",
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=args.session_timeout_ms,
        heartbeat_interval_ms=1000,
        max_poll_interval_ms=30000,
        rebalance_timeout_ms=30000,
        request_timeout_ms=30000,
        fetch_max_wait_ms=100,
        retry_backoff_ms=50,
    )

    async def bounded(coro, what):
        remaining = max(run.remaining_s(), 0.001)
        try:
            return await asyncio.wait_for(coro, timeout=remaining)
        except asyncio.TimeoutError:
            raise Timeout(
                f"timed out after {args.timeout_s}s in {what} "
                f"(consumed {len(run.records)}, assignment {run.assignment})"
            ) from None

    async def stop():
        try:
            await asyncio.wait_for(consumer.stop(), timeout=10)
        except asyncio.TimeoutError:
            logging.error("consumer.stop() did not finish within 10 s")

    try:
        await bounded(consumer.start(), "start")
        consumer.subscribe([args.topic], listener=Listener())
        progress = Progress(run)
        ready = False
        while True:
            run.check_deadline("consuming")
            batch = await bounded(consumer.getmany(timeout_ms=100, max_records=500), "getmany")
            got = 0
            for tp, msgs in sorted(batch.items()):
                for m in msgs:
                    run.add(tp.partition, m.offset, m.key, m.value)
                    got += 1
            if got:
                await bounded(consumer.commit(), "commit")
            if not ready and run.assignment:
                for p in run.assignment:
                    await bounded(consumer.position(TopicPartition(args.topic, p)), "position")
                ready = True
            run.write_status()
            if progress.done(ready):
                break
        if run.final_commit_needed():
            await bounded(consumer.commit(), "final commit")
        for p in run.assignment:
            tp = TopicPartition(args.topic, p)
            run.positions[p] = await bounded(consumer.position(tp), "position")
        for p in sorted(consumer.partitions_for_topic(args.topic) or []):
            tp = TopicPartition(args.topic, p)
            run.committed[p] = await bounded(consumer.committed(tp), "committed")
    except BaseException:
        run.freeze()
        await stop()
        run.write_status()
        raise_with(run)
    run.freeze()
    logging.getLogger("group_consume").info(CLOSING)
    await stop()
    return run


# ---------------------------------------------------------------------------------------------


class RunFailed(Exception):
    def __init__(self, run, cause):
        super().__init__(str(cause))
        self.run = run
        self.cause = cause


def raise_with(run):
    """Re-raises the exception being handled, carrying the run's partial results."""
    _, exc, _ = sys.exc_info()
    run.error = "".join(traceback.format_exception(exc)).strip()
    raise RunFailed(run, exc) from exc


def main(argv):
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.expect is not None and args.expect < 0:
        print("--expect must be >= 0", file=sys.stderr)
        return 1
    driver = run_kafka_python if args.client == "kafka-python" else run_aiokafka
    try:
        run = driver(args)
    except RunFailed as failed:
        print(json.dumps(failed.run.document()), flush=True)
        print(failed.run.error, file=sys.stderr, flush=True)
        return EXIT_TIMEOUT if isinstance(failed.cause, Timeout) else 1
    print(json.dumps(run.document()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
