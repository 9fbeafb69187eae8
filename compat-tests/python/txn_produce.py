#!/usr/bin/env python3
"""Run three transactions with a transactional Python producer against partition 0 of a topic.

Used by compat-tests/tests/python_transactions.rs against a real distlog process. One
transactional id, one producer, three transactions of `--count` records each, in order:

1. "committed": values `committed-<i>`, committed with commit_transaction();
2. "aborted":   values `aborted-<i>`, every record acknowledged, then abort_transaction();
3. "after":     values `after-<i>`, committed (the producer goes on after an abort).

Clients:

* `--client kafka-python`: `KafkaProducer(transactional_id=...)` (kafka-python >= 2.1 has
  init_transactions / begin_transaction / commit_transaction / abort_transaction);
* `--client aiokafka`: `AIOKafkaProducer(transactional_id=...)` (start() initialises);
* `--client confluent-kafka`: librdkafka's Python binding, `Producer({"transactional.id": ...})`.

Every record is awaited (its acknowledgement gives its offset) before the transaction ends. With
`--group G`, the first two transactions also send an offset of partition 0 of the topic to group
G (`send_offsets_to_transaction`): 5 in "committed", 10 in "aborted", so G's committed offset
must end at 5. With `--consume`, the same client then reads partition 0 from offset 0 to its end
at each isolation level (its own filtering of aborted records and markers) and reports
`"read": {"read_committed": {"end": E, "records": [[offset, value], ...]}, ...}`. The script
prints ONE JSON document to stdout:

    {"client": "kafka-python", "version": "3.0.12", "topic": ..., "transactional_id": ...,
     "transactions": [{"name": "committed", "outcome": "committed",
                       "values": ["committed-0", ...], "offsets": [0, 1, ...]}, ...],
     "elapsed_s": 1.2}

The exit status is 0 on success, 2 on timeout and 1 on any other failure (the document then
carries an "error" field). Logging goes to stderr.
"""

import argparse
import asyncio
import json
import logging
import sys
import time
import traceback

EXIT_TIMEOUT = 2
PLAN = [("committed", "commit"), ("aborted", "abort"), ("after", "commit")]
# With --group: the offset (of partition 0 of the topic itself) each transaction sends to the
# group with send_offsets_to_transaction; the last sends none. Only the committed one counts.
GROUP_OFFSETS = {"committed": 5, "aborted": 10}


class Timeout(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--client", required=True, choices=["kafka-python", "aiokafka", "confluent-kafka"])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--transactional-id", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--group", help="send offsets to this consumer group in the transactions")
    p.add_argument(
        "--consume",
        action="store_true",
        help="afterwards read partition 0 with the same client at both isolation levels",
    )
    p.add_argument("--timeout-s", type=float, default=60.0, help="overall deadline")
    p.add_argument("--debug", action="store_true", help="DEBUG logging of the client to stderr")
    return p.parse_args(argv)


class Run:
    def __init__(self, args):
        self.args = args
        self.started = time.monotonic()
        self.deadline = self.started + args.timeout_s
        self.transactions = []

    def remaining_s(self):
        return max(self.deadline - time.monotonic(), 0.001)

    def expected_end(self):
        """Where the partition ends once every transaction is marked: each marker takes one."""
        return len(PLAN) * (self.args.count + 1)

    def wait_end(self, end_offset):
        """Polls `end_offset()` (at the reader's isolation level) until it is `expected_end()`:
        commit_transaction may return before the markers are written."""
        end = self.expected_end()
        while end_offset() != end:
            if time.monotonic() >= self.deadline:
                raise Timeout(f"the end offset never reached {end}")
            time.sleep(0.1)
        return end

    def values(self, name):
        return ["%s-%d" % (name, i) for i in range(self.args.count)]

    def record(self, name, outcome, values, offsets):
        self.transactions.append(
            {"name": name, "outcome": outcome, "values": values, "offsets": offsets}
        )


def read_kafka_python(run, isolation):
    import kafka

    args = run.args
    tp = kafka.TopicPartition(args.topic, 0)
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        isolation_level=isolation,
        enable_auto_commit=False,
        group_id=None,
    )
    try:
        consumer.assign([tp])
        end = run.wait_end(lambda: consumer.end_offsets([tp])[tp])
        consumer.seek(tp, 0)
        records = []
        while consumer.position(tp) < end:
            if time.monotonic() >= run.deadline:
                raise Timeout(f"reading {isolation} to {end}: at {consumer.position(tp)}")
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend([r.offset, r.value.decode()] for r in batch)
        return {"end": end, "records": records}
    finally:
        consumer.close()


