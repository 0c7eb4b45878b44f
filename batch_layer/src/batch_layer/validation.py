"""The orders.v1 contract as Spark column expressions, generated from `lambda_contract.events`.

The batch layer's validation: `classify` gives every bronze row the reason the Python reference
`validate()` would give (the tests compare the two), and the valid rows' fields. Nothing here
restates a rule: field order, kinds, reason codes and every regular expression come from `RULES`
and the `*_PATTERN` constants, applied with `java_regex` (whole value).

How the JSON is read, why it is fast, and where it diverges from Python's `json` (hostile
payloads only): batch_layer/README.md. Nesting deeper than MAX_JSON_DEPTH (1000) is not JSON to
Spark's Jackson parser (`StreamReadConstraints`' default), so there is no depth check of ours;
duplicate keys in nested objects need `spark.sql.variant.allowDuplicateKeys=true` (`spark.py`).
"""

from __future__ import annotations

import re
from typing import Final

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention
from pyspark.sql.types import StringType, StructField, StructType, VariantType

from lambda_contract.events import (
    AMOUNT_NOT_POSITIVE_PATTERN,
    AMOUNT_PRECISION,
    AMOUNT_RANGE_PATTERN,
    AMOUNT_SCALE,
    AMOUNT_SCALE_PATTERN,
    AMOUNT_SYNTAX_PATTERN,
    ID_MAX_CHARS,
    RULES,
    FieldKind,
    Reason,
    java_regex,
)

JSON_WS: Final = " \t\n\r"
"""The only whitespace JSON (and Python's `json`) allows around values."""

AMOUNT_TYPE: Final = f"decimal({AMOUNT_PRECISION},{AMOUNT_SCALE})"

# Output columns of `classify` (internal helper columns start with "_v_" and are dropped).
REASON: Final = "reason"
EVENT_MS: Final = "event_ms"
"""Event time as UTC epoch milliseconds; set whenever the time is readable, even for bad rows."""
VALID_FIELDS: Final = tuple(rule.name for rule in RULES if rule.name not in ("event_time", "amount"))
AMOUNT: Final = "amount"
_TIME_FIELD: Final = next(r.name for r in RULES if r.kind is FieldKind.TIMESTAMP)

_STRING_LITERAL: Final = r'"(?:[^"\\]++|\\.)*+"'
_SCALAR_VALUE: Final = r'""|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null'
_NUMBER_TYPES: Final = ("BIGINT", "INT", "SMALLINT", "TINYINT")
_FLAT_OBJECT: Final = r"\A[ \t\n\r]*+\{[^\[\]{}]*+\}[ \t\n\r]*+\z"


def _lit(value: str) -> Column:
    return F.lit(value)


def _full_match(col: Column, pattern: str) -> Column:
    """The contract's whole-value match, as RLIKE with `java_regex`."""
    return col.rlike(java_regex(pattern))


def _trim_ws(col: Column) -> Column:
    return F.btrim(col, F.lit(JSON_WS))


def _single_value(text: Column) -> Column:
    """True when `text` (whose first value a JSON parser already accepted) holds nothing after it."""
    trimmed = _trim_ws(text)
    first = F.substring(trimmed, 1, 1)
    last = F.substring(trimmed, -1, 1)
    blanked = _trim_ws(F.regexp_replace(text, _STRING_LITERAL, '""'))
    brackets = F.regexp_replace(blanked, r"[^\[\]{}]", "")
    # Depth after each bracket; the first value ends at the text's end iff depth returns to zero
    # exactly once (at the end). State: (depth, zero_hits).
    scan = F.aggregate(
        F.split(brackets, ""),
        F.struct(F.lit(0).alias("d"), F.lit(0).alias("z")),
        lambda acc, c: F.struct(
            (acc["d"] + F.when(c.isin("{", "["), 1).otherwise(-1)).alias("d"),
            (
                acc["z"] + F.when(acc["d"] + F.when(c.isin("{", "["), 1).otherwise(-1) == 0, 1).otherwise(0)
            ).alias("z"),
        ),
    )
    container = F.substring(blanked, -1, 1).isin("}", "]") & (scan["d"] == 0) & (scan["z"] == 1)
    scalar = blanked.rlike(java_regex(_SCALAR_VALUE))
    return F.when(first.isin("{", "["), container).otherwise(scalar) & last.isNotNull()


