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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from lambda_contract.events import (
    AMOUNT_NOT_POSITIVE_PATTERN,
    AMOUNT_PRECISION,
    AMOUNT_RANGE_PATTERN,
    AMOUNT_SCALE,
    AMOUNT_SCALE_PATTERN,
    AMOUNT_SYNTAX_PATTERN,
    ID_MAX_CHARS,
    RFC3339_PATTERN,
    RULES,
    FieldKind,
    FieldRule,
    Reason,
    java_regex,
)
from lambda_contract.windows import HOUR_MS

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Python's json module accepts exactly these blanks around a document and its tokens.
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


def _rule(name: str) -> FieldRule:
    return next(r for r in RULES if r.name == name)


EVENT_TIME_RULE: Final = next(r for r in RULES if r.kind is FieldKind.TIMESTAMP)
AMOUNT_RULE: Final = next(r for r in RULES if r.kind is FieldKind.AMOUNT)


@dataclass(frozen=True)
class Extracted:
    """Column names of the two preparing steps, which the rules read.

    Flink does not share common subexpressions: an expression that names a column defined in a
    sub-select is inlined, so a JSON function referenced ten times parses the document ten times.
    The job therefore runs two steps behind DataStream boundaries (which the planner cannot
    merge across): `extract_columns` evaluates each JSON call once, `part_columns` derives
    each value the rules use several times (the amount's text, the event time's parts) once.
    """

    document: str = "doc_reason"  # the document-level reason (empty, not UTF-8, not JSON, ...)
    amount_literal: str = "amount_literal"  # a number amount's literal text in the payload
    amount_text: str = "amount_text"  # the amount's text as the contract defines it (parts step)

    def time_parts(self) -> dict[str, str]:
        """The event time's parts (parts step), by TIME_PARTS name."""
        return {name: f"et_{name}" for name in TIME_PARTS}

    def wrapped(self, rule: FieldRule) -> str:
        """The field as JSON text inside `[...]` (NULL when absent or JSON null)."""
        return f"w_{rule.name}"

    scalar_overrides: Mapping[str, str] = field(default_factory=dict)

    def scalar(self, rule: FieldRule) -> str:
        """JSON_VALUE of the field: a string's content or a number's canonical text, else NULL."""
        return self.scalar_overrides.get(rule.name, f"s_{rule.name}")


def extract_columns(
    payload: str = "payload", text: str | None = None, x: Extracted = Extracted()
) -> list[tuple[str, str]]:
    """(expression, alias) pairs over the raw payload: every parse of the whole document, once.

    Each field's JSON_QUERY gives its presence, JSON type and JSON text; the event time's
    JSON_VALUE is also taken here because the parts step reads it a dozen times. `text` names a
    column holding CAST(payload AS STRING) when the caller decoded it once already (otherwise
    every reference decodes the bytes again).
    """
    text = text or f"CAST({payload} AS STRING)"
    out = [(_document_reason(payload, text), x.document)]
    for rule in RULES:
        out.append(
            (f"JSON_QUERY({text}, {_path(rule.name)} WITH UNCONDITIONAL ARRAY WRAPPER)", x.wrapped(rule))
        )
    out.append((f"JSON_VALUE({text}, {_path(EVENT_TIME_RULE.name)})", x.scalar(EVENT_TIME_RULE)))
    # A number amount's literal as written: the last `"amount": <number>` occurrence (the last
    # duplicate key wins, as in Python); amount_text_expr checks it denotes the parsed value.
    # Searched forwards from its literal start (fast), with a look-ahead for a later occurrence.
    key = rf"\"{re.escape(AMOUNT_RULE.name)}\"{_JSON_BLANK}*:{_JSON_BLANK}*"
    literal_regex = rf"{key}({_NUMBER_LITERAL})(?![\s\S]*{key}{_NUMBER_LITERAL})"
    out.append((f"REGEXP_EXTRACT({text}, {sql_string(literal_regex)}, 1)", x.amount_literal))
    return out


