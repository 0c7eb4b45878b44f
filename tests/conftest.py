"""Shared test configuration: every suite runs with the settings the Makefile exports."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Running pytest by hand (outside make) gets the same local defaults as `make test`.
os.environ.setdefault("LAMBDA_HOME", str(REPO))
os.environ.setdefault("LAMBDA_STATE_DIR", str(REPO / ".local" / "state"))
os.environ.setdefault("LAMBDA_JARS_DIR", str(REPO / ".local" / "jars"))
os.environ.setdefault(
    "LAMBDA_REDIS_PASSWORD_FILE", str(REPO / ".local" / "state" / "secrets" / "redis-password")
)