def _string_of(value: Column) -> Column:
    """The text of a VARIANT holding a JSON string (cheaper than a cast of the VARIANT)."""
    return F.try_variant_get(value, "$", "string")


def _raw(column: str, value_col: str) -> Column:
    """A column of the input as it came in: the raw value is rebuilt from `_v_text` (see parse)."""
    return F.col("_v_text").cast("binary").alias(column) if column == value_col else F.col(column)


def _add(df: DataFrame, columns: dict[str, Column]) -> DataFrame:
    """One projection per stage: a long withColumn chain makes Spark's planning crawl."""
    return df.select("*", *[c.alias(name) for name, c in columns.items()])


def parse(df: DataFrame, value_col: str = "value") -> DataFrame:
    """Add the decoding helper columns: emptiness, UTF-8, the members, JSON-ness, object-ness.

    The raw value column is replaced by its text `_v_text` (the same bytes: a cast between binary
    and string never changes them), so each projection carries the payload once, not twice;
    `_raw` gives the value back.
    """
    value = F.col(value_col)
    others = [c for c in df.columns if c != value_col]
    df = df.select(
        *others,
        (value.isNull() | (F.length(value) == 0)).alias("_v_empty"),
        value.cast("string").alias("_v_text"),
    )
    text = F.col("_v_text")
    # An object is the only JSON value whose first character (after blanks) is "{".
    brace = F.when(text.startswith("{"), True).otherwise(
        F.substring(F.ltrim(text, F.lit(JSON_WS)), 1, 1) == "{"
    )
    df = _add(
        df,
        {
            "_v_utf8": F.when(F.col("_v_empty"), F.lit(False)).otherwise(F.is_valid_utf8("_v_text")),
            "_v_brace": F.coalesce(brace, F.lit(False)),
        },
    )
    utf8, brace = F.col("_v_utf8"), F.col("_v_brace")
    # An object's members come from one strict from_json (see _MEMBERS); any other text is
    # parsed into a VARIANT only to tell JSON (not_object) from not JSON.
    df = _add(
        df,
        {
            "_v_members": F.when(utf8 & brace, F.from_json(text, _MEMBERS, _STRICT_JSON)),
            "_v_doc": F.when(utf8 & ~brace, F.try_parse_json(text)),
        },
    )
    members = F.col("_v_members")
    parsed = F.when(brace, members.isNotNull() & members[_CORRUPT].isNull()).otherwise(
        F.col("_v_doc").isNotNull()
    )
    # Flat: one object holding no bracket at all (so no member is an object or array, and the
    # text ends with it) -- the usual event, told by one linear regex (cheaper here than Spark's
    # string searches). Any other text, including a flat object with a bracket inside a string,
    # takes the slower, equally exact checks.
    df = _add(df, {"_v_parsed": parsed, "_v_flat": brace & parsed & text.rlike(_FLAT_OBJECT)})
    flat, parsed = F.col("_v_flat"), F.col("_v_parsed")
    # CASE, not OR: Spark hoists subexpressions out of both sides of an OR (evaluating the slow
    # checks for every row), but never out of a single CASE branch.
    df = _add(
        df,
        {
            "_v_json": F.when(flat, True).otherwise(parsed & _single_value(text)),
            # Here, not with the fields: from_json cannot be compiled into Spark's whole-stage code,
            # so its projection copies every row; the HOF above already costs that copy, once.
            "_v_strings": F.when(brace & parsed, F.from_json(text, _STRINGS)),
        },
    )
    return _add(df, {"_v_object": F.when(flat, True).otherwise(F.col("_v_json") & brace)})


_CORRUPT: Final = "_v_corrupt"

