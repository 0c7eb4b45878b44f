"""The PrometheusRule and dashboard ConfigMaps are the local rules and dashboards, never a fork."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_support import REPO, objects, one

from lambda_tools import k8s_generate, k8s_secrets

pytestmark = pytest.mark.unit


def test_committed_k8s_copies_match_infra() -> None:
    assert k8s_generate.drift(REPO) == [], "run `make k8s-generate` and commit k8s/base/monitoring/generated"


def test_prometheus_rule_holds_exactly_the_local_rule_groups(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    local: list[Any] = []
    for path in sorted((REPO / "infra/prometheus/rules").glob("*.yml")):
        local += yaml.safe_load(path.read_text()).get("groups") or []
    rule = one(rendered["prod"], "PrometheusRule", "lambda-alerts")
    assert rule["spec"]["groups"] == local


def test_every_dashboard_ships_as_a_labelled_config_map(rendered: dict[str, list[dict[str, Any]]]) -> None:
    dashboards = sorted((REPO / "infra/grafana/dashboards").glob("*.json"))
    maps = [
        c
        for c in objects(rendered["prod"], "ConfigMap")
        if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert len(maps) == len(dashboards)
    shipped = {key: json.loads(text) for cm in maps for key, text in cm["data"].items()}
    assert shipped == {p.name: json.loads(p.read_text()) for p in dashboards}


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    (tmp_path / "infra/prometheus/rules").mkdir(parents=True)
    (tmp_path / "infra/prometheus/rules/a.yml").write_text(
        "groups:\n  - name: g1\n    rules:\n      - alert: A\n        expr: up == 0\n"
    )
    k8s_generate.write(tmp_path)
    return tmp_path


def test_drift_is_reported_when_a_rule_changes_and_cleared_by_regenerating(fake_repo: Path) -> None:
    assert k8s_generate.drift(fake_repo) == []
    rules = fake_repo / "infra/prometheus/rules/a.yml"
    rules.write_text(rules.read_text().replace("up == 0", "up < 1"))
    assert k8s_generate.drift(fake_repo) == [str(k8s_generate.OUT_DIR / "prometheusrule.yaml")]
    k8s_generate.write(fake_repo)
    assert k8s_generate.drift(fake_repo) == []


def test_a_new_dashboard_appears_and_a_removed_one_is_reported(fake_repo: Path) -> None:
    dash_dir = fake_repo / "infra/grafana/dashboards"
    dash_dir.mkdir(parents=True)
    (dash_dir / "Sales Overview.json").write_text('{"title": "x"}')
    assert str(k8s_generate.OUT_DIR / "dashboards" / "Sales Overview.json") in k8s_generate.drift(fake_repo)
    k8s_generate.write(fake_repo)
    kust = yaml.safe_load((fake_repo / k8s_generate.OUT_DIR / "kustomization.yaml").read_text())
    assert kust["configMapGenerator"][0]["name"] == "grafana-dashboard-sales-overview"
    (dash_dir / "Sales Overview.json").unlink()
    assert any("left over" in p for p in k8s_generate.drift(fake_repo))


def test_duplicate_group_names_across_rule_files_are_refused(fake_repo: Path) -> None:
    shutil.copy(fake_repo / "infra/prometheus/rules/a.yml", fake_repo / "infra/prometheus/rules/b.yml")
    with pytest.raises(ValueError, match="unique"):
        k8s_generate.render(fake_repo)


def test_generated_secrets_are_random_and_never_overwrite(tmp_path: Path) -> None:
    (tmp_path / "secrets.env.example").write_text("redis-password=\napi-tokens=\n# s3-access-key-id=\n")
    assert k8s_secrets.ensure(tmp_path)
    first = (tmp_path / "secrets.env").read_text()
    assert [line.split("=")[0] for line in first.splitlines()] == ["redis-password", "api-tokens"]
    assert all(len(line.split("=", 1)[1]) >= 32 for line in first.splitlines())
    assert (tmp_path / "secrets.env").stat().st_mode & 0o077 == 0
    assert not k8s_secrets.ensure(tmp_path)
    assert (tmp_path / "secrets.env").read_text() == first
    assert k8s_secrets.render("a=\n") != k8s_secrets.render("a=\n")
