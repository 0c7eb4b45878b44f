"""Redis Cluster: three masters and three replicas (redis-1..6 on 17001..17006, bus port +10000)
and one redis-exporter (19121) for all six.

The speed view is a cache the Flink job rebuilds from its state (docs/specs/redis.md), so the
nodes keep no RDB or AOF; each keeps its nodes.conf, so a killed node started again rejoins the
cluster it knew, and a master whose replica was promoted meanwhile comes back as that replica's
replica. cluster-node-timeout is 2 s: a dead master is failed over in about 3 s (timeout, then
the replica's election delay of 0.5-1 s) instead of the default's 15-20 s, while a node that is
only slow on this shared 2-core machine (a few hundred ms) is not voted out.
"""

from __future__ import annotations

import functools
import os
import subprocess
import time
from pathlib import Path
from typing import Final

from lambda_contract.settings import Settings
from lambda_tools import services
from lambda_tools.cluster import PROCESSES
from lambda_tools.services import ServiceError

NODES: Final = tuple(n for n in PROCESSES["redis"] if n != "redis-exporter")
EXPORTER: Final = "redis-exporter"
EXPORTER_PORT: Final = 19121
NODE_TIMEOUT_MS: Final = 2000
READY_TIMEOUT_S: Final = 60.0


def base_port(settings: Settings) -> int:
    """redis-N listens on base + N: the first seed of LAMBDA_REDIS_CLUSTER is redis-1 (17001)."""
    if not settings.redis_cluster:
        raise ServiceError("LAMBDA_REDIS_CLUSTER is not set: run with CLUSTER=1 (infra/cluster/cluster.env)")
    return settings.redis_cluster[0][1] - 1


def node_ports(settings: Settings) -> dict[str, int]:
    base = base_port(settings)
    return {name: base + i for i, name in enumerate(NODES, start=1)}


def start(settings: Settings, state: Path) -> None:
    """Start the missing nodes, create the cluster on a first start, wait for cluster_state:ok on
    every node, then start the exporter if missing."""
    binary = services.require_binary("redis-server")
    services.require_binary("redis-cli")
    password = services._ensure_redis_password(state)  # the single-node secret, one per machine
    ports = node_ports(settings)
    for name, port in ports.items():
        if services.running_pid(state, name) is not None:
            continue
        if _port_held(port):
            raise ServiceError(f"port {port} ({name}) is taken by a process this project did not start")
        conf = _write_config(state, name, port, password)
        _await_failover(name, port, ports, password, state / "logs" / f"{name}.log")
        services.spawn(state, name, [binary, str(conf)], state / "logs" / f"{name}.log")
    for name, port in ports.items():
        log = state / "logs" / f"{name}.log"
        services.wait_ready(name, functools.partial(_ping, port, password), log, READY_TIMEOUT_S)
    if all(_info(p, password).get("cluster_slots_assigned") == "0" for p in ports.values()):
        _create(ports, password, state)
    for name, port in ports.items():
        log = state / "logs" / f"{name}.log"
        services.wait_ready(
            f"{name} (cluster_state:ok)", functools.partial(_ok, port, password), log, READY_TIMEOUT_S
        )
    for name, port in ports.items():
        # A replica still loading its first copy would be promoted empty if its master died now,
        # and a node that does not yet see every other one connected could not vote for it.
        log = state / "logs" / f"{name}.log"
        services.wait_ready(
            f"{name} (replica in sync)", functools.partial(_synced, port, password), log, READY_TIMEOUT_S
        )
        services.wait_ready(
            f"{name} (sees the whole cluster)",
            functools.partial(_settled, port, password),
            log,
            READY_TIMEOUT_S,
        )
    _start_exporter(settings, state, password)


def _port_held(port: int, grace_s: float = 5.0) -> bool:
    """Whether the port stays taken: a node killed a moment ago may still be closing its socket."""
    deadline = time.monotonic() + grace_s
    while services.port_open(port):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)
    return False


def _nodes(ports: dict[str, int], password: str, but: int) -> list[list[str]] | None:
    """CLUSTER NODES (one list of fields per node) as a running node other than `but` sees it;
    None when no other node answers."""
    for port in ports.values():
        if port == but or not _ping(port, password):
            continue
        try:
            out = _cli(port, password, "cluster", "nodes").stdout
        except subprocess.TimeoutExpired:
            continue
        return [line.split() for line in out.splitlines() if len(line.split()) >= 8]
    return None


def _serves_slots(ports: dict[str, int], password: str, port: int) -> bool:
    """Whether the cluster still sees the node on `port` as a master of slots with a live replica."""
    nodes = _nodes(ports, password, port)
    if nodes is None:
        return False
    me = next((f for f in nodes if f[1].split("@")[0].endswith(f":{port}")), None)
    if me is None or "master" not in me[2] or len(me) < 9:
        return False
    return any(f[3] == me[0] and "fail" not in f[2] and f[7] == "connected" for f in nodes)


