#!/usr/bin/env python3
"""Drives real Kafka clients against a broker (through the recording proxy) for the seeds of the
kafka_request fuzz target. Usage: clients.py BOOTSTRAP admin|clients|cleanup. Each step is
best effort: a failing call is reported and the next one runs (the seeds are the requests)."""
import sys
import time

B = sys.argv[1]
MODE = sys.argv[2]


def step(name, fn):
    try:
        fn()
        print(f"clients: {name}: ok")
    except Exception as e:  # noqa: BLE001 - best effort, see the module doc
        print(f"clients: {name}: {type(e).__name__}: {e}")


def admin():
    from kafka.admin import KafkaAdminClient, NewTopic, NewPartitions, ConfigResource, ConfigResourceType

    a = KafkaAdminClient(bootstrap_servers=B, request_timeout_ms=10000)
    step("create topics", lambda: a.create_topics([NewTopic("fuzz-a", 1, 1), NewTopic("fuzz-b", 3, 1),
                                                   NewTopic("fuzz-c", 2, 1, topic_configs={"retention.ms": "600000"})]))
    step("create partitions", lambda: a.create_partitions({"fuzz-c": NewPartitions(3)}))
    step("describe configs", lambda: a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "fuzz-b"),
                                                        ConfigResource(ConfigResourceType.BROKER, "1")]))
    step("alter configs", lambda: a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "fuzz-c",
                                                                  configs={"retention.ms": "700000"})]))
    step("describe cluster", a.describe_cluster)
    step("list topics", a.list_topics)
    step("describe topics", lambda: a.describe_topics(["fuzz-a", "fuzz-b"]))
    a.close()
    from confluent_kafka.admin import AdminClient, ConfigResource as CR, ConfigEntry, AlterConfigOpType
    ca = AdminClient({"bootstrap.servers": B})
    r = CR("topic", "fuzz-c", incremental_configs=[ConfigEntry("retention.ms", "800000",
                                                                 incremental_operation=AlterConfigOpType.SET)])
    step("incremental alter configs", lambda: [f.result(10) for f in ca.incremental_alter_configs([r]).values()])
    step("describe cluster (librdkafka)", lambda: ca.describe_cluster().result(10))


def clients():
    from kafka import KafkaProducer, KafkaConsumer, TopicPartition

    p = KafkaProducer(bootstrap_servers=B, enable_idempotence=True, acks="all", linger_ms=5)
    for i in range(5):
        p.send("fuzz-b", key=b"k%d" % i, value=b"idempotent %d" % i, partition=i % 3,
               headers=[("h", b"v")])
    step("idempotent produce", lambda: p.flush(10))
    p.close()
    tp = KafkaProducer(bootstrap_servers=B, transactional_id="fuzz-txn", acks="all")
    def txn():
        tp.init_transactions()
        tp.begin_transaction()
        tp.send("fuzz-a", b"in a transaction")
        tp.send("fuzz-b", b"also", partition=2)
        tp.commit_transaction()
        tp.begin_transaction()
        tp.send("fuzz-a", b"aborted")
        tp.abort_transaction()
    step("transactions", txn)
    tp.close()
    c = KafkaConsumer("fuzz-a", "fuzz-b", bootstrap_servers=B, group_id="capture-group",
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      isolation_level="read_committed", consumer_timeout_ms=4000)
    def consume():
        n = 0
        for _ in c:
            n += 1
        c.commit()
        print(f"clients: consumed {n}")
    step("group consume + commit", consume)
    step("offsets for times", lambda: c.offsets_for_times({TopicPartition("fuzz-a", 0): int(time.time() * 1000) - 60000}))
    step("end offsets", lambda: c.end_offsets([TopicPartition("fuzz-b", 1)]))
    c.close()
    from confluent_kafka.admin import AdminClient
    from confluent_kafka import TopicPartition as CTP
    ca = AdminClient({"bootstrap.servers": B})
    step("list groups", lambda: ca.list_consumer_groups().result(10))
    step("describe groups", lambda: [f.result(10) for f in ca.describe_consumer_groups(["capture-group"]).values()])
    step("list offsets (group)", lambda: [f.result(10) for f in ca.list_consumer_group_offsets(
        [__import__("confluent_kafka").ConsumerGroupTopicPartitions("capture-group")]).values()])
    step("delete records", lambda: [f.result(10) for f in ca.delete_records([CTP("fuzz-b", 1, 1)]).values()])
    step("list transactions", lambda: ca.list_transactions().result(10) if hasattr(ca, "list_transactions") else None)


def cleanup():
    from kafka.admin import KafkaAdminClient
    a = KafkaAdminClient(bootstrap_servers=B, request_timeout_ms=10000)
    from confluent_kafka.admin import AdminClient
    ca = AdminClient({"bootstrap.servers": B})
    step("delete groups", lambda: [f.result(10) for f in ca.delete_consumer_groups(["capture-group-k"]).values()])
    step("delete topics", lambda: a.delete_topics(["fuzz-c"]))
    a.close()


{"admin": admin, "clients": clients, "cleanup": cleanup}[MODE]()
