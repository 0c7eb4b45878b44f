"""Fixtures of the pipeline fault suite: one private sandbox per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pipeline_support import sandbox_in

from lambda_testkit.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with sandbox_in(tmp_path_factory.mktemp("sandbox")) as box:
        yield box
