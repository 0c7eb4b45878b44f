"""Publish the platform's Grafana dashboards and datasources to a Grafana server, idempotently.

    lambda-grafana publish --url https://grafana.example.org --prometheus-url http://prometheus:9090 \
        --api-url http://serving.lambda:8000          # tokens from the environment, see --help

The dashboards are the JSON files in infra/grafana/dashboards/; the same files are provisioned
from ConfigMaps in Kubernetes. Publishing twice changes nothing the second time: each object is
read first and written only when it differs, so the command is safe in a deploy pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

DASHBOARDS_DIR: Final = Path(__file__).resolve().parents[3] / "infra" / "grafana" / "dashboards"
FOLDER_UID: Final = "lambda"
FOLDER_TITLE: Final = "Lambda platform"
PROMETHEUS_UID: Final = "lambda-prometheus"
API_UID: Final = "lambda-api"
# Fields Grafana adds or manages itself; ignored when comparing desired and current objects.
_MANAGED: Final = frozenset(
    {"id", "version", "orgId", "readOnly", "typeLogoUrl", "typeName", "secureJsonFields"}
)


class PublishError(RuntimeError):
    """Publishing failed; the message names the object and Grafana's answer."""


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"created {len(self.created)}, updated {len(self.updated)}, unchanged {len(self.unchanged)}"
            + "".join(f"\n  created   {n}" for n in self.created)
            + "".join(f"\n  updated   {n}" for n in self.updated)
        )


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> list[dict[str, Any]]:
    """The dashboard JSON files, each with a stable uid (required for idempotent updates)."""
    dashboards = []
    for path in sorted(directory.glob("*.json")):
        doc = json.loads(path.read_text())
        if not doc.get("uid"):
            raise PublishError(f"{path} has no uid; a stable uid is what makes publishing idempotent")
        dashboards.append(doc)
    return dashboards


def datasources(prometheus_url: str, api_url: str, api_token: str | None) -> list[dict[str, Any]]:
    """The two datasources the dashboards use, addressed by fixed uids."""
    api: dict[str, Any] = {
        "uid": API_UID,
        "name": "Lambda API",
        "type": "yesoreyeram-infinity-datasource",
        "access": "proxy",
        "url": api_url,
        "jsonData": {"auth_method": "bearerToken", "allowedHosts": [api_url]},
    }
    if api_token:
        api["secureJsonData"] = {"bearerToken": api_token}
    prom = {
        "uid": PROMETHEUS_UID,
        "name": "Lambda Prometheus",
        "type": "prometheus",
        "access": "proxy",
        "url": prometheus_url,
        "isDefault": False,
        "jsonData": {},
    }
    return [prom, api]


def _differs(desired: dict[str, Any], current: dict[str, Any]) -> bool:
    """True when a desired key is missing or different in the current object."""
    for key, value in desired.items():
        if key in _MANAGED or key == "secureJsonData":
            continue
        if current.get(key) != value:
            return True
    return False


def _not_found(exc: GrafanaException) -> bool:
    return isinstance(exc, GrafanaClientError) and exc.status_code == 404


def publish(
    api: GrafanaApi,
    dashboards: Iterable[dict[str, Any]],
    sources: Iterable[dict[str, Any]],
) -> Report:
    """Create or update the folder, datasources and dashboards; write only what differs."""
    report = Report()
    try:
        for ds in sources:
            _publish_datasource(api, ds, report)
        _ensure_folder(api, report)
        for dashboard in dashboards:
            _publish_dashboard(api, dashboard, report)
    except GrafanaException as exc:
        raise PublishError(f"Grafana refused the request: {exc}") from exc
    return report


def _publish_datasource(api: GrafanaApi, ds: dict[str, Any], report: Report) -> None:
    name = f"datasource {ds['uid']}"
    try:
        current = api.datasource.get_datasource_by_uid(ds["uid"])
    except GrafanaException as exc:
        if not _not_found(exc):
            raise
        api.datasource.create_datasource(ds)
        report.created.append(name)
        return
    # A secret cannot be read back, so a given token is always written (it may have rotated).
    if _differs(ds, current) or "secureJsonData" in ds:
        api.datasource.update_datasource_by_uid(ds["uid"], ds)
        report.updated.append(name)
    else:
        report.unchanged.append(name)


def _ensure_folder(api: GrafanaApi, report: Report) -> None:
    try:
        current = api.folder.get_folder(FOLDER_UID)
    except GrafanaException as exc:
        if not _not_found(exc):
            raise
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        report.created.append(f"folder {FOLDER_UID}")
        return
    if current.get("title") != FOLDER_TITLE:
        api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True)
        report.updated.append(f"folder {FOLDER_UID}")
    else:
        report.unchanged.append(f"folder {FOLDER_UID}")


def _publish_dashboard(api: GrafanaApi, dashboard: dict[str, Any], report: Report) -> None:
    name = f"dashboard {dashboard['uid']}"
    desired = {k: v for k, v in dashboard.items() if k not in ("id", "version")}
    try:
        current = api.dashboard.get_dashboard(dashboard["uid"])
    except GrafanaException as exc:
        if not _not_found(exc):
            raise
        current = None
    if current is not None:
        in_folder = current.get("meta", {}).get("folderUid") == FOLDER_UID
        if in_folder and not _differs(desired, current.get("dashboard", {})):
            report.unchanged.append(name)
            return
    api.dashboard.update_dashboard(
        dashboard={
            "dashboard": desired | {"id": None},
            "folderUid": FOLDER_UID,
            "overwrite": True,
            "message": "published by lambda-grafana",
        }
    )
    (report.created if current is None else report.updated).append(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lambda-grafana", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    pub = sub.add_parser("publish", help="create or update the datasources and dashboards")
    pub.add_argument("--url", required=True, help="Grafana base URL")
    pub.add_argument("--token-env", default="LAMBDA_GRAFANA_TOKEN",
                     help="environment variable holding a Grafana service-account token (default %(default)s)")  # fmt: skip
    pub.add_argument("--prometheus-url", required=True, help="Prometheus URL as Grafana reaches it")
    pub.add_argument("--api-url", required=True, help="serving layer URL as Grafana reaches it")
    pub.add_argument("--api-token-env", default="LAMBDA_GRAFANA_API_TOKEN",
                     help="environment variable holding a serving-layer bearer token for Grafana (default %(default)s)")  # fmt: skip
    pub.add_argument("--dashboards", type=Path, default=DASHBOARDS_DIR, help="folder of dashboard JSON files")
    args = parser.parse_args(argv)

    token = os.environ.get(args.token_env, "")
    if not token:
        print(f"lambda-grafana: set {args.token_env} to a Grafana service-account token", file=sys.stderr)
        return 2
    for flag in ("url", "prometheus_url", "api_url"):
        if not str(getattr(args, flag)).startswith(("http://", "https://")):
            print(f"lambda-grafana: --{flag.replace('_', '-')} must be an http(s) URL", file=sys.stderr)
            return 2
    try:
        api = GrafanaApi.from_url(args.url, credential=token)
        report = publish(
            api,
            load_dashboards(args.dashboards),
            datasources(args.prometheus_url, args.api_url, os.environ.get(args.api_token_env) or None),
        )
    except (PublishError, OSError, ValueError) as exc:
        print(f"lambda-grafana: {exc}", file=sys.stderr)
        return 1
    print(f"published to {args.url}: {report.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
