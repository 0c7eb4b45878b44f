"""The SQL builder: generated from the contract, no connection details inside SQL text."""

from __future__ import annotations

import pytest

from lambda_contract.events import (
    AMOUNT_NOT_POSITIVE_PATTERN,
    AMOUNT_RANGE_PATTERN,
    AMOUNT_SCALE_PATTERN,
    AMOUNT_SYNTAX_PATTERN,
    ID_MAX_CHARS,
    MAX_JSON_DEPTH,
    RULES,
    FieldKind,
    Reason,
    java_regex,
)
from lambda_contract.settings import Settings
from speed_layer import sql
from speed_layer import validation_sql as v

pytestmark = pytest.mark.unit

SETTINGS = Settings.from_env(
    {
        "LAMBDA_KAFKA_BOOTSTRAP": "kafka-0.example.internal:9093",
        "LAMBDA_TOPIC_ORDERS": "orders.secret-topic",
        "LAMBDA_ALLOWED_LATENESS_S": "123",
        "LAMBDA_OUT_OF_ORDERNESS_S": "17",
    }
)


def all_sql() -> str:
    return "\n".join(
        [
            sql.parse_query(),
            sql.judge_query(SETTINGS),
            sql.classify_query(),
            sql.dlq_insert(),
            sql.late_insert(),
            sql.updates_query(SETTINGS),
        ]
    )


def test_no_host_or_topic_names_inside_sql_text() -> None:
    text = all_sql()
    assert "example.internal" not in text
    assert "secret-topic" not in text
    assert sql.source_options(SETTINGS, bounded=False, group_id="g")["properties.bootstrap.servers"] == (
        "kafka-0.example.internal:9093"
    )


def test_every_reason_of_the_contract_is_produced_in_rule_order() -> None:
    # Document-level checks first (from the parse's answer), then the field checks.
    expr = v.reason_expr()
    positions = [expr.index(f"THEN '{reason.value}'") for reason in Reason]
    assert positions == sorted(positions), "reasons must be checked in the contract's order"
    for rule in RULES:
        assert expr.index(f"THEN '{rule.missing.value}'") < expr.index(f"THEN '{rule.invalid.value}'")


def test_patterns_come_from_the_contract_as_whole_value_java_regexes() -> None:
    expr = sql.parse_query()
    for rule in RULES:
        if rule.kind is FieldKind.ID:  # "any 1..ID_MAX_CHARS code points", checked as a length
            assert f"CHAR_LENGTH(s_{rule.name}) BETWEEN 1 AND {ID_MAX_CHARS}" in expr
    for pattern in [r.pattern for r in RULES if r.pattern and r.kind is not FieldKind.ID] + [
        AMOUNT_SYNTAX_PATTERN,
        AMOUNT_NOT_POSITIVE_PATTERN,
        AMOUNT_RANGE_PATTERN,
        AMOUNT_SCALE_PATTERN,
    ]:
        assert v.sql_string(java_regex(pattern)) in expr


def test_sql_string_doubles_quotes() -> None:
    assert v.sql_string("it's") == "'it''s'"


def test_member_names_refuse_names_that_need_quoting() -> None:
    with pytest.raises(ValueError, match="plain JSON member name"):
        v._member_name("amount'); DROP")


def test_the_payload_is_parsed_by_one_call_with_the_contracts_names_and_depth() -> None:
    text = sql.parse_query()
    assert text.count(f"{v.MEMBERS_FUNCTION}(") == 1
    assert (
        f"{v.MEMBERS_FUNCTION}(payload, {MAX_JSON_DEPTH}, {', '.join(repr(r.name) for r in RULES)})" in text
    )
    assert "JSON_VALUE" not in text and "JSON_QUERY" not in text and "IS JSON" not in text


def test_malformed_rows_and_payloads_stay_out_of_the_keyed_exchanges() -> None:
    judge = sql.judge_query(SETTINGS)
    assert "WHERE reason IS NULL" in judge  # only valid rows reach the dedup
    # The payload reaches the dedup step only for rows judged late.
    assert "THEN payload END AS late_payload" in judge
    assert "FROM parsed WHERE reason IS NOT NULL" in sql.dlq_rows_query()


def test_lateness_and_out_of_orderness_come_from_settings() -> None:
    assert f"{3_600_000 + 123_000}" in sql.judge_query(SETTINGS)
    assert "partition_max - 17001 >=" in sql.judge_query(SETTINGS)


def test_bounded_mode_stops_at_latest_offsets() -> None:
    assert sql.source_options(SETTINGS, bounded=True, group_id="g")["scan.bounded.mode"] == "latest-offset"
    assert "scan.bounded.mode" not in sql.source_options(SETTINGS, bounded=False, group_id="g")


def test_state_ttls() -> None:
    assert sql.table_config(SETTINGS)["table.exec.state.ttl"] == f"{SETTINGS.dedup_ttl_s} s"
    assert f"STATE_TTL('s' = '{SETTINGS.speed_retention_s} s')" in sql.updates_query(SETTINGS)
