"""Alert rules fire and stay quiet as promtool proves; rules and panels use only real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lambda_contract import metrics, topics
from lambda_tools.docs import METRICS_MD, metrics_markdown

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "infra" / "prometheus" / "rules" / "lambda.yml"
# lambda_test.yml evaluates every minute; batch_days_test.yml, for cases that span days, every 5 minutes.
RULE_TESTS = sorted((REPO / "infra" / "prometheus" / "tests").glob("*_test.yml"))
DASHBOARDS = sorted((REPO / "infra" / "grafana" / "dashboards").glob("*.json"))
_METRIC = re.compile(r"\b(lambda_[a-z0-9_]+)\b")
_EXTERNAL = re.compile(r"\b((?:flink|kafka|redis)_[A-Za-z0-9_]+)\b")
KNOWN = {name for spec in metrics.ALL for name in spec.series_names}
_QUOTED = re.compile(r'"[^"]*"')


def names(expr: str, pattern: re.Pattern[str]) -> set[str]:
    """Metric names in a PromQL expression; label values ("lambda_speed") are not names."""
    return set(pattern.findall(_QUOTED.sub('""', expr)))


# Series the platform reads but does not define: Flink's Prometheus reporter (the Kafka source's
# standard pendingRecords gauge), Strimzi's kafkaExporter and the Redis pods' redis_exporter.
EXTERNAL = {
    "flink_taskmanager_job_task_operator_pendingRecords",
    "kafka_consumergroup_lag",
    "kafka_consumergroup_current_offset",
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
}
RULE_LIST = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
ALERTS = [r["alert"] for r in RULE_LIST]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: `make setup` installs Debian's prometheus package, which ships it")
    return path


def test_rules_are_valid() -> None:
    out = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_unit_tests_pass() -> None:
    out = subprocess.run([promtool(), "test", "rules", *map(str, RULE_TESTS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = [case for path in RULE_TESTS for case in yaml.safe_load(path.read_text())["tests"]]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    assert set(ALERTS) == fired, "every alert needs a case where it fires"
    assert set(ALERTS) == quiet, "every alert needs a case where it stays quiet"


def test_rules_use_only_exported_metrics() -> None:
    exprs = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    used = {name for expr in exprs for name in names(expr, _METRIC)}
    assert used and used <= KNOWN, used - KNOWN
    external = {name for expr in exprs for name in names(expr, _EXTERNAL)}
    assert external <= EXTERNAL, external - EXTERNAL


def test_every_alert_has_a_runbook() -> None:
    missing = [r["alert"] for r in RULE_LIST if "runbook_url" not in r.get("annotations", {})]
    assert not missing, f"alerts without a runbook_url (a section of docs/operations.md): {missing}"


def test_no_alert_pages_on_an_absent_pushed_series_alone() -> None:
    """The Pushgateway starts empty when its file is lost: absence of a pushed series pages only
    together with a condition that shows a push was due (docs/operations.md, NightlyBatchMissing)."""
    pushed = {spec.name for spec in metrics.ALL if spec.name.startswith("lambda_batch_")}
    for rule in RULE_LIST:
        for name in re.findall(r"absent\(\s*([a-z0-9_]+)", rule["expr"]):
            if name in pushed:
                assert re.search(r"\)\s*and\s+on\(\)", rule["expr"]), (rule["alert"], rule["expr"])


def test_the_ingest_alert_pages_at_its_share_of_the_topics_retention() -> None:
    """The rule states orders.v1's retention as a number; it must be the one the topic has."""
    (rule,) = [r for r in RULE_LIST if r["alert"] == "BronzeIngestBehindRetention"]
    threshold = f"> {topics.INGEST_ALERT_SHARE} * {topics.ORDERS_RETENTION_MS // 1000}"
    assert rule["expr"].strip().endswith(threshold), (rule["expr"], threshold)
    assert topics.orders_config()["retention.ms"] == str(topics.ORDERS_RETENTION_MS)


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as dashes."""
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)  # not `# comments`
    headings = re.findall(r"^#+\s+(.+?)\s*$", prose, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_runbook_url_names_a_section_that_exists() -> None:
    for rule in RULE_LIST:
        url = rule.get("annotations", {}).get("runbook_url")
        if url is None:
            continue
        path, _, anchor = url.partition("#")
        doc = REPO / path
        assert doc.is_file(), (rule["alert"], url)
        assert anchor in _anchors(doc.read_text()), (rule["alert"], url)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_panels_query_real_metrics_and_routes(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] in {"lambda-prometheus", "lambda-api"}, panel["title"]
        for target in panel["targets"]:
            if "expr" in target:
                used = names(target["expr"], _METRIC)
                external = names(target["expr"], _EXTERNAL)
                assert used or external, panel["title"]
                assert used <= KNOWN, (panel["title"], used - KNOWN)
                assert external <= EXTERNAL, (panel["title"], external - EXTERNAL)
            else:
                assert target["url"].startswith("/v1/revenue/hourly?"), panel["title"]
                group_by = re.search(r"group_by=([a-z,]+)", target["url"])
                if group_by:
                    assert set(group_by.group(1).split(",")) <= {"region", "category", "currency"}


def test_metric_names_follow_the_scheme() -> None:
    for spec in metrics.ALL:
        assert re.fullmatch(r"lambda_(speed|batch|serving|reconciliation)_[a-z0-9_]+", spec.name), spec.name
        assert not (spec.kind == "counter") ^ spec.name.endswith("_total"), spec.name
        assert len(spec.labels) <= 3


def test_metrics_doc_is_generated() -> None:
    assert METRICS_MD.read_text() == metrics_markdown(), "run: python -m lambda_tools.docs"
