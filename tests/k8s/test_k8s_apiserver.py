"""The overlays against a real Kubernetes API server: `make deploy` and `make undeploy` as an operator
runs them, by server-side apply, with the operators' CRDs (and their CEL rules) enforced.

etcd and the kube-apiserver `make setup` built run as local processes on private ports, with the CRDs
`make setup` built into .local/crds. There is no kubelet, scheduler or controller-manager, so NO POD
RUNS: what is proven is the API contract (every object is accepted as written, strictly, by the API
server and the CRDs' validation; a second apply changes nothing; undeploy removes everything), not
that the workloads start.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_support import CRDS, REPO

from lambda_testkit.sandbox import free_port
from lambda_tools import k8s_apiserver, services
from lambda_tools.k8s_apiserver import K8sError, Layout

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    """A private etcd + kube-apiserver with every CRD installed; stopped after the module."""
    for name in k8s_apiserver.BINARIES:
        if not k8s_apiserver.binary(name).exists():
            pytest.fail(f"{k8s_apiserver.binary(name)} is missing: run `make setup`")
    layout = Layout(tmp_path_factory.mktemp("k8s-state"), free_port(), free_port(), free_port())
    try:
        k8s_apiserver.up(layout, CRDS)
        yield layout
    finally:
        k8s_apiserver.down(layout)


def kubectl(layout: Layout, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(k8s_apiserver.binary("kubectl")), f"--kubeconfig={layout.kubeconfig}", *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)


def make(layout: Layout, target: str, k8s_copy: Path, overlay: str) -> str:
    """`make <target> ENV=<overlay>` on the copy of k8s/ (its k8s-generate step is skipped: the copy
    holds the committed generated files, and the repository is left untouched)."""
    env = {**os.environ, "KUBECONFIG": str(layout.kubeconfig)}
    argv = ["make", "-s", "-o", "k8s-generate", target, f"ENV={overlay}", f"K8S_ROOT={k8s_copy}"]
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"make {target} ENV={overlay} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def rendered_file(layout: Layout, k8s_copy: Path, overlay: str, tmp_path: Path) -> Path:
    """The overlay as the deploy's own kubectl renders it."""
    result = kubectl(layout, "kustomize", str(k8s_copy / "overlays" / overlay))
    assert result.returncode == 0, result.stderr
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(result.stdout)
    return path


def stored(layout: Layout, manifest: Path) -> dict[str, dict[str, Any]]:
    """kind/namespace/name -> uid, generation and managedFields of each object of the manifest stored.

    Not the resourceVersion: the API server bumps it for a PVC on every apply that changes nothing.
    """
    result = kubectl(layout, "get", "-f", str(manifest), "--ignore-not-found", "-o", "json")
    assert result.returncode == 0, result.stderr
    text = result.stdout.strip()
    found = json.loads(text) if text else {"items": []}
    items = found.get("items", [found])  # one object comes back bare
    return {
        f"{i['kind']}/{i['metadata'].get('namespace', '')}/{i['metadata']['name']}": {
            "uid": i["metadata"]["uid"],
            "generation": i["metadata"].get("generation"),
            "managedFields": i["metadata"].get("managedFields"),
        }
        for i in items
    }