def read_aiokafka(run, isolation):
    return asyncio.run(read_aiokafka_async(run, isolation))


async def read_aiokafka_async(run, isolation):
    import aiokafka

    args = run.args
    tp = aiokafka.TopicPartition(args.topic, 0)
    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        isolation_level=isolation,
        enable_auto_commit=False,
        group_id=None,
    )
    await asyncio.wait_for(consumer.start(), timeout=run.remaining_s())
    try:
        consumer.assign([tp])
        end = run.expected_end()
        while (await consumer.end_offsets([tp]))[tp] != end:
            if time.monotonic() >= run.deadline:
                raise Timeout(f"the end offset never reached {end}")
            await asyncio.sleep(0.1)
        consumer.seek(tp, 0)
        records = []
        while await consumer.position(tp) < end:
            if time.monotonic() >= run.deadline:
                raise Timeout(f"reading {isolation} to {end}: at {await consumer.position(tp)}")
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend([r.offset, r.value.decode()] for r in batch)
        return {"end": end, "records": records}
    finally:
        await asyncio.wait_for(consumer.stop(), timeout=10)


def read_confluent_kafka(run, isolation):
    import confluent_kafka

    args = run.args
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "broker.address.family": "v4",
            "group.id": "txn-produce-reader",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        tp = confluent_kafka.TopicPartition(args.topic, 0)
        end = run.wait_end(lambda: consumer.get_watermark_offsets(tp, timeout=run.remaining_s())[1])
        consumer.assign([confluent_kafka.TopicPartition(args.topic, 0, 0)])
        records = []
        while True:
            if time.monotonic() >= run.deadline:
                raise Timeout(f"reading {isolation} to {end}")
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    break
                raise RuntimeError(f"consumer error: {msg.error()}")
            records.append([msg.offset(), msg.value().decode()])
        return {"end": end, "records": records}
    finally:
        consumer.close()


READERS = {
    "kafka-python": read_kafka_python,
    "aiokafka": read_aiokafka,
    "confluent-kafka": read_confluent_kafka,
}


def run_kafka_python(run):
    import kafka
    from kafka.structs import OffsetAndMetadata

    args = run.args
    producer = kafka.KafkaProducer(
        bootstrap_servers=args.bootstrap, transactional_id=args.transactional_id
    )
    try:
        producer.init_transactions()
        for name, end in PLAN:
            producer.begin_transaction()
            values = run.values(name)
            futures = [
                producer.send(args.topic, value=v.encode(), partition=0) for v in values
            ]
            producer.flush(timeout=run.remaining_s())
            offsets = [f.get(timeout=run.remaining_s()).offset for f in futures]
            if args.group and name in GROUP_OFFSETS:
                producer.send_offsets_to_transaction(
                    {
                        kafka.TopicPartition(args.topic, 0): OffsetAndMetadata(
                            GROUP_OFFSETS[name], "", -1
                        )
                    },
                    args.group,
                )
            if end == "commit":
                producer.commit_transaction()
                run.record(name, "committed", values, offsets)
            else:
                producer.abort_transaction()
                run.record(name, "aborted", values, offsets)
    finally:
        producer.close(timeout=10)
    return kafka.__version__


def run_aiokafka(run):
    return asyncio.run(run_aiokafka_async(run))


