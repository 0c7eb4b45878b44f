"""The Flink cluster's settings, which live in one place: the FlinkDeployment.

A deployed job runs in a cluster its deployment configured: the FlinkDeployment in Kubernetes
(k8s/base/speed/flinkdeployment.yaml, `spec.flinkConfiguration`) or a standalone cluster's
config.yaml. The job then sets none of them (`started_by_flink`). `make speed`, the demo, the tests
and the benchmarks run the job as a plain Python process that starts a mini-cluster of its own;
that mini-cluster reads the FlinkDeployment's values for everything a cluster shares with
production (state backend, checkpointing, the reporter: SHARED) from the same file at start, and
adds only what a process on this machine needs instead of what the image and the operator give a
pod (LOCAL: checkpoint directory, ports, memory, the interpreter).

Cluster mode (`make up CLUSTER=1`) runs a standalone session cluster instead; its config.yaml is
`session_cluster_config`, from the same file (`python -m speed_layer.cluster session-config DIR`,
which lambda_tools.cluster.flink calls with this environment's interpreter).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Final

from ruamel.yaml import YAML  # Flink's own Python package depends on it

from lambda_contract import storage
from lambda_contract.settings import Settings
from speed_layer import checkpoints

DEPLOYMENT: Final = Path("k8s/base/speed/flinkdeployment.yaml")
# What a mini-cluster takes from the FlinkDeployment unchanged. The other keys there are
# Kubernetes-only: HA on Kubernetes, the operator's savepoint schedule, S3 paths, the image's venv.
SHARED: Final = (
    "state.backend.type",
    "state.backend.rocksdb.use-bloom-filter",
    "state.backend.rocksdb.memory.partitioned-index-filters",
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
            conf = {k: v for k, v in conf.items() if not k.startswith("state.backend.rocksdb.")}
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


# What a session cluster takes from the FlinkDeployment besides SHARED: a TaskManager may die there,
# and the job restarts from its last checkpoint as the operator's pods would.
SESSION_SHARED: Final = (*SHARED, "restart-strategy.type")
# The session cluster's ports (docs/cluster.md): REST, the JobManager's RPC and blob server, each
# TaskManager's RPC and data port (16200 + 10 N, + 1), each process's Prometheus reporter.
JM_RPC_PORT: Final = 16123
BLOB_PORT: Final = 16290
REPORTER_PORT: Final = 19249
TM_MEMORY: Final = "1536m"
JM_MEMORY: Final = "1024m"


def flink_home() -> Path:
    """The Flink distribution apache-flink installs (bin/, lib/, opt/, conf/, plugins/)."""
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def distribution_java_opts() -> str:
    """env.java.opts.all of the distribution's own config.yaml (the --add-opens Flink needs on 17)."""
    doc: Any = YAML(typ="safe").load((flink_home() / "conf" / "config.yaml").read_text())
    return str(doc["env"]["java"]["opts"]["all"])


def rest_address(settings: Settings) -> tuple[str, int]:
    """(host, port) of the session cluster's REST API: LAMBDA_FLINK_JOBMANAGER."""
    host, _, port = settings.flink_jobmanager.rpartition(":")
    if not host or not port.isdigit():
        raise RuntimeError(
            f"LAMBDA_FLINK_JOBMANAGER must be host:port, got {settings.flink_jobmanager!r} "
            "(set by CLUSTER=1: infra/cluster/cluster.env)"
        )
    return host, int(port)


