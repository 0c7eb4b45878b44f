"""A Redis master, optionally a replica of it, and one Sentinel watching them, as real processes
on free ports with the local password: the production shape (docs/specs/redis.md, "High
availability") in miniature, for the tests of the layers' Sentinel clients."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from lambda_testkit.processes import wait_until
from lambda_testkit.sandbox import free_port

MASTER_NAME = "lambda-test"


class SentinelServers:
    """Quorum 1 and a master declared down after 1 s, so a failover takes seconds; `close` stops
    every process whatever happened."""

    def __init__(self, tmp: Path, password: str, replica: bool = False) -> None:
        self.tmp, self.password, self.with_replica = tmp, password, replica
        self.master_port, self.replica_port, self.sentinel_port = free_port(), free_port(), free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def env(self) -> dict[str, str]:
        """The settings that make a layer find the master through the Sentinel only: its
        LAMBDA_REDIS_URL names a port nothing listens on."""
        return {
            "LAMBDA_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "LAMBDA_REDIS_SENTINELS": f"127.0.0.1:{self.sentinel_port}",
            "LAMBDA_REDIS_SENTINEL_MASTER": MASTER_NAME,
        }

    def _run(self, name: str, text: str, *extra: str) -> None:
        conf = self.tmp / f"{name}.conf"
        conf.touch(mode=0o600)  # it holds the password
        conf.write_text(text)
        cmd = ["redis-server", str(conf), *extra]
        self.procs[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        common = f"bind 127.0.0.1\ndir {self.tmp}\nrequirepass {self.password}\n"
        self._run("master", f'port {self.master_port}\n{common}appendonly no\nsave ""\n')
        if self.with_replica:
            self._run(
                "replica",
                f"port {self.replica_port}\n{common}masterauth {self.password}\n"
                f'replicaof 127.0.0.1 {self.master_port}\nappendonly no\nsave ""\ndbfilename replica.rdb\n',
            )
        # The Sentinel rewrites its config file, so it gets one of its own.
        self._run(
            "sentinel",
            f"port {self.sentinel_port}\n{common}"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel auth-pass {MASTER_NAME} {self.password}\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\nsentinel failover-timeout {MASTER_NAME} 5000\n",
            "--sentinel",
        )
        assert wait_until(lambda: self.master_address() is not None, 30, 0.1), "the Sentinel did not start"
        if self.with_replica:
            # The Sentinel learns of replicas from the master's INFO (every 10 s): until then a
            # dead master has no one to be replaced by.
            assert wait_until(self._replica_known, 30, 0.2), "the Sentinel did not see the replica"

    def _replica_known(self) -> bool:
        client = redis.Redis(port=self.sentinel_port, password=self.password)
        try:
            replicas = client.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)  # type: ignore[no-untyped-call]
        except redis.RedisError:
            return False
        finally:
            client.close()
        return any(str(self.replica_port) in str(r) for r in replicas)

    def master_address(self) -> tuple[str, int] | None:
        """The master the Sentinel names now (None while it cannot be asked)."""
        client = redis.Redis(port=self.sentinel_port, password=self.password)
        try:
            addr = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)  # type: ignore[no-untyped-call]
        except redis.RedisError:
            return None
        finally:
            client.close()
        return None if addr is None else (addr[0].decode(), int(addr[1]))

    def master(self) -> redis.Redis:
        """A plain client of the first master, to write a view the layers then read."""
        return redis.Redis(port=self.master_port, password=self.password)

    def kill_master(self) -> None:
        """SIGKILL, as a crash would."""
        proc = self.procs["master"]
        proc.kill()
        proc.wait(30)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)


@contextmanager
def sentinel_servers(tmp: Path, password: str, replica: bool = False) -> Iterator[SentinelServers]:
    servers = SentinelServers(tmp, password, replica)
    try:
        servers.start()
        yield servers
    finally:
        servers.close()