async def run_aiokafka_async(run):
    import aiokafka

    args = run.args

    async def bounded(awaitable, what):
        try:
            return await asyncio.wait_for(awaitable, timeout=run.remaining_s())
        except asyncio.TimeoutError:
            raise Timeout(f"timed out {what}") from None

    producer = aiokafka.AIOKafkaProducer(
        bootstrap_servers=args.bootstrap, transactional_id=args.transactional_id
    )
    await bounded(producer.start(), "starting (init_transactions)")
    try:
        for name, end in PLAN:
            await bounded(producer.begin_transaction(), f"beginning {name}")
            values = run.values(name)
            offsets = []
            for v in values:
                md = await bounded(
                    producer.send_and_wait(args.topic, value=v.encode(), partition=0),
                    f"sending {v}",
                )
                offsets.append(md.offset)
            if args.group and name in GROUP_OFFSETS:
                await bounded(
                    producer.send_offsets_to_transaction(
                        {aiokafka.TopicPartition(args.topic, 0): GROUP_OFFSETS[name]}, args.group
                    ),
                    f"sending offsets in {name}",
                )
            if end == "commit":
                await bounded(producer.commit_transaction(), f"committing {name}")
                run.record(name, "committed", values, offsets)
            else:
                await bounded(producer.abort_transaction(), f"aborting {name}")
                run.record(name, "aborted", values, offsets)
    finally:
        await asyncio.wait_for(producer.stop(), timeout=10)
    return aiokafka.__version__


def run_confluent_kafka(run):
    import confluent_kafka

    args = run.args
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "broker.address.family": "v4",
            "transactional.id": args.transactional_id,
        }
    )
    consumer = None

    def group_metadata():
        # The group's metadata from a consumer of the group that never subscribes.
        nonlocal consumer
        if consumer is None:
            consumer = confluent_kafka.Consumer(
                {
                    "bootstrap.servers": args.bootstrap,
                    "broker.address.family": "v4",
                    "group.id": args.group,
                    "enable.auto.commit": False,
                }
            )
        return consumer.consumer_group_metadata()

    producer.init_transactions(run.remaining_s())
    for name, end in PLAN:
        producer.begin_transaction()
        values = run.values(name)
        offsets = [None] * len(values)
        errors = []

        for i, v in enumerate(values):

            def on_delivery(err, msg, i=i):
                if err is not None:
                    errors.append(f"{values[i]}: {err}")
                else:
                    offsets[i] = msg.offset()

            producer.produce(args.topic, value=v.encode(), partition=0, on_delivery=on_delivery)
        if producer.flush(run.remaining_s()) != 0:
            raise Timeout(f"flushing {name}")
        if errors:
            raise RuntimeError(f"{name}: not delivered: {errors}")
        if args.group and name in GROUP_OFFSETS:
            producer.send_offsets_to_transaction(
                [confluent_kafka.TopicPartition(args.topic, 0, GROUP_OFFSETS[name])],
                group_metadata(),
                run.remaining_s(),
            )
        if end == "commit":
            producer.commit_transaction(run.remaining_s())
            run.record(name, "committed", values, offsets)
        else:
            producer.abort_transaction(run.remaining_s())
            run.record(name, "aborted", values, offsets)
    if consumer is not None:
        consumer.close()
    return "%s (librdkafka %s)" % (confluent_kafka.version(), confluent_kafka.libversion()[0])


def main(argv):
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    run = Run(args)
    doc = {
        "client": args.client,
        "topic": args.topic,
        "transactional_id": args.transactional_id,
        "count": args.count,
        "group": args.group,
        "group_offsets": GROUP_OFFSETS if args.group else {},
    }
    status = 0
    try:
        runner = {
            "kafka-python": run_kafka_python,
            "aiokafka": run_aiokafka,
            "confluent-kafka": run_confluent_kafka,
        }[args.client]
        doc["version"] = runner(run)
        if args.consume:
            doc["read"] = {
                isolation: READERS[args.client](run, isolation)
                for isolation in ("read_committed", "read_uncommitted")
            }
    except Timeout as e:
        doc["error"] = str(e)
        status = EXIT_TIMEOUT
    except Exception as e:  # noqa: BLE001 - every failure is reported in the document
        doc["error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
        status = 1
    doc["transactions"] = run.transactions
    doc["elapsed_s"] = round(time.monotonic() - run.started, 3)
    print(json.dumps(doc))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