def session_cluster_config(settings: Settings) -> dict[str, str]:
    """config.yaml of the standalone session cluster: the FlinkDeployment's SESSION_SHARED settings,
    one slot per TaskManager (parallelism 2 spreads the job over both), checkpoints and savepoints
    under LAMBDA_CHECKPOINT_DIR with the object store's s3.* keys, Python workers on this
    interpreter. A TaskManager's own ports and directories are `taskmanager_overrides`."""
    deployed = deployment_config(settings)
    missing = [k for k in SESSION_SHARED if k not in deployed]
    if missing:
        raise RuntimeError(f"{DEPLOYMENT} lacks {missing}, which the session cluster takes from it")
    conf = {k: deployed[k] for k in SESSION_SHARED}
    host, port = rest_address(settings)
    local = {
        "env.java.opts.all": distribution_java_opts(),
        "execution.checkpointing.dir": settings.checkpoint_url,
        "execution.checkpointing.savepoint-dir": checkpoints.savepoint_dir(settings.checkpoint_url),
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "jobmanager.rpc.address": "127.0.0.1",
        "jobmanager.rpc.port": str(JM_RPC_PORT),
        "jobmanager.bind-host": "127.0.0.1",
        "jobmanager.memory.process.size": JM_MEMORY,
        "blob.server.port": str(BLOB_PORT),
        "rest.address": host,
        "rest.bind-address": host,
        "rest.port": str(port),
        # Checkpoint statistics are cached for web.refresh-interval (3 s) by default, as long as
        # the checkpoint interval here: a checkpoint that is in progress for 200 ms, as most are,
        # was then never seen in progress by whoever polls (tests/cluster's object-store fault).
        "rest.cache.checkpoint-statistics.timeout": "50 ms",
        # A killed TaskManager is noticed by its refused RPCs within seconds; a live one that this
        # shared 2-core machine starves for a while is not declared lost too early.
        "heartbeat.interval": "5 s",
        "heartbeat.timeout": "30 s",
        "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.host": "127.0.0.1",
        "taskmanager.numberOfTaskSlots": "1",
        "taskmanager.memory.process.size": TM_MEMORY,
        "metrics.reporter.prom.port": str(REPORTER_PORT),
        # A job waits this long for slots, e.g. while a killed TaskManager is being started again;
        # its restarts meanwhile back off to at most 10 s, so it runs again soon after.
        "slot.request.timeout": "600 s",
        "restart-strategy.exponential-delay.max-backoff": "10 s",
    }
    return conf | local | storage.flink_s3(settings)


def taskmanager_overrides(n: int, tmp: Path) -> dict[str, str]:
    """What differs between TaskManager N's and the shared config.yaml (dynamic properties)."""
    return {
        "taskmanager.resource-id": f"flink-taskmanager-{n}",
        "taskmanager.rpc.port": str(16200 + 10 * n),
        "taskmanager.data.port": str(16201 + 10 * n),
        "metrics.reporter.prom.port": str(REPORTER_PORT + n),
        "io.tmp.dirs": str(tmp),
    }


# --- the session cluster's REST API: submitting, watching and stopping the job -------------------

JOB_NAME: Final = "lambda-speed"
ENDED: Final = frozenset({"FINISHED", "FAILED", "CANCELED"})


def remote_config(settings: Settings) -> dict[str, str]:
    """What a client submitting to the session cluster sets besides the job's own settings: the
    target, and the checkpoint directory the job resumes from (the cluster's own in `make speed
    CLUSTER=1`; a test's private one), so that its next start finds them again."""
    host, port = rest_address(settings)
    return {
        "execution.target": "remote",
        "rest.address": host,
        "rest.port": str(port),
        "execution.checkpointing.dir": settings.checkpoint_url,
        "execution.checkpointing.savepoint-dir": checkpoints.savepoint_dir(settings.checkpoint_url),
        # Python operators read the interpreter from the job's configuration only (the
        # TaskManagers' config.yaml value is not consulted): this environment's, as theirs.
        "python.executable": sys.executable,
    }