_MEMBERS: Final = StructType(
    [StructField(r.name, VariantType()) for r in RULES] + [StructField(_CORRUPT, StringType())]
)
"""Every rule's member of an object as a VARIANT, by one `from_json`: a JSON null is a VARIANT null,
an absent member SQL NULL, the last of duplicate keys wins, names match exactly. Cheaper than
parsing the whole document into a VARIANT and copying each member out of it (Spark builds a new
Jackson factory for every `try_parse_json`)."""

_STRICT_JSON: Final = {
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": _CORRUPT,
    # Spark's JSON reader accepts 'single quotes' and NaN/Infinity unless told not to; everything
    # else it would allow (comments, unquoted names, leading zeros, any escaped character,
    # control characters in strings) is off by default. Strict JSON, as Python's json reads it.
    "allowSingleQuotes": "false",
    "allowNonNumericNumbers": "false",
}


_STRINGS: Final = StructType([StructField(r.name, StringType()) for r in RULES])
"""Every rule's member as text, read by one `from_json` per row (see `_string_text`)."""


def _string_text(value: Column, name: str) -> Column:
    """The text of member `name`, whose VARIANT `value` holds a JSON string.

    From the row's one `from_json`: Spark builds a Catalyst Cast (and a Literal) per call of
    `try_variant_get(.., 'string')`, which cost a third of the classification's time. from_json
    takes the last of duplicate keys and matches names exactly, like the VARIANT; a JSON string's
    text is exact there (a number's is not: it went through a double, so numbers are never read
    from it). Should from_json fail where the VARIANT parsed, the VARIANT still answers.
    """
    return F.coalesce(F.col("_v_strings")[name], _string_of(value))


_CONTAINER: Final = "CONTAINER"
"""What `_type_of` says for a JSON object or array (any field of that type is invalid)."""


def _type_of(value: Column, flat: Column) -> Column:
    """`schema_of_variant` of a scalar (STRING, BIGINT, DECIMAL(p,s), DOUBLE, BOOLEAN, VOID...),
    "CONTAINER" for an object or array: shallow casts, whose depth does not matter
    (`schema_of_variant` recurses through a whole value, and a field nested near 1000 levels
    deep overflows the stack and fails the task).

    The casts fail (and a failing cast costs Spark an exception, several microseconds) for every
    scalar, so they are asked only of members of documents that are not `flat`.
    """
    container = (
        F.try_variant_get(value, "$", "map<string,variant>").isNotNull()
        | F.try_variant_get(value, "$", "array<variant>").isNotNull()
    )
    return F.when(flat | ~container, F.schema_of_variant(value)).otherwise(F.lit(_CONTAINER))


