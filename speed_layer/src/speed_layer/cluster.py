"""The Flink cluster's settings, which live in one place: the FlinkDeployment.

A deployed job runs in a cluster its deployment configured: the FlinkDeployment in Kubernetes
(k8s/base/speed/flinkdeployment.yaml, `spec.flinkConfiguration`) or a standalone cluster's
config.yaml. The job then sets none of them (`started_by_flink`). `make speed`, the demo, the tests
and the benchmarks run the job as a plain Python process that starts a mini-cluster of its own;
that mini-cluster reads the FlinkDeployment's values for everything a cluster shares with
production (state backend, checkpointing, the reporter: SHARED) from the same file at start, and
adds only what a process on this machine needs instead of what the image and the operator give a
pod (LOCAL: checkpoint directory, ports, memory, the interpreter).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Final

from ruamel.yaml import YAML  # Flink's own Python package depends on it

from lambda_contract.settings import Settings

DEPLOYMENT: Final = Path("k8s/base/speed/flinkdeployment.yaml")
# What a mini-cluster takes from the FlinkDeployment unchanged. The other keys there are
# Kubernetes-only: HA on Kubernetes, the operator's savepoint schedule, S3 paths, the image's venv.
SHARED: Final = (
    "state.backend.type",
    "execution.checkpointing.incremental",
    "execution.checkpointing.unaligned.enabled",
    "execution.checkpointing.aligned-checkpoint-timeout",
    "taskmanager.network.memory.buffer-debloat.enabled",
    "execution.checkpointing.externalized-checkpoint-retention",
    "execution.checkpointing.num-retained",
    "metrics.reporter.prom.factory.class",
)
# What only a mini-cluster started by the job sets (in a pod, the image and the resources decide).
LOCAL: Final = (
    "execution.checkpointing.dir",
    "python.executable",
    "python.client.executable",
    "metrics.reporter.prom.port",
    "taskmanager.memory.process.size",
    "rest.bind-port",
)


def started_by_flink() -> bool:
    """Whether a Flink cluster launched this process (`flink run`, the operator's Python driver):
    the driver then hands it the port of the gateway it already started."""
    return "PYFLINK_GATEWAY_PORT" in os.environ


def deployment_config(settings: Settings) -> dict[str, str]:
    """`spec.flinkConfiguration` of the FlinkDeployment under LAMBDA_HOME, as strings."""
    path = Path(settings.home) / DEPLOYMENT
    try:
        doc: Any = YAML(typ="safe").load(path.read_text())
        conf = doc["spec"]["flinkConfiguration"]
    except (OSError, KeyError, TypeError) as exc:
        raise RuntimeError(
            f"the local Flink cluster takes its settings from {path} (LAMBDA_HOME={settings.home!r}), "
            f"which cannot be read: {exc}"
        ) from None
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in conf.items()}


def local_cluster_config(settings: Settings) -> dict[str, str]:
    """The mini-cluster: the FlinkDeployment's SHARED settings, checkpoints under
    LAMBDA_CHECKPOINT_DIR, Flink's reporter on LAMBDA_SPEED_METRICS_PORT, Python workers on this
    interpreter. LAMBDA_SPEED_STATE_BACKEND=hashmap keeps state on the heap instead, for small runs."""
    deployed = deployment_config(settings)
    missing = [k for k in SHARED if k not in deployed]
    if missing:
        raise RuntimeError(f"{DEPLOYMENT} lacks {missing}, which the local Flink cluster takes from it")
    conf = {k: deployed[k] for k in SHARED}
    if settings.speed_state_backend and settings.speed_state_backend != conf["state.backend.type"]:
        conf["state.backend.type"] = settings.speed_state_backend
        if settings.speed_state_backend == "hashmap":
            conf.pop("execution.checkpointing.incremental")  # full snapshots only
    local = {
        "execution.checkpointing.dir": settings.checkpoint_url,
        # Python workers must run this environment's interpreter, not the system python.
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "metrics.reporter.prom.port": str(settings.speed_metrics_port),
        "taskmanager.memory.process.size": "2g",
        "rest.bind-port": "8081-8181",
    }
    return conf | local