def part_columns(x: Extracted = Extracted()) -> list[tuple[str, str]]:
    """(expression, alias) pairs over the extraction step's columns: derived values, each once."""
    out = [(_scalar_of_wrapped(rule, x), x.scalar(rule)) for rule in RULES if rule is not EVENT_TIME_RULE]
    # The amount text reads the amount's scalar: inline it here (a sibling alias is not visible).
    amount = replace(x, scalar_overrides={AMOUNT_RULE.name: _scalar_of_wrapped(AMOUNT_RULE, x)})
    out.append((amount_text_expr(AMOUNT_RULE, amount), x.amount_text))
    # Only a JSON string can match the RFC 3339 pattern (a number's text has no 'T'): no type check.
    parts = time_part_exprs(x.scalar(EVENT_TIME_RULE))
    out += [(parts[name], column) for name, column in x.time_parts().items()]
    return out


def _scalar_of_wrapped(rule: FieldRule, x: Extracted) -> str:
    r"""What JSON_VALUE gives for the field, from its small wrapped text instead of the document.

    Jackson writes a string as `["..."]` escaping only `"`, `\` and control characters, so a
    string without a backslash is its own content; anything else (escapes, numbers) is parsed
    again, from the few bytes of the wrapped value.
    """
    w = x.wrapped(rule)
    return (
        f"(CASE WHEN SUBSTRING({w} FROM 1 FOR 2) = '[\"' AND POSITION('\\' IN {w}) = 0 "
        f"THEN SUBSTRING({w} FROM 3 FOR CHAR_LENGTH({w}) - 4) ELSE JSON_VALUE({w}, '$[0]') END)"
    )


def _json_type_char(rule: FieldRule, x: Extracted) -> str:
    return f"SUBSTRING({x.wrapped(rule)} FROM 2 FOR 1)"


def is_string_expr(rule: FieldRule, x: Extracted = Extracted()) -> str:
    return f"({_json_type_char(rule, x)} = '\"')"


def is_number_expr(rule: FieldRule, x: Extracted = Extracted()) -> str:
    return f"({_json_type_char(rule, x)} IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))"


def value_expr(rule: FieldRule, x: Extracted = Extracted()) -> str:
    """A string field's content, NULL for any other JSON type."""
    return f"(CASE WHEN {is_string_expr(rule, x)} THEN {x.scalar(rule)} END)"


def amount_text_expr(rule: FieldRule, x: Extracted = Extracted()) -> str:
    """The amount's text as the contract defines it; NULL for any other JSON type.

    A string gives its content. A number gives its literal as written in the payload, used only
    if it denotes the same value as the parsed number, else Flink's canonical text.
    """
    literal = x.amount_literal
    same_value = f"TRY_CAST({literal} AS DOUBLE) = TRY_CAST({x.scalar(rule)} AS DOUBLE)"
    return (
        f"(CASE WHEN {is_string_expr(rule, x)} THEN {x.scalar(rule)} "
        f"WHEN {is_number_expr(rule, x)} THEN "
        f"(CASE WHEN {literal} IS NOT NULL AND {same_value} THEN {literal} ELSE {x.scalar(rule)} END) "
        "END)"
    )


# --- event time -------------------------------------------------------------------------------

# Once the RFC 3339 pattern matched, every component sits at a fixed position:
# yyyy-MM-ddTHH:mm:ss[.f{1,9}](Z|+hh:mm). The parts step cuts them out once (columns named
# after TIME_PARTS); the checks and the instant are integer arithmetic on those columns.
TIME_PARTS: Final = ("ok", "y", "mo", "d", "h", "mi", "s", "milli", "off_h", "off_m", "off_sign")


def _num(value: str, start: int | str, length: int | str) -> str:
    return f"TRY_CAST(SUBSTRING({value} FROM {start} FOR {length}) AS BIGINT)"


def time_part_exprs(value: str) -> dict[str, str]:
    """`ok` (the text matches the RFC 3339 pattern) and each part as a BIGINT expression, which
    means something only when `ok`."""
    positions = dict(zip(TIME_PARTS[1:7], ((1, 4), (6, 2), (9, 2), (12, 2), (15, 2), (18, 2)), strict=True))
    parts = {"ok": f"COALESCE({_regexp(value, RFC3339_PATTERN)}, FALSE)"}
    parts.update({name: _num(value, a, n) for name, (a, n) in positions.items()})
    zulu = f"(RIGHT({value}, 1) = 'Z')"
    offset_len = f"(CASE WHEN {zulu} THEN 1 ELSE 6 END)"
    digits = (
        f"(CASE WHEN SUBSTRING({value} FROM 20 FOR 1) = '.' "
        f"THEN SUBSTRING({value} FROM 21 FOR CHAR_LENGTH({value}) - 20 - {offset_len}) ELSE '' END)"
    )
    parts["milli"] = f"TRY_CAST(SUBSTRING(CONCAT({digits}, '000') FROM 1 FOR 3) AS BIGINT)"
    offset = f"RIGHT({value}, 6)"
    parts["off_h"] = f"(CASE WHEN {zulu} THEN 0 ELSE {_num(offset, 2, 2)} END)"
    parts["off_m"] = f"(CASE WHEN {zulu} THEN 0 ELSE {_num(offset, 5, 2)} END)"
    parts["off_sign"] = f"(CASE WHEN LEFT({offset}, 1) = '-' THEN -1 ELSE 1 END)"
    return parts


