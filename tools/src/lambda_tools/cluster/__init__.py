"""Cluster mode on one machine: the platform on distributed engines, as local processes.

`lambda-services up --cluster` (`make up CLUSTER=1`) starts whatever is missing, in dependency
order, and returns once each is ready; a killed node is brought back the same way. Every process
records its pid in <state>/pids/NAME.pid under the names in PROCESSES, so `make down` stops them
with the single-node services. The settings every command uses in cluster mode are in
infra/cluster/cluster.env; the processes and ports are described in docs/cluster.md.

Each engine has one module here with the same shape: `start(settings, state)`, idempotent, which
starts that engine's missing processes (named in PROCESSES) and waits until they are ready.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Protocol

from lambda_contract.settings import Settings

ENV_FILE: Final = Path(__file__).resolve().parents[4] / "infra" / "cluster" / "cluster.env"

# Start order: storage first (checkpoints and Delta live there), then the brokers and Redis the
# jobs connect to, then the engines. The serving replicas are started by `make serve CLUSTER=1`.
PROCESSES: Final[Mapping[str, tuple[str, ...]]] = {
    "objectstore": ("objectstore",),
    "kafka": ("kafka-1", "kafka-2", "kafka-3"),
    "redis": (*(f"redis-{i}" for i in range(1, 7)), "redis-exporter"),
    "flink": ("flink-jobmanager", "flink-taskmanager-1", "flink-taskmanager-2"),
    "spark": ("spark-master", "spark-worker-1", "spark-worker-2"),
    "serving": ("serving-1", "serving-2"),
}
ENGINES: Final = ("objectstore", "kafka", "redis", "flink", "spark")


class Engine(Protocol):
    def start(self, settings: Settings, state: Path) -> None: ...


def engine(name: str) -> Engine:
    """The module that runs one engine's processes (lambda_tools.cluster.<name>)."""
    module: Engine = importlib.import_module(f"{__name__}.{name}")
    return module


def process_names() -> tuple[str, ...]:
    """Every process cluster mode can start, in start order (for `down` and `status`)."""
    return tuple(n for names in PROCESSES.values() for n in names)


def up(settings: Settings) -> None:
    """Start every engine's missing processes, in order; each waits until it is ready."""
    state = settings.state_path
    state.mkdir(parents=True, exist_ok=True)
    for name in ENGINES:
        engine(name).start(settings, state)


def environment(state_dir: str | Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of infra/cluster/cluster.env (what `make ... CLUSTER=1` exports), with
    ${LAMBDA_STATE_DIR} expanded, on top of `base` (default: this process's environment)."""
    env = dict(os.environ if base is None else base)
    env["LAMBDA_STATE_DIR"] = str(state_dir)
    for line in ENV_FILE.read_text().splitlines():
        match = re.fullmatch(r"(LAMBDA_[A-Z0-9_]+)=(.*)", line.strip())
        if match:
            env[match[1]] = match[2].replace("${LAMBDA_STATE_DIR}", str(state_dir))
    return env
