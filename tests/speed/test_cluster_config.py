"""One place for each Flink setting: the job sets only its own; the cluster's live in the
FlinkDeployment, which a deployed job's cluster is configured from and which the mini-cluster the
job starts itself reads at start. Neither the job nor the mini-cluster carries a copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from lambda_contract.settings import Settings
from speed_layer import cluster, job

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SETTINGS = Settings.from_env({"LAMBDA_HOME": str(REPO)})
OPTIONS = job.JobOptions()


def deployment_config(home: Path = REPO) -> dict[str, str]:
    doc = yaml.safe_load((home / cluster.DEPLOYMENT).read_text())
    return {str(k): str(v) for k, v in doc["spec"]["flinkConfiguration"].items()}


def test_the_job_sets_no_cluster_setting_and_the_deployment_no_job_setting() -> None:
    job_keys = set(job.job_config(SETTINGS, OPTIONS))
    assert not job_keys & set(cluster.local_cluster_config(SETTINGS))
    assert not job_keys & set(deployment_config())


def test_the_mini_cluster_takes_the_deployments_values_and_adds_only_local_ones() -> None:
    local = cluster.local_cluster_config(SETTINGS)
    deployed = deployment_config()
    assert {k: local[k] for k in cluster.SHARED} == {k: deployed[k] for k in cluster.SHARED}
    assert set(local) == set(cluster.SHARED) | set(cluster.LOCAL)
    assert not set(cluster.LOCAL) & set(cluster.SHARED)


def test_a_changed_deployment_changes_the_mini_cluster(tmp_path: Path) -> None:
    """The values are read from the file, not kept in the code: edit the file, the cluster follows."""
    target = tmp_path / cluster.DEPLOYMENT
    target.parent.mkdir(parents=True)
    shutil.copy(REPO / cluster.DEPLOYMENT, target)
    doc = yaml.safe_load(target.read_text())
    doc["spec"]["flinkConfiguration"]["execution.checkpointing.num-retained"] = "7"
    doc["spec"]["flinkConfiguration"]["state.backend.type"] = "forst"
    target.write_text(yaml.safe_dump(doc))
    moved = Settings.from_env({"LAMBDA_HOME": str(tmp_path)})
    local = cluster.local_cluster_config(moved)
    assert local["execution.checkpointing.num-retained"] == "7"
    assert local["state.backend.type"] == "forst"
    override = Settings.from_env({"LAMBDA_HOME": str(tmp_path), "LAMBDA_SPEED_STATE_BACKEND": "rocksdb"})
    assert cluster.local_cluster_config(override)["state.backend.type"] == "rocksdb"
    del doc["spec"]["flinkConfiguration"]["execution.checkpointing.num-retained"]
    target.write_text(yaml.safe_dump(doc))
    with pytest.raises(RuntimeError, match="num-retained"):
        cluster.local_cluster_config(moved)


def test_production_keeps_rocksdb_incremental_checkpoints_on_the_object_store() -> None:
    deployed = deployment_config()
    assert deployed["state.backend.type"] in {"rocksdb", "forst"}
    assert deployed["execution.checkpointing.incremental"] == "true"
    for key in (
        "execution.checkpointing.dir",
        "execution.checkpointing.savepoint-dir",
        "high-availability.storageDir",
    ):
        assert deployed[key].startswith("s3://"), key


def test_rocksdb_with_incremental_checkpoints_and_bounded_alignment_is_the_default() -> None:
    local = cluster.local_cluster_config(SETTINGS)
    assert local["state.backend.type"] == "rocksdb"
    assert local["execution.checkpointing.incremental"] == "true"
    assert local["execution.checkpointing.unaligned.enabled"] == "true"
    # The dedup's lookups of new (absent) ids need the SST Bloom filters, in blocks the cache can
    # keep (docs/benchmarks.md).
    assert local["state.backend.rocksdb.use-bloom-filter"] == "true"
    assert local["state.backend.rocksdb.memory.partitioned-index-filters"] == "true"
    heap = cluster.local_cluster_config(
        Settings.from_env({"LAMBDA_HOME": str(REPO), "LAMBDA_SPEED_STATE_BACKEND": "hashmap"})
    )
    assert heap["state.backend.type"] == "hashmap"
    assert "execution.checkpointing.incremental" not in heap
    assert not [k for k in heap if k.startswith("state.backend.rocksdb.")]


def test_a_job_launched_by_flink_takes_the_cluster_as_its_deployment_made_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYFLINK_GATEWAY_PORT", raising=False)
    assert set(cluster.local_cluster_config(SETTINGS)) <= set(job.flink_config(SETTINGS, OPTIONS))
    monkeypatch.setenv("PYFLINK_GATEWAY_PORT", "25333")
    assert job.flink_config(SETTINGS, OPTIONS) == job.job_config(SETTINGS, OPTIONS)
