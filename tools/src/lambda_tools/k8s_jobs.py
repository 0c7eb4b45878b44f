"""Turns the nightly CronJob into a one-off Job (backfill), keeping its pod template whole.

`kubectl create job --from=cronjob/...` cannot change the arguments; this reads the CronJob as JSON
on stdin and writes a Job with the same image, configuration, secrets, resources and security
context, running the nightly flow over a range: `lambda-batch nightly --from D1 --to D2` (ingest,
then recompute the range) and then the reconciliation of every recomputed date. It needs no
suspend of anything: the batch writer Lease makes it wait for (or be waited for by) other writers.

Run: `kubectl -n lambda get cronjob nightly-recompute -o json | python -m lambda_tools.k8s_jobs
backfill --from 2026-11-01 --to 2026-11-07 | kubectl -n lambda create -f -` (make k8s-backfill).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from datetime import date
from typing import Any


def backfill_job(cronjob: dict[str, Any], first: date, last: date) -> dict[str, Any]:
    """The Job that recomputes [first, last] (inclusive) with the CronJob's pod template."""
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    template = copy.deepcopy(cronjob["spec"]["jobTemplate"])
    spec = template["spec"]
    pod = spec["template"]["spec"]
    batch = next(c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == "batch")
    args = list(batch["args"])
    if not args or args[0] != "nightly":
        raise ValueError(f"the batch container runs {args[:1]}, not the nightly flow")
    rest = args[1:]
    if "--date" in rest:  # the range replaces a named date
        i = rest.index("--date")
        del rest[i : i + 2]
    batch["args"] = ["nightly", "--from", first.isoformat(), "--to", last.isoformat(), *rest]
    labels = {**template.get("metadata", {}).get("labels", {}), "app.kubernetes.io/component": "backfill"}
    spec["template"].setdefault("metadata", {})["labels"] = {
        **spec["template"].get("metadata", {}).get("labels", {}),
        "app.kubernetes.io/component": "backfill",
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "generateName": f"backfill-{first.isoformat()}-{last.isoformat()}-",
            "namespace": cronjob["metadata"]["namespace"],
            "labels": labels,
        },
        "spec": spec,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="k8s_jobs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    bf = sub.add_parser("backfill", help="a Job recomputing a date range")
    bf.add_argument("--from", dest="first", type=date.fromisoformat, required=True)
    bf.add_argument("--to", dest="last", type=date.fromisoformat, required=True)
    ns = parser.parse_args(argv)
    json.dump(backfill_job(json.load(sys.stdin), ns.first, ns.last), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
