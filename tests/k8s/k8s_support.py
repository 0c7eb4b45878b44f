"""Helpers of the k8s suite: render overlays offline, pick objects, load CRD schemas."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lambda_tools import k8s_secrets

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
CRDS = REPO / ".local" / "crds"
OVERLAYS = ("dev", "prod")
# The Kubernetes version the core kinds are validated against (kubernetes-validate ships its schemas).
KUBE_VERSION = "1.32.0"


def kustomize_command() -> list[str]:
    """`kubectl kustomize` when kubectl bundles kustomize v5, else the one `make setup` builds."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        out = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True)
        if out.returncode == 0 and json.loads(out.stdout).get("kustomizeVersion", "").startswith("v5"):
            return [kubectl, "kustomize"]
    local = REPO / ".local" / "bin" / "kustomize"
    if local.exists():
        return [str(local), "build"]
    pytest.fail("neither kubectl with kustomize v5 nor .local/bin/kustomize: run `make setup`")


def copy_k8s(target: Path) -> Path:
    """k8s/ copied without any secrets.env, then given throwaway ones."""
    shutil.copytree(K8S, target, ignore=shutil.ignore_patterns("secrets.env"))
    for overlay in OVERLAYS:
        folder = target / "overlays" / overlay
        (folder / "secrets.env").write_text(k8s_secrets.render((folder / "secrets.env.example").read_text()))
    return target


def build(folder: Path) -> list[dict[str, Any]]:
    result = subprocess.run([*kustomize_command(), str(folder)], capture_output=True, text=True)
    assert result.returncode == 0, f"kustomize build {folder} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def objects(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in objects(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


WORKLOAD_POD_PATHS = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every core workload."""
    for doc in docs:
        path = WORKLOAD_POD_PATHS.get(doc.get("kind", ""))
        if path is None:
            continue
        spec: Any = doc
        for key in path:
            spec = spec[key]
        yield f"{doc['kind']}/{doc['metadata']['name']}", spec


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


# CRD schema files built by `make setup` (lambda_tools.k8s_crds), keyed by (apiVersion, kind).
CRD_FILES = {
    ("kafka.strimzi.io/v1", "Kafka"): "kafkas.kafka.strimzi.io.yaml",
    ("kafka.strimzi.io/v1", "KafkaNodePool"): "kafkanodepools.kafka.strimzi.io.yaml",
    ("kafka.strimzi.io/v1", "KafkaTopic"): "kafkatopics.kafka.strimzi.io.yaml",
    ("flink.apache.org/v1beta1", "FlinkDeployment"): "flinkdeployments.flink.apache.org.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitors.monitoring.coreos.com.yaml",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitors.monitoring.coreos.com.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrules.monitoring.coreos.com.yaml",
    ("sparkoperator.k8s.io/v1beta2", "SparkApplication"): "sparkapplications.sparkoperator.k8s.io.yaml",
    ("sparkoperator.k8s.io/v1beta2", "ScheduledSparkApplication"): (
        "scheduledsparkapplications.sparkoperator.k8s.io.yaml"
    ),
}
# Kinds with a CRD here that the overlays need not render (yet): the batch's spark-operator manifests.
OPTIONAL_CUSTOM_KINDS = {"SparkApplication", "ScheduledSparkApplication"}


def strict(schema: Any) -> Any:
    """A CRD's structural schema as JSON Schema, with unknown fields an error.

    The API server silently prunes fields a structural schema does not declare, so a typo would be
    lost without a word; here it fails. int-or-string and nullable become JSON Schema types.
    """
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) if k in ("items", "not", "additionalProperties") else v for k, v in schema.items()}
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            out[key] = [strict(s) for s in schema[key]]
    if "properties" in schema:
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in schema:
            out["additionalProperties"] = False
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@functools.cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The strict JSON Schema of one served version of a CRD."""
    name = CRD_FILES.get((api_version, kind))
    assert name, f"no CRD source known for {api_version} {kind}"
    path = CRDS / name
    assert path.exists(), f"{path} is missing: run `make setup` (lambda_tools.k8s_crds builds it)"
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    version = api_version.split("/")[1]
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema = v["schema"]["openAPIV3Schema"]
            # The API server always accepts these at the root; some generated CRDs omit them.
            root = schema.setdefault("properties", {})
            root.setdefault("apiVersion", {"type": "string"})
            root.setdefault("kind", {"type": "string"})
            root.setdefault("metadata", {"type": "object"})
            return strict(schema)  # type: ignore[no-any-return]
    raise AssertionError(f"{path} serves no version {version}")
