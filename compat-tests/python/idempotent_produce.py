#!/usr/bin/env python3
"""Produce numbered messages to partition 0 of a topic with an idempotent Python producer.

Used by compat-tests/tests/python_idempotence.rs against a real distlog process. Two clients:

* `--client kafka-python`: `KafkaProducer(bootstrap_servers=...)` with every other setting left
  at its default. kafka-python 3 enables idempotence by default (KIP-679: enable_idempotence=True,
  acks=all, retries=inf, 5 requests in flight) unless a conflicting setting or a broker older
  than 0.11 silently turns it off, so the script checks that it stayed on.
* `--client aiokafka`: `AIOKafkaProducer(bootstrap_servers=..., enable_idempotence=True)`.

Message i has no key and the value `m-%07d` % i (`m-0000000`, `m-0000001`, ...). Every send is
made first, then every future is awaited. The script then checks the producer really was
idempotent: it holds a producer id (>= 0) got through exactly one InitProducerId (no reset, no
epoch bump, which would mean the broker answered a produce with a producer-state error) and its
next sequence number for the partition is `count` (every batch carried sequences).

It prints ONE JSON document to stdout:

    {"client": "kafka-python", "version": "3.0.12", "topic": ..., "count": 10000,
     "idempotence": true, "acks": -1, "api_version": [3, 2],
     "producer_id": 0, "producer_epoch": 0, "producer_ids": [[-1, -1], [0, 0]],
     "next_sequence": 10000,
     "acked": [[0, 0], [0, 1], ...],          # (partition, offset) per message, in send order
     "offsets_exact": true,                  # acked == [(0, 0), ..., (0, count-1)]
     "first_offset": 0, "last_offset": 9999,
     "client_errors": [],                    # WARNING+ lines the client logged before closing
     "elapsed_s": 1.2}

`producer_ids` lists every (producer id, epoch) the client's transaction manager was given, in
order (a reset shows as (-1, -1); kafka-python sets (-1, -1) once before its first
InitProducerId, so its expected list is [[-1, -1], [id, epoch]]). `api_version` (kafka-python
only) is the broker version the client settled on. The exit status is 0 on success, 2 on timeout and 1 on any
other failure, including a producer that turned out not to be idempotent or acknowledged offsets
other than 0..count-1; the JSON document is printed in every case the script got that far, with
an "error" field. Logging (INFO, or DEBUG with --debug) goes to stderr.
"""

import argparse
import asyncio
import json
import logging
import sys
import time
import traceback

EXIT_TIMEOUT = 2


class Timeout(Exception):
    pass


class NotIdempotent(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--client", required=True, choices=["kafka-python", "aiokafka"])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--timeout-s", type=float, default=90.0, help="overall deadline")
    p.add_argument("--debug", action="store_true", help="DEBUG logging of the client to stderr")
    return p.parse_args(argv)


def value(i):
    return b"m-%07d" % i