def test_the_operators_crds_are_established(apiserver: Layout) -> None:
    result = kubectl(apiserver, "get", "crd", "-o", "name")
    assert result.returncode == 0, result.stderr
    names = {
        line.removeprefix("customresourcedefinition.apiextensions.k8s.io/") for line in result.stdout.split()
    }
    expected = {p.name.removesuffix(".yaml") for p in CRDS.glob("*.yaml")}
    groups = {n.split(".", 1)[1] for n in expected}
    assert {"kafka.strimzi.io", "flink.apache.org", "sparkoperator.k8s.io", "monitoring.coreos.com"} <= groups
    assert expected <= names


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_deploy_is_accepted_idempotent_and_undeploy_removes_it(
    apiserver: Layout, k8s_copy: Path, overlay: str, tmp_path: Path
) -> None:
    manifest = rendered_file(apiserver, k8s_copy, overlay, tmp_path)
    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d]

    make(apiserver, "deploy", k8s_copy, overlay)
    first = stored(apiserver, manifest)
    assert len(first) == len(docs), sorted(first)

    make(apiserver, "deploy", k8s_copy, overlay)
    assert stored(apiserver, manifest) == first, "a second apply changed stored objects"
    overlay_dir = str(k8s_copy / "overlays" / overlay)
    diff = kubectl(apiserver, "diff", "--server-side", "--force-conflicts", "-k", overlay_dir)
    assert diff.returncode == 0, f"kubectl diff after the second apply:\n{diff.stdout}{diff.stderr}"
    # ... and the same diff does see a change.
    changed = next(d for d in docs if d["kind"] == "ConfigMap")
    changed.setdefault("data", {})["probe"] = "changed"
    diff = kubectl(
        apiserver, "diff", "--server-side", "--force-conflicts", "-f", "-", stdin=yaml.safe_dump(changed)
    )
    assert diff.returncode == 1, diff.stderr

    make(apiserver, "undeploy", k8s_copy, overlay)
    left = stored(apiserver, manifest)
    assert [key for key in left if not key.startswith("Namespace/")] == []


def apply_dry_run(layout: Layout, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return kubectl(layout, "apply", "--server-side", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(doc))


def kafka(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "Kafka",
        "metadata": {"name": "probe", "namespace": "default"},
        "spec": {
            "kafka": {
                "listeners": [{"name": "plain", "port": 9092, "type": "internal", "tls": False}],
                "metricsConfig": metrics,
            }
        },
    }


def test_a_crds_cel_rule_is_enforced(apiserver: Layout) -> None:
    """Strimzi's rule `self.type != 'jmxPrometheusExporter' || has(self.valueFrom)` is CEL."""
    config = {"configMapKeyRef": {"name": "kafka-metrics", "key": "kafka-metrics-config.yml"}}
    accepted = apply_dry_run(apiserver, kafka({"type": "jmxPrometheusExporter", "valueFrom": config}))
    assert accepted.returncode == 0, accepted.stderr
    rejected = apply_dry_run(apiserver, kafka({"type": "jmxPrometheusExporter"}))
    assert rejected.returncode != 0
    assert "valueFrom property is required" in rejected.stderr


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {
                "apiVersion": "flink.apache.org/v1beta1",
                "kind": "FlinkDeployment",
                "metadata": {"name": "probe", "namespace": "default"},
                "spec": {"job": {"jarURI": "local:///opt/job.jar", "upgradeMode": "checkpoint"}},
            },
            "spec.job.upgradeMode",
        ),
        (
            {
                "apiVersion": "sparkoperator.k8s.io/v1beta2",
                "kind": "ScheduledSparkApplication",
                "metadata": {"name": "probe", "namespace": "default"},
                "spec": {"schedule": "@daily"},
            },
            "spec.template",
        ),
        (
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": {"name": "probe", "namespace": "default"},
                "spec": {"selector": {}, "endpoints": [{"port": "http", "scrape": "1s"}]},
            },
            ".spec.endpoints[0].scrape: field not declared in schema",
        ),
    ],
    ids=["enum", "required", "unknown-field"],
)
def test_an_invalid_custom_resource_is_rejected(apiserver: Layout, doc: dict[str, Any], message: str) -> None:
    result = apply_dry_run(apiserver, doc)
    assert result.returncode != 0, f"{doc['kind']} was accepted"
    assert message in result.stderr, result.stderr


def test_a_second_up_is_a_no_op(apiserver: Layout) -> None:
    pids = {name: services.running_pid(apiserver.state, name) for name in k8s_apiserver.PROCESSES}
    k8s_apiserver.up(apiserver, CRDS)
    assert {n: services.running_pid(apiserver.state, n) for n in pids} == pids


def test_a_taken_port_is_a_clear_error(tmp_path: Path, apiserver: Layout) -> None:
    layout = Layout(tmp_path, apiserver.etcd_port, free_port(), free_port())
    with pytest.raises(K8sError, match=f"port {apiserver.etcd_port} is taken"):
        k8s_apiserver.start_etcd(layout)
