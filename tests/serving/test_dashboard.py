"""The dashboard in headless Chromium (Debian's `chromium`) against a real server, Redis and Delta:
the page loads with a token, renders the chart with data, and a screenshot is saved."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import uvicorn
from serving_support import REPO, TOKEN, k, m

from lambda_contract.settings import Settings
from lambda_contract.windows import HOUR, hour_start
from lambda_testkit.processes import wait_until
from lambda_testkit.sandbox import free_port
from lambda_testkit.views import write_gold, write_manifest, write_meta, write_speed_hour
from serving_layer.app import create_app

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = REPO / "reports" / "serving" / "dashboard.png"


@pytest.fixture
def server(settings: Settings, r: redis.Redis) -> Iterator[str]:
    now = datetime.now(UTC)
    current = hour_start(now)
    layout = settings.redis_layout
    for i in range(6):  # the speed view: the last 6 hours, the current one open
        hour = current - i * HOUR
        groups = {
            k("eu-west", "books", "EUR"): m(f"{100 + 10 * i}.5000", 3),
            k("us-east", "toys"): m("80.0000", 2),
        }
        write_speed_hour(r, layout, hour, groups, closed=i >= 2)
    write_meta(r, layout, watermark=now - timedelta(seconds=30), updated=now)
    batch = [current - i * HOUR for i in range(24, 48)]  # gold: a day of final hours, 24-47 h ago
    write_gold(
        settings,
        {h: {k("ap-south", "electronics", "INR"): m("25000.0000", 5), k(): m("120.2500", 4)} for h in batch},
    )
    write_manifest(settings, batch)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    assert wait_until(lambda: srv.started, timeout=15, interval=0.05), "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "chromium is not installed (make setup installs it)"
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1400,1100",
        "--virtual-time-budget=8000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def test_dashboard_renders_final_provisional_and_missing_hours(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{server}/#token={TOKEN}"
    dom = chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'id="board" data-state="loaded"' in html, html[:3000]
    assert 'data-bars="48"' in html
    statuses = re.findall(r'class="bar (\w+)"', html)
    assert len(statuses) == 48
    assert statuses.count("final") == 24 and statuses.count("missing") == 18
    assert statuses[-1] == "open" and set(statuses[-6:]) <= {"open", "closed"}
    for name in ("eu-west", "us-east", "ap-south", "books", "toys", "electronics"):
        assert f"<span>{name}</span>" in html, name
    assert "healthy" in html and "through" in html

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    shot = chromium(tmp_path, f"--screenshot={SCREENSHOT}", url)
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert SCREENSHOT.stat().st_size > 10_000
    with capsys.disabled():  # shown even when pytest captures output
        print(f"\ndashboard screenshot: {SCREENSHOT}")


def test_dashboard_without_token_asks_for_one(server: str, tmp_path: Path) -> None:
    dom = chromium(tmp_path, "--dump-dom", f"{server}/")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<section id="login">' in dom.stdout and '<main id="board" hidden="">' in dom.stdout


def test_dashboard_with_a_wrong_token_asks_again(server: str, tmp_path: Path) -> None:
    dom = chromium(tmp_path, "--dump-dom", f"{server}/#token=wrong-token-0123456789")
    assert "The token was refused" in dom.stdout
