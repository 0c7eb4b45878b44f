"""Local services for development, tests and the demo: Kafka (KRaft), Redis, Prometheus, Pushgateway.

There is no container engine on the target machines, so the real servers run as plain processes:
Kafka from the jars `make setup` fetched from Maven Central, the others from Debian packages.
All state lives under LAMBDA_STATE_DIR; each process's pid is recorded there so `down` stops
exactly what `up` started. `up` is idempotent and returns only once every service is ready.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kafka.errors import KafkaError

from lambda_contract.settings import Settings, SettingsError
from lambda_tools import kafka_calls
from lambda_tools.kafka_calls import KafkaUnavailableError

REPO = Path(__file__).resolve().parents[3]
INFRA = REPO / "infra"
READY_TIMEOUT_S = 90.0


class ServiceError(RuntimeError):
    """A service could not be started or did not become ready; the message says which and why."""


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    log: str


def pid_file(state: Path, name: str) -> Path:
    return state / "pids" / f"{name}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie counts as dead, but a process whose main thread has exited while its other threads
    # still run (a JVM running its shutdown hooks, say) shows its leader as a zombie and still
    # holds its ports: it is alive while any of its threads is not a zombie.
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    for task in tasks:
        try:
            # The state follows the command name, which is in parentheses and may hold blanks.
            if (task / "stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                return True
        except (OSError, IndexError):
            continue
    return False


def running_pid(state: Path, name: str) -> int | None:
    """The pid `up` recorded for a service, if that process is still running."""
    path = pid_file(state, name)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_ready(what: str, check: Callable[[], bool], log: Path, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
    raise ServiceError(f"{what} not ready after {timeout:.0f}s; last log lines of {log}:\n" + "\n".join(tail))


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (fixed local http URLs)
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def spawn(state: Path, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # not killed with the caller's terminal; `down` stops it
            env=env,
        )
    recorded = pid_file(state, name)
    recorded.parent.mkdir(parents=True, exist_ok=True)
    recorded.write_text(f"{proc.pid}\n")
    return proc.pid


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServiceError(f"{name} is not installed; run `make setup`")
    return path


# --- Kafka ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KafkaNode:
    """One combined KRaft node (broker and controller) as infra/kafka/server.properties renders it:
    the single node of `make up`, or one of cluster mode's three (lambda_tools.cluster.kafka)."""

    node_id: int
    host: str
    port: int
    controller_port: int
    quorum: str  # controller.quorum.bootstrap.servers: every controller's host:port
    replication: int  # of the internal topics and of topics created without one
    min_insync: int
    home: Path  # its server.properties, data (log.dirs) and kafka.logs.dir


KAFKA_HEAP = ("-Xms256m", "-Xmx1g")


def _kafka_classpath(settings: Settings) -> str:
    jars = settings.path(settings.jars_dir) / "kafka"
    if not any(jars.glob("kafka_2.13-*.jar")):
        raise ServiceError(f"Kafka jars missing in {jars}; run `make setup`")
    return f"{jars}/*"


def kafka_java(
    settings: Settings, node: KafkaNode, heap: tuple[str, str] = KAFKA_HEAP, agents: tuple[str, ...] = ()
) -> list[str]:
    """The JVM command line of a Kafka node or its tools: the jars `make setup` fetched and the
    project's log4j configuration (everything to stdout, which spawn sends to the node's log)."""
    return [
        "java",
        *heap,
        "-XX:+UseG1GC",
        *agents,
        f"-Dlog4j2.configurationFile={INFRA / 'kafka' / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={node.home / 'logs'}",
        "-cp",
        _kafka_classpath(settings),
    ]


def kafka_config(settings: Settings, node: KafkaNode, overrides: Mapping[str, str] | None = None) -> Path:
    """Render infra/kafka/server.properties for `node` into its home; `overrides` are appended
    (a later key wins)."""
    config = node.home / "server.properties"
    template = (INFRA / "kafka" / "server.properties").read_text()
    config.parent.mkdir(parents=True, exist_ok=True)
    values = {
        "NODE_ID": node.node_id,
        "HOST": node.host,
        "PORT": node.port,
        "CONTROLLER_PORT": node.controller_port,
        "QUORUM": node.quorum,
        "DATA_DIR": node.home / "data",
        "PARTITIONS": settings.topic_partitions,
        "REPLICATION": node.replication,
        "MIN_INSYNC": node.min_insync,
    }
    for key, value in values.items():
        template = template.replace(f"@{key}@", str(value))
    extra = "".join(f"{key}={value}\n" for key, value in (overrides or {}).items())
    config.write_text(template + extra)
    return config


