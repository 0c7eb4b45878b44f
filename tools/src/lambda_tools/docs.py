"""Documentation generated from the one definition in code, so the two cannot drift apart.

python -m lambda_tools.docs   # rewrite docs/configuration.md from lambda_contract.settings
"""

from __future__ import annotations

import sys
from pathlib import Path

from lambda_contract import metrics
from lambda_contract.settings import documented

DOCS_DIR = Path(__file__).resolve().parents[3] / "docs"
CONFIGURATION_MD = DOCS_DIR / "configuration.md"
METRICS_MD = DOCS_DIR / "metrics.md"


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


def metrics_markdown() -> str:
    lines = [
        "# Metrics",
        "",
        "Every metric the platform exports, defined once in `lambda_contract.metrics` (this page is",
        "generated from it: `python -m lambda_tools.docs`). Names carry the layer and the unit; label",
        "sets are bounded. Alert rules (`infra/prometheus/rules/`) and Grafana dashboards",
        "(`infra/grafana/dashboards/`) are tested against this list. Flink's own reporter adds `flink_*`.",
        "",
        "Locally, `make up` starts Prometheus on http://localhost:9090 scraping the speed layer",
        "(ports 9249-9251), the serving layer (:8000/metrics) and the Pushgateway (:9091, batch runs).",
        "",
        "| metric | type | labels | meaning |",
        "|---|---|---|---|",
    ]
    for spec in metrics.ALL:
        labels = ", ".join(f"`{label}`" for label in spec.labels) or "-"
        lines.append(f"| `{spec.name}` | {spec.kind} | {labels} | {spec.doc} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    for path, text in ((CONFIGURATION_MD, configuration_markdown()), (METRICS_MD, metrics_markdown())):
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
