"""Every Kafka producer the project creates is acks=all and idempotent (issue 17, cluster mode).

With three replicas and min.insync.replicas 2, only acks=all makes an acknowledged record survive
the loss of its leader, and only idempotence keeps the retry that follows from writing it twice.
Read from the source, so a producer added anywhere (tools, testkit, tests, benchmarks) is checked
too: kafka-python's KafkaProducer(...) and librdkafka's Producer({...}). The speed job's Kafka
sinks are Flink's exactly-once (transactional) KafkaSink, where the Kafka client itself forces
both (a transactional id implies idempotence, which implies acks=all); tests/speed checks that
each sink is exactly-once.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".venvs", ".local", ".git", "node_modules", ".mypy_cache", ".ruff_cache", "build", "dist"}


def _sources() -> list[Path]:
    return [
        path
        for path in REPO.rglob("*.py")
        if not SKIPPED_DIRS.intersection(path.relative_to(REPO).parts[:-1])
    ]


def _called(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _literal(node: ast.AST | None) -> object:
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        return ast.unparse(node) if node is not None else None  # not a literal: never "all" or True


def problems(source: str, where: str) -> list[str]:
    """What each producer created in `source` lacks: acks=all and idempotence, stated literally."""
    found = []
    for call in (n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)):
        name = _called(call)
        if name == "KafkaProducer":  # kafka-python
            kwargs = {k.arg: k.value for k in call.keywords}
            settings = {
                "acks": _literal(kwargs.get("acks")),
                "idempotence": _literal(kwargs.get("enable_idempotence")),
            }
        elif name == "Producer" and call.args and isinstance(call.args[0], ast.Dict):  # confluent-kafka
            config = {_literal(k): v for k, v in zip(call.args[0].keys, call.args[0].values, strict=True)}
            idempotence = _literal(config.get("enable.idempotence"))
            settings = {"acks": _literal(config.get("acks")), "idempotence": idempotence in (True, "true")}
        elif name == "Producer":
            found.append(
                f"{where}:{call.lineno}: Producer(...) without a literal config dict cannot be checked"
            )
            continue
        else:
            continue
        if settings["acks"] not in ("all", -1, "-1") or settings["idempotence"] is not True:
            found.append(
                f"{where}:{call.lineno}: {name} with acks={settings['acks']!r}, idempotence={settings['idempotence']!r}"
            )
    return found


def test_every_producer_in_the_repository_is_acks_all_and_idempotent() -> None:
    sources = _sources()
    checked = [p for p in sources if "Producer(" in p.read_text(errors="replace")]
    assert len(checked) >= 5, f"the scan found too few producers to be looking in the right place: {checked}"
    found = [issue for p in checked for issue in problems(p.read_text(), str(p.relative_to(REPO)))]
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "KafkaProducer(bootstrap_servers=b)",
        "KafkaProducer(bootstrap_servers=b, acks='all')",
        "KafkaProducer(bootstrap_servers=b, enable_idempotence=True)",
        "KafkaProducer(bootstrap_servers=b, acks=1, enable_idempotence=True)",
        "KafkaProducer(bootstrap_servers=b, acks='all', enable_idempotence=flag)",
        "Producer({'bootstrap.servers': b, 'acks': '1', 'enable.idempotence': True})",
        "Producer({'bootstrap.servers': b, 'acks': 'all'})",
        "Producer(config)",
    ],
)
def test_a_producer_lacking_either_is_reported(source: str) -> None:
    assert problems(source, "x.py") != []


@pytest.mark.parametrize(
    "source",
    [
        "kafka.KafkaProducer(bootstrap_servers=b, acks='all', enable_idempotence=True, linger_ms=5)",
        "Producer({'bootstrap.servers': b, 'acks': 'all', 'enable.idempotence': True})",
        "Producer({'acks': 'all', 'enable.idempotence': 'true'})",
    ],
)
def test_a_safe_producer_passes(source: str) -> None:
    assert problems(source, "x.py") == []
