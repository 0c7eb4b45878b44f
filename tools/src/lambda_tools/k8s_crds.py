"""Builds the operators' CRD schemas the offline manifest tests validate against (`make setup`).

No cluster and no download site is involved: each CRD comes from a registry package by exact version,
produced the way the operator's own release produces it.

- Flink Kubernetes Operator: the API jar on Maven Central carries its generated CRDs (1.10.0, the newest
  served here, with the later operators' `flinkVersion` values added).
- Strimzi: `io.strimzi:crd-generator` turns the annotated model classes of `io.strimzi:api` into the
  CRDs (Strimzi's release build does the same); both jars need a JDK >= 21.
- prometheus-operator: `controller-gen` (a Go module) generates the CRDs from the Go API types of
  `github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring` (also a Go module), as
  upstream's build does.
- spark-operator (kubeflow): its Go module `github.com/kubeflow/spark-operator/v2` carries the CRDs
  its controller-gen run produced (config/crd/bases), taken as they are.

Run: `python -m lambda_tools.k8s_crds --jars .local/crds/jars --out .local/crds` (scripts/setup.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

import yaml

STRIMZI_VERSION: Final = "1.2.0"
# The newest flink-kubernetes-operator-api that Maven Central serves here: 1.11.0 and later answer
# "Could not find artifact" (see docs/operations.md, section 13). Its flinkVersion enum stops at v1_20;
# operator 1.11-1.14 add v2_0..v2_2 and nothing else this deployment uses, so those are added.
FLINK_OPERATOR_API_VERSION: Final = "1.10.0"
FLINK_VERSIONS_ADDED_AFTER_1_10: Final = ("v2_0", "v2_1", "v2_2")
PROMETHEUS_OPERATOR_VERSION: Final = "v0.95.2"
CONTROLLER_TOOLS_VERSION: Final = "v0.19.0"
SPARK_OPERATOR_VERSION: Final = "v2.3.0"

STRIMZI_KINDS: Final = {
    "io.strimzi.api.kafka.model.kafka.Kafka": "kafkas.kafka.strimzi.io.yaml",
    "io.strimzi.api.kafka.model.nodepool.KafkaNodePool": "kafkanodepools.kafka.strimzi.io.yaml",
    "io.strimzi.api.kafka.model.topic.KafkaTopic": "kafkatopics.kafka.strimzi.io.yaml",
}
FLINK_CRDS: Final = {
    "META-INF/fabric8/flinkdeployments.flink.apache.org-v1.yml": "flinkdeployments.flink.apache.org.yaml",
}
PROMETHEUS_CRDS: Final = {
    "monitoring.coreos.com_servicemonitors.yaml": "servicemonitors.monitoring.coreos.com.yaml",
    "monitoring.coreos.com_podmonitors.yaml": "podmonitors.monitoring.coreos.com.yaml",
    "monitoring.coreos.com_prometheusrules.yaml": "prometheusrules.monitoring.coreos.com.yaml",
}

SPARK_OPERATOR_MODULE: Final = "github.com/kubeflow/spark-operator/v2"
SPARK_CRDS: Final = {
    "sparkoperator.k8s.io_sparkapplications.yaml": "sparkapplications.sparkoperator.k8s.io.yaml",
    "sparkoperator.k8s.io_scheduledsparkapplications.yaml": (
        "scheduledsparkapplications.sparkoperator.k8s.io.yaml"
    ),
}


class CrdError(RuntimeError):
    """A CRD source could not be turned into a schema file."""


def java_major(java_home: Path) -> int | None:
    """The feature version of a JDK/JRE home, from its `release` file."""
    try:
        text = (java_home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match else None


def find_java(minimum: int, candidates: list[Path]) -> Path | None:
    """The `java` of the first candidate home whose version is at least `minimum`."""
    for home in candidates:
        major = java_major(home)
        if major is not None and major >= minimum and (home / "bin" / "java").exists():
            return home / "bin" / "java"
    return None


def java_candidates() -> list[Path]:
    """JAVA21_HOME, JAVA_HOME, then every JDK under /usr/lib/jvm (newest name last wins ties)."""
    homes = [Path(os.environ[v]) for v in ("JAVA21_HOME", "JAVA_HOME") if os.environ.get(v)]
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        homes += sorted(p for p in jvm.iterdir() if p.is_dir())
    return homes


def flink_crds(jars: Path, out: Path) -> None:
    """The API jar's CRD with the `flinkVersion` values of later operators added (the one patch).

    The offline tests and the local API server (`make k8s-up`) both use this file.
    """
    jar = jars / f"flink-kubernetes-operator-api-{FLINK_OPERATOR_API_VERSION}.jar"
    if not jar.exists():
        raise CrdError(f"{jar} is missing (mvn profile `crds` of infra/jars/pom.xml)")
    with zipfile.ZipFile(jar) as zf:
        for member, name in FLINK_CRDS.items():
            crd = yaml.safe_load(zf.read(member))
            for version in crd["spec"]["versions"]:
                spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
                enum = spec["properties"]["flinkVersion"]["enum"]
                enum.extend(v for v in FLINK_VERSIONS_ADDED_AFTER_1_10 if v not in enum)
            (out / name).write_text(yaml.safe_dump(crd, sort_keys=False))


def strimzi_crds(jars: Path, out: Path) -> None:
    java = find_java(21, java_candidates())
    if java is None:
        raise CrdError("Strimzi's crd-generator needs a JDK >= 21 (set JAVA21_HOME)")
    args = [f"{cls}={out / name}" for cls, name in STRIMZI_KINDS.items()]
    cmd = [str(java), "-cp", f"{jars}/*", "io.strimzi.crdgenerator.CrdGenerator", "--yaml"]
    cmd += ["--crd-api-version", "v1", "--api-versions", "v1", "--storage-version", "v1", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CrdError(f"Strimzi crd-generator failed: {result.stderr[-2000:]}")


def go_binary() -> str:
    """`go` from PATH or Debian's /usr/local/go; a CrdError when neither exists."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise CrdError("the CRDs from Go modules need Go (go is not on PATH)")
    return go


