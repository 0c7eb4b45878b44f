"""The Flink cluster's settings when the job starts its own mini-cluster.

A deployed job runs in a cluster configured by its deployment: the FlinkDeployment in Kubernetes
(k8s/base/speed/flinkdeployment.yaml) or a standalone cluster's config.yaml. Those settings live
there and the job sets none of them. `make speed`, the demo, the tests and the benchmarks run the
job as a plain Python process that starts a mini-cluster of its own; having no deployment, that
cluster's settings live here, and `job.build` applies them only then.
"""

from __future__ import annotations

import os
import sys

from lambda_contract.settings import Settings


def started_by_flink() -> bool:
    """Whether a Flink cluster launched this process (`flink run`, the operator's Python driver):
    the driver then hands it the port of the gateway it already started."""
    return "PYFLINK_GATEWAY_PORT" in os.environ


def local_cluster_config(settings: Settings) -> dict[str, str]:
    """The mini-cluster: RocksDB state with incremental checkpoints kept on cancel (a restart
    resumes from the newest), Flink's reporter on LAMBDA_SPEED_METRICS_PORT, Python workers on
    this interpreter. LAMBDA_SPEED_STATE_BACKEND=hashmap keeps state on the heap instead."""
    return {
        "execution.checkpointing.dir": settings.checkpoint_url,
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
        **state_backend_config(settings.speed_state_backend),
        # Python workers must run this environment's interpreter, not the system python.
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "metrics.reporter.prom.factory.class": "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
        "metrics.reporter.prom.port": str(settings.speed_metrics_port),
        "taskmanager.memory.process.size": "2g",
        "rest.bind-port": "8081-8181",
    }


def state_backend_config(backend: str) -> dict[str, str]:
    """The state backend and checkpoint alignment (the same in the FlinkDeployment, see tests/k8s).

    RocksDB keeps the dedup state (event ids for LAMBDA_DEDUP_TTL_S) on disk, and each checkpoint
    uploads only the files written since the last. Unaligned checkpoints let the barrier overtake
    buffered records, and buffer debloating keeps little in flight, so a checkpoint never holds
    the stream back while one slow channel drains.
    """
    conf = {
        "state.backend.type": backend,
        "execution.checkpointing.unaligned.enabled": "true",
        "execution.checkpointing.aligned-checkpoint-timeout": "0 s",
        "taskmanager.network.memory.buffer-debloat.enabled": "true",
    }
    if backend == "rocksdb":
        conf["execution.checkpointing.incremental"] = "true"
    return conf