class ClientProblems(logging.Handler):
    """Keeps the WARNING and ERROR lines the client libraries log while `active`."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.lines = []
        self.active = True

    def emit(self, record):
        if self.active and record.name.split(".")[0] in ("kafka", "aiokafka"):
            self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


class Run:
    def __init__(self, args, client, version, problems):
        self.args = args
        self.client = client
        self.version = version
        self.problems = problems
        self.started = time.monotonic()
        self.deadline = self.started + args.timeout_s
        self.acked = []
        self.producer_ids = []
        # What a client sets before its one InitProducerId (kafka-python clears the id to
        # (-1, -1) as it enqueues the request; aiokafka only stores the answer).
        self.initial_ids = []
        self.facts = {}
        self.error = None

    def remaining_s(self):
        return max(self.deadline - time.monotonic(), 0.001)

    def timeout(self, what):
        return Timeout(f"timed out after {self.args.timeout_s}s {what} ({len(self.acked)} acknowledged)")

    def check(self):
        """Raises unless every message was acknowledged at offsets 0..count-1 of partition 0 by a
        producer that kept one producer id and epoch and numbered every record."""
        n = self.args.count
        f = self.facts
        if not f.get("idempotence"):
            raise NotIdempotent(f"{self.client} is not idempotent: {f}")
        if f.get("acks") != -1:
            raise NotIdempotent(f"{self.client} does not use acks=all: {f}")
        if f.get("producer_id") is None or f["producer_id"] < 0:
            raise NotIdempotent(f"{self.client} holds no producer id: {f}")
        expected = self.initial_ids + [[f["producer_id"], f["producer_epoch"]]]
        if self.producer_ids != expected:
            raise NotIdempotent(
                f"{self.client} was given producer ids and epochs {self.producer_ids}, not "
                f"{expected}: a reset or an epoch bump after a producer-state error"
            )
        if f.get("next_sequence") != n:
            raise NotIdempotent(f"next sequence {f.get('next_sequence')} after {n} records: {f}")
        if not self.offsets_exact():
            wrong = [(i, a) for i, a in enumerate(self.acked) if a != [0, i]][:10]
            raise AssertionError(
                f"{len(self.acked)} acknowledged for {n} sent; first at the wrong place: {wrong}"
            )

    def offsets_exact(self):
        return self.acked == [[0, i] for i in range(self.args.count)]

    def document(self):
        doc = {
            "client": self.client,
            "version": self.version,
            "topic": self.args.topic,
            "count": self.args.count,
            **self.facts,
            "producer_ids": self.producer_ids,
            "acked": self.acked,
            "offsets_exact": self.offsets_exact(),
            "first_offset": self.acked[0][1] if self.acked else None,
            "last_offset": self.acked[-1][1] if self.acked else None,
            "client_errors": self.problems.lines,
            "elapsed_s": round(time.monotonic() - self.started, 3),
        }
        if self.error is not None:
            doc["error"] = self.error
        return doc


# ---------------------------------------------------------------------------------------------
# kafka-python


def run_kafka_python(run):
    import kafka.errors
    from kafka import KafkaProducer, TopicPartition
    from kafka.producer.transaction_manager import TransactionManager

    args = run.args
    # Every producer id and epoch the transaction manager is given (a reset or an epoch bump
    # after UNKNOWN_PRODUCER_ID or OUT_OF_ORDER_SEQUENCE_NUMBER goes through here too).
    original = TransactionManager.set_producer_id_and_epoch

    def recording(self, pid_and_epoch):
        run.producer_ids.append([pid_and_epoch.producer_id, pid_and_epoch.epoch])
        return original(self, pid_and_epoch)

    TransactionManager.set_producer_id_and_epoch = recording
    run.initial_ids = [[-1, -1]]

    # Defaults only: idempotence must be kafka-python's own choice.
    producer = KafkaProducer(bootstrap_servers=args.bootstrap)
    try:
        tm = producer._transaction_manager
        run.facts.update(
            idempotence=bool(producer.config["enable_idempotence"]) and tm is not None,
            acks=producer.config["acks"],
            api_version=list(producer.config["api_version"] or ()),
        )
        if tm is None:
            raise NotIdempotent(
                f"KafkaProducer() with defaults is not idempotent (config {run.facts})"
            )
        futures = [producer.send(args.topic, value=value(i), partition=0) for i in range(args.count)]
        producer.flush(timeout=run.remaining_s())
        for i, fut in enumerate(futures):
            try:
                md = fut.get(timeout=run.remaining_s())
            except kafka.errors.KafkaTimeoutError:
                raise run.timeout(f"waiting for message {i}") from None
            run.acked.append([md.partition, md.offset])
        pe = tm.producer_id_and_epoch
        run.facts.update(
            producer_id=pe.producer_id,
            producer_epoch=pe.epoch,
            next_sequence=tm.sequence_number(TopicPartition(args.topic, 0)),
        )
        run.check()
    finally:
        run.problems.active = False
        producer.close(timeout=10)


# ---------------------------------------------------------------------------------------------
# aiokafka


def run_aiokafka(run):
    asyncio.run(run_aiokafka_async(run))


async def run_aiokafka_async(run):
    from aiokafka import AIOKafkaProducer, TopicPartition
    from aiokafka.producer.transaction_manager import TransactionManager

    args = run.args
    original = TransactionManager.set_pid_and_epoch

    def recording(self, pid, epoch):
        run.producer_ids.append([pid, epoch])
        return original(self, pid, epoch)

    TransactionManager.set_pid_and_epoch = recording

    async def bounded(awaitable, what):
        try:
            return await asyncio.wait_for(awaitable, timeout=run.remaining_s())
        except asyncio.TimeoutError:
            raise run.timeout(what) from None

    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, enable_idempotence=True)
    started = False
    try:
        await bounded(producer.start(), "starting the producer")
        started = True
        tm = producer._txn_manager
        run.facts.update(
            idempotence=tm is not None,
            acks=producer._sender._acks,
        )
        futures = []
        for i in range(args.count):
            # send() waits while the accumulator is full and returns the delivery future.
            futures.append(await bounded(producer.send(args.topic, value(i), partition=0), f"sending {i}"))
        for i, fut in enumerate(futures):
            md = await bounded(fut, f"waiting for message {i}")
            run.acked.append([md.partition, md.offset])
        run.facts.update(
            producer_id=tm.producer_id,
            producer_epoch=tm.producer_epoch,
            next_sequence=tm.sequence_number(TopicPartition(args.topic, 0)),
        )
        run.check()
    finally:
        run.problems.active = False
        if started:
            try:
                await asyncio.wait_for(producer.stop(), timeout=10)
            except asyncio.TimeoutError:
                logging.getLogger("idempotent_produce").error("producer.stop() took over 10 s")


# ---------------------------------------------------------------------------------------------


def main(argv):
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.count < 1:
        print("--count must be >= 1", file=sys.stderr)
        return 1
    problems = ClientProblems()
    logging.getLogger().addHandler(problems)
    if args.client == "kafka-python":
        import kafka

        run, driver = Run(args, "kafka-python", kafka.__version__, problems), run_kafka_python
    else:
        import aiokafka

        run, driver = Run(args, "aiokafka", aiokafka.__version__, problems), run_aiokafka
    status = 0
    try:
        driver(run)
    except BaseException as e:  # noqa: BLE001 - reported in the document and the exit status
        run.error = "".join(traceback.format_exception(e)).strip()
        print(run.error, file=sys.stderr, flush=True)
        status = EXIT_TIMEOUT if isinstance(e, Timeout) else 1
    print(json.dumps(run.document()), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
