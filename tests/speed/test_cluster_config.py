"""One place for each Flink setting: the job sets only its own; the cluster's come from the
deployment (the FlinkDeployment) or, for the mini-cluster the job starts itself, from
speed_layer.cluster. Neither sets what the other does, and both clusters keep what the job needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lambda_contract.settings import Settings
from speed_layer import cluster, job

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SETTINGS = Settings.from_env({"LAMBDA_HOME": str(REPO)})
OPTIONS = job.JobOptions()
# What only a mini-cluster started by the job needs: in a deployment the image and the
# FlinkDeployment's resources decide these.
LOCAL_ONLY = {
    "python.executable",
    "python.client.executable",
    "taskmanager.memory.process.size",
    "rest.bind-port",
}


def deployment_config() -> dict[str, str]:
    doc = yaml.safe_load((REPO / "k8s/base/speed/flinkdeployment.yaml").read_text())
    return {str(k): str(v) for k, v in doc["spec"]["flinkConfiguration"].items()}


def test_the_job_sets_no_cluster_setting_and_the_deployment_no_job_setting() -> None:
    job_keys = set(job.job_config(SETTINGS, OPTIONS))
    assert not job_keys & set(cluster.local_cluster_config(SETTINGS))
    assert not job_keys & set(deployment_config())


def test_the_deployment_keeps_every_cluster_setting_the_local_cluster_has() -> None:
    local = cluster.local_cluster_config(SETTINGS)
    deployed = deployment_config()
    missing = set(local) - LOCAL_ONLY - set(deployed)
    assert not missing, f"the FlinkDeployment lacks {sorted(missing)}"
    same_meaning = {"execution.checkpointing.externalized-checkpoint-retention",
                    "execution.checkpointing.num-retained", "metrics.reporter.prom.factory.class",
                    *cluster.state_backend_config("rocksdb")}  # fmt: skip
    assert {k: local[k] for k in same_meaning} == {k: deployed[k] for k in same_meaning}


def test_rocksdb_with_incremental_checkpoints_and_bounded_alignment_is_the_default() -> None:
    local = cluster.local_cluster_config(SETTINGS)
    assert local["state.backend.type"] == "rocksdb"
    assert local["execution.checkpointing.incremental"] == "true"
    assert local["execution.checkpointing.unaligned.enabled"] == "true"
    heap = cluster.local_cluster_config(Settings.from_env({"LAMBDA_SPEED_STATE_BACKEND": "hashmap"}))
    assert heap["state.backend.type"] == "hashmap"
    assert "execution.checkpointing.incremental" not in heap


def test_a_job_launched_by_flink_takes_the_cluster_as_its_deployment_made_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYFLINK_GATEWAY_PORT", raising=False)
    assert set(cluster.local_cluster_config(SETTINGS)) <= set(job.flink_config(SETTINGS, OPTIONS))
    monkeypatch.setenv("PYFLINK_GATEWAY_PORT", "25333")
    assert job.flink_config(SETTINGS, OPTIONS) == job.job_config(SETTINGS, OPTIONS)