def add_event_ms(df: DataFrame, text_col: str) -> DataFrame:
    """Add `event_ms`: RFC 3339 text to UTC epoch ms, NULL when the pattern or calendar rejects it.

    Once the contract's pattern matched, Spark's own string-to-timestamp cast answers the usual
    time (it truncates the fraction to microseconds, so `unix_millis` floors to the contract's
    milliseconds). It cannot answer every time the contract accepts: it knows no offset beyond
    +-18:00 and no calendar mistakes (NULL for both), and it accepts year 0 (the contract's
    calendar starts at year 1, so year 0000 skips it). Any time the cast leaves NULL takes the
    exact path: integer arithmetic on the pattern's groups, with a calendar check (staged
    projections keep those expression trees small). Nothing here depends on a failing try_cast
    for a valid time: Spark pays an exception for each, several microseconds a row.
    """
    text = F.col(text_col)
    parts = ["y", "mo", "d", "h", "mi", "s"]
    matched = F.coalesce(text.rlike(_TIME_REGEX), F.lit(False))
    df = _add(
        df,
        {
            "_t_ok": matched,
            "_t_fast": F.when(matched & ~text.startswith("0000"), F.unix_millis(text.try_cast("timestamp"))),
        },
    )
    # The exact path, for rows the cast left NULL: every group sits at the position
    # `_TIME_GROUPS` found for it (checked at import), so substrings extract them, and plain casts
    # of those digits cannot fail.
    ok = F.col("_t_ok") & F.col("_t_fast").isNull()
    rest = F.substring(text, _TIME_REST_START, 1000)
    offset_len = F.when(F.substring(text, -1, 1) == "Z", 1).otherwise(_TIME_OFFSET_LEN)
    df = _add(
        df,
        {
            f"_t_{p}": F.when(ok, F.substring(text, start + 1, end - start).cast("bigint"))
            for p, (start, end) in zip(parts, _TIME_GROUPS, strict=True)
        }
        | {
            "_t_frac": F.when(ok, F.substring(rest, F.lit(1), F.length(rest) - offset_len)),
            "_t_off": F.when(
                ok,
                F.when(offset_len == 1, F.lit("Z")).otherwise(
                    F.substring(text, -_TIME_OFFSET_LEN, _TIME_OFFSET_LEN)
                ),
            ),
        },
    )
    y, mo, d, h, mi, s = (F.col(f"_t_{p}") for p in parts)
    fraction, offset = F.col("_t_frac"), F.col("_t_off")
    numeric_offset = ok & (offset != "Z")
    df = _add(
        df,
        {
            "_t_leap": ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0),
            "_t_oh": F.when(numeric_offset, F.substring(offset, 2, 2).cast("bigint")),
            "_t_om": F.when(numeric_offset, F.substring(offset, 5, 2).cast("bigint")),
            "_t_y2": y - F.when(mo <= 2, 1).otherwise(0),
        },
    )
    leap, off_h, off_m, y2 = F.col("_t_leap"), F.col("_t_oh"), F.col("_t_om"), F.col("_t_y2")
    month_days = F.when(mo == 2, F.when(leap, 29).otherwise(28)).when(mo.isin(4, 6, 9, 11), 30).otherwise(31)
    calendar_ok = (
        F.col("_t_ok")
        & (y >= 1)
        & mo.between(1, 12)
        & (d >= 1)
        & (d <= month_days)
        & (h < 24)
        & (mi < 60)
        & (s < 60)
        & ((offset == "Z") | ((off_h <= 23) & (off_m <= 59)))
    )
    # Days from the civil date (H. Hinnant's algorithm), integer-only so nothing can raise.
    df = _add(df, {"_t_cal": calendar_ok, "_t_era": F.floor(y2 / 400)})
    df = _add(df, {"_t_yoe": y2 - F.col("_t_era") * 400})
    yoe = F.col("_t_yoe")
    doy = F.floor((153 * (mo + F.when(mo > 2, -3).otherwise(9)) + 2) / 5) + d - 1
    doe = yoe * 365 + F.floor(yoe / 4) - F.floor(yoe / 100) + doy
    days = F.col("_t_era") * 146097 + doe - 719468
    millis = F.when(fraction == "", 0).otherwise(F.rpad(F.substring(fraction, 2, 3), 3, "0").cast("bigint"))
    offset_ms = F.when(offset == "Z", 0).otherwise(
        F.when(F.substring(offset, 1, 1) == "-", -1).otherwise(1) * (off_h * 3_600_000 + off_m * 60_000)
    )
    utc_ms = days * 86_400_000 + h * 3_600_000 + mi * 60_000 + s * 1000 + millis - offset_ms
    df = _add(df, {"_t_ms": F.coalesce(F.col("_t_fast"), F.when(F.col("_t_cal"), utc_ms))})
    # Python's datetime cannot leave years 1..9999 after applying the offset: invalid there too.
    ms = F.col("_t_ms")
    keep = [c for c in df.columns if not c.startswith("_t_")]
    return df.select(*keep, F.when(ms.between(_MIN_MS, _MAX_MS), ms).alias(EVENT_MS))


def _time_layout() -> tuple[str, tuple[tuple[int, int], ...], int, int]:
    """Where RFC3339_PATTERN's date/time groups sit (0-based spans), found with the contract's
    own pattern on a sample, so a change of the pattern's shape fails here, loudly, at import."""
    rule = next(r for r in RULES if r.kind is FieldKind.TIMESTAMP)
    assert rule.pattern is not None
    m = re.fullmatch(rule.pattern, "2026-11-20T13:45:12.123456789+05:30")
    assert m is not None and m.lastindex == 8, "RFC3339_PATTERN changed shape; update validation.py"
    spans = tuple(m.span(i) for i in range(1, 7))
    assert m.start(7) == spans[-1][1] and m.end(8) == len(m.string)
    return java_regex(rule.pattern), spans, spans[-1][1] + 1, m.end(8) - m.start(8)


