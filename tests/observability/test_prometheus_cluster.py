"""Prometheus scrapes every cluster-mode process (infra/prometheus/prometheus.yml, docs/cluster.md):
one target per name in lambda_tools.cluster.PROCESSES, labelled `process`, on its reserved port; and
the cluster being off (every one of those targets down) fires no alert rule."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from lambda_tools.cluster import process_names

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "infra" / "prometheus" / "prometheus.yml"
RULES = REPO / "infra" / "prometheus" / "rules" / "lambda.yml"
# The single-node jobs the rules select with up{job=...}, healthy while the cluster is off.
SINGLE_NODE_JOBS = ("prometheus", "pushgateway", "speed", "serving")


def reserved(name: str) -> tuple[int, str]:
    """The port and path each process's metrics are on (the reserved ranges of docs/cluster.md)."""
    n = int(m[1]) if (m := re.search(r"-(\d+)$", name)) else 0
    fixed = {
        "objectstore": (19327, "/metrics"),
        "redis-exporter": (19121, "/metrics"),
        "flink-jobmanager": (19249, "/metrics"),
        "spark-master": (18090, "/metrics/master/prometheus"),
    }
    by_prefix = {
        "kafka-": (19300 + n, "/metrics"),
        "redis-": (19121, "/scrape"),  # through redis_exporter, target 17000+N
        "flink-taskmanager-": (19249 + n, "/metrics"),
        "spark-worker-": (18090 + n, "/metrics/prometheus"),
        "serving-": (7999 + n, "/metrics"),
    }
    if name in fixed:
        return fixed[name]
    return next(v for prefix, v in by_prefix.items() if name.startswith(prefix))


def targets() -> list[dict[str, str]]:
    """Every static target as Prometheus sees it before scraping: job, address, path, labels."""
    out = []
    for job in yaml.safe_load(CONFIG.read_text())["scrape_configs"]:
        for group in job.get("static_configs", []):
            labels = group.get("labels", {})
            for address in group["targets"]:
                target = {"job": job["job_name"], "address": address}
                target["path"] = labels.get("__metrics_path__", job.get("metrics_path", "/metrics"))
                target |= {k: v for k, v in labels.items() if not k.startswith("__")}
                if job.get("relabel_configs"):  # the redis_exporter's multi-target job
                    replaced = [
                        r["replacement"]
                        for r in job["relabel_configs"]
                        if r.get("target_label") == "__address__"
                    ]
                    target["target"], target["address"] = address, replaced[-1]
                out.append(target)
    return out


def test_every_cluster_process_has_exactly_one_target_on_its_reserved_port() -> None:
    labelled = [t for t in targets() if "process" in t]
    counts = Counter(t["process"] for t in labelled)
    assert {n: counts[n] for n in process_names()} == dict.fromkeys(process_names(), 1)
    assert set(counts) == set(process_names()), "a target names a process the cluster does not run"
    for t in labelled:
        port, path = reserved(t["process"])
        assert (t["address"], t["path"]) == (f"127.0.0.1:{port}", path), t
        if t["process"].startswith("redis-") and "target" in t:
            assert t["target"] == f"redis://127.0.0.1:{17000 + int(t['process'].rsplit('-', 1)[1])}"


def test_cluster_targets_are_in_jobs_no_rule_selects() -> None:
    """SpeedJobDown counts up{job="speed"}: a Flink cluster that is up with no job must not hide it."""
    rules_text = RULES.read_text()
    for t in targets():
        if t["job"] not in SINGLE_NODE_JOBS:
            assert t["job"].startswith("cluster-"), t
            assert f'"{t["job"]}"' not in rules_text


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: `make setup` installs Debian's prometheus package, which ships it")
    return path


def test_promtool_accepts_the_config() -> None:
    out = subprocess.run([promtool(), "check", "config", str(CONFIG)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_alert_fires_while_the_cluster_is_off(tmp_path: Path) -> None:
    """Two hours with every cluster target down and the single-node jobs up: promtool finds no alert."""
    series = [
        {"series": f'up{{job="{job}", instance="127.0.0.1:1"}}', "values": "1x120"}
        for job in SINGLE_NODE_JOBS
    ]
    for t in targets():
        if t["job"] not in SINGLE_NODE_JOBS or t.get("process", "serving-1") != "serving-1":
            labels = f'job="{t["job"]}", instance="{t.get("target", t["address"])}", process="{t.get("process", "")}"'
            series.append({"series": f"up{{{labels}}}", "values": "0x120"})
    alerts = [
        r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r
    ]
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": f"{m}m", "alertname": a, "exp_alerts": []}
                    for a in alerts
                    for m in (30, 120)
                ],
            }
        ],
    }
    path = tmp_path / "cluster_off_test.yml"
    path.write_text(yaml.safe_dump(test))
    out = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
