"""Spark standalone cluster: `spark-master` and `spark-worker-1`, `spark-worker-2` (cluster mode).

They run from the Spark distribution that pyspark installs into .venvs/batch (its jars and
bin/spark-class), so the workers' executors are the same Spark build as `lambda-batch`'s driver.
spark-class execs the JVM in the foreground: the recorded pid is the Master's or Worker's own. An
executor is a child JVM of its worker; it exits when the worker dies (Spark's WorkerWatcher), so
SIGKILLing a worker takes its executor with it, and the driver retries their tasks elsewhere.

Ports: master 17077 (UI 18090), worker-N 17077+N (UI 18090+N). Each worker offers 1 core and
WORKER_MEMORY to applications; the driver (batch_layer.spark) asks for executors that fit. Every
UI serves Prometheus text at PROMETHEUS_PATHS (Spark's PrometheusServlet, from metrics.properties).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

from lambda_contract.settings import Settings
from lambda_tools import services

REPO: Final = Path(__file__).resolve().parents[4]
HOST: Final = "127.0.0.1"
MASTER_PORT: Final = 17077
MASTER_UI_PORT: Final = 18090
WORKERS: Final = 2
WORKER_CORES: Final = 1
WORKER_MEMORY: Final = "1536m"
DAEMON_MEMORY: Final = "256m"
"""Heap of the Master and Worker JVMs themselves (bookkeeping only; Spark's default is 1g)."""

PROMETHEUS_PATHS: Final = {
    "master": "/metrics/master/prometheus",
    "applications": "/metrics/applications/prometheus",
    "worker": "/metrics/prometheus",
}
"""Where the PrometheusServlet answers: the master's UI (MASTER_UI_PORT) serves the first two,
each worker's UI (worker_ui_port(n)) the last."""


def worker_port(n: int) -> int:
    return MASTER_PORT + n


def worker_ui_port(n: int) -> int:
    return MASTER_UI_PORT + n


def master_url() -> str:
    return f"spark://{HOST}:{MASTER_PORT}"


def spark_home() -> Path:
    """The pyspark package of the batch environment: a complete Spark (jars/, bin/spark-class)."""
    found = sorted((REPO / ".venvs" / "batch" / "lib").glob("python3*/site-packages/pyspark/bin/spark-class"))
    if not found:
        raise services.ServiceError("pyspark is not installed in .venvs/batch; run `make setup`")
    return found[-1].parents[1]


def _write_conf(conf: Path, state: Path) -> None:
    """SPARK_CONF_DIR of the cluster: the PrometheusServlet sinks, and the workers' clean-up of
    finished applications' folders (each holds a copy of the jars the driver shipped)."""
    conf.mkdir(parents=True, exist_ok=True)
    metrics = conf / "metrics.properties"
    metrics.write_text(
        "*.sink.prometheusServlet.class=org.apache.spark.metrics.sink.PrometheusServlet\n"
        f"*.sink.prometheusServlet.path={PROMETHEUS_PATHS['worker']}\n"
        f"master.sink.prometheusServlet.path={PROMETHEUS_PATHS['master']}\n"
        f"applications.sink.prometheusServlet.path={PROMETHEUS_PATHS['applications']}\n"
    )
    (conf / "spark-defaults.conf").write_text(
        f"spark.metrics.conf {metrics}\n"
        # The master's REST submission server would listen on 6066, outside the reserved ports.
        "spark.master.rest.enabled false\n"
        "spark.worker.cleanup.enabled true\n"
        "spark.worker.cleanup.interval 1800\n"
        "spark.worker.cleanup.appDataTtl 86400\n"
    )


def _env(home: Path, conf: Path, state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(home),
        SPARK_CONF_DIR=str(conf),
        SPARK_LOG_DIR=str(state / "logs"),
        SPARK_DAEMON_MEMORY=DAEMON_MEMORY,
        SPARK_LOCAL_IP=HOST,
        # Python workers an executor starts (if a job has Python functions) use the batch env.
        PYSPARK_PYTHON=str(REPO / ".venvs" / "batch" / "bin" / "python"),
    )
    return env


def alive_workers() -> int:
    """Workers the master lists as ALIVE (its UI's /json), 0 when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{MASTER_UI_PORT}/json/", timeout=2) as resp:
            body = json.load(resp)
    except (urllib.error.URLError, OSError, ValueError):
        return 0
    return sum(1 for w in body.get("workers", ()) if w.get("state") == "ALIVE")


def _start(state: Path, name: str, port: int, argv: list[str], env: dict[str, str]) -> Path:
    log = state / "logs" / f"{name}.log"
    if services.running_pid(state, name) is None:
        if services.port_open(port):
            raise services.ServiceError(
                f"{name}: port {port} is taken by a process this project did not start"
            )
        services.spawn(state, name, argv, log, env)
    return log


def start(settings: Settings, state: Path) -> None:
    """Start the master and both workers unless running; return once the master lists both
    workers ALIVE (a restarted worker registers again under a new id)."""
    home = spark_home()
    root = state / "cluster" / "spark"
    conf = root / "conf"
    _write_conf(conf, state)
    env = _env(home, conf, state)
    spark_class = str(home / "bin" / "spark-class")
    master_log = _start(
        state,
        "spark-master",
        MASTER_PORT,
        [spark_class, "org.apache.spark.deploy.master.Master",
         "--host", HOST, "--port", str(MASTER_PORT), "--webui-port", str(MASTER_UI_PORT)],
        env,
    )  # fmt: skip
    services.wait_ready(
        "spark-master", lambda: services.http_ok(f"http://{HOST}:{MASTER_UI_PORT}/json/"), master_log
    )
    log = master_log
    for n in range(1, WORKERS + 1):
        work = root / f"worker-{n}"
        work.mkdir(parents=True, exist_ok=True)
        log = _start(
            state,
            f"spark-worker-{n}",
            worker_port(n),
            [spark_class, "org.apache.spark.deploy.worker.Worker",
             "--host", HOST, "--port", str(worker_port(n)), "--webui-port", str(worker_ui_port(n)),
             "--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY, "--work-dir", str(work),
             master_url()],
            env,
        )  # fmt: skip
    services.wait_ready(f"{WORKERS} ALIVE Spark workers", lambda: alive_workers() >= WORKERS, log)
