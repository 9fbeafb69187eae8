#!/usr/bin/env python3
"""Alter and describe topic and broker configs through a Python admin client.

Used by compat-tests/tests/python_admin_configs.rs against a real distlog process. Two clients:

* `--client confluent-kafka`: confluent_kafka.admin.AdminClient (librdkafka underneath):
  create_topics with `delete.retention.ms=900`, incremental_alter_configs, alter_configs,
  describe_configs of the topic and of broker `--broker-id`.
* `--client kafka-python`: kafka.admin.KafkaAdminClient: create_topics, alter_configs
  (IncrementalAlterConfigs, then the legacy AlterConfigs with incremental=False),
  describe_configs with config_filter='all'.

Each step's observation goes into ONE JSON document printed to stdout, for the Rust test to check:

    {"client": "confluent-kafka", "version": "2.16.2", "observed": {
        "created": "OK",
        "after_incremental": {"retention.ms": ["3600000", "DYNAMIC_TOPIC_CONFIG"], ...},
        ...},
     "elapsed_s": 1.2}

A config is observed as [value, source name] (confluent-kafka's ConfigSource names and
kafka-python's ConfigSourceType names are both Kafka's names), a read-only flag as a bool, an
error as its Kafka error name. The exit status is 0 when every step ran (whatever it observed),
1 otherwise (the JSON then has an "error" field). Logging goes to stderr.
"""

import argparse
import json
import logging
import sys
import time
import traceback


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--client", required=True, choices=["confluent-kafka", "kafka-python"])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--broker-id", default="1")
    p.add_argument("--debug", action="store_true")
    return p.parse_args(argv)


TOPIC_KEYS = ["retention.ms", "segment.ms", "delete.retention.ms"]
BROKER_KEYS = ["advertised.listeners", "broker.id", "log.retention.ms", "log.segment.bytes"]


