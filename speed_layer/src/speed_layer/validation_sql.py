"""The contract's validation rules translated into Flink SQL expressions (pure: text in, text out).

Everything here is generated from `lambda_contract.events` (RULES, the *_PATTERN constants,
`java_regex`, Reason codes), so the JVM evaluates the same definition as the Python reference
`validate()`. Flink details this translation relies on (each checked by tests/speed):

- `CAST(bytes AS STRING)` replaces invalid UTF-8; re-encoding and comparing tells it apart.
- `JSON_VALUE` returns a JSON number's text through BigDecimal (`1.50000` stays, `1.5e1`
  becomes `15`), so a number amount's literal text is taken from the payload and cross-checked.
- `JSON_QUERY(... WITH UNCONDITIONAL ARRAY WRAPPER)` is NULL for an absent or null field and
  otherwise starts with the JSON type of the value: `["` string, `[{` object, `[[` array, ...
- `IS JSON` ignores trailing tokens after the first value; Python's parser does not.
- `CHAR_LENGTH` and Java regexes count Unicode code points, like Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from lambda_contract.events import (
    AMOUNT_NOT_POSITIVE_PATTERN,
    AMOUNT_PRECISION,
    AMOUNT_RANGE_PATTERN,
    AMOUNT_SCALE,
    AMOUNT_SCALE_PATTERN,
    AMOUNT_SYNTAX_PATTERN,
    RFC3339_PATTERN,
    RULES,
    FieldKind,
    FieldRule,
    Reason,
    java_regex,
)
from lambda_contract.windows import HOUR_MS

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Python's json module accepts exactly these blanks around a document.
_JSON_BLANK: Final = r"[ \t\n\r]"
# A complete JSON scalar document (number, true, false, null); objects, arrays and strings are
# recognised by their closing character instead.
_JSON_SCALAR: Final = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?|true|false|null"
# The characters a JSON number literal may consist of (the first must be '-' or a digit).
_NUMBER_LITERAL: Final = r"-?[0-9][0-9.eE+-]*"


def sql_string(text: str) -> str:
    """A SQL string literal. Flink string literals only need the quote doubled."""
    return "'" + text.replace("'", "''") + "'"


def _path(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"field name {name!r} cannot be used in a simple JSON path")
    return sql_string(f"$.{name}")


def _regexp(expr: str, pattern: str) -> str:
    return f"REGEXP({expr}, {sql_string(java_regex(pattern))})"


@dataclass(frozen=True)
class ColumnNames:
    """Input column names the expressions refer to."""

    payload: str = "payload"  # BYTES, the raw Kafka value (NULL for a tombstone)
    text: str = "txt"  # STRING, CAST(payload AS STRING)


def text_expr(cols: ColumnNames = ColumnNames()) -> str:
    return f"CAST({cols.payload} AS STRING)"


def value_expr(rule: FieldRule, cols: ColumnNames = ColumnNames()) -> str:
    """The field's scalar text (a string's content, a number's canonical text), else NULL."""
    return f"JSON_VALUE({cols.text}, {_path(rule.name)})"


def wrapped_expr(rule: FieldRule, cols: ColumnNames = ColumnNames()) -> str:
    """The field as JSON text inside `[...]`; NULL when absent or JSON null."""
    return f"JSON_QUERY({cols.text}, {_path(rule.name)} WITH UNCONDITIONAL ARRAY WRAPPER)"


def _json_type_char(rule: FieldRule, cols: ColumnNames) -> str:
    return f"SUBSTRING({wrapped_expr(rule, cols)} FROM 2 FOR 1)"


def is_string_expr(rule: FieldRule, cols: ColumnNames = ColumnNames()) -> str:
    return f"({_json_type_char(rule, cols)} = '\"')"


def is_number_expr(rule: FieldRule, cols: ColumnNames = ColumnNames()) -> str:
    return f"({_json_type_char(rule, cols)} IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))"


def amount_text_expr(rule: FieldRule, cols: ColumnNames = ColumnNames()) -> str:
    """The amount's text as the contract defines it; NULL for any other JSON type.

    A string gives its content. A number gives its literal as written in the payload: the last
    `"name": <number>` occurrence (the last duplicate key wins, as in Python), used only if it
    denotes the same value as Flink's parsed number, else Flink's canonical text.
    """
    value = value_expr(rule, cols)
    literal_regex = rf"^[\s\S]*\"{re.escape(rule.name)}\"{_JSON_BLANK}*:{_JSON_BLANK}*({_NUMBER_LITERAL})"
    literal = f"REGEXP_EXTRACT({cols.text}, {sql_string(literal_regex)}, 1)"
    same_value = f"TRY_CAST({literal} AS DOUBLE) = TRY_CAST({value} AS DOUBLE)"
    return (
        f"(CASE WHEN {is_string_expr(rule, cols)} THEN {value} "
        f"WHEN {is_number_expr(rule, cols)} THEN "
        f"(CASE WHEN {literal} IS NOT NULL AND {same_value} THEN {literal} ELSE {value} END) "
        "END)"
    )


