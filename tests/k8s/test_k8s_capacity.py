"""The prod overlay is sized by the capacity model: its kustomization.yaml names the rate and the
dashboard users it claims, and every size the model computes for them is what the rendered
overlay asks for (docs/capacity.md)."""

from __future__ import annotations

import re
from typing import Any

from k8s_support import K8S, objects, one

from lambda_tools import capacity

Rendered = dict[str, list[dict[str, Any]]]


def _claim() -> tuple[int, int]:
    text = (K8S / "overlays" / "prod" / "kustomization.yaml").read_text()
    match = re.search(r"^# capacity: (\d+) events/s, (\d+) dashboard users", text, re.MULTILINE)
    assert match, "k8s/overlays/prod/kustomization.yaml must say the rate it is sized for"
    return int(match[1]), int(match[2])


def _config(docs: list[dict[str, Any]], prefix: str) -> dict[str, str]:
    found = [d for d in objects(docs, "ConfigMap") if d["metadata"]["name"].startswith(prefix)]
    assert len(found) == 1, prefix
    data: dict[str, str] = found[0]["data"]
    return data


def _gib(quantity: str) -> float:
    units = {"Gi": 1.0, "Ti": 1024.0, "Mi": 1 / 1024}
    match = re.fullmatch(r"(\d+)(Gi|Ti|Mi)", quantity)
    assert match, f"unexpected quantity {quantity}"
    return int(match[1]) * units[match[2]]


def test_the_claim_is_the_models(rendered: Rendered) -> None:
    rate, users = _claim()
    assert (rate, users) == (capacity.PROD_RATE, capacity.PROD_USERS)


def test_prod_sizes_are_the_models_row(rendered: Rendered) -> None:
    docs = rendered["prod"]
    rate, users = _claim()
    row = capacity.row(rate)
    config = _config(docs, "lambda-config")

    pool = one(docs, "KafkaNodePool", "combined")["spec"]
    assert pool["replicas"] == row.brokers
    (volume,) = pool["storage"]["volumes"]
    assert _gib(volume["size"]) == row.broker_disk_gib
    # The volumes hold the rate for the whole retention (the issue: 200Gi held about 1.3 k events/s).
    assert _gib(volume["size"]) * row.brokers >= row.kafka_disk_total_gib
    topics = {t["spec"]["topicName"]: t["spec"] for t in objects(docs, "KafkaTopic")}
    assert topics["orders.v1"]["partitions"] == row.partitions == int(config["LAMBDA_TOPIC_PARTITIONS"])
    assert all(t["replicas"] == capacity.MEASURED.replication.value for t in topics.values())
    assert (
        int(topics["orders.v1"]["config"]["retention.ms"])
        == capacity.MEASURED.orders_retention_s.value * 1000
    )

    flink = one(docs, "FlinkDeployment", "lambda-speed")["spec"]
    slots = int(flink["flinkConfiguration"]["taskmanager.numberOfTaskSlots"])
    assert slots == capacity.POLICY.slots_per_taskmanager
    assert flink["job"]["parallelism"] == row.parallelism == int(config["LAMBDA_SPEED_PARALLELISM"])
    assert -(-flink["job"]["parallelism"] // slots) == row.taskmanagers
    assert float(flink["taskManager"]["resource"]["cpu"]) == capacity.POLICY.taskmanager_vcpus

    redis = one(docs, "StatefulSet", "redis")["spec"]["template"]["spec"]
    container = next(c for c in redis["containers"] if c["name"] == "redis")
    maxmemory = next(e["value"] for e in container["env"] if e["name"] == "REDIS_MAXMEMORY")
    assert maxmemory == f"{row.redis_maxmemory_mb}mb"
    assert container["resources"]["limits"]["memory"] == f"{row.redis_limit_mib}Mi"

    conf = _config(docs, "spark-defaults")["spark-defaults.conf"].splitlines()
    spark = dict(line.split(None, 1) for line in conf if line.strip() and not line.startswith("#"))
    assert int(spark["spark.executor.instances"]) == row.executors
    assert int(spark["spark.executor.cores"]) == capacity.POLICY.executor_cores
    assert (
        int(config["LAMBDA_SPARK_SHUFFLE_PARTITIONS"]) == 4 * row.executors * capacity.POLICY.executor_cores
    )

    hpa = one(docs, "HorizontalPodAutoscaler", "serving")["spec"]
    assert hpa["minReplicas"] == capacity.serving_replicas(users)
