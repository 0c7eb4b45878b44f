"""Writes an overlay's untracked secrets.env with random values, so nothing secret is committed.

The keys come from the overlay's committed secrets.env.example (names only). Keys listed there as
`key=` get a fresh random value; commented keys (`# key=`) are left for the operator to add (e.g. the
object store keys in prod, where pods should use cloud identity instead). An existing secrets.env is
never overwritten: rotating a value is a deliberate edit (docs/operations.md).

Run: `python -m lambda_tools.k8s_secrets k8s/overlays/dev`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path


def keys(example: str) -> list[str]:
    """The keys an example file asks to generate (`key=` lines, comments skipped)."""
    out = []
    for line in example.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            out.append(line.split("=", 1)[0].strip())
    return out


def value_for(key: str) -> str:
    """A random value for a key: S3 access key ids are short and alphanumeric, the rest long."""
    if key.endswith("access-key-id"):
        return "lambda" + secrets.token_hex(8)
    return secrets.token_urlsafe(32)


def render(example: str) -> str:
    return "".join(f"{key}={value_for(key)}\n" for key in keys(example))


def ensure(overlay: Path) -> bool:
    """Creates overlay/secrets.env (mode 600) if missing; True when it was created."""
    target = overlay / "secrets.env"
    if target.exists():
        return False
    text = render((overlay / "secrets.env.example").read_text())
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="k8s_secrets", description=__doc__.splitlines()[0])
    parser.add_argument("overlay", type=Path, help="overlay folder holding secrets.env.example")
    ns = parser.parse_args(argv)
    if ensure(ns.overlay):
        print(f"wrote {ns.overlay / 'secrets.env'} (random values, git-ignored)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