def _div(a: str, b: int) -> str:
    """Division of a non-negative BIGINT: Flink truncates integer division, which is floor here."""
    return f"(CAST({a} AS BIGINT) / {b})"


def calendar_ok_expr(part: dict[str, str]) -> str:
    """The parts form a real calendar instant (Flink's parsers are lenient: Feb 30 would roll over).

    `part` maps TIME_PARTS to column names (or expressions). Never NULL: CASE evaluates the
    calendar only once the pattern matched (then every part is a number).
    """
    y, mo, d = part["y"], part["mo"], part["d"]
    leap = f"((MOD({y}, 4) = 0 AND MOD({y}, 100) <> 0) OR MOD({y}, 400) = 0)"
    month_days = (
        f"(CASE WHEN {mo} = 2 THEN (CASE WHEN {leap} THEN 29 ELSE 28 END) "
        f"WHEN {mo} IN (4, 6, 9, 11) THEN 30 ELSE 31 END)"
    )
    return (
        f"(CASE WHEN {part['ok']} THEN ({y} >= 1 AND {mo} BETWEEN 1 AND 12 AND {d} BETWEEN 1 AND {month_days} "
        f"AND {part['h']} <= 23 AND {part['mi']} <= 59 AND {part['s']} <= 59 "
        f"AND {part['off_h']} <= 23 AND {part['off_m']} <= 59) ELSE FALSE END)"
    )


def event_time_ms_expr(part: dict[str, str]) -> str:
    """Epoch milliseconds (UTC) of the parts, NULL unless they are a real calendar instant.

    Integer arithmetic (days from the civil date, proleptic Gregorian like Python), so an offset
    such as +05:30 is applied exactly. The fraction is truncated to milliseconds.
    """
    y, mo, d = part["y"], part["mo"], part["d"]
    yy = f"({y} - (CASE WHEN {mo} <= 2 THEN 1 ELSE 0 END))"
    era = _div(yy, 400)
    yoe = f"({yy} - {era} * 400)"
    doy = f"({_div(f'153 * MOD({mo} + 9, 12) + 2', 5)} + {d} - 1)"
    doe = f"({yoe} * 365 + {_div(yoe, 4)} - {_div(yoe, 100)} + {doy})"
    days = f"({era} * 146097 + {doe} - 719468)"
    local_ms = (
        f"((({days} * 24 + {part['h']}) * 60 + {part['mi']}) * 60 + {part['s']}) * 1000 + {part['milli']}"
    )
    offset_ms = f"{part['off_sign']} * ({part['off_h']} * 60 + {part['off_m']}) * 60000"
    return f"(CASE WHEN {calendar_ok_expr(part)} THEN CAST({local_ms} - {offset_ms} AS BIGINT) END)"


def readable_event_time_ms_expr(x: Extracted = Extracted()) -> str:
    """The event time as the reference validator reads it: only from a JSON object document.

    This is what malformed events are bucketed by (tables.event_date).
    """
    return f"(CASE WHEN {x.document} IS NULL THEN {event_time_ms_expr(x.time_parts())} END)"


# --- reasons ----------------------------------------------------------------------------------


def _amount_checks(text: str) -> list[tuple[str, Reason]]:
    """check_amount's order: each (condition meaning 'fails', reason)."""
    return [
        (f"NOT {_regexp(text, AMOUNT_SYNTAX_PATTERN)}", Reason.INVALID_AMOUNT),
        (_regexp(text, AMOUNT_NOT_POSITIVE_PATTERN), Reason.AMOUNT_NOT_POSITIVE),
        (f"NOT {_regexp(text, AMOUNT_RANGE_PATTERN)}", Reason.AMOUNT_OUT_OF_RANGE),
        (f"NOT {_regexp(text, AMOUNT_SCALE_PATTERN)}", Reason.AMOUNT_TOO_PRECISE),
    ]


