"""Flink standalone session cluster: `flink-jobmanager`, `flink-taskmanager-1` and `-2`, each a JVM
of the Flink distribution that apache-flink installs in the speed environment (its bin/ scripts in
`start-foreground` mode, which exec the JVM, so the recorded pid is the JVM's).

Everything lives under <state>/cluster/flink/: conf/ (config.yaml, written by the speed
environment's `python -m speed_layer.cluster session-config` from the FlinkDeployment, so the
settings have one home), lib/ (the distribution's jars plus flink-python, which a job submitted
from Python needs on the cluster's class path), plugins/ (the Prometheus reporter and the S3 file
system H1's jar loop fetches), tmp/taskmanager-N (RocksDB and spill files). Each TaskManager has
one slot and its own Python workers (.venvs/speed/bin/python); `make speed CLUSTER=1` submits the
job at parallelism 2 over both. A killed process is started again by calling `start` again; a
TaskManager keeps its resource id, so the JobManager replaces its old registration at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from dataclasses import fields
from pathlib import Path
from typing import Any, Final

from lambda_contract.settings import Settings
from lambda_tools import services
from lambda_tools.cluster import PROCESSES
from lambda_tools.services import ServiceError

JOBMANAGER: Final = PROCESSES["flink"][0]
TASKMANAGERS: Final = PROCESSES["flink"][1:]
SPEED_PYTHON: Final = services.REPO / ".venvs" / "speed" / "bin" / "python"
S3_PLUGIN: Final = Path("flink-plugins") / "s3-fs-hadoop"  # under LAMBDA_JARS_DIR
READY_TIMEOUT_S: Final = 180.0

# Console only: stdout is the process's log under <state>/logs (no second rolling copy).
LOG4J: Final = """\
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = ConsoleAppender
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
logger.netty.name = org.jboss.netty.channel.DefaultChannelPipeline
logger.netty.level = OFF
"""


def rest_url(settings: Settings) -> str:
    """The JobManager's REST API (LAMBDA_FLINK_JOBMANAGER)."""
    if not settings.flink_jobmanager:
        raise ServiceError(
            "LAMBDA_FLINK_JOBMANAGER is not set: run with CLUSTER=1 (infra/cluster/cluster.env)"
        )
    return f"http://{settings.flink_jobmanager}"


def start(settings: Settings, state: Path) -> None:
    """Start the missing JobManager and TaskManagers; wait until the REST API lists both
    TaskManagers."""
    url = rest_url(settings)
    root = state / "cluster" / "flink"
    layout = _write_config(settings, root)
    home = Path(layout["flink_home"])
    env = {
        **os.environ,
        "FLINK_CONF_DIR": str(root / "conf"),
        "FLINK_LIB_DIR": str(_lib_dir(home, root)),
        "FLINK_PLUGINS_DIR": str(_plugins_dir(settings, home, root)),
        "FLINK_LOG_DIR": str(state / "logs"),
    }
    if services.running_pid(state, JOBMANAGER) is None:
        port = int(settings.flink_jobmanager.rsplit(":", 1)[1])
        if services.port_open(port):
            raise ServiceError(f"port {port} is taken by a process this project did not start")
        _spawn(state, JOBMANAGER, [str(home / "bin" / "jobmanager.sh"), "start-foreground"], env, root)
    log = state / "logs" / f"{JOBMANAGER}.log"
    services.wait_ready(JOBMANAGER, lambda: services.http_ok(f"{url}/overview"), log, READY_TIMEOUT_S)
    for name in TASKMANAGERS:
        if services.running_pid(state, name) is None:
            overrides = layout["taskmanagers"][name.rsplit("-", 1)[1]]
            Path(overrides["io.tmp.dirs"]).mkdir(parents=True, exist_ok=True)
            dynamic = [arg for k, v in overrides.items() for arg in ("-D", f"{k}={v}")]
            argv = [str(home / "bin" / "taskmanager.sh"), "start-foreground", *dynamic]
            _spawn(state, name, argv, env, root)
    for name in TASKMANAGERS:
        services.wait_ready(
            f"{name} (registered with {JOBMANAGER})",
            lambda name=name: name in _registered(url),  # type: ignore[misc]
            state / "logs" / f"{name}.log",
            READY_TIMEOUT_S,
        )