# --- event time -------------------------------------------------------------------------------

# Once the RFC 3339 pattern matched, every component sits at a fixed position:
# yyyy-MM-ddTHH:mm:ss[.f{1,9}](Z|+hh:mm)


def _num(value: str, start: int, length: int) -> str:
    return f"TRY_CAST(SUBSTRING({value} FROM {start} FOR {length}) AS BIGINT)"


def _components(value: str) -> tuple[str, str, str, str, str, str, str, str, str]:
    y, mo, d, h, mi, s = (_num(value, a, n) for a, n in ((1, 4), (6, 2), (9, 2), (12, 2), (15, 2), (18, 2)))
    zulu = f"(SUBSTRING({value} FROM CHAR_LENGTH({value})) = 'Z')"
    offset = f"SUBSTRING({value} FROM CHAR_LENGTH({value}) - 5)"
    return y, mo, d, h, mi, s, zulu, offset, f"(CASE WHEN {zulu} THEN 1 ELSE 6 END)"


def _div(a: str, b: int) -> str:
    """Division of a non-negative BIGINT: Flink truncates integer division, which is floor here."""
    return f"(CAST({a} AS BIGINT) / {b})"


def _calendar_ok(value: str) -> str:
    y, mo, d, h, mi, s, zulu, offset, _ = _components(value)
    off_h = f"TRY_CAST(SUBSTRING({offset} FROM 2 FOR 2) AS BIGINT)"
    off_m = f"TRY_CAST(SUBSTRING({offset} FROM 5 FOR 2) AS BIGINT)"
    leap = f"((MOD({y}, 4) = 0 AND MOD({y}, 100) <> 0) OR MOD({y}, 400) = 0)"
    month_days = (
        f"(CASE WHEN {mo} = 2 THEN (CASE WHEN {leap} THEN 29 ELSE 28 END) "
        f"WHEN {mo} IN (4, 6, 9, 11) THEN 30 ELSE 31 END)"
    )
    offset_ok = f"({zulu} OR ({off_h} <= 23 AND {off_m} <= 59))"
    return (
        f"({_regexp(value, RFC3339_PATTERN)} AND {y} >= 1 AND {mo} BETWEEN 1 AND 12 "
        f"AND {d} BETWEEN 1 AND {month_days} AND {h} <= 23 AND {mi} <= 59 AND {s} <= 59 AND {offset_ok})"
    )


def event_time_ms_expr(value: str) -> str:
    """Epoch milliseconds (UTC) of an RFC 3339 text, NULL unless it is a real calendar instant.

    The calendar is checked explicitly (Flink's parsers are lenient: Feb 30 would roll over) and
    the instant is computed with integer arithmetic (days from the civil date, proleptic
    Gregorian like Python), so an offset such as +05:30 is applied exactly. The fraction is
    truncated to milliseconds.
    """
    y, mo, d, h, mi, s, zulu, offset, offset_len = _components(value)
    digits = (
        f"(CASE WHEN SUBSTRING({value} FROM 20 FOR 1) = '.' "
        f"THEN SUBSTRING({value} FROM 21 FOR CHAR_LENGTH({value}) - 20 - {offset_len}) ELSE '' END)"
    )
    millis = f"TRY_CAST(SUBSTRING(CONCAT({digits}, '000') FROM 1 FOR 3) AS BIGINT)"
    off_h = f"TRY_CAST(SUBSTRING({offset} FROM 2 FOR 2) AS BIGINT)"
    off_m = f"TRY_CAST(SUBSTRING({offset} FROM 5 FOR 2) AS BIGINT)"
    yy = f"({y} - (CASE WHEN {mo} <= 2 THEN 1 ELSE 0 END))"
    era = _div(yy, 400)
    yoe = f"({yy} - {era} * 400)"
    doy = f"({_div(f'153 * MOD({mo} + 9, 12) + 2', 5)} + {d} - 1)"
    doe = f"({yoe} * 365 + {_div(yoe, 4)} - {_div(yoe, 100)} + {doy})"
    days = f"({era} * 146097 + {doe} - 719468)"
    local_ms = f"((({days} * 24 + {h}) * 60 + {mi}) * 60 + {s}) * 1000 + {millis}"
    offset_ms = (
        f"(CASE WHEN {zulu} THEN 0 ELSE "
        f"(CASE WHEN SUBSTRING({offset} FROM 1 FOR 1) = '-' THEN -1 ELSE 1 END) "
        f"* ({off_h} * 60 + {off_m}) * 60000 END)"
    )
    return f"(CASE WHEN {_calendar_ok(value)} THEN CAST({local_ms} - {offset_ms} AS BIGINT) END)"


def _rule(name: str) -> FieldRule:
    return next(r for r in RULES if r.name == name)


EVENT_TIME_RULE: Final = next(r for r in RULES if r.kind is FieldKind.TIMESTAMP)
AMOUNT_RULE: Final = next(r for r in RULES if r.kind is FieldKind.AMOUNT)


