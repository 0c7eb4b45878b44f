"""The contract's validation rules translated into Flink SQL expressions (pure: text in, text out).

Everything here is generated from `lambda_contract.events` (RULES, MAX_JSON_DEPTH, the *_PATTERN
constants, `java_regex`, Reason codes), so the JVM evaluates the same definition as the Python
reference `validate()`. Each payload is parsed once, by the JVM function `JsonMembers`
(speed_layer/functions): it answers the document's kind and each rule's member as its JSON type
and scalar text (a string's content, a number's literal as written), and knows nothing else of
the contract. Flink details this translation relies on (each checked by tests/speed):

- The function is declared non-deterministic, so the planner never copies its call into the
  expressions that read its result: one parse per record, with no DataStream boundary needed.
- `CHAR_LENGTH` and Java regexes count Unicode code points, like Python.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from lambda_contract.events import (
    AMOUNT_NOT_POSITIVE_PATTERN,
    AMOUNT_PRECISION,
    AMOUNT_RANGE_PATTERN,
    AMOUNT_SCALE,
    AMOUNT_SCALE_PATTERN,
    AMOUNT_SYNTAX_PATTERN,
    ID_MAX_CHARS,
    MAX_JSON_DEPTH,
    RFC3339_PATTERN,
    RULES,
    FieldKind,
    FieldRule,
    Reason,
    java_regex,
)
from lambda_contract.windows import HOUR_MS

MEMBERS_FUNCTION: Final = "LAMBDA_JSON_MEMBERS"
"""The name `JsonMembers` is registered under (job.register_functions)."""
MEMBERS_CLASS: Final = "lambda.speed.functions.JsonMembers"
ONCE_FUNCTION: Final = "LAMBDA_ONCE"
"""The identity, non-deterministic (`Once`): keeps a derived value from being inlined into each of
its readers, so it is computed once per row."""
ONCE_CLASS: Final = "lambda.speed.functions.Once"
MATCH_INTS_FUNCTION: Final = "LAMBDA_MATCH_INTS"
"""One regex match and the integers its groups hold (`MatchInts`): the event time's parts."""
MATCH_INTS_CLASS: Final = "lambda.speed.functions.MatchInts"
MEMBERS_JAR: Final = "functions/lambda-speed-functions.jar"
"""Built by `make setup` from speed_layer/functions into LAMBDA_JARS_DIR."""

# The function's answers (JsonMembers' constants): the document's kind, then JSON types.
DOC_EMPTY: Final = "empty"
DOC_NOT_UTF8: Final = "not_utf8"
DOC_NOT_JSON: Final = "not_json"
JSON_OBJECT: Final = "object"
JSON_STRING: Final = "string"
JSON_NUMBER: Final = "number"
JSON_NULL: Final = "null"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def sql_string(text: str) -> str:
    """A SQL string literal. Flink string literals only need the quote doubled."""
    return "'" + text.replace("'", "''") + "'"


