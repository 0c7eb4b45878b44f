"""Both overlays render offline and hold the platform docs/operations.md describes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from k8s_support import objects, one

from lambda_contract.settings import Settings
from lambda_contract.topics import topic_configs

pytestmark = pytest.mark.unit

Rendered = dict[str, list[dict[str, Any]]]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlay_renders_every_component_in_one_namespace(rendered: Rendered, overlay: str) -> None:
    docs = rendered[overlay]
    kinds = {d["kind"] for d in docs}
    for kind in (
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "FlinkDeployment",
        "CronJob",
        "StatefulSet",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "ConfigMap",
        "Secret",
    ):
        assert kind in kinds, f"{overlay} renders no {kind}"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "lambda", f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_topics_are_the_contract_topics(rendered: Rendered, overlay: str) -> None:
    topics = {t["spec"]["topicName"]: t["spec"] for t in objects(rendered[overlay], "KafkaTopic")}
    assert set(topics) == {"orders.v1", "orders.v1.dlq", "orders.v1.late"}
    assert topics["orders.v1"]["partitions"] >= 3
    config = next(
        c
        for c in objects(rendered[overlay], "ConfigMap")
        if c["metadata"]["name"].startswith("lambda-config")
    )
    assert config["data"]["LAMBDA_TOPIC_ORDERS"] == "orders.v1"
    assert int(config["data"]["LAMBDA_TOPIC_PARTITIONS"]) == topics["orders.v1"]["partitions"]
    assert int(config["data"]["LAMBDA_SPEED_PARALLELISM"]) <= topics["orders.v1"]["partitions"]
    # The same timestamps and retention as the topics `make up` creates (lambda_contract.topics).
    wanted = topic_configs(Settings.from_env(config["data"]))
    assert {name: {k: str(v) for k, v in t["config"].items()} for name, t in topics.items()} == wanted


def test_prod_is_highly_available(rendered: Rendered) -> None:
    prod = rendered["prod"]
    assert one(prod, "KafkaNodePool", "combined")["spec"]["replicas"] == 3
    kafka_config = one(prod, "Kafka", "lambda")["spec"]["kafka"]["config"]
    assert kafka_config["min.insync.replicas"] == 2 and kafka_config["default.replication.factor"] == 3
    assert all(t["spec"]["replicas"] == 3 for t in objects(prod, "KafkaTopic"))
    hpa = one(prod, "HorizontalPodAutoscaler", "serving")["spec"]
    pdb = one(prod, "PodDisruptionBudget", "serving")["spec"]
    # A PDB that lets a drain proceed while keeping most replicas serving.
    assert 0 < pdb["minAvailable"] < hpa["minReplicas"]
    assert one(prod, "FlinkDeployment", "lambda-speed")["spec"]["jobManager"]["replicas"] == 2


def test_dev_is_small(rendered: Rendered) -> None:
    dev = rendered["dev"]
    assert one(dev, "KafkaNodePool", "combined")["spec"]["replicas"] == 1
    assert one(dev, "HorizontalPodAutoscaler", "serving")["spec"]["minReplicas"] == 1
    assert one(dev, "Deployment", "minio")  # the in-cluster object store


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_flink_job_upgrades_through_savepoints_on_object_storage(rendered: Rendered, overlay: str) -> None:
    spec = one(rendered[overlay], "FlinkDeployment", "lambda-speed")["spec"]
    assert spec["job"]["upgradeMode"] == "savepoint"
    assert spec["job"]["jarURI"].endswith("flink-python-2.2.1.jar")
    assert "-pym" in spec["job"]["args"] or "-py" in spec["job"]["args"]
    conf = spec["flinkConfiguration"]
    for key in (
        "execution.checkpointing.dir",
        "execution.checkpointing.savepoint-dir",
        "high-availability.storageDir",
    ):
        assert conf[key].startswith("s3://"), key
    assert conf["metrics.reporter.prom.factory.class"].endswith("PrometheusReporterFactory")
    config = next(
        c
        for c in objects(rendered[overlay], "ConfigMap")
        if c["metadata"]["name"].startswith("lambda-config")
    )
    assert config["data"]["LAMBDA_CHECKPOINT_DIR"] == conf["execution.checkpointing.dir"]
    assert config["data"]["LAMBDA_SPEED_METRICS_PORT"] == conf["metrics.reporter.prom.port"]
    # The job sets its parallelism from the ConfigMap; the deployment's must not say otherwise.
    assert int(config["data"]["LAMBDA_SPEED_PARALLELISM"]) == spec["job"]["parallelism"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_generated_config_and_secret_names_reach_the_flink_pods(rendered: Rendered, overlay: str) -> None:
    """kustomize's hash-suffixed names must be rewritten inside the FlinkDeployment too."""
    docs = rendered[overlay]
    names = {d["metadata"]["name"] for d in docs if d["kind"] in ("ConfigMap", "Secret")}
    pod = one(docs, "FlinkDeployment", "lambda-speed")["spec"]["podTemplate"]["spec"]
    refs = [e["configMapRef"]["name"] for e in pod["containers"][0]["envFrom"]]
    refs += [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v]
    refs += [e["valueFrom"]["secretKeyRef"]["name"] for e in pod["containers"][0]["env"] if "valueFrom" in e]
    assert refs and all(r in names for r in refs), set(refs) - names


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_batch_ingest_runs_more_often_than_the_nightly_recompute(rendered: Rendered, overlay: str) -> None:
    jobs = {c["metadata"]["name"]: c["spec"] for c in objects(rendered[overlay], "CronJob")}
    assert jobs["bronze-ingest"]["schedule"].startswith("*/")
    assert jobs["nightly-recompute"]["schedule"].split()[2:] == ["*", "*", "*"]
    assert all(j["concurrencyPolicy"] == "Forbid" and j["timeZone"] == "Etc/UTC" for j in jobs.values())


