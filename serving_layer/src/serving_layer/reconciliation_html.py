"""The reconciliation report as one self-contained HTML page (inline CSS and SVG, no scripts).

It renders the JSON document of `reconciliation.to_json`, so the page and the API can never
disagree: a chart of speed vs batch revenue (USD) per hour with residual hours highlighted, the
totals, a table of causes per hour, and the per-key detail of any hour with a residual.
"""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import Any

from serving_layer.reconciliation import CAUSES

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;max-width:1100px}
h1{font-size:22px;margin:0 0 4px} .sub{color:#5b6475;margin-bottom:16px}
.verdict{display:inline-block;padding:4px 10px;border-radius:4px;font-weight:600;color:#fff}
.explained{background:#1f7a44} .unexplained{background:#b3261e}
table{border-collapse:collapse;margin:12px 0;width:100%} th,td{padding:4px 8px;border-bottom:1px solid #e3e6ec;text-align:right}
th:first-child,td:first-child{text-align:left} tr.res td{background:#fde8e7}
.tot{display:grid;grid-template-columns:repeat(4,1fr);gap:8px;margin:12px 0}
.tot div{background:#f4f6f9;padding:8px;border-radius:4px} .tot b{display:block;font-size:18px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
"""


def _money(text: str) -> Decimal:
    return Decimal(text)


def _chart(hours: list[dict[str, Any]]) -> str:
    """Grouped bars per hour: speed (amber) and batch (blue); residual hours get a red band."""
    width, height, pad = 1000, 220, 30
    values = [max(_money(h["speed_usd"]), _money(h["batch_usd"]), Decimal(0)) for h in hours]
    top = max([*values, Decimal(1)])
    slot = (width - 2 * pad) / len(hours)
    bar = slot * 0.38
    parts = [
        f'<svg viewBox="0 0 {width} {height + 40}" role="img" aria-label="speed vs batch revenue per hour">'
    ]
    for i, h in enumerate(hours):
        x = pad + i * slot
        if h["residual_events"] or _money(h["residual_usd"]):
            parts.append(f'<rect x="{x:.1f}" y="0" width="{slot:.1f}" height="{height}" fill="#fde8e7"/>')
        for j, (field, color) in enumerate((("speed_usd", "#e0a526"), ("batch_usd", "#2b6cb0"))):
            v = max(_money(h[field]), Decimal(0))
            bh = float(v / top) * (height - 10)
            parts.append(
                f'<rect x="{x + j * bar + slot * 0.1:.1f}" y="{height - bh:.1f}" width="{bar:.1f}" '
                f'height="{bh:.1f}" fill="{color}"><title>{escape(h["hour"])} {field[:-4]}: '
                f"{escape(h[field])} USD</title></rect>"
            )
        if i % 3 == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{height + 16}" font-size="11" text-anchor="middle">'
                f"{escape(h['hour'][11:16])}</text>"
            )
    parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="{height}" y2="{height}" stroke="#8a93a6"/></svg>')
    return "".join(parts)


def _events(m: dict[str, Any]) -> str:
    return str(m["events"])


def render(doc: dict[str, Any]) -> str:
    """The report page for a `to_json` document."""
    t = doc["totals"]
    verdict = t["verdict"]
    rows = []
    for h in doc["hours"]:
        cls = ' class="res"' if h["residual_events"] or _money(h["residual_usd"]) else ""
        causes = "".join(f"<td>{_events(h['explained'][c])}</td>" for c in CAUSES)
        rows.append(
            f"<tr{cls}><td>{escape(h['hour'][11:16])}</td><td>{escape(h['speed_status'])}</td>"
            f"<td>{_events(h['speed'])}</td><td>{_events(h['batch'])}</td>{causes}"
            f"<td>{h['residual_events']}</td><td>{escape(h['residual_usd'])}</td></tr>"
        )
    detail = []
    for h in doc["hours"]:
        for k in h["keys"]:
            if k["residual"]["events"] or Decimal(k["residual"]["revenue"]):
                detail.append(
                    f"<tr><td>{escape(h['hour'])}</td><td>{escape(k['region'])}</td><td>{escape(k['category'])}</td>"
                    f"<td>{escape(k['currency'])}</td><td>{escape(k['speed']['revenue'])}</td>"
                    f"<td>{escape(k['batch']['revenue'])}</td><td>{escape(k['late']['revenue'])}</td>"
                    f"<td>{escape(k['residual']['revenue'])}</td><td>{k['residual']['events']}</td></tr>"
                )
    tiles = [
        ("speed events", t["speed_events"]),
        ("batch events", t["batch_events"]),
        ("late events", t["late_events"]),
        ("late revenue (USD)", t["late_revenue_usd"]),
        ("unsuppressed duplicates", t["duplicate_events"]),
        ("malformed (DLQ / quarantine)", f"{t['dlq_events']} / {t['malformed_events']}"),
        ("residual events", t["residual_events"]),
        ("residual revenue (USD)", t["residual_revenue_usd"]),
    ]
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in CAUSES)
    detail_html = (
        "<h2>Unexplained keys</h2><table><tr><th>hour</th><th>region</th><th>category</th><th>currency</th>"
        "<th>speed revenue</th><th>batch revenue</th><th>late revenue</th><th>residual revenue</th>"
        "<th>residual events</th></tr>" + "".join(detail) + "</table>"
        if detail
        else ""
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Reconciliation {escape(doc['date'])}</title><style>{_CSS}</style></head><body>"
        f"<h1>Reconciliation for {escape(doc['date'])}</h1>"
        f"<div class=sub>Speed view (Redis) against gold (Delta), per hour and key. "
        f'<span class="verdict {verdict}">{escape(verdict)}</span></div>'
        '<div class=legend>revenue per hour in USD:<span style="background:#e0a526"></span>speed'
        '<span style="background:#2b6cb0"></span>batch<span style="background:#fde8e7"></span>residual</div>'
        + _chart(doc["hours"])
        + "<div class=tot>"
        + "".join(f"<div>{escape(label)}<b>{escape(str(v))}</b></div>" for label, v in tiles)
        + "</div><h2>Differences by cause (events, sign of batch − speed)</h2>"
        f"<table><tr><th>hour</th><th>speed status</th><th>speed</th><th>batch</th>{head}"
        "<th>residual</th><th>residual USD</th></tr>"
        + "".join(rows)
        + "</table>"
        + detail_html
        + "</body></html>"
    )
