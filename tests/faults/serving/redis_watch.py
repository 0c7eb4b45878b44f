"""Watch what one process sends to Redis: MONITOR (via redis-cli) filtered to that process's sockets.

The Redis server is shared with other engineers' tests, so MONITOR sees everyone; a command is
attributed to the serving process by the client address, matched against the local ports of the
process's own TCP sockets (from /proc). Nothing here writes to Redis.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from lambda_testkit.processes import wait_until

_LINE: Final = re.compile(r"^\d+\.\d+ \[\d+ (?P<addr>[^\]]+)\] (?P<args>.*)$")


def socket_ports(pid: int, remote_port: int) -> set[int]:
    """Local ports of `pid`'s TCP connections to `remote_port` (IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            local, remote, inode = cols[1], cols[2], cols[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


@dataclass
class Monitor:
    """Commands seen while watching, as argument lists, with the client address."""

    path: Path
    lines: list[tuple[str, list[str]]] = field(default_factory=list)

    def load(self) -> None:
        for raw in self.path.read_text(errors="replace").splitlines():
            match = _LINE.match(raw)
            if match:
                try:
                    args = shlex.split(match.group("args"))
                except ValueError:
                    args = [match.group("args")]
                self.lines.append((match.group("addr"), args))

    def from_ports(self, ports: set[int]) -> list[list[str]]:
        return [args for addr, args in self.lines if int(addr.rsplit(":", 1)[1]) in ports]


@contextmanager
def monitor(password_file: str, out: Path, host: str = "127.0.0.1", port: int = 6379) -> Iterator[Monitor]:
    """Run `redis-cli MONITOR` for the duration of the block; the result is loaded on exit."""
    env = dict(os.environ, REDISCLI_AUTH=Path(password_file).read_text().strip())
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            ["redis-cli", "-h", host, "-p", str(port), "monitor"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    result = Monitor(out)
    try:
        # "OK" once MONITOR is on
        wait_until(lambda: out.stat().st_size > 0, timeout=10, interval=0.05)
        yield result
        # MONITOR reports commands in the order Redis ran them: once a marker sent now shows,
        # every command the block's requests made (answered, so already run) is in the file.
        marker = f"redis-watch-end-{uuid.uuid4().hex}"
        subprocess.run(
            ["redis-cli", "-h", host, "-p", str(port), "echo", marker],
            env=env,
            capture_output=True,
            check=True,
        )
        if not wait_until(lambda: marker in out.read_text(errors="replace"), timeout=10, interval=0.05):
            raise AssertionError(f"MONITOR did not report the end marker within 10 s ({out})")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        result.load()
