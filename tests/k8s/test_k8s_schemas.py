"""Every rendered object validates: core kinds against the Kubernetes JSON schemas, custom
resources against their operators' CRD schemas (strict: an unknown field is an error)."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from k8s_support import CRD_FILES, KUBE_VERSION, OPTIONAL_CUSTOM_KINDS, crd_schema, one

pytestmark = pytest.mark.unit

Rendered = dict[str, list[dict[str, Any]]]


def validate_core(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def validate_custom(doc: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(crd_schema(doc["apiVersion"], doc["kind"])).validate(doc)


def is_custom(doc: dict[str, Any]) -> bool:
    return (doc["apiVersion"], doc["kind"]) in CRD_FILES


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_core_kinds_validate_against_kubernetes_schemas(rendered: Rendered, overlay: str) -> None:
    errors = []
    for doc in rendered[overlay]:
        if is_custom(doc):
            continue
        try:
            validate_core(doc)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_custom_resources_validate_against_their_crds(rendered: Rendered, overlay: str) -> None:
    custom = [d for d in rendered[overlay] if is_custom(d)]
    unused = {k for _, k in CRD_FILES} - {d["kind"] for d in custom} - OPTIONAL_CUSTOM_KINDS
    assert not unused, f"CRDs no overlay uses: {sorted(unused)}"
    errors = []
    for doc in custom:
        try:
            validate_custom(doc)
        except jsonschema.ValidationError as exc:
            errors.append(
                f"{doc['kind']}/{doc['metadata']['name']} at {list(exc.absolute_path)}: {exc.message}"
            )
    assert not errors, "\n".join(errors)


def test_every_rendered_kind_is_checked_by_one_of_the_two(rendered: Rendered) -> None:
    unknown = []
    for doc in rendered["prod"] + rendered["dev"]:
        if is_custom(doc):
            continue
        try:
            validate_core(doc)
        except kubernetes_validate.SchemaNotFoundError:
            unknown.append(f"{doc['apiVersion']} {doc['kind']}")
    assert not unknown, unknown


# The checks can fail: a typo or a wrong type in a manifest is caught.


def test_a_misspelt_field_of_a_core_kind_fails(rendered: Rendered) -> None:
    doc = copy.deepcopy(one(rendered["prod"], "Deployment", "serving"))
    doc["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(doc)


@pytest.mark.parametrize(
    ("kind", "name", "path", "value"),
    [
        ("FlinkDeployment", "lambda-speed", ["spec", "job", "upgradMode"], "savepoint"),
        ("FlinkDeployment", "lambda-speed", ["spec", "job", "upgradeMode"], "checkpoint"),
        ("Kafka", "lambda", ["spec", "kafka", "listener"], []),
        ("KafkaNodePool", "combined", ["spec", "replicas"], "three"),
        ("KafkaTopic", "orders-v1", ["spec", "partition"], 3),
        ("ServiceMonitor", "serving", ["spec", "endpoints", 0, "scheme"], "gopher"),
        ("PrometheusRule", "lambda-alerts", ["spec", "groups", 0, "rules", 0, "expression"], "up"),
    ],
)
def test_a_wrong_custom_resource_field_fails(
    rendered: Rendered, kind: str, name: str, path: list[Any], value: Any
) -> None:
    doc = copy.deepcopy(one(rendered["prod"], kind, name))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(doc)


def minimal_spark_application() -> dict[str, Any]:
    """A small SparkApplication written here, so the spark-operator CRD is checked on its own."""
    return {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {"name": "probe", "namespace": "lambda"},
        "spec": {
            "type": "Python",
            "mode": "cluster",
            "sparkVersion": "3.5.3",
            "mainApplicationFile": "local:///opt/app/main.py",
            "driver": {"cores": 1, "memory": "1g", "serviceAccount": "spark-driver"},
            "executor": {"instances": 2, "cores": 1, "memory": "2g"},
        },
    }


def test_the_spark_operator_crd_accepts_a_valid_application() -> None:
    validate_custom(minimal_spark_application())


@pytest.mark.parametrize(
    ("path", "value"),
    [(["spec", "type"], "Go"), (["spec", "executor", "instance"], 2), (["spec", "mode"], "local")],
)
def test_the_spark_operator_crd_rejects_a_wrong_field(path: list[str], value: Any) -> None:
    doc = minimal_spark_application()
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(doc)
