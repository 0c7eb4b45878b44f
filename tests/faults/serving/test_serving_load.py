"""Load: 64 concurrent connections against a real `lambda-serve` over two days of generated data.

`make test` runs 10 s; LAMBDA_FAULTS_LONG=1 runs the full 60 s. Zero errors is the
bar (no status >= 400, no socket error, no timeout); p99 and rps are printed and written to
reports/faults/load.json for the record (speed targets belong in benchmarks, not in asserts).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from conftest import LONG
from load import run_wrk
from served import REPO, TOKEN, Served

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SECONDS = int(os.environ.get("LAMBDA_FAULTS_LOAD_S", "60" if LONG else "10"))
CONNECTIONS = 64


def test_64_connections_get_zero_errors(served: Served, tmp_path: Path) -> None:
    warm = httpx.get(
        f"{served.base_url}/v1/revenue/hourly",
        params={"start": "2026-11-19T00:00:00Z", "end": "2026-11-21T00:00:00Z", "group_by": "region"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert warm.status_code == 200
    result = run_wrk(served.base_url, SECONDS, CONNECTIONS, tmp_path)
    load_avg = os.getloadavg()
    print(f"\nload ({CONNECTIONS} connections, {SECONDS} s): {result.line()}; load average {load_avg}")
    out = REPO / "reports" / "faults"
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(
        json.dumps(
            {
                "connections": CONNECTIONS,
                "seconds": SECONDS,
                "rps": round(result.rps, 1),
                "load_average": load_avg,
                **result.__dict__,
            },
            indent=2,
        )
    )
    assert result.requests > 0
    assert result.errors == {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}, result.line()
    assert served.process.poll() is None
    errors = [line for line in served.log_text().splitlines() if '"level":"error"' in line]
    assert not errors, errors[:3]
