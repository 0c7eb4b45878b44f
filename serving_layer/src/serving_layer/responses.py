"""Response assembly: compact JSON, and the hourly body built from per-hour fragments, both cached
by data version so an unchanged hour is rendered once and an unchanged response gzipped once."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from fastapi.responses import Response

from lambda_contract.windows import format_instant, hour_label
from serving_layer.cache import ByteBoundedLru
from serving_layer.fx import FxTable
from serving_layer.merge import MergedHour
from serving_layer.params import HourlyQuery
from serving_layer.rows import render_hour

RENDER_CACHE_BYTES: Final = 16 << 20  # with the gold cache, inside serving.rss_mb_year's 300 MB
BODY_CACHE_BYTES: Final = 16 << 20
GZIP_MIN_BYTES: Final = 8192
VARY_HEADERS: Final = {"Vary": "Accept-Encoding"}
GZIP_HEADERS: Final = {"Vary": "Accept-Encoding", "Content-Encoding": "gzip"}


def json_response(doc: object, status: int = 200) -> Response:
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type="application/json")


@dataclass
class Body:
    """A rendered response, cached by everything it depends on; gzipped lazily, once."""

    raw: bytes
    rows_by_source: dict[str, int]
    hours_by_status: dict[str, int]
    _gzipped: bytes | None = None

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.raw, compresslevel=6, mtime=0)
        return self._gzipped

    def response(self, accept_encoding: str) -> Response:
        """Gzipped when the client accepts it and the body is large enough to gain from it."""
        if "gzip" in accept_encoding and len(self.raw) >= GZIP_MIN_BYTES:
            return Response(self.gzipped(), media_type="application/json", headers=GZIP_HEADERS)
        return Response(self.raw, media_type="application/json", headers=VARY_HEADERS)


class HourlyBodies:
    """Bodies of /v1/revenue/hourly and the per-hour row fragments they are joined from."""

    def __init__(self, fx: FxTable) -> None:
        self.fx = fx
        self.fragments: ByteBoundedLru[tuple[object, ...], tuple[bytes, int]] = ByteBoundedLru(
            RENDER_CACHE_BYTES, lambda e: len(e[0])
        )
        # a body counts twice: its gzipped copy is made on demand and kept with it
        self.bodies: ByteBoundedLru[tuple[object, ...], Body] = ByteBoundedLru(
            BODY_CACHE_BYTES, lambda b: 2 * len(b.raw)
        )

    def fragment(self, merged: MergedHour, query: HourlyQuery) -> tuple[bytes, int]:
        """An hour's rows as JSON text (without brackets) and the row count, cached by data version."""
        key = (merged.hour, query.shape(), merged.source, merged.status, merged.token)
        hit = self.fragments.get(key)
        if hit is not None:
            return hit
        rows = render_hour(merged, query, self.fx)
        text = ",".join(json.dumps(r, separators=(",", ":")) for r in rows).encode()
        entry = (text, len(rows))
        self.fragments.put(key, entry)
        return entry

    def body(
        self,
        query: HourlyQuery,
        merged: list[MergedHour],
        watermark: datetime | None,
        through: datetime | None,
    ) -> Body:
        """The response for these merged hours: from cache while no hour's data version changed."""
        key = (
            query.start,
            query.end,
            query.shape(),
            watermark,
            through,
            tuple((m.source, m.status, m.token) for m in merged),
        )
        hit = self.bodies.get(key)
        if hit is not None:
            return hit
        parts: list[bytes] = []
        rows_by_source: dict[str, int] = {}
        hours_by_status: dict[str, int] = {}
        for m in merged:
            text, n = self.fragment(m, query)
            parts.append(text)
            rows_by_source[m.source.value] = rows_by_source.get(m.source.value, 0) + n
            hours_by_status[m.status.value] = hours_by_status.get(m.status.value, 0) + 1
        head = {
            "currency": query.currency,
            "start": hour_label(query.start),
            "end": hour_label(query.end),
            "group_by": list(query.group_by),
        }
        freshness = {
            "speed_watermark": format_instant(watermark) if watermark else None,
            "batch_complete_through": hour_label(through) if through else None,
        }
        raw = b"".join(
            (
                json.dumps(head, separators=(",", ":"))[:-1].encode(),
                b',"rows":[',
                b",".join(p for p in parts if p),
                b'],"freshness":',
                json.dumps(freshness, separators=(",", ":")).encode(),
                b"}",
            )
        )
        body = Body(raw, rows_by_source, hours_by_status)
        self.bodies.put(key, body)
        return body
