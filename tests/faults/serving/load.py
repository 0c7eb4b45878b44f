"""Load with wrk (C, from Debian's package): a mix of realistic dashboard queries at N connections.

The request mix is generated here (ranges of 1 to 48 hours over the loaded days, every grouping,
region filters, several reporting currencies) and embedded in a wrk Lua script whose `done`
hook prints the summary as one JSON line, so nothing is parsed from wrk's human output.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from served import BATCH_DAY, TOKEN

GROUPINGS: Final = ("", "region", "category", "currency", "region,category", "region,category,currency")
CURRENCIES: Final = ("USD", "USD", "USD", "EUR", "JPY", "GBP")
REGIONS: Final = ("eu-west", "us-east", "ap-south", "eu-west,us-east")

_LUA: Final = """
local paths = {%(paths)s}
local counter = 0
function setup(thread)
  thread:set("offset", counter)
  counter = counter + 7919
end
function init(args)
  i = offset
  wrk.headers["Authorization"] = "Bearer %(token)s"
  wrk.headers["Accept-Encoding"] = "gzip"
end
function request()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"bytes":%%d,"connect":%%d,"read":%%d,"write":%%d,' ..
    '"status":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"p999_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max))
end
"""


def request_mix(count: int = 2000, seed: int = 64) -> list[str]:
    """Paths of /v1/revenue/hourly queries a dashboard and API users would send."""
    rng = random.Random(seed)
    first = datetime(BATCH_DAY.year, BATCH_DAY.month, BATCH_DAY.day, tzinfo=UTC)
    paths = []
    for _ in range(count):
        hours = rng.choice((1, 3, 6, 12, 24, 24, 48))
        start = first + timedelta(hours=rng.randrange(0, 49 - hours))
        params = [
            f"start={start:%Y-%m-%dT%H:00:00Z}",
            f"end={start + timedelta(hours=hours):%Y-%m-%dT%H:00:00Z}",
        ]
        group_by = rng.choice(GROUPINGS)
        if group_by:
            params.append(f"group_by={group_by}")
        if rng.random() < 0.25:
            params.append(f"region={rng.choice(REGIONS)}")
        params.append(f"currency={rng.choice(CURRENCIES)}")
        paths.append("/v1/revenue/hourly?" + "&".join(params))
    return paths


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        return (
            f"{self.requests} requests in {self.seconds:.1f} s = {self.rps:.0f} rps; errors {self.errors}; "
            f"latency p50 {self.p50_ms:.1f} ms, p90 {self.p90_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"p99.9 {self.p999_ms:.1f} ms, max {self.max_ms:.1f} ms"
        )


def parse_summary(output: str) -> LoadResult:
    lines = [line for line in output.splitlines() if line.startswith("WRKJSON ")]
    if not lines:
        raise AssertionError(f"wrk printed no summary:\n{output[-2000:]}")
    doc = json.loads(lines[-1][len("WRKJSON ") :])
    return LoadResult(
        requests=doc["requests"],
        seconds=doc["duration_us"] / 1e6,
        errors={k: doc[k] for k in ("connect", "read", "write", "status", "timeout")},
        p50_ms=doc["p50_us"] / 1000,
        p90_ms=doc["p90_us"] / 1000,
        p99_ms=doc["p99_us"] / 1000,
        p999_ms=doc["p999_us"] / 1000,
        max_ms=doc["max_us"] / 1000,
    )


def run_wrk(base_url: str, seconds: int, connections: int, workdir: Path, threads: int = 2) -> LoadResult:
    """Run wrk for `seconds` (bounded: wrk stops by itself; the subprocess has a hard timeout)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise AssertionError("wrk is not installed; `make setup` installs it (scripts/setup.sh)")
    script = workdir / "mix.lua"
    paths = ",".join(json.dumps(p) for p in request_mix())
    script.write_text(_LUA % {"paths": paths, "token": TOKEN})
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    done = subprocess.run(
        [*command, "-s", str(script), base_url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    return parse_summary(done.stdout)
