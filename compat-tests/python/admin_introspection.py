#!/usr/bin/env python3
"""Describe a distlog cluster, its topics and its log dirs with two Python admin clients.

Used by compat-tests/tests/python_admin_introspection.rs against a real distlog process, which
creates the topic and produces known bytes before running this script. The script only reads
and reports; the Rust driver makes the assertions.

* confluent-kafka's `AdminClient` (librdkafka): `describe_cluster()` and `describe_topics()` of
  the topic and of a topic that does not exist.
* kafka-python's `KafkaAdminClient`: `describe_log_dirs()` (DescribeLogDirs),
  `describe_topic_partitions()` walked page by page with a limit of 1 (DescribeTopicPartitions,
  KIP-966), `list_partition_reassignments()` and `describe_metadata_quorum()` (DescribeQuorum).

It prints ONE JSON document to stdout:

    {"confluent": {"cluster": {"cluster_id": "...", "controller": 1,
                               "nodes": [[1, "127.0.0.1", 9092]]},
                   "topic": {"name": "t", "topic_id": "...", "is_internal": false,
                             "partitions": [[0, 1, [1], [1]], ...]},   # id, leader, replicas, isr
                   "missing_error": "UNKNOWN_TOPIC_OR_PART"},
     "kafka_python": {"log_dirs": [{"broker": 1, "log_dirs": [{...DescribeLogDirs result...}]}],
                      "pages": [{"partitions": [[0, 1, 0]], "next_cursor": ["t", 1]}, ...],
                      "reassignments": [],
                      "quorum": {...DescribeQuorum response as a dict...}},
     "elapsed_s": 1.2}

The exit status is 0 on success, 2 on timeout and 1 on any other failure; the JSON document
is printed in every case the script got that far, with an "error" field. Logging goes to
stderr.
"""

import argparse
import json
import logging
import sys
import threading
import time
import traceback

EXIT_TIMEOUT = 2


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--missing-topic", required=True)
    p.add_argument("--timeout-s", type=float, default=60.0)
    return p.parse_args(argv)


def confluent_part(args, out):
    from confluent_kafka import KafkaException, TopicCollection
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    cluster = admin.describe_cluster(request_timeout=args.timeout_s).result(timeout=args.timeout_s)
    out["cluster"] = {
        "cluster_id": cluster.cluster_id,
        "controller": cluster.controller.id if cluster.controller is not None else None,
        "nodes": sorted([n.id, n.host, n.port] for n in cluster.nodes),
    }
    futures = admin.describe_topics(
        TopicCollection([args.topic, args.missing_topic]), request_timeout=args.timeout_s
    )
    d = futures[args.topic].result(timeout=args.timeout_s)
    out["topic"] = {
        "name": d.name,
        "topic_id": str(d.topic_id),
        "is_internal": d.is_internal,
        "partitions": [
            [p.id, p.leader.id if p.leader is not None else None, [r.id for r in p.replicas], [r.id for r in p.isr]]
            for p in sorted(d.partitions, key=lambda p: p.id)
        ],
    }
    try:
        futures[args.missing_topic].result(timeout=args.timeout_s)
        out["missing_error"] = None
    except KafkaException as e:
        out["missing_error"] = e.args[0].name()


def kafka_python_part(args, out):
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=args.bootstrap,
        request_timeout_ms=int(args.timeout_s * 1000),
        client_id="admin-introspection",
    )
    try:
        out["log_dirs"] = admin.describe_log_dirs()
        pages = []
        cursor = None
        for _ in range(10):
            page = admin.describe_topic_partitions([args.topic], response_partition_limit=1, cursor=cursor)
            nxt = page["next_cursor"]
            pages.append(
                {
                    "topics": [
                        [t["name"], t["error_code"], [[p["partition_index"], p["leader_id"], p["leader_epoch"]] for p in t["partitions"]]]
                        for t in page["topics"]
                    ],
                    "next_cursor": [nxt["topic_name"], nxt["partition_index"]] if nxt else None,
                }
            )
            if nxt is None:
                break
            cursor = nxt
        out["pages"] = pages
        reassignments = admin.list_partition_reassignments()
        out["reassignments"] = [[tp.topic, tp.partition] for tp in reassignments]
        out["quorum"] = admin.describe_metadata_quorum()
    finally:
        admin.close()


def main(argv):
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    started = time.monotonic()
    doc = {"confluent": {}, "kafka_python": {}}
    status = 0

    def run():
        nonlocal status
        try:
            confluent_part(args, doc["confluent"])
            kafka_python_part(args, doc["kafka_python"])
        except Exception as e:  # reported in the document
            traceback.print_exc()
            doc["error"] = f"{type(e).__name__}: {e}"
            status = 1

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(args.timeout_s)
    if worker.is_alive():
        doc["error"] = f"timed out after {args.timeout_s} s"
        status = EXIT_TIMEOUT
    doc["elapsed_s"] = round(time.monotonic() - started, 3)
    print(json.dumps(doc, default=str))
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