def _await_failover(name: str, port: int, ports: dict[str, int], password: str, log: Path) -> None:
    """A master that was killed comes back empty (no persistence): started before its replica took
    over, it would stay the master of its slots and its replica would copy the empty data set. So
    a node the others still see as a master with a live replica starts once that replica is
    promoted (cluster-node-timeout and an election: about 4 s after the kill)."""
    if _serves_slots(ports, password, port):
        services.wait_ready(
            f"{name}'s replica taking over its slots",
            lambda: not _serves_slots(ports, password, port),
            log,
            READY_TIMEOUT_S,
        )


def _write_config(state: Path, name: str, port: int, password: str) -> Path:
    data = state / "cluster" / "redis" / name
    data.mkdir(parents=True, exist_ok=True)
    conf = data / "redis.conf"
    conf.touch(mode=0o600)  # it holds the password
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\nprotected-mode yes\ndir {data}\ndaemonize no\n"
        f"requirepass {password}\nmasterauth {password}\n"
        # A cache rebuilt from Flink state: no RDB, no AOF; nodes.conf (the cluster's shape) stays.
        'save ""\nappendonly no\n'
        # A replica's full copy starts at once (Redis waits 5 s by default to batch replicas).
        "repl-diskless-sync-delay 0\n"
        f"cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout {NODE_TIMEOUT_MS}\n"
        # A replica that was cut off for a while may still take over (the view is rewritten anyway).
        "cluster-replica-validity-factor 0\n"
        # Slots of the other masters keep answering while one is failed over (readers 503 only the rest).
        "cluster-require-full-coverage no\n"
    )
    return conf


def _cli(port: int, password: str, *args: str, timeout: float = 5.0) -> subprocess.CompletedProcess[str]:
    """redis-cli with the password in REDISCLI_AUTH, never on the command line (ps shows that)."""
    env = {**os.environ, "REDISCLI_AUTH": password}
    return subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def _ping(port: int, password: str) -> bool:
    try:
        return _cli(port, password, "ping").stdout.strip() == "PONG"
    except subprocess.TimeoutExpired:
        return False


def _info(port: int, password: str, *command: str) -> dict[str, str]:
    """One node's answer to an INFO-style command (CLUSTER INFO unless named) as a dict ({} when it
    does not answer)."""
    try:
        out = _cli(port, password, *(command or ("cluster", "info"))).stdout
    except subprocess.TimeoutExpired:
        return {}
    return dict(line.strip().split(":", 1) for line in out.splitlines() if ":" in line)


def _synced(port: int, password: str) -> bool:
    """A master, or a replica whose link to its master is up (its first full copy loaded)."""
    info = _info(port, password, "info", "replication")
    return info.get("role") == "master" or info.get("master_link_status") == "up"


def _settled(port: int, password: str) -> bool:
    """This node sees all six nodes connected, none in a handshake or failing, and each of the
    three masters with a replica."""
    try:
        out = _cli(port, password, "cluster", "nodes").stdout
    except subprocess.TimeoutExpired:
        return False
    nodes = [line.split() for line in out.splitlines() if len(line.split()) >= 8]
    if len(nodes) != len(NODES) or any(
        f[7] != "connected" or any(flag in f[2] for flag in ("handshake", "fail", "noaddr")) for f in nodes
    ):
        return False
    masters = {f[0] for f in nodes if "master" in f[2]}
    return len(masters) == 3 and {f[3] for f in nodes if "slave" in f[2]} == masters


def _ok(port: int, password: str) -> bool:
    info = _info(port, password)
    return info.get("cluster_state") == "ok" and info.get("cluster_known_nodes") == str(len(NODES))


def _create(ports: dict[str, int], password: str, state: Path) -> None:
    """The first start: three masters (redis-1..3) each with one replica (redis-4..6)."""
    addresses = [f"127.0.0.1:{p}" for p in ports.values()]
    first = next(iter(ports.values()))
    done = _cli(first, password, "--cluster", "create", *addresses, "--cluster-replicas", "1",
                "--cluster-yes", timeout=120)  # fmt: skip
    log = state / "logs" / "redis-cluster-create.log"
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0 or "[OK] All 16384 slots covered" not in done.stdout:
        raise ServiceError(f"redis-cli --cluster create failed (exit {done.returncode}); see {log}")


def _start_exporter(settings: Settings, state: Path, password: str) -> None:
    """One exporter for the six nodes: /metrics is redis-1 and /scrape?target=redis://host:port
    any other node (multi-target mode); -is-cluster lets it follow keys across the slots."""
    log = state / "logs" / f"{EXPORTER}.log"
    if services.running_pid(state, EXPORTER) is None:
        if services.port_open(EXPORTER_PORT):
            raise ServiceError(
                f"port {EXPORTER_PORT} ({EXPORTER}) is taken by a process this project did not start"
            )
        binary = services.require_binary("prometheus-redis-exporter")
        env = {**os.environ, "REDIS_PASSWORD": password}  # not on the command line
        argv = [
            binary,
            f"-redis.addr=redis://127.0.0.1:{base_port(settings) + 1}",
            f"-web.listen-address=127.0.0.1:{EXPORTER_PORT}",
            "-is-cluster",
        ]
        services.spawn(state, EXPORTER, argv, log, env)
    services.wait_ready(EXPORTER, lambda: services.http_ok(f"http://127.0.0.1:{EXPORTER_PORT}/metrics"), log)