def run_confluent(args, observed):
    import confluent_kafka
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                       ConfigSource, NewTopic, ResourceType)

    observed["version"] = confluent_kafka.__version__
    admin = AdminClient({"bootstrap.servers": args.bootstrap, "socket.timeout.ms": 10000})
    timeout = 30

    def error_name(fut):
        try:
            fut.result(timeout=timeout)
            return "OK"
        except KafkaException as e:
            return e.args[0].name()

    def topic_res(**kw):
        return ConfigResource(ResourceType.TOPIC, args.topic, **kw)

    def broker_res(**kw):
        return ConfigResource(ResourceType.BROKER, args.broker_id, **kw)

    def describe(res, keys):
        (fut,) = admin.describe_configs([res]).values()
        entries = fut.result(timeout=timeout)
        return {k: [entries[k].value, ConfigSource(entries[k].source).name]
                for k in keys if k in entries}, entries

    fut = admin.create_topics([NewTopic(args.topic, 1, 1, config={"delete.retention.ms": "900"})])[args.topic]
    observed["created"] = error_name(fut)

    (fut,) = admin.incremental_alter_configs([topic_res(incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])]).values()
    observed["incremental"] = error_name(fut)
    observed["after_incremental"] = describe(topic_res(), TOPIC_KEYS)[0]

    # validate_only changes nothing.
    (fut,) = admin.incremental_alter_configs([topic_res(incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])],
        validate_only=True).values()
    observed["validate_only"] = error_name(fut)
    observed["after_validate_only"] = describe(topic_res(), ["retention.ms"])[0]

    # The legacy AlterConfigs replaces the whole set.
    (fut,) = admin.alter_configs([topic_res(set_config={"segment.ms": "60000"})]).values()
    observed["alter"] = error_name(fut)
    observed["after_alter"] = describe(topic_res(), TOPIC_KEYS)[0]

    # Refusals.
    (fut,) = admin.incremental_alter_configs([topic_res(incremental_configs=[
        ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)])]).values()
    observed["unknown_key"] = error_name(fut)
    (fut,) = admin.incremental_alter_configs([topic_res(incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)])]).values()
    observed["compact"] = error_name(fut)
    (fut,) = admin.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, args.topic + "-missing",
        incremental_configs=[ConfigEntry("retention.ms", "1",
                                         incremental_operation=AlterConfigOpType.SET)])]).values()
    observed["unknown_topic"] = error_name(fut)
    (fut,) = admin.incremental_alter_configs([broker_res(incremental_configs=[
        ConfigEntry("advertised.listeners", "PLAINTEXT://elsewhere:1",
                    incremental_operation=AlterConfigOpType.SET)])]).values()
    observed["read_only_broker_key"] = error_name(fut)

    # The broker: truthful read_only, and a dynamic value with its source.
    _, entries = describe(broker_res(), BROKER_KEYS)
    observed["broker_read_only"] = {k: entries[k].is_read_only for k in BROKER_KEYS}
    (fut,) = admin.incremental_alter_configs([broker_res(incremental_configs=[
        ConfigEntry("log.retention.ms", "1234567", incremental_operation=AlterConfigOpType.SET)])]).values()
    observed["broker_set"] = error_name(fut)
    observed["broker_after_set"] = describe(broker_res(), ["log.retention.ms"])[0]
    (fut,) = admin.incremental_alter_configs([broker_res(incremental_configs=[
        ConfigEntry("log.retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])]).values()
    observed["broker_delete"] = error_name(fut)
    observed["broker_after_delete"] = describe(broker_res(), ["log.retention.ms"])[0]


def run_kafka_python(args, observed):
    import kafka
    from kafka.admin import ConfigResource, KafkaAdminClient, NewTopic

    observed["version"] = kafka.__version__
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=30000)

    def describe(ty, name, keys):
        ret = admin.describe_configs([ConfigResource(ty, name)], config_filter="all")
        configs = ret[ty.lower()][name]
        return {k: [configs[k]["value"], configs[k]["config_source"]] for k in keys if k in configs}, configs

    def alter(ty, name, configs, **kw):
        ret = admin.alter_configs([ConfigResource(ty, name, configs)], **kw)
        return ret[ty.lower()][name]

    admin.create_topics([NewTopic(args.topic, 1, 1, topic_configs={"delete.retention.ms": "900"})])
    observed["created"] = "OK"

    observed["incremental"] = alter("TOPIC", args.topic, {"retention.ms": "7200000"})
    observed["after_incremental"] = describe("TOPIC", args.topic, TOPIC_KEYS)[0]

    observed["validate_only"] = alter("TOPIC", args.topic, {"retention.ms": "1"}, validate_only=True)
    observed["after_validate_only"] = describe("TOPIC", args.topic, ["retention.ms"])[0]

    # The legacy AlterConfigs (kafka-python re-sends the other modified values itself).
    observed["alter"] = alter("TOPIC", args.topic, {"segment.ms": "60000"}, incremental=False)
    observed["after_alter"] = describe("TOPIC", args.topic, TOPIC_KEYS)[0]

    def refused(ty, name, configs):
        return alter(ty, name, configs, raise_on_unknown=False).split(":")[0].strip()

    observed["unknown_key"] = refused("TOPIC", args.topic, {"no.such.config": "1"})
    observed["compact"] = refused("TOPIC", args.topic, {"cleanup.policy": "compact"})
    observed["read_only_broker_key"] = refused("BROKER", args.broker_id,
                                               {"advertised.listeners": "PLAINTEXT://elsewhere:1"})
    # With raise_on_unknown (the default), kafka-python itself refuses a key the broker describes
    # as read-only: it relies on read_only being truthful.
    try:
        alter("BROKER", args.broker_id, {"advertised.listeners": "PLAINTEXT://elsewhere:1"})
        observed["read_only_client_check"] = "sent"
    except ValueError as e:
        observed["read_only_client_check"] = "ValueError: " + str(e)

    _, configs = describe("BROKER", args.broker_id, BROKER_KEYS)
    observed["broker_read_only"] = {k: configs[k]["read_only"] for k in BROKER_KEYS}
    observed["broker_set"] = alter("BROKER", args.broker_id, {"log.retention.ms": "1234567"})
    observed["broker_after_set"] = describe("BROKER", args.broker_id, ["log.retention.ms"])[0]
    observed["broker_delete"] = alter("BROKER", args.broker_id, {"log.retention.ms": ("DELETE", None)})
    observed["broker_after_delete"] = describe("BROKER", args.broker_id, ["log.retention.ms"])[0]
    admin.close()


def main(argv):
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    observed = {}
    out = {"client": args.client, "topic": args.topic, "observed": observed}
    started = time.monotonic()
    status = 0
    try:
        if args.client == "confluent-kafka":
            run_confluent(args, observed)
        else:
            run_kafka_python(args, observed)
    except Exception as e:  # the JSON says what failed
        out["error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
        status = 1
    out["version"] = observed.pop("version", None)
    out["elapsed_s"] = round(time.monotonic() - started, 3)
    print(json.dumps(out, sort_keys=True))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