def _field_checks(rule: FieldRule, x: Extracted) -> list[tuple[str, Reason]]:
    """(failure condition, reason) pairs for one field, in the reference validator's order."""
    checks = [(f"{x.wrapped(rule)} IS NULL", rule.missing)]
    value = x.scalar(rule)  # only reached once the string check below passed (CASE order)
    if rule.kind is FieldKind.AMOUNT:
        text = x.amount_text
        checks.append((f"{text} IS NULL", rule.invalid))
        checks.extend(_amount_checks(text))
        return checks
    checks.append((f"NOT {is_string_expr(rule, x)}", rule.invalid))
    if rule.kind is FieldKind.ENUM:
        allowed = ", ".join(sql_string(v) for v in rule.allowed)
        checks.append((f"{value} NOT IN ({allowed})", rule.invalid))
    elif rule.kind is FieldKind.ID:
        # ID_PATTERN is "any 1..ID_MAX_CHARS code points": a length check says the same, cheaper.
        checks.append((f"NOT (CHAR_LENGTH({value}) BETWEEN 1 AND {ID_MAX_CHARS})", rule.invalid))
    elif rule.kind is FieldKind.TIMESTAMP:
        checks.append((f"NOT {calendar_ok_expr(x.time_parts())}", rule.invalid))
    else:
        assert rule.pattern is not None
        checks.append((f"NOT {_regexp(value, rule.pattern)}", rule.invalid))
    return checks


def _document_reason(payload: str, text: str) -> str:
    """The first failing document-level check's reason, else NULL (part of the extraction step).

    What Flink's IS JSON accepts but Python's parser rejects are trailing tokens after the value,
    so the text without surrounding blanks must also have the shape of one complete value: an
    object, array or string from its first to its last character, or a whole scalar. Given that,
    the document is an object exactly when those characters are `{` and `}`.
    """
    blanks = "U&'" + "".join(f"\\{ord(c):04X}" for c in " \t\n\r") + "'"  # Python's JSON blanks
    first = f"LEFT(TRIM(LEADING {blanks} FROM {text}), 1)"
    last = f"RIGHT(TRIM(TRAILING {blanks} FROM {text}), 1)"
    ends = f"CONCAT({first}, {last})"
    scalar = f"REGEXP(TRIM(BOTH {blanks} FROM {text}), {sql_string(java_regex(_JSON_SCALAR))})"
    complete = f"(CASE WHEN {ends} IN ('{{}}', '[]', '\"\"') THEN TRUE ELSE {scalar} END)"
    checks = [
        (f"{payload} IS NULL OR CHAR_LENGTH({text}) = 0", Reason.EMPTY_PAYLOAD),
        (f"NOT (CAST({text} AS BYTES) = {payload})", Reason.NOT_UTF8),
        (f"NOT ({text} IS JSON) OR NOT {complete}", Reason.NOT_JSON),
        (f"{ends} <> '{{}}'", Reason.NOT_OBJECT),
    ]
    return _first_failure(checks)


def _first_failure(checks: list[tuple[str, Reason]]) -> str:
    branches = " ".join(f"WHEN {cond} THEN {sql_string(reason.value)}" for cond, reason in checks)
    return f"(CASE {branches} END)"


def reason_expr(x: Extracted = Extracted()) -> str:
    """The first failing check's Reason value, or NULL for a valid event (CASE short-circuits)."""
    checks = [check for rule in RULES for check in _field_checks(rule, x)]
    return f"COALESCE({x.document}, {_first_failure(checks)})"


def amount_expr(x: Extracted = Extracted()) -> str:
    """A valid event's amount as DECIMAL(16,4): exact, since the text passed the scale check."""
    return f"CAST({x.amount_text} AS DECIMAL({AMOUNT_PRECISION}, {AMOUNT_SCALE}))"


def hour_start_ms_expr(ms: str) -> str:
    """Start of the UTC hour containing epoch ms `ms` (also right for instants before 1970)."""
    return f"({ms} - MOD(MOD({ms}, {HOUR_MS}) + {HOUR_MS}, {HOUR_MS}))"


def field_value_expr(name: str, x: Extracted = Extracted()) -> str:
    return value_expr(_rule(name), x)
