"""The speed job on the Flink session cluster, as cluster mode runs it.

`lambda-speed` with the cluster's environment (`make speed CLUSTER=1`) submits the job to the
session cluster at parallelism 2 (one slot on each TaskManager, each with its own Python workers)
and returns once every task is RUNNING; Redis Cluster then holds the generator's truth. `lambda-speed
--stop` (`make speed-stop CLUSTER=1`) stops it with a savepoint on the object store; more traffic
arrives; the next submission resumes from that savepoint, and Redis holds the truth of everything
sent. The test prints how long submit-to-RUNNING, the stop and the recovery took.

The object store, the three brokers, Redis Cluster and the Flink cluster are started through their
modules (lambda_tools.cluster.<engine>.start: whatever is missing) and left running, as after
`make up CLUSTER=1`; `make down` stops them. The checkpoints, topics and keys are the test's own
and are removed. It takes several minutes on this machine (two JVM clients, the cluster's JVMs),
so it runs only with LAMBDA_CLUSTER_TESTS=1; the cluster suite (tests/cluster) covers the same
path in `make test`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
import redis
from pyarrow.fs import FileType
from support import preload_history

from lambda_contract import redis_clients
from lambda_contract.settings import Settings
from lambda_testkit.processes import wait_until
from lambda_testkit.sandbox import REPO, Sandbox, delete_prefix, duplicates, read_view
from lambda_testkit.truth import SentRecord, Truth, compute_truth
from lambda_tools import cluster as cluster_mode
from lambda_tools.generator import GeneratedRecord, GeneratorConfig
from speed_layer import checkpoints, cluster, job

ON_THE_CLUSTER = pytest.mark.skipif(
    os.environ.get("LAMBDA_CLUSTER_TESTS") != "1",
    reason="several minutes on the cluster's processes: LAMBDA_CLUSTER_TESTS=1 selects it",
)

ENGINES = ("objectstore", "kafka", "redis", "flink")
EVENTS = 10_000  # per part: enough for every hour and key of two hours, small enough to drain fast
CLI_TIMEOUT_S = 420
EXACT_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def cluster_settings() -> Settings:
    """The cluster's settings (the default state dir, so the ports are cluster.env's), with every
    engine this test needs started."""
    env = cluster_mode.environment(REPO / ".local" / "state", {"LAMBDA_HOME": str(REPO)})
    settings = Settings.from_env(env)
    for name in ENGINES:
        cluster_mode.engine(name).start(settings, settings.state_path)
    return settings


@dataclass
class Box:
    sb: Sandbox
    env: dict[str, str]  # the job's: the cluster's settings with the sandbox's names
    jobs: list[str] = field(default_factory=list)  # what this test submitted, cancelled at the end

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)


@pytest.fixture()
def box(tmp_path: Path, cluster_settings: Settings) -> Iterator[Box]:
    """A sandbox on the cluster's brokers, and the job's environment: the cluster's settings with
    the sandbox's topics, Redis prefix and a checkpoint folder of its own on the object store."""
    sb = Sandbox.over(tmp_path, "speed", cluster_mode.environment(REPO / ".local" / "state", {}))
    env = sb.env()
    bucket = cluster_settings.checkpoint_url.split("/")[2]
    env["LAMBDA_CHECKPOINT_DIR"] = f"s3://{bucket}/tests/speed-{sb.tag}/checkpoints"
    sb.create_topics()
    b = Box(sb, env)
    try:
        yield b
    finally:
        settings = b.settings
        session = cluster.SessionCluster(settings)
        for job_id in set(b.jobs) & set(session.active_jobs()):  # an assertion stopped it early
            session.cancel(job_id)
            session.wait_ended(job_id, 60)
        sb.delete_topics()
        client = _redis(settings)
        delete_prefix(client, settings.redis_prefix)
        client.close()
        store = checkpoints.object_store(settings)
        folder = env["LAMBDA_CHECKPOINT_DIR"].removeprefix("s3://")
        if store.get_file_info(folder).type != FileType.NotFound:
            store.delete_dir(folder)


def _redis(settings: Settings) -> redis.Redis:
    # The test kit's readers take a redis.Redis; the cluster's client answers the same calls.
    return cast(redis.Redis, redis_clients.sync_client(settings))


def _lambda_speed(b: Box, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """`lambda-speed ARGS` as `make speed CLUSTER=1` runs it; its output and how long it took."""
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "speed_layer.main", *args],
        env=b.env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    b.jobs += re.findall(r"job ([0-9a-f]{32}) submitted", done.stderr)
    return done, time.monotonic() - began


def _converged(client: redis.Redis, prefix: str, truth: Truth) -> bool:
    return read_view(client, prefix, "hour") == truth.speed and duplicates(client, prefix) == truth.duplicates