_TIME_REGEX, _TIME_GROUPS, _TIME_REST_START, _TIME_OFFSET_LEN = _time_layout()
_MIN_MS: Final = -62135596800000  # 0001-01-01T00:00:00Z
_MAX_MS: Final = 253402300799999  # 9999-12-31T23:59:59.999Z


def _amount_literal_from_raw(text: Column, name: str) -> Column:
    """The literal text of a JSON number member `name`, read from the raw payload (last one).

    For a number the VARIANT stores as DOUBLE (an exponent, or more than 38 digits), whose literal
    is lost there. A nested object with its own `name` key, or the key spelled with escapes, can
    fool it: a known divergence, listed in batch_layer/README.md.
    """
    found = F.regexp_extract_all(
        text, F.lit('"' + name + r'"[ \t\n\r]*:[ \t\n\r]*(-?[0-9][0-9.eE+-]*)'), F.lit(1)
    )
    return F.try_element_at(found, F.lit(-1))


_AMOUNT_VALID: Final = (
    rf"\A(?=(?:{AMOUNT_SYNTAX_PATTERN})\z)(?!(?:{AMOUNT_NOT_POSITIVE_PATTERN})\z)"
    rf"(?=(?:{AMOUNT_RANGE_PATTERN})\z)(?=(?:{AMOUNT_SCALE_PATTERN})\z)"
)
"""All four amount patterns as one regex (lookaheads): a valid amount costs one match, not four."""


def _check_amount(text: Column) -> Column:
    """The amount patterns in contract order, as a reason (NULL when valid)."""
    return (
        F.when(text.rlike(_AMOUNT_VALID), F.lit(None).cast("string"))
        .when(~_full_match(text, AMOUNT_SYNTAX_PATTERN), _lit(Reason.INVALID_AMOUNT.value))
        .when(_full_match(text, AMOUNT_NOT_POSITIVE_PATTERN), _lit(Reason.AMOUNT_NOT_POSITIVE.value))
        .when(~_full_match(text, AMOUNT_RANGE_PATTERN), _lit(Reason.AMOUNT_OUT_OF_RANGE.value))
        .when(~_full_match(text, AMOUNT_SCALE_PATTERN), _lit(Reason.AMOUNT_TOO_PRECISE.value))
    )


def _field_stages(df: DataFrame) -> DataFrame:
    """Per rule: `_v_<name>_var` (VARIANT), `_type`, `_missing`, `_v_<name>` (text), `_bad`."""
    df = _add(
        df,
        {f"_v_{r.name}_var": F.when(F.col("_v_object"), F.col("_v_members")[r.name]) for r in RULES},
    )
    df = _add(df, {f"_v_{r.name}_type": _type_of(F.col(f"_v_{r.name}_var"), F.col("_v_flat")) for r in RULES})
    texts: dict[str, Column] = {}
    for rule in RULES:
        var, kind = F.col(f"_v_{rule.name}_var"), F.col(f"_v_{rule.name}_type")
        texts[f"_v_{rule.name}_missing"] = var.isNull() | (kind == "VOID")
        if rule.kind is FieldKind.AMOUNT:
            number = kind.isin(*_NUMBER_TYPES) | kind.startswith("DECIMAL")
            # A number's text by to_json: a cast would build a Catalyst Cast for every row.
            texts[f"_v_{rule.name}"] = (
                F.when(kind == "STRING", _string_text(var, rule.name))
                .when(number, F.to_json(var))
                .when(kind == "DOUBLE", _amount_literal_from_raw(F.col("_v_text"), rule.name))
            )
        else:
            texts[f"_v_{rule.name}"] = F.when(kind == "STRING", _string_text(var, rule.name))
    df = _add(df, texts)
    checks: dict[str, Column] = {}
    for rule in RULES:
        value = F.col(f"_v_{rule.name}")
        if rule.kind is FieldKind.AMOUNT:
            checks[f"_v_{rule.name}_bad"] = F.when(value.isNull(), _lit(rule.invalid.value)).otherwise(
                _check_amount(value)
            )
            continue
        if rule.kind is FieldKind.TIMESTAMP:
            continue
        if rule.kind is FieldKind.ENUM:
            ok = value.isin(*rule.allowed)
        elif rule.kind is FieldKind.ID:  # ID_PATTERN's 1..ID_MAX_CHARS code points, without a regex
            ok = F.length(value).between(1, ID_MAX_CHARS)
        else:
            assert rule.pattern is not None
            ok = _full_match(value, rule.pattern)
        checks[f"_v_{rule.name}_bad"] = F.when(
            value.isNull() | ~F.coalesce(ok, F.lit(False)), _lit(rule.invalid.value)
        )
    df = add_event_ms(_add(df, checks), f"_v_{_TIME_FIELD}")
    time_rule = next(r for r in RULES if r.kind is FieldKind.TIMESTAMP)
    return _add(
        df, {f"_v_{time_rule.name}_bad": F.when(F.col(EVENT_MS).isNull(), _lit(time_rule.invalid.value))}
    )


