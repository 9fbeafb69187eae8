#!/usr/bin/env python3
"""Grow a topic with confluent-kafka's AdminClient while a kafka-python group consumer reads it.

Driven by compat-tests/tests/python_admin_partitions.rs against a real distlog broker:

1. confluent-kafka's AdminClient creates TOPIC with one partition; a confluent-kafka Producer
   writes two records to partition 0.
2. A kafka-python KafkaConsumer joins group GROUP, subscribed to TOPIC (metadata refreshed every
   second), and consumes those two records.
3. `create_partitions` to 3 with `validate_only=True`: accepted, the topic still has one
   partition. Then for real: the topic has 3 partitions.
4. Refusals: growing to 2 (a decrease) and growing a topic that does not exist; their error
   names are reported.
5. Three records are produced to partition 2; the group consumer notices the new partitions
   (kafka-python rejoins on the partition count change) and consumes them.

Prints ONE JSON document to stdout:

    {"confluent_kafka": "2.16.2", "kafka_python": "3.0.12",
     "partitions_after_validate_only": 1, "partitions_after": 3,
     "errors": {"decrease": "INVALID_PARTITIONS", "unknown": "UNKNOWN_TOPIC_OR_PART"},
     "records": [{"partition": 0, "offset": 0, "value": "old-0"}, ...],
     "assignment": [0, 1, 2]}

Exit status 0 on success, 2 on timeout, 1 on any other error (with a traceback on stderr).
"""

import argparse
import json
import logging
import sys
import time
import traceback

EXIT_TIMEOUT = 2


class Timeout(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--timeout-s", type=float, default=60.0)
    return p.parse_args(argv)


def partition_count(admin, topic):
    md = admin.list_topics(topic=topic, timeout=10)
    t = md.topics[topic]
    if t.error is not None:
        raise RuntimeError(f"metadata of {topic}: {t.error}")
    return len(t.partitions)


def grow(admin, topic, count, validate_only=False):
    """create_partitions; returns None on success or the error's name."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewPartitions

    futures = admin.create_partitions([NewPartitions(topic, count)], validate_only=validate_only,
                                      request_timeout=10)
    try:
        futures[topic].result(timeout=15)
        return None
    except KafkaException as e:
        return e.args[0].name()


def produce(bootstrap, topic, partition, values):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "broker.address.family": "v4"})
    failures = []
    for v in values:
        p.produce(topic, value=v.encode(), partition=partition,
                  on_delivery=lambda err, _msg: err and failures.append(str(err)))
    left = p.flush(30)
    if left or failures:
        raise RuntimeError(f"produce to {topic}/{partition}: {left} undelivered, errors {failures}")


def consume_until(consumer, records, done, deadline):
    while not done(records):
        if time.monotonic() > deadline:
            raise Timeout(f"consumed {records}")
        for tp, msgs in consumer.poll(timeout_ms=200).items():
            for m in msgs:
                records.append({"partition": tp.partition, "offset": m.offset,
                                "value": m.value.decode()})


def run(args):
    import confluent_kafka
    import kafka
    from confluent_kafka.admin import AdminClient, NewTopic

    deadline = time.monotonic() + args.timeout_s
    admin = AdminClient({"bootstrap.servers": args.bootstrap, "broker.address.family": "v4"})
    admin.create_topics([NewTopic(args.topic, num_partitions=1, replication_factor=1)],
                        request_timeout=10)[args.topic].result(timeout=15)
    produce(args.bootstrap, args.topic, 0, ["old-0", "old-1"])

    consumer = kafka.KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        metadata_max_age_ms=1000,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    consumer.subscribe([args.topic])
    records = []
    try:
        consume_until(consumer, records, lambda r: len(r) >= 2, deadline)

        errors = {}
        validate = grow(admin, args.topic, 3, validate_only=True)
        if validate is not None:
            raise RuntimeError(f"validate_only create_partitions failed: {validate}")
        after_validate = partition_count(admin, args.topic)
        real = grow(admin, args.topic, 3)
        if real is not None:
            raise RuntimeError(f"create_partitions failed: {real}")
        after = partition_count(admin, args.topic)
        errors["decrease"] = grow(admin, args.topic, 2)
        errors["unknown"] = grow(admin, args.topic + "-missing", 4)

        produce(args.bootstrap, args.topic, 2, ["new-0", "new-1", "new-2"])
        consume_until(consumer, records,
                      lambda r: sum(1 for x in r if x["partition"] == 2) >= 3, deadline)
        assignment = sorted(tp.partition for tp in consumer.assignment())
    finally:
        consumer.close()
    return {
        "confluent_kafka": confluent_kafka.version()[0],
        "kafka_python": kafka.__version__,
        "partitions_after_validate_only": after_validate,
        "partitions_after": after,
        "errors": errors,
        "records": records,
        "assignment": assignment,
    }


def main(argv):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        print(json.dumps(run(args)))
        return 0
    except Timeout as e:
        print(f"timeout: {e}", file=sys.stderr)
        return EXIT_TIMEOUT
    except Exception:
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
