"""Renders the kustomize overlays once per session, offline, from a copy of k8s/.

The copy gets a throwaway secrets.env per overlay (random values from the committed example's keys),
so the tests never read or write the operator's real, git-ignored secrets.env files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from k8s_support import OVERLAYS, build, copy_k8s


@pytest.fixture(scope="session")
def k8s_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_k8s(tmp_path_factory.mktemp("k8s") / "k8s")


@pytest.fixture(scope="session")
def rendered(k8s_copy: Path) -> dict[str, list[dict[str, Any]]]:
    """Overlay name -> rendered objects."""
    return {overlay: build(k8s_copy / "overlays" / overlay) for overlay in OVERLAYS}
