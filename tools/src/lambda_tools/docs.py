"""Documentation generated from the one definition in code, so the two cannot drift apart.

python -m lambda_tools.docs   # rewrite docs/configuration.md from lambda_contract.settings
"""

from __future__ import annotations

import sys
from pathlib import Path

from lambda_contract.settings import documented

CONFIGURATION_MD = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def configuration_markdown() -> str:
    lines = [
        "# Configuration",
        "",
        "Every setting is an environment variable with a local default, defined once in",
        "`lambda_contract.settings` (this page is generated from it: `python -m lambda_tools.docs`).",
        "The Makefile exports the local values; the Kubernetes overlays set the same names in",
        "ConfigMaps and Secrets. A bad value stops a component at start-up with the variable's name.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for name, default, doc in documented():
        shown = f"`{default}`" if default else "(empty)"
        lines.append(f"| `{name}` | {shown} | {doc} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    CONFIGURATION_MD.write_text(configuration_markdown())
    print(f"wrote {CONFIGURATION_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