def test_backfill_job_is_the_nightly_pod_with_a_date_range(rendered: Rendered) -> None:
    from datetime import date

    import kubernetes_validate

    from lambda_tools.k8s_jobs import backfill_job

    cron = one(rendered["prod"], "CronJob", "nightly-recompute")
    job = backfill_job(cron, date(2026, 11, 1), date(2026, 11, 7))
    kubernetes_validate.validate(job, "1.32.0", strict=True)
    pod, nightly = job["spec"]["template"]["spec"], cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    args = pod["initContainers"][0]["args"]
    assert args[:5] == ["nightly", "--from", "2026-11-01", "--to", "2026-11-07"]
    assert args[5:] == nightly["initContainers"][0]["args"][1:]  # the dates file and the driver's address
    assert pod["containers"] == nightly["containers"]  # then the reconciliation of the recomputed dates
    pod["initContainers"][0]["args"] = nightly["initContainers"][0]["args"]
    assert pod == nightly
    with pytest.raises(ValueError, match="before"):
        backfill_job(cron, date(2026, 11, 7), date(2026, 11, 1))


def test_container_commands_exist_in_the_layers(rendered: Rendered) -> None:
    """The CronJobs' and backfill's arguments parse with lambda-batch; the Flink driver's module exists."""
    import subprocess
    from datetime import date

    from k8s_support import REPO

    from lambda_tools.k8s_jobs import backfill_job

    crons = [
        c
        for c in objects(rendered["prod"], "CronJob")
        if c["metadata"]["labels"]["app.kubernetes.io/name"] == "lambda-batch"
    ]
    pods = [c["spec"]["jobTemplate"]["spec"]["template"]["spec"] for c in crons]
    backfill = backfill_job(
        one(rendered["prod"], "CronJob", "nightly-recompute"), date(2026, 1, 1), date(2026, 1, 2)
    )
    pods.append(backfill["spec"]["template"]["spec"])
    batch = REPO / ".venvs/batch/bin/python"
    for pod in pods:
        for c in pod.get("initContainers", []) + pod["containers"]:
            if c["image"].endswith("lambda-serving:0.1.0"):  # the nightly flow's reconciliation
                cmd = [str(REPO / ".venvs/serving/bin" / c["command"][0]), *c["args"], "--help"]
            else:
                cmd = [str(batch), "-m", "batch_layer.main", *c["args"], "--help"]
            out = subprocess.run(cmd, capture_output=True, text=True)
            assert out.returncode == 0, f"{' '.join(cmd)}: {out.stderr[-500:]}"
    fx = one(rendered["prod"], "CronJob", "fx-rates-fetch")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    serving_bin = REPO / ".venvs/serving/bin"
    fx_cmd = [str(serving_bin / fx["containers"][0]["command"][0]), *fx["containers"][0]["args"], "--help"]
    out = subprocess.run(fx_cmd, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(fx_cmd)}: {out.stderr[-500:]}"
    job = one(rendered["prod"], "FlinkDeployment", "lambda-speed")["spec"]["job"]
    module = job["args"][job["args"].index("-pym") + 1]
    speed = REPO / ".venvs/speed/bin/python"
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    assert subprocess.run([str(speed), "-c", probe]).returncode == 0, f"{module} is not in the speed layer"