class SessionCluster:
    """The JobManager's REST API at LAMBDA_FLINK_JOBMANAGER."""

    def __init__(self, settings: Settings) -> None:
        host, port = rest_address(settings)
        self.url = f"http://{host}:{port}"

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 (the configured JobManager)
            self.url + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"Flink REST {path}: HTTP {exc.code} {exc.read()[:500]!r}") from None
        except OSError as exc:
            raise RuntimeError(
                f"no Flink session cluster at {self.url} ({exc}); start it with `make up CLUSTER=1`"
            ) from None

    def active_jobs(self, name: str = JOB_NAME) -> list[str]:
        """Ids of the jobs called `name` that have not ended."""
        jobs = self._call("/jobs/overview")["jobs"]
        return [j["jid"] for j in jobs if j["name"] == name and j["state"] not in ENDED]

    def job(self, job_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._call(f"/jobs/{job_id}")
        return answer

    def ui(self, job_id: str) -> str:
        return f"{self.url}/#/job/running/{job_id}/overview"

    def wait_running(self, job_id: str, timeout_s: float) -> float:
        """Wait until the job and every one of its tasks is RUNNING; the seconds it took. A job
        that ends or fails over meanwhile raises with Flink's root exception."""
        started = time.monotonic()
        while True:
            info = self.job(job_id)
            state = info["state"]
            tasks = [v["status"] for v in info["vertices"]]
            if state == "RUNNING" and all(t == "RUNNING" for t in tasks):
                return time.monotonic() - started
            if state in ENDED or state in ("FAILING", "RESTARTING"):
                raise RuntimeError(f"job {job_id} is {state}: {self.root_exception(job_id)}")
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"job {job_id} not RUNNING after {timeout_s:.0f} s: {state} {tasks}")
            time.sleep(0.5)

    def root_exception(self, job_id: str) -> str:
        history = self._call(f"/jobs/{job_id}/exceptions?maxExceptions=1")
        latest = history.get("exceptionHistory", {}).get("entries") or [{}]
        return str(latest[0].get("stacktrace", "no exception recorded"))[:3000]

    def stop_with_savepoint(self, job_id: str, target: str, timeout_s: float) -> str:
        """Stop the job with a savepoint in `target` (canonical format, no drain: a resumed job
        goes on from exactly where this one stopped); its path."""
        body = {"targetDirectory": target, "drain": False, "formatType": "CANONICAL"}
        trigger = self._call(f"/jobs/{job_id}/stop", body)["request-id"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answer = self._call(f"/jobs/{job_id}/savepoints/{trigger}")
            if answer["status"]["id"] == "COMPLETED":
                operation = answer["operation"]
                if "failure-cause" in operation:
                    cause = operation["failure-cause"].get("stack-trace", operation["failure-cause"])
                    raise RuntimeError(f"the savepoint of job {job_id} failed: {str(cause)[:3000]}")
                return str(operation["location"])
            time.sleep(0.5)
        raise RuntimeError(f"no savepoint of job {job_id} after {timeout_s:.0f} s")

    def cancel(self, job_id: str) -> None:
        request = urllib.request.Request(f"{self.url}/jobs/{job_id}?mode=cancel", method="PATCH")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 (the configured JobManager)
            pass

    def wait_ended(self, job_id: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while (state := str(self.job(job_id)["state"])) not in ENDED and time.monotonic() < deadline:
            time.sleep(0.5)
        return state


def main(argv: list[str] | None = None) -> int:
    """`python -m speed_layer.cluster session-config DIR`: writes DIR/config.yaml (mode 600: it
    holds the object store's keys) and prints, as JSON, FLINK_HOME and each TaskManager's
    overrides, for lambda_tools.cluster.flink (which runs in another environment)."""
    p = argparse.ArgumentParser(prog="python -m speed_layer.cluster")
    p.add_argument("command", choices=["session-config"])
    p.add_argument("conf_dir", type=Path)
    p.add_argument("--taskmanagers", type=int, default=2)
    args = p.parse_args(argv)
    conf = session_cluster_config(Settings.from_env())
    args.conf_dir.mkdir(parents=True, exist_ok=True)
    target = args.conf_dir / "config.yaml"
    target.touch(mode=0o600)
    target.chmod(0o600)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 1 << 16  # one line per key
    with target.open("w") as out:
        yaml.dump(conf, out)
    tmp = args.conf_dir.parent / "tmp"
    overrides = {
        str(n): taskmanager_overrides(n, tmp / f"taskmanager-{n}") for n in range(1, args.taskmanagers + 1)
    }
    print(json.dumps({"flink_home": str(flink_home()), "taskmanagers": overrides}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