@pytest.mark.integration
@ON_THE_CLUSTER
def test_submit_stop_with_savepoint_and_resume_on_the_session_cluster(box: Box) -> None:
    sb, settings = box.sb, box.settings
    session = cluster.SessionCluster(settings)
    client = _redis(settings)
    prefix = settings.redis_prefix
    topic = sb.topics["LAMBDA_TOPIC_ORDERS"]
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    config = GeneratorConfig(seed=11, late_rate=0.0, duplicate_rate=0.02, malformed_rate=0.01)
    first, truth = preload_history(sb.bootstrap, topic, config, day, day + timedelta(hours=2), EVENTS)
    assert not truth.late

    submitted, submit_s = _lambda_speed(box)
    assert submitted.returncode == 0, submitted.stderr[-4000:]
    print(f"\nsession cluster: submit-to-RUNNING {submit_s:.1f} s", flush=True)
    job_id = re.search(r"job ([0-9a-f]{32}) RUNNING", submitted.stdout)
    assert job_id, submitted.stdout
    info = session.job(job_id[1])
    assert info["state"] == "RUNNING"
    assert {v["parallelism"] for v in info["vertices"]} >= {2}, "the job is not spread over both slots"
    refused, _ = _lambda_speed(box)
    assert refused.returncode == 1 and "already running" in refused.stderr

    began = time.monotonic()
    assert wait_until(lambda: _converged(client, prefix, truth), EXACT_TIMEOUT_S, 1.0), (
        f"Redis holds {sum(m.events for m in read_view(client, prefix, 'hour').values())} events "
        f"of {sum(m.events for m in truth.speed.values())}"
    )
    exact_s = time.monotonic() - began
    assert wait_until(
        lambda: checkpoints.latest_complete(settings.checkpoint_url, settings) is not None, 120, 2.0
    ), "no complete checkpoint on the object store"

    print(f"session cluster: exact in Redis {exact_s:.1f} s after RUNNING", flush=True)
    stopped, stop_s = _lambda_speed(box, "--stop")
    assert stopped.returncode == 0, stopped.stderr[-4000:]
    print(f"session cluster: stopped with a savepoint in {stop_s:.1f} s", flush=True)
    savepoint = re.search(r"FINISHED; savepoint: (\S+)", stopped.stdout)
    assert savepoint, stopped.stdout
    assert savepoint[1].startswith(checkpoints.savepoint_dir(settings.checkpoint_url) + "/savepoint-")
    assert checkpoints.latest_complete(settings.checkpoint_url, settings) == savepoint[1]

    config2 = GeneratorConfig(seed=12, late_rate=0.0, duplicate_rate=0.02, malformed_rate=0.01)
    second, _ = preload_history(
        sb.bootstrap, topic, config2, day + timedelta(hours=2), day + timedelta(hours=4), EVENTS
    )
    everything = _truth(first + second)

    resumed, resubmit_s = _lambda_speed(box)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"resuming from {savepoint[1]}" in resumed.stderr
    began = time.monotonic()
    assert wait_until(lambda: _converged(client, prefix, everything), EXACT_TIMEOUT_S, 1.0)
    recovery_s = resubmit_s + time.monotonic() - began
    print(
        f"session cluster: resubmit-to-RUNNING {resubmit_s:.1f} s, exact again {recovery_s:.1f} s "
        "after the resubmission began",
        flush=True,
    )
    client.close()


def _truth(records: list[GeneratedRecord]) -> Truth:
    return compute_truth(
        SentRecord(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC)) for r in records
    )


# --- the session cluster's configuration (no process needed) ----------------------------------------

CLUSTER_ENV = cluster_mode.environment("/nonexistent/state", {"LAMBDA_HOME": str(REPO)}) | {
    "LAMBDA_S3_CREDENTIALS_FILE": ""
}


@pytest.mark.unit
def test_the_session_cluster_takes_the_deployments_settings_and_the_reserved_ports() -> None:
    settings = Settings.from_env(CLUSTER_ENV)
    conf = cluster.session_cluster_config(settings)
    deployed = cluster.deployment_config(settings)
    assert {k: conf[k] for k in cluster.SESSION_SHARED} == {k: deployed[k] for k in cluster.SESSION_SHARED}
    assert conf["state.backend.type"] == "rocksdb" and conf["execution.checkpointing.incremental"] == "true"
    assert conf["execution.checkpointing.dir"] == "s3://lambda/flink/checkpoints"
    assert conf["execution.checkpointing.savepoint-dir"] == "s3://lambda/flink/checkpoints/savepoints"
    assert conf["s3.endpoint"] == "http://127.0.0.1:18333" and conf["s3.path.style.access"] == "true"
    assert (conf["rest.address"], conf["rest.port"]) == ("127.0.0.1", "18081")
    assert conf["taskmanager.numberOfTaskSlots"] == "1" and conf["taskmanager.memory.process.size"] == "1536m"
    assert conf["python.executable"] == sys.executable
    tms = [cluster.taskmanager_overrides(n, Path("/tmp")) for n in (1, 2)]
    ports = [int(tm[k]) for tm in tms for k in ("taskmanager.rpc.port", "taskmanager.data.port")]
    assert len(set(ports)) == 4 and all(16200 <= p <= 16299 for p in ports)
    assert [tm["metrics.reporter.prom.port"] for tm in tms] == ["19250", "19251"]


@pytest.mark.unit
def test_a_client_submits_to_the_session_cluster_and_sets_only_the_jobs_settings() -> None:
    """Only where it resumes from and the Python its operators run (which Flink reads from the
    job alone) join the job's own settings; the rest stays the cluster's."""
    settings = Settings.from_env(CLUSTER_ENV)
    conf = job.flink_config(settings, job.JobOptions())
    assert conf["execution.target"] == "remote"
    assert (conf["rest.address"], conf["rest.port"]) == ("127.0.0.1", "18081")
    assert conf["parallelism.default"] == "2"
    session = cluster.session_cluster_config(settings)
    shared = set(conf) & set(session)
    assert shared == {
        "rest.address",
        "rest.port",
        "execution.checkpointing.dir",
        "execution.checkpointing.savepoint-dir",
        "python.executable",
    }
    assert all(conf[k] == session[k] for k in shared)
    with pytest.raises(RuntimeError, match="host:port"):
        cluster.rest_address(Settings.from_env(CLUSTER_ENV | {"LAMBDA_FLINK_JOBMANAGER": "18081"}))