def _spark_defaults(docs: list[dict[str, Any]]) -> dict[str, str]:
    conf = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("spark-defaults")
    )
    out = {}
    for line in conf["data"]["spark-defaults.conf"].splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.strip().partition(" ")
            out[key] = value.strip()
    return out


def test_prod_batch_runs_on_spark_executors_never_local(rendered: Rendered) -> None:
    """No local[*] in prod: the batch pods are Spark drivers on Kubernetes, whose executors are pods
    from the prod image, with fixed ports the NetworkPolicies open and an account for the driver."""
    docs = rendered["prod"]
    for doc in docs:
        assert "local[" not in yaml.safe_dump(doc), (
            f"{doc['kind']}/{doc['metadata']['name']} runs Spark locally"
        )
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("lambda-config")
    )
    assert config["data"]["LAMBDA_SPARK_MASTER"] == "k8s://https://kubernetes.default.svc:443"
    spark = _spark_defaults(docs)
    batch_images = {
        c["image"]
        for cron in objects(docs, "CronJob")
        for c in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"].get("initContainers", [])
        + cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        if c["name"] == "batch"
    }
    assert batch_images == {spark["spark.kubernetes.container.image"]}, (
        "executors must run the driver's image"
    )
    assert int(spark["spark.executor.instances"]) >= 2 and spark["spark.kubernetes.namespace"] == "lambda"
    spark_ports = {int(spark["spark.driver.port"]), int(spark["spark.driver.blockManager.port"])}
    policy = one(docs, "NetworkPolicy", "batch-spark")["spec"]
    assert {p["port"] for rule in policy["ingress"] for p in rule["ports"]} == spark_ports
    template_conf = next(
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("spark-executor-template")
    )
    executor = yaml.safe_load(template_conf["data"]["executor.yaml"])
    assert spark["spark.kubernetes.executor.podTemplateFile"] == "/etc/spark-templates/executor.yaml"
    assert policy["podSelector"]["matchLabels"].items() <= executor["metadata"]["labels"].items()
    assert executor["metadata"]["labels"]["lambda.platform/object-store"] == "true"
    role = one(docs, "Role", "lambda-batch-driver")
    granted = {
        (r["apiGroups"][0], res, v) for r in role["rules"] for res in r["resources"] for v in r["verbs"]
    }
    assert {
        ("", "pods", "create"),
        ("", "pods", "delete"),
        ("coordination.k8s.io", "leases", "update"),
    } <= granted
    for cron in objects(docs, "CronJob"):
        pod = cron["spec"]["jobTemplate"]["spec"]["template"]
        if pod["metadata"]["labels"].get("lambda.platform/spark-role") == "driver":
            assert (
                pod["spec"]["serviceAccountName"] == "lambda-batch"
                and pod["spec"]["automountServiceAccountToken"]
            )