def spark_crds(out: Path) -> None:
    """Copies the CRDs out of the spark-operator module the Go module proxy serves."""
    go = go_binary()
    with tempfile.TemporaryDirectory(prefix="crdgen-") as tmp:
        result = subprocess.run(
            [go, "mod", "download", "-json", f"{SPARK_OPERATOR_MODULE}@{SPARK_OPERATOR_VERSION}"],
            cwd=tmp,
            env={**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off"},
            capture_output=True,
            text=True,
            check=False,
        )
    info = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    if result.returncode != 0 or "Dir" not in info:
        detail = info.get("Error") or result.stderr[-2000:]
        raise CrdError(f"go mod download {SPARK_OPERATOR_MODULE}@{SPARK_OPERATOR_VERSION} failed: {detail}")
    bases = Path(info["Dir"]) / "config" / "crd" / "bases"
    for source, name in SPARK_CRDS.items():
        shutil.copyfile(bases / source, out / name)


def prometheus_crds(out: Path) -> None:
    go = go_binary()
    module = "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring"
    with tempfile.TemporaryDirectory(prefix="crdgen-") as tmp:
        env = {**os.environ, "GOFLAGS": "-mod=mod"}

        def go_run(*args: str) -> None:
            result = subprocess.run(
                [go, *args], cwd=tmp, env=env, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise CrdError(f"go {' '.join(args)} failed: {result.stderr[-2000:]}")

        go_run("mod", "init", "lambda.local/crdgen")
        go_run("get", f"{module}@{PROMETHEUS_OPERATOR_VERSION}")
        go_run("get", f"sigs.k8s.io/controller-tools/cmd/controller-gen@{CONTROLLER_TOOLS_VERSION}")
        gen_dir = Path(tmp) / "out"
        go_run(
            "run",
            "sigs.k8s.io/controller-tools/cmd/controller-gen",
            "crd:crdVersions=v1,maxDescLen=0",
            f"paths={module}/v1",
            f"output:crd:dir={gen_dir}",
        )
        for generated, name in PROMETHEUS_CRDS.items():
            shutil.copyfile(gen_dir / generated, out / name)


def versions() -> dict[str, str]:
    return {
        "strimzi": STRIMZI_VERSION,
        "flink-kubernetes-operator-api": FLINK_OPERATOR_API_VERSION,
        "flinkVersion-added": ",".join(FLINK_VERSIONS_ADDED_AFTER_1_10),
        "prometheus-operator": PROMETHEUS_OPERATOR_VERSION,
        "controller-tools": CONTROLLER_TOOLS_VERSION,
        "spark-operator": SPARK_OPERATOR_VERSION,
    }


def build(jars: Path, out: Path) -> list[str]:
    """Writes every CRD that is not already there for these versions; returns the problems."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / "versions.json"
    current = json.loads(stamp.read_text()) if stamp.exists() else {}
    if current != versions():
        for old in out.glob("*.yaml"):
            old.unlink()
    steps: list[tuple[Iterable[str], Callable[[], None]]] = [
        (FLINK_CRDS.values(), lambda: flink_crds(jars, out)),
        (STRIMZI_KINDS.values(), lambda: strimzi_crds(jars, out)),
        (PROMETHEUS_CRDS.values(), lambda: prometheus_crds(out)),
        (SPARK_CRDS.values(), lambda: spark_crds(out)),
    ]
    problems: list[str] = []
    for names, step in steps:
        if all((out / n).exists() for n in names):
            continue
        try:
            step()
        except CrdError as exc:
            problems.append(str(exc))
    stamp.write_text(json.dumps(versions(), indent=2) + "\n")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="k8s_crds", description=__doc__.splitlines()[0])
    parser.add_argument("--jars", type=Path, required=True, help="jars of the mvn profile `crds`")
    parser.add_argument("--out", type=Path, required=True, help="folder for the CRD yaml files")
    ns = parser.parse_args(argv)
    problems = build(ns.jars, ns.out)
    for problem in problems:
        print(f"k8s_crds: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
