"""The three images, checked without a Docker engine: what they copy exists (in the repository or
made by `make setup`), the build context lets it through, base images are pinned, and the versions
in the images are the ones the layers lock and the jar pom pins."""

from __future__ import annotations

import re
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from k8s_support import REPO

pytestmark = pytest.mark.unit

LAYERS = ["speed_layer", "batch_layer", "serving_layer"]
# Paths a Dockerfile may copy that are not committed but made by `make setup`: the jars of
# infra/jars/pom.xml's profiles, and the speed job's functions built from speed_layer/functions.
SETUP_MADE = (".local/jars/flink/", ".local/jars/spark/", ".local/jars/functions/")


@dataclass
class Dockerfile:
    args: dict[str, str] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)
    stages: set[str] = field(default_factory=set)
    copies: list[list[str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    entrypoint: str = ""


def parse(path: Path) -> Dockerfile:
    text = re.sub(r"\\\n", " ", path.read_text())
    df = Dockerfile()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "ARG" and "=" in rest and not df.images:
            name, value = rest.split("=", 1)
            df.args[name.strip()] = value.strip()
        elif op == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: df.args[m.group(1)], parts[0])
            if image not in df.stages:
                df.images.append(image)
            if len(parts) == 3 and parts[1].upper() == "AS":
                df.stages.add(parts[2])
        elif op == "COPY":
            words = rest.split()
            if not any(w.startswith("--from=") for w in words):
                df.copies.append([w for w in words if not w.startswith("--")][:-1])
        elif op == "RUN":
            df.runs.append(rest)
        elif op == "ENTRYPOINT":
            df.entrypoint = rest
    return df


def locked(layer: str, package: str) -> str:
    lock = tomllib.loads((REPO / layer / "uv.lock").read_text())
    return str(next(p["version"] for p in lock["package"] if p["name"] == package))


def pom_properties() -> dict[str, str]:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(REPO / "infra/jars/pom.xml").getroot()
    props = root.find("m:properties", ns)
    assert props is not None
    return {child.tag.split("}")[1]: child.text or "" for child in props}


def tag(image: str) -> str:
    return image.rsplit(":", 1)[1]


@pytest.fixture(params=LAYERS)
def layer(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_every_copied_path_exists_or_is_made_by_setup(layer: str) -> None:
    df = parse(REPO / layer / "Dockerfile")
    assert df.copies
    for sources in df.copies:
        for src in sources:
            if src.startswith(".local/"):
                # Made by `make setup`: .local/jars/<profile>/ from that profile of infra/jars/pom.xml.
                assert src.startswith(SETUP_MADE), f"{layer}: {src} is neither committed nor made by setup"
                profile = src.split("/")[2]
                if profile == "functions":
                    setup = (REPO / "scripts/setup.sh").read_text()
                    assert "speed_layer/functions/pom.xml" in setup, (layer, src)
                    assert f"target/{Path(src).name}" in setup, (layer, src)
                else:
                    assert f"<id>{profile}</id>" in (REPO / "infra/jars/pom.xml").read_text(), (layer, src)
            else:
                tracked = subprocess.run(
                    ["git", "ls-files", "--error-unmatch", src], cwd=REPO, capture_output=True
                )
                assert tracked.returncode == 0, f"{layer}/Dockerfile copies {src}, which is not committed"
            assert (REPO / src).exists(), (
                f"{layer}/Dockerfile copies {src}, which does not exist (make setup?)"
            )


def test_the_build_context_lets_every_copied_path_through(layer: str) -> None:
    lines = (REPO / layer / "Dockerfile.dockerignore").read_text().splitlines()
    assert lines[[line.startswith("#") for line in lines].index(False)] == "*", "an allow-list starts with *"
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    for sources in parse(REPO / layer / "Dockerfile").copies:
        for src in sources:
            s = src.rstrip("/")
            assert any(s == a or s.startswith(a + "/") or a.startswith(s + "/") for a in allowed), (
                layer,
                src,
            )


def test_base_images_are_pinned_to_a_tag(layer: str) -> None:
    for image in parse(REPO / layer / "Dockerfile").images:
        name = image.rsplit("/", 1)[-1]
        assert ":" in name or "@sha256:" in image, f"{layer}: {image} has no tag"
        assert tag(image) != "latest", f"{layer}: {image} uses latest"


def test_python_dependencies_are_installed_from_the_layers_lock(layer: str) -> None:
    df = parse(REPO / layer / "Dockerfile")
    assert [f"{layer}/uv.lock" in sources for sources in df.copies].count(True) == 1
    syncs = [r for r in df.runs if "uv sync" in r]
    assert len(syncs) == 1
    for flag in ("--frozen", "--no-dev", "--no-editable", f"--project {layer}"):
        assert flag in syncs[0], f"{layer}: uv sync without {flag}"
    assert not any(re.search(r"\bpip3? install\b|uv pip install", r) for r in df.runs), (
        "installs beside the lock"
    )


def test_uv_and_python_versions_are_the_platforms(layer: str) -> None:
    df = parse(REPO / layer / "Dockerfile")
    setup = (REPO / "scripts/setup.sh").read_text()
    uv_pin = re.search(r'"uv==([\d.]+)"', setup)
    assert uv_pin and tag(df.args["UV_IMAGE"]) == uv_pin.group(1)
    python = df.args.get("PYTHON_VERSION") or tag(df.args["PYTHON_IMAGE"]).split("-")[0]
    assert python.startswith("3.11."), f"{layer}: Python {python}, the platform is on 3.11"


def test_entrypoints_are_the_layers_scripts() -> None:
    for layer, script in (("batch_layer", "lambda-batch"), ("serving_layer", "lambda-serve")):
        scripts = tomllib.loads((REPO / layer / "pyproject.toml").read_text())["project"]["scripts"]
        assert script in scripts and parse(REPO / layer / "Dockerfile").entrypoint == f'["{script}"]'


def test_speed_image_matches_the_locked_flink_and_the_pinned_jars() -> None:
    df = parse(REPO / "speed_layer/Dockerfile")
    flink = locked("speed_layer", "apache-flink")
    assert tag(df.args["FLINK_IMAGE"]).startswith(f"{flink}-"), "Flink image and apache-flink differ"
    props = pom_properties()
    assert props["flink.version"] == flink
    copied = [src for sources in df.copies for src in sources]
    # The job's pipeline.jars: every jar of the pom's flink profile, where LAMBDA_JARS_DIR points.
    assert ".local/jars/flink/" in copied
    assert "LAMBDA_JARS_DIR=/opt/lambda/jars" in (REPO / "speed_layer/Dockerfile").read_text()
    assert "LAMBDA_JARS_DIR=/opt/lambda/jars" in (REPO / "k8s/base/config/lambda.env").read_text()
    jars = {p.name for p in (REPO / ".local/jars/flink").glob("*.jar")}
    assert f"flink-sql-connector-kafka-{props['flink.kafka.connector.version']}.jar" in jars
    assert f".local/jars/flink/flink-metrics-prometheus-{props['flink.version']}.jar" in copied
    assert any(f"flink-s3-fs-presto-{flink}.jar" in r for r in df.runs)
    deployment = yaml.safe_load((REPO / "k8s/base/speed/flinkdeployment.yaml").read_text())
    assert deployment["spec"]["job"]["jarURI"] == f"local:///opt/flink/opt/flink-python-{flink}.jar"
    assert deployment["spec"]["flinkVersion"] == "v" + "_".join(flink.split(".")[:2])


def test_batch_image_matches_the_locked_spark_and_delta() -> None:
    df = parse(REPO / "batch_layer/Dockerfile")
    spark = locked("batch_layer", "pyspark")
    assert tag(df.args["SPARK_IMAGE"]).startswith(f"{spark}-"), "Spark image and pyspark differ"
    assert "java17" in df.args["SPARK_IMAGE"]
    props = pom_properties()
    assert props["spark.version"] == spark
    assert props["delta.version"] == locked("batch_layer", "delta-spark")
    # hadoop-aws (in the copied jar folder, for s3a) must be the Hadoop that pyspark ships.
    assert ".local/jars/spark/" in [src for sources in df.copies for src in sources]
    jars = REPO / ".venvs/batch/lib/python3.11/site-packages/pyspark/jars"
    if jars.exists():
        hadoop = {p.name.removeprefix("hadoop-client-api-") for p in jars.glob("hadoop-client-api-*.jar")}
        aws = {
            p.name.removeprefix("hadoop-aws-") for p in (REPO / ".local/jars/spark").glob("hadoop-aws-*.jar")
        }
        assert aws == hadoop, "hadoop-aws and pyspark's Hadoop differ"
