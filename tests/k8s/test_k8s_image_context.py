"""The images' dependency step works from exactly the files their build context lets through.

No Docker engine here, so the step is replayed: the paths the layer's Dockerfile.dockerignore allows
are copied into an empty folder and the Dockerfile's `uv sync` runs there into a fresh venv. A lock
that no longer matches its pyproject, or a file the build needs but the context drops, fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from k8s_support import REPO

pytestmark = pytest.mark.integration


def context(layer: str, target: Path) -> Path:
    """The build context of a layer's image: only the allow-listed paths of the repository."""
    lines = (REPO / layer / "Dockerfile.dockerignore").read_text().splitlines()
    for entry in (line[1:] for line in lines if line.startswith("!")):
        src = REPO / entry
        dst = target / entry
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return target


@pytest.mark.parametrize("layer", ["serving_layer", "speed_layer", "batch_layer"])
def test_locked_install_works_from_the_image_context(layer: str, tmp_path: Path) -> None:
    ctx = context(layer, tmp_path / "ctx")
    assert not (ctx / "tools").exists(), "the context must not need the tools project"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON": "python3.11",
        "UV_LINK_MODE": "hardlink",
    }
    cmd = [
        "python3.11",
        "-m",
        "uv",
        "sync",
        "--project",
        layer,
        "--frozen",
        "--no-dev",
        "--no-editable",
        "-q",
    ]
    out = subprocess.run(cmd, cwd=ctx, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    check = subprocess.run(
        [
            str(tmp_path / "venv/bin/python"),
            "-c",
            f"import lambda_contract, {layer}; print({layer}.__file__)",
        ],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    # Installed as real copies, not links back into the build context.
    assert str(tmp_path / "venv") in check.stdout
