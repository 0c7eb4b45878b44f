"""The scheduled reconciliation reads the speed view from the master the Sentinels name (production
sets LAMBDA_REDIS_SENTINELS), not from LAMBDA_REDIS_URL: real redis-server and Sentinel processes
from the test kit (lambda_testkit.redis_sentinel)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from serving_support import k, m, make_settings, utc

from lambda_testkit.redis_sentinel import sentinel_servers
from lambda_testkit.views import write_speed_hour
from serving_layer.reconciliation_io import read_speed

pytestmark = pytest.mark.integration

HOUR = utc("2026-11-20T11:00:00Z")


def test_the_speed_view_is_read_through_the_sentinel(tmp_path: Path) -> None:
    password = make_settings(tmp_path, os.environ).resolved_redis_password()
    assert password, "the local Redis has a password (LAMBDA_REDIS_PASSWORD_FILE)"
    with sentinel_servers(tmp_path, password) as servers:
        # servers.env()'s LAMBDA_REDIS_URL names a port nothing listens on: only the Sentinel leads to the view.
        settings = make_settings(tmp_path, os.environ, **servers.env())
        r = servers.master()
        try:
            write_speed_hour(r, settings.redis_layout, HOUR, {k(): m("7.0100", 1)}, closed=True)
        finally:
            r.close()
        speed = read_speed(settings, HOUR.date())
    assert speed["speed"] == {HOUR: {k(): m("7.0100", 1)}}
    assert speed["speed_status"][HOUR] == "closed"
