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
must end at 5. The script prints ONE JSON document to stdout:

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

    def values(self, name):
        return ["%s-%d" % (name, i) for i in range(self.args.count)]

    def record(self, name, outcome, values, offsets):
        self.transactions.append(
            {"name": name, "outcome": outcome, "values": values, "offsets": offsets}
        )


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