def event_time_field_ms_expr(cols: ColumnNames = ColumnNames()) -> str:
    """The event_time field's instant when it passes the timestamp rule, else NULL.

    Only a JSON string can match the RFC 3339 pattern (a number's text has no 'T'), so no type
    check is needed. Cheap enough for the source's watermark, but it also reads a time from a
    payload that is not a complete JSON object (see readable_event_time_ms_expr).
    """
    return event_time_ms_expr(value_expr(EVENT_TIME_RULE, cols))


def readable_event_time_ms_expr(cols: ColumnNames = ColumnNames()) -> str:
    """The event time as the reference validator reads it: only from a JSON object document.

    This is what malformed events are bucketed by (tables.event_date).
    """
    document_ok = " AND ".join(f"NOT ({cond})" for cond, _ in _document_checks(cols))
    return f"(CASE WHEN {document_ok} THEN {event_time_field_ms_expr(cols)} END)"


# --- reasons ----------------------------------------------------------------------------------


def _amount_checks(text: str) -> list[tuple[str, Reason]]:
    """check_amount's order: each (condition meaning 'fails', reason)."""
    return [
        (f"NOT {_regexp(text, AMOUNT_SYNTAX_PATTERN)}", Reason.INVALID_AMOUNT),
        (_regexp(text, AMOUNT_NOT_POSITIVE_PATTERN), Reason.AMOUNT_NOT_POSITIVE),
        (f"NOT {_regexp(text, AMOUNT_RANGE_PATTERN)}", Reason.AMOUNT_OUT_OF_RANGE),
        (f"NOT {_regexp(text, AMOUNT_SCALE_PATTERN)}", Reason.AMOUNT_TOO_PRECISE),
    ]


def _field_checks(rule: FieldRule, cols: ColumnNames) -> list[tuple[str, Reason]]:
    """(failure condition, reason) pairs for one field, in the reference validator's order."""
    checks = [(f"{wrapped_expr(rule, cols)} IS NULL", rule.missing)]
    value = value_expr(rule, cols)
    if rule.kind is FieldKind.AMOUNT:
        text = amount_text_expr(rule, cols)
        checks.append((f"{text} IS NULL", rule.invalid))
        checks.extend(_amount_checks(text))
        return checks
    checks.append((f"NOT {is_string_expr(rule, cols)}", rule.invalid))
    if rule.kind is FieldKind.ENUM:
        allowed = ", ".join(sql_string(v) for v in rule.allowed)
        checks.append((f"{value} NOT IN ({allowed})", rule.invalid))
    elif rule.kind is FieldKind.TIMESTAMP:
        checks.append((f"NOT {_calendar_ok(value)}", rule.invalid))
    else:
        assert rule.pattern is not None
        checks.append((f"NOT {_regexp(value, rule.pattern)}", rule.invalid))
    return checks


def _document_checks(cols: ColumnNames) -> list[tuple[str, Reason]]:
    t, p = cols.text, cols.payload
    blank = _JSON_BLANK
    # What Flink's IS JSON accepts but Python's parser rejects: trailing tokens after the value.
    document = rf"^{blank}*(\{{[\s\S]*\}}|\[[\s\S]*\]|\"[\s\S]*\"|{_JSON_SCALAR}){blank}*\z"
    complete = f"REGEXP({t}, {sql_string(document)})"
    return [
        (f"{p} IS NULL OR CHAR_LENGTH({t}) = 0", Reason.EMPTY_PAYLOAD),
        (f"NOT (CAST({t} AS BYTES) = {p})", Reason.NOT_UTF8),
        (f"NOT ({t} IS JSON) OR NOT {complete}", Reason.NOT_JSON),
        (f"NOT ({t} IS JSON OBJECT)", Reason.NOT_OBJECT),
    ]


def reason_expr(cols: ColumnNames = ColumnNames()) -> str:
    """The first failing check's Reason value, or NULL for a valid event (CASE short-circuits)."""
    checks = _document_checks(cols)
    for rule in RULES:
        checks.extend(_field_checks(rule, cols))
    branches = " ".join(f"WHEN {cond} THEN {sql_string(reason.value)}" for cond, reason in checks)
    return f"(CASE {branches} END)"


def amount_expr(cols: ColumnNames = ColumnNames()) -> str:
    """A valid event's amount as DECIMAL(16,4): exact, since the text passed the scale check."""
    return f"CAST({amount_text_expr(AMOUNT_RULE, cols)} AS DECIMAL({AMOUNT_PRECISION}, {AMOUNT_SCALE}))"


def hour_start_ms_expr(ms: str) -> str:
    """Start of the UTC hour containing epoch ms `ms` (also right for instants before 1970)."""
    return f"({ms} - MOD(MOD({ms}, {HOUR_MS}) + {HOUR_MS}, {HOUR_MS}))"


def field_value_expr(name: str, cols: ColumnNames = ColumnNames()) -> str:
    return value_expr(_rule(name), cols)