def format_kafka_storage(
    settings: Settings, node: KafkaNode, config: Path, cluster_id: str, initial_controllers: str | None = None
) -> None:
    """Format the node's data directory once (a formatted one is kept: a restarted node rejoins
    with its data). Without `initial_controllers` it is a one-voter quorum of its own."""
    if (node.home / "data" / "meta.properties").exists():
        return
    quorum = (
        ["--standalone"] if initial_controllers is None else ["--initial-controllers", initial_controllers]
    )
    subprocess.run(
        [*kafka_java(settings, node), "kafka.tools.StorageTool", "format", *quorum,
         "-t", cluster_id, "-c", str(config)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _single_node(settings: Settings, state: Path) -> KafkaNode:
    port = int(settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])
    return KafkaNode(
        node_id=1,
        host="localhost",
        port=port,
        controller_port=port + 1,
        quorum=f"localhost:{port + 1}",
        replication=1,
        min_insync=1,
        home=state / "kafka",
    )


def start_kafka(settings: Settings, state: Path, overrides: Mapping[str, str] | None = None) -> None:
    """Start the broker (unless running) and create the platform's topics. `overrides`: broker
    properties on top of infra/kafka/server.properties, for a test's private broker (e.g. a
    retention check every second instead of every 5 minutes)."""
    name = "kafka"
    log = state / "logs" / "kafka.log"
    node = _single_node(settings, state)
    if running_pid(state, name) is None:
        if port_open(node.port):
            raise ServiceError(f"port {node.port} is taken by a process this project did not start")
        config = kafka_config(settings, node, overrides)
        format_kafka_storage(settings, node, config, kafka_uuid())
        spawn(state, name, [*kafka_java(settings, node), "kafka.Kafka", str(config)], log)
    wait_ready("Kafka", lambda: _kafka_ready(settings), log)
    create_topics(settings)


def kafka_uuid() -> str:
    """A random KRaft cluster or directory id (22 characters of URL-safe base64), never starting
    with `-`: the storage tool would read `-t -xyz...` as an option (Kafka's own Uuid.randomUuid
    skips those too)."""
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _kafka_ready(settings: Settings) -> bool:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=3000)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def create_topics(settings: Settings) -> None:
    """Create the platform's topics if missing (idempotent)."""
    with kafka_calls.admin_client(settings.kafka_bootstrap) as admin:
        kafka_calls.ensure_topics(admin, kafka_calls.platform_topics(settings))


# --- Redis -------------------------------------------------------------------------------------


def redis_password_file(state: Path) -> Path:
    return state / "secrets" / "redis-password"


def _ensure_redis_password(state: Path) -> str:
    """Local Redis also requires a password; it is generated once, never committed."""
    path = redis_password_file(state)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def start_redis(settings: Settings, state: Path) -> None:
    name = "redis"
    binary = require_binary("redis-server")
    log = state / "logs" / "redis.log"
    port = _redis_port(settings)
    password = _ensure_redis_password(state)
    if running_pid(state, name) is None:
        if port_open(port):
            raise ServiceError(f"port {port} is taken by a process this project did not start")
        data = state / "redis"
        data.mkdir(parents=True, exist_ok=True)
        conf = data / "redis.conf"
        conf.touch(mode=0o600)
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\nprotected-mode yes\ndir {data}\n"
            f'requirepass {password}\nappendonly no\nsave ""\ndaemonize no\n'
        )
        spawn(state, name, [binary, str(conf)], log)
    wait_ready("Redis", lambda: _redis_ready(port, password), log)


def _redis_port(settings: Settings) -> int:
    hostport = settings.redis_url.split("://", 1)[1].split("/", 1)[0]
    return int(hostport.rsplit(":", 1)[1]) if ":" in hostport else 6379


def _redis_ready(port: int, password: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            reply = b""
            while b"PONG" not in reply and len(reply) < 200:
                chunk = s.recv(100)
                if not chunk:
                    break
                reply += chunk
            return b"+PONG" in reply
    except OSError:
        return False


# --- Prometheus and Pushgateway -----------------------------------------------------------------


def start_prometheus(settings: Settings, state: Path) -> None:
    name = "prometheus"
    binary = require_binary("prometheus")
    log = state / "logs" / "prometheus.log"
    port = settings.prometheus_port
    if running_pid(state, name) is None:
        if port_open(port):
            raise ServiceError(f"port {port} is taken by a process this project did not start")
        spawn(state, name, [
            binary,
            f"--config.file={INFRA / 'prometheus' / 'prometheus.yml'}",
            f"--storage.tsdb.path={state / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=7d",
        ], log)  # fmt: skip
    wait_ready("Prometheus", lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), log)