def _member_name(name: str) -> str:
    """A rule's field name as a SQL literal; the contract's names are plain identifiers."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"field name {name!r} is not a plain JSON member name")
    return sql_string(name)


def one_of(expr: str, literals: Sequence[str]) -> str:
    """`expr` equals one of the SQL `literals`: TRUE or FALSE, never NULL.

    Not `IN` (nor `x IS NULL OR x = c`): Calcite rewrites those into a SEARCH, which Flink
    evaluates with a hash set of the values on every row, the slowest check of the parse
    (docs/benchmarks.md, "The parse stage made cheaper"). Each equality wrapped in COALESCE is left alone.
    """
    return "(" + " OR ".join(f"COALESCE({expr} = {lit}, FALSE)" for lit in literals) + ")"


def is_missing_expr(kind: str) -> str:
    """A member's kind says it is absent or JSON null (Python's doc.get() gives None for both).
    Written so that Calcite keeps it one comparison (see `one_of`)."""
    return f"COALESCE({kind} = '{JSON_NULL}', TRUE)"


def _regexp(expr: str, pattern: str) -> str:
    return f"REGEXP({expr}, {sql_string(java_regex(pattern))})"


def _rule(name: str) -> FieldRule:
    return next(r for r in RULES if r.name == name)


EVENT_TIME_RULE: Final = next(r for r in RULES if r.kind is FieldKind.TIMESTAMP)
AMOUNT_RULE: Final = next(r for r in RULES if r.kind is FieldKind.AMOUNT)


@dataclass(frozen=True)
class Extracted:
    """Column names of the two preparing steps, which the rules read.

    `extract_columns` parses the payload once (one array column); `part_columns` names its
    elements and derives the values the rules read several times (the amount's text, the event
    time's parts).
    """

    members: str = "m"  # the JsonMembers answer (extract step)
    document: str = "doc_kind"  # the document's kind (parts step)
    amount_text: str = "amount_text"  # the amount's text as the contract defines it (parts step)
    event_time_ints: str = "et_ints"  # the event time's MatchInts answer (parts step)

    def time_parts(self) -> dict[str, str]:
        """The event time's parts, by TIME_PARTS name: expressions over the parts step's answer
        (element reads and integer arithmetic, cheap enough to be inlined into each reader)."""
        return time_part_exprs(self.event_time_ints)

    def kind(self, rule: FieldRule) -> str:
        """The member's JSON type; NULL when absent."""
        return f"t_{rule.name}"

    def scalar(self, rule: FieldRule) -> str:
        """A string member's content or a number's literal; NULL for other types."""
        return f"s_{rule.name}"


def extract_columns(payload: str = "payload", x: Extracted = Extracted()) -> list[tuple[str, str]]:
    """(expression, alias) pairs over the raw payload: its one parse."""
    names = ", ".join(_member_name(rule.name) for rule in RULES)
    return [(f"{MEMBERS_FUNCTION}({payload}, {MAX_JSON_DEPTH}, {names})", x.members)]


def _element(x: Extracted, index: int) -> str:
    """Element `index` (0-based) of the function's answer (SQL arrays count from 1)."""
    return f"{x.members}[{index + 1}]"


def _member_kind(x: Extracted, rule: FieldRule) -> str:
    return _element(x, 1 + 2 * RULES.index(rule))


def _member_text(x: Extracted, rule: FieldRule) -> str:
    return _element(x, 2 + 2 * RULES.index(rule))


def part_columns(x: Extracted = Extracted()) -> list[tuple[str, str]]:
    """(expression, alias) pairs over the extraction step's column: named and derived values."""
    out = [(_element(x, 0), x.document)]
    for rule in RULES:
        out += [(_member_kind(x, rule), x.kind(rule)), (_member_text(x, rule), x.scalar(rule))]
    # A sibling alias is not visible in the same projection: these read the elements directly.
    kind = _member_kind(x, AMOUNT_RULE)
    amount = (
        f"(CASE WHEN {one_of(kind, [sql_string(JSON_STRING), sql_string(JSON_NUMBER)])} "
        f"THEN {_member_text(x, AMOUNT_RULE)} END)"
    )
    out.append((_once(amount), x.amount_text))
    # Only a JSON string can match the RFC 3339 pattern (a number's text has no 'T'): no type check.
    out.append((event_time_ints_expr(_member_text(x, EVENT_TIME_RULE)), x.event_time_ints))
    return out


def _once(expr: str) -> str:
    """`expr`, evaluated once per row however many expressions read it (the rules read the
    event time's parts a dozen times; inlined, each read would cut and parse the text again)."""
    return f"{ONCE_FUNCTION}({expr})"


def is_string_expr(rule: FieldRule, x: Extracted = Extracted()) -> str:
    return f"({x.kind(rule)} = '{JSON_STRING}')"


def value_expr(rule: FieldRule, x: Extracted = Extracted()) -> str:
    """A string field's content, NULL for any other JSON type."""
    return f"(CASE WHEN {is_string_expr(rule, x)} THEN {x.scalar(rule)} END)"


# --- event time -------------------------------------------------------------------------------

# The event time is read as parse_event_time reads RFC3339_PATTERN's groups: 1-6 the date and
# time, 7 the fraction (truncated to milliseconds: its first 3 digits), 8 the offset (Z or
# +hh:mm). One MatchInts call matches the pattern and reads them all (as integers; the offset
# +05:30 as 530, negative for a '-'); the checks and the instant are integer arithmetic on them.
TIME_PARTS: Final = ("ok", "y", "mo", "d", "h", "mi", "s", "milli", "off_h", "off_m", "off_sign")
_TIME_GROUP_WIDTHS: Final = (0, 0, 0, 0, 0, 0, 3, 0)  # MatchInts widths: the fraction to millis
if re.compile(RFC3339_PATTERN).groups != len(_TIME_GROUP_WIDTHS):
    raise AssertionError("RFC3339_PATTERN's groups changed: update the event time's reading")


def event_time_ints_expr(value: str) -> str:
    """The MatchInts answer for the event time's text: NULL unless it matches the RFC 3339 pattern."""
    widths = ", ".join(str(w) for w in _TIME_GROUP_WIDTHS)
    return f"{MATCH_INTS_FUNCTION}({value}, {sql_string(java_regex(RFC3339_PATTERN))}, {widths})"


def time_part_exprs(ints: str) -> dict[str, str]:
    """`ok` (the text matched the RFC 3339 pattern) and each part as a BIGINT expression over the
    MatchInts answer `ints`, which means something only when `ok`."""
    parts = {"ok": f"({ints} IS NOT NULL)"}
    parts.update({name: f"{ints}[{i}]" for i, name in enumerate(TIME_PARTS[1:7], start=1)})
    parts["milli"] = f"COALESCE({ints}[7], 0)"  # no fraction: 0 ms
    offset = f"COALESCE({ints}[8], 0)"  # Z: no digits, offset 0
    parts["off_h"] = f"(ABS({offset}) / 100)"
    parts["off_m"] = f"MOD(ABS({offset}), 100)"
    parts["off_sign"] = f"(CASE WHEN {offset} < 0 THEN -1 ELSE 1 END)"
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
        f"WHEN {one_of(mo, ['4', '6', '9', '11'])} THEN 30 ELSE 31 END)"
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
    return f"(CASE WHEN {x.document} = '{JSON_OBJECT}' THEN {event_time_ms_expr(x.time_parts())} END)"


# --- reasons ----------------------------------------------------------------------------------


Check = tuple[str, Reason | str]
"""(condition meaning 'fails', its Reason or an SQL expression giving one)."""

# check_amount's patterns: each (pattern, whether the amount must match it), in its order.
_AMOUNT_PATTERNS: Final = (
    (AMOUNT_SYNTAX_PATTERN, True, Reason.INVALID_AMOUNT),
    (AMOUNT_NOT_POSITIVE_PATTERN, False, Reason.AMOUNT_NOT_POSITIVE),
    (AMOUNT_RANGE_PATTERN, True, Reason.AMOUNT_OUT_OF_RANGE),
    (AMOUNT_SCALE_PATTERN, True, Reason.AMOUNT_TOO_PRECISE),
)


def amount_ok_regex() -> str:
    """One whole-value Java regex that matches exactly the amounts passing every amount check:
    a lookahead per pattern it must match, a negative one per pattern it must not."""
    looks = "".join(
        f"(?{'=' if must else '!'}{java_regex(pattern)})" for pattern, must, _ in _AMOUNT_PATTERNS
    )
    return f"^{looks}"


def _amount_checks(text: str) -> list[Check]:
    """check_amount's order. A valid amount (nearly every row) costs one regex: the checks one
    by one run only for an amount that fails one of them, to name the first."""
    one_by_one = [
        (f"NOT {_regexp(text, pattern)}" if must else _regexp(text, pattern), reason)
        for pattern, must, reason in _AMOUNT_PATTERNS
    ]
    ok = f"REGEXP({text}, {sql_string(amount_ok_regex())})"
    return [(f"NOT {ok}", _first_failure(one_by_one))]


def _field_checks(rule: FieldRule, x: Extracted) -> list[Check]:
    """(failure condition, reason) pairs for one field, in the reference validator's order."""
    checks: list[Check] = [(is_missing_expr(x.kind(rule)), rule.missing)]
    value = x.scalar(rule)  # only reached once the string check below passed (CASE order)
    if rule.kind is FieldKind.AMOUNT:
        text = x.amount_text
        checks.append((f"{text} IS NULL", rule.invalid))
        checks.extend(_amount_checks(text))
        return checks
    checks.append((f"NOT {is_string_expr(rule, x)}", rule.invalid))
    if rule.kind is FieldKind.ENUM:
        checks.append((f"NOT {one_of(value, [sql_string(v) for v in rule.allowed])}", rule.invalid))
    elif rule.kind is FieldKind.ID:
        # ID_PATTERN is "any 1..ID_MAX_CHARS code points": a length check says the same, cheaper.
        checks.append((f"NOT (CHAR_LENGTH({value}) BETWEEN 1 AND {ID_MAX_CHARS})", rule.invalid))
    elif rule.kind is FieldKind.TIMESTAMP:
        checks.append((f"NOT {calendar_ok_expr(x.time_parts())}", rule.invalid))
    else:
        assert rule.pattern is not None
        checks.append((f"NOT {_regexp(value, rule.pattern)}", rule.invalid))
    return checks


def document_reason_expr(x: Extracted = Extracted()) -> str:
    """The document-level reason from the parse's answer, else NULL (an object)."""
    checks = [
        (f"{x.document} = '{DOC_EMPTY}'", Reason.EMPTY_PAYLOAD),
        (f"{x.document} = '{DOC_NOT_UTF8}'", Reason.NOT_UTF8),
        (f"{x.document} = '{DOC_NOT_JSON}'", Reason.NOT_JSON),
        (f"{x.document} <> '{JSON_OBJECT}'", Reason.NOT_OBJECT),
    ]
    return _first_failure(checks)


def _first_failure(checks: Sequence[Check]) -> str:
    def result(r: Reason | str) -> str:
        return sql_string(r.value) if isinstance(r, Reason) else r

    branches = " ".join(f"WHEN {cond} THEN {result(r)}" for cond, r in checks)
    return f"(CASE {branches} END)"


def reason_expr(x: Extracted = Extracted()) -> str:
    """The first failing check's Reason value, or NULL for a valid event (CASE short-circuits)."""
    checks = [check for rule in RULES for check in _field_checks(rule, x)]
    return f"COALESCE({document_reason_expr(x)}, {_first_failure(checks)})"


def amount_expr(x: Extracted = Extracted()) -> str:
    """A valid event's amount as DECIMAL(16,4): exact, since the text passed the scale check."""
    return f"CAST({x.amount_text} AS DECIMAL({AMOUNT_PRECISION}, {AMOUNT_SCALE}))"


def hour_start_ms_expr(ms: str) -> str:
    """Start of the UTC hour containing epoch ms `ms` (also right for instants before 1970)."""
    return f"({ms} - MOD(MOD({ms}, {HOUR_MS}) + {HOUR_MS}, {HOUR_MS}))"


def field_value_expr(name: str, x: Extracted = Extracted()) -> str:
    return value_expr(_rule(name), x)
