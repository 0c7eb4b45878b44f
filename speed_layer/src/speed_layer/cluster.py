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
    """The mini-cluster: heap state with checkpoints kept on cancel (a restart resumes from the
    newest), Flink's reporter on LAMBDA_SPEED_METRICS_PORT, Python workers on this interpreter."""
    return {
        "execution.checkpointing.dir": settings.checkpoint_url,
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
        "state.backend.type": "hashmap",
        # Python workers must run this environment's interpreter, not the system python.
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "metrics.reporter.prom.factory.class": "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
        "metrics.reporter.prom.port": str(settings.speed_metrics_port),
        "taskmanager.memory.process.size": "2g",
        "rest.bind-port": "8081-8181",
    }