def pushgateway_port(settings: Settings) -> int:
    """The local Pushgateway listens where LAMBDA_PUSHGATEWAY_URL points (9091 when it is unset)."""
    return urllib.parse.urlparse(settings.pushgateway_url).port or 9091


def start_pushgateway(settings: Settings, state: Path) -> None:
    name = "pushgateway"
    binary = require_binary("prometheus-pushgateway")
    log = state / "logs" / "pushgateway.log"
    port = pushgateway_port(settings)
    if running_pid(state, name) is None:
        if port_open(port):
            raise ServiceError(f"port {port} is taken by a process this project did not start")
        # Pushed metrics survive a restart, as in Kubernetes (docs/operations.md, NightlyBatchMissing).
        persisted = state / "pushgateway" / "metrics"
        persisted.parent.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={persisted}",
            "--persistence.interval=1m",
        ]
        spawn(state, name, args, log)
    wait_ready("Pushgateway", lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), log)


# --- commands ----------------------------------------------------------------------------------

SERVICES = ("kafka", "redis", "prometheus", "pushgateway")
# Started by `make k8s-up` (lambda_tools.k8s_apiserver), in start order; `down` stops them too.
K8S_PROCESSES = ("etcd", "kube-apiserver")


def up(settings: Settings, cluster: bool = False) -> None:
    """The single-node services; with `cluster`, the cluster's processes instead of the one
    Kafka and Redis (lambda_tools.cluster), beside the same Prometheus and Pushgateway."""
    state = settings.state_path
    state.mkdir(parents=True, exist_ok=True)
    if not cluster:
        start_redis(settings, state)
    start_pushgateway(settings, state)
    start_prometheus(settings, state)
    if cluster:
        from lambda_tools import cluster as cluster_mode

        cluster_mode.up(settings)
    else:
        start_kafka(settings, state)


def _all_names() -> tuple[str, ...]:
    from lambda_tools import cluster as cluster_mode

    return SERVICES + K8S_PROCESSES + cluster_mode.process_names()


def down(settings: Settings) -> list[str]:
    """Stop what `up` and `make k8s-up` started (by recorded pid), waiting for each to exit.

    Returns what stopped.
    """
    state = settings.state_path
    stopped = []
    for name in reversed(_all_names()):
        pid = running_pid(state, name)
        if pid is not None:
            stop_pid(pid)
            stopped.append(name)
        pid_file(state, name).unlink(missing_ok=True)
    return stopped


def stop_pid(pid: int, grace_s: float = 30.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return


def reset(settings: Settings) -> None:
    """Stop everything and wipe all local state: topics, Redis, Delta tables, checkpoints."""
    down(settings)
    state = settings.state_path
    if state.exists():
        shutil.rmtree(state)


def ready_line(settings: Settings) -> str:
    """Where each local service answers, for the commands that started them to say."""
    redis = (
        "Cluster " + ",".join(f"{h}:{p}" for h, p in settings.redis_cluster)
        if settings.redis_cluster
        else settings.redis_url
    )
    return (
        f"services ready: Kafka {settings.kafka_bootstrap} | Redis {redis} | Prometheus "
        f"http://localhost:{settings.prometheus_port} | Pushgateway http://localhost:{pushgateway_port(settings)}"
    )


def status(settings: Settings) -> dict[str, int | None]:
    """Every service's pid; the cluster's processes and the API server only when running."""
    state = settings.state_path
    extra = {name: running_pid(state, name) for name in _all_names()[len(SERVICES) :]}
    return {name: running_pid(state, name) for name in SERVICES} | {n: p for n, p in extra.items() if p}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lambda-services", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "reset", "status"])
    parser.add_argument(
        "--cluster", action="store_true", help="up: the cluster's processes (docs/cluster.md)"
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "up":
            up(settings, cluster=args.cluster)
            print(ready_line(settings))
        elif args.command == "down":
            stopped = down(settings)
            print("stopped:", ", ".join(stopped) if stopped else "nothing was running")
        elif args.command == "reset":
            reset(settings)
            print("services stopped and local state wiped:", settings.state_path)
        else:
            for name, pid in status(settings).items():
                print(f"{name:12} {'running pid ' + str(pid) if pid else 'stopped'}")
    except (
        ServiceError,
        SettingsError,
        subprocess.CalledProcessError,
        KafkaError,
        KafkaUnavailableError,
    ) as exc:
        print(f"lambda-services {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