def classify(df: DataFrame, value_col: str = "value") -> DataFrame:
    """Add `reason` (NULL for a valid event), `event_ms`, the valid fields and `amount`.

    The first failing check wins, in the order of `validate()`: empty, UTF-8, JSON, object, then
    each rule of `RULES` (missing, then invalid). Valid rows get `amount` as DECIMAL(16,4).
    """
    keep = list(df.columns)
    df = _field_stages(parse(df, value_col))
    reason = (
        F.when(F.col("_v_empty"), _lit(Reason.EMPTY_PAYLOAD.value))
        .when(~F.col("_v_utf8"), _lit(Reason.NOT_UTF8.value))
        .when(~F.col("_v_json"), _lit(Reason.NOT_JSON.value))
        .when(~F.col("_v_object"), _lit(Reason.NOT_OBJECT.value))
    )
    for rule in RULES:
        prefix = f"_v_{rule.name}"
        reason = reason.when(F.col(f"{prefix}_missing"), _lit(rule.missing.value)).when(
            F.col(f"{prefix}_bad").isNotNull(), F.col(f"{prefix}_bad")
        )
    df = _add(df, {REASON: reason})
    valid = F.col(REASON).isNull()
    out = [F.when(valid, F.col(f"_v_{name}")).alias(name) for name in VALID_FIELDS]
    amount = F.when(valid, F.col(f"_v_{AMOUNT}").try_cast(AMOUNT_TYPE)).alias(AMOUNT)
    return df.select(*[_raw(c, value_col) for c in keep], REASON, EVENT_MS, *out, amount)


def event_ms_only(df: DataFrame, value_col: str = "value") -> DataFrame:
    """Add only `event_ms` (readable event time or NULL): what bronze needs for `event_date`."""
    keep = list(df.columns)
    df = parse(df, value_col)
    rule = next(r for r in RULES if r.kind is FieldKind.TIMESTAMP)
    df = _add(df, {"_v_var": F.when(F.col("_v_object"), F.col("_v_members")[rule.name])})
    df = _add(
        df,
        {
            "_v_time": F.when(
                _type_of(F.col("_v_var"), F.col("_v_flat")) == "STRING", _string_of(F.col("_v_var"))
            )
        },
    )
    return add_event_ms(df, "_v_time").select(*[_raw(c, value_col) for c in keep], EVENT_MS)


def date_of_ms(ms: Column) -> Column:
    """UTC date of epoch milliseconds, without any session time zone."""
    return F.date_from_unix_date(F.floor(ms / 86_400_000).cast("int"))


def hour_of_ms(ms: Column) -> Column:
    """UTC hour start of epoch milliseconds, as a TIMESTAMP."""
    return F.timestamp_millis(ms - F.pmod(ms, F.lit(3_600_000)))


def kafka_ms(ts: Column) -> Column:
    """A TIMESTAMP column as epoch milliseconds (time zone independent)."""
    return F.unix_millis(ts)
