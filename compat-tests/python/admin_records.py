#!/usr/bin/env python3
"""DeleteRecords and ListOffsets through the Python admin clients against a running distlog.

confluent-kafka's AdminClient (librdkafka) and kafka-python's KafkaAdminClient each:
  1. create a one-partition topic and produce 30 records with timestamps T+0..T+29
     (record 17 gets the largest timestamp, T+100);
  2. delete the records before offset 10 and check the answered low watermark;
  3. check the watermarks a consumer sees (10, 30);
  4. list offsets: earliest 10, latest 30, max-timestamp 17 (confluent-kafka; kafka-python's
     list_partition_offsets where it knows the specs);
  5. delete up to the high watermark (-1 / "all") and check earliest == latest == 30.
Prints one JSON document with what it saw; exits non-zero with a message on any mismatch.
"""

import argparse
import json
import sys
import time


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def expect(what, got, want):
    if got != want:
        fail(f"{what}: got {got!r}, want {want!r}")


def timestamps(base):
    ts = [base + i for i in range(30)]
    ts[17] = base + 100
    return ts


def run_confluent(bootstrap, topic):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

    admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    fs = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)], request_timeout=15)
    fs[topic].result(timeout=20)
    producer = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "linger.ms": 5})
    base = int(time.time() * 1000) - 60_000
    for i, ts in enumerate(timestamps(base)):
        producer.produce(topic, value=f"v{i}".encode(), partition=0, timestamp=ts)
    if producer.flush(30) != 0:
        fail("confluent: produce did not finish")

    tp = TopicPartition(topic, 0, 10)
    res = admin.delete_records([tp], request_timeout=15)
    low = list(res.values())[0].result(timeout=20).low_watermark
    expect("confluent delete_records low watermark", low, 10)

    consumer = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "group.id": "admin-records"})
    expect("confluent watermarks", consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10), (10, 30))

    def list_offset(spec):
        fut = admin.list_offsets({TopicPartition(topic, 0): spec}, request_timeout=15)
        return list(fut.values())[0].result(timeout=20)

    earliest = list_offset(OffsetSpec.earliest()).offset
    latest = list_offset(OffsetSpec.latest()).offset
    maxts = list_offset(OffsetSpec.max_timestamp())
    expect("confluent earliest", earliest, 10)
    expect("confluent latest", latest, 30)
    expect("confluent max timestamp offset", maxts.offset, 17)
    expect("confluent max timestamp", maxts.timestamp, base + 100)

    # Everything up to the high watermark (OFFSET_END = -1 in librdkafka's delete_records).
    res = admin.delete_records([TopicPartition(topic, 0, -1)], request_timeout=15)
    expect("confluent delete all low watermark", list(res.values())[0].result(timeout=20).low_watermark, 30)
    expect("confluent watermarks after delete all", consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10), (30, 30))
    consumer.close()
    return {"low_watermark": low, "earliest": earliest, "latest": latest, "max_timestamp_offset": maxts.offset}


def run_kafka_python(bootstrap, topic):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    base = int(time.time() * 1000) - 60_000
    for i, ts in enumerate(timestamps(base)):
        producer.send(topic, value=f"v{i}".encode(), partition=0, timestamp_ms=ts)
    producer.flush(30)
    producer.close()

    tp = TopicPartition(topic, 0)
    res = admin.delete_records({tp: 10})
    low = res[tp]["low_watermark"]
    expect("kafka-python delete_records low watermark", low, 10)

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    expect("kafka-python beginning offsets", consumer.beginning_offsets([tp])[tp], 10)
    expect("kafka-python end offsets", consumer.end_offsets([tp])[tp], 30)
    found = consumer.offsets_for_times({tp: base + 50})[tp]
    expect("kafka-python offsets_for_times (first record at or after T+50)", found.offset, 17)

    # A delete below the current start changes nothing.
    res = admin.delete_records({tp: 5})
    expect("kafka-python delete below start", res[tp]["low_watermark"], 10)
    consumer.close()
    admin.close()
    return {"low_watermark": low}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", choices=["confluent", "kafka-python"], required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    args = ap.parse_args()
    run = run_confluent if args.client == "confluent" else run_kafka_python
    print(json.dumps({"client": args.client, **run(args.bootstrap, args.topic)}))


if __name__ == "__main__":
    main()