def _spawn(state: Path, name: str, argv: list[str], env: dict[str, str], root: Path) -> None:
    # Each process its own pid dir: the scripts number their log files by the pids recorded there.
    pids = root / "pids" / name
    pids.mkdir(parents=True, exist_ok=True)
    services.spawn(state, name, argv, state / "logs" / f"{name}.log", env={**env, "FLINK_PID_DIR": str(pids)})


def _settings_env(settings: Settings) -> dict[str, str]:
    """`settings` as the LAMBDA_* variables they were read from (str and int settings: what the
    session config reads), for a process in another environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDA_")}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, str | int):
            env[f.metadata["env"]] = str(value)
    return env


def _write_config(settings: Settings, root: Path) -> dict[str, Any]:
    """conf/config.yaml from the speed environment (which has the FlinkDeployment reader and the
    distribution); returns FLINK_HOME and each TaskManager's overrides."""
    if not SPEED_PYTHON.exists():
        raise ServiceError(f"{SPEED_PYTHON} is missing; run `make setup`")
    conf = root / "conf"
    done = subprocess.run(
        [str(SPEED_PYTHON), "-m", "speed_layer.cluster", "session-config", str(conf),
         "--taskmanagers", str(len(TASKMANAGERS))],
        capture_output=True, text=True, check=False, env=_settings_env(settings),
    )  # fmt: skip
    if done.returncode != 0:
        raise ServiceError(
            f"the Flink session cluster's configuration: {done.stderr.strip().splitlines()[-1:]}"
        )
    (conf / "log4j-console.properties").write_text(LOG4J)
    layout: dict[str, Any] = json.loads(done.stdout)
    return layout


def _link(target: Path, source: Path) -> None:
    if target.is_symlink() and target.resolve() == source.resolve():
        return
    target.unlink(missing_ok=True)
    target.symlink_to(source)


def _lib_dir(home: Path, root: Path) -> Path:
    """The distribution's lib/ plus opt/flink-python: the TaskManagers run the job's Python
    operators, whose runtime a client submitting from Python does not ship."""
    lib = root / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    for jar in [*(home / "lib").glob("*.jar"), *(home / "opt").glob("flink-python-*.jar")]:
        _link(lib / jar.name, jar)
    return lib


def _plugins_dir(settings: Settings, home: Path, root: Path) -> Path:
    """Plugins load at start-up from their own folders: the Prometheus reporter and, for s3://
    checkpoints (cluster mode's), the S3 file system."""
    plugins = root / "plugins"
    (plugins / "metrics-prometheus").mkdir(parents=True, exist_ok=True)
    for jar in (home / "plugins" / "metrics-prometheus").glob("*.jar"):
        _link(plugins / "metrics-prometheus" / jar.name, jar)
    s3 = settings.path(settings.jars_dir) / S3_PLUGIN
    jars = list(s3.glob("*.jar"))
    if not jars and settings.checkpoint_url.startswith(("s3://", "s3a://", "s3p://")):
        raise ServiceError(f"the Flink S3 plugin is missing from {s3}; run `make setup`")
    if jars:
        (plugins / "s3-fs-hadoop").mkdir(exist_ok=True)
    for jar in jars:
        _link(plugins / "s3-fs-hadoop" / jar.name, jar)
    return plugins


def _registered(url: str) -> set[str]:
    """Resource ids of the TaskManagers the JobManager lists."""
    try:
        with urllib.request.urlopen(f"{url}/taskmanagers", timeout=2) as resp:  # noqa: S310 (local REST)
            return {tm["id"] for tm in json.load(resp)["taskmanagers"]}
    except (OSError, ValueError, KeyError):
        return set()
