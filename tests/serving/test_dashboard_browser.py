"""The dashboard and the reconciliation page in headless Chromium (Debian's `chromium`, driven by
Playwright) against a real server on a free port, with real Redis and Delta behind it.

Interactions are real: the mouse moves over the chart's canvas, clicks a bar, the keyboard tabs and
presses arrows. Expected figures come from the API itself (the same server), never from the test.
The test module writes the dashboard's screenshot to reports/serving/dashboard.png;
`make dashboard-screenshot` copies it to docs/images/dashboard.png for the README.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyarrow as pa
import pytest
import redis
import uvicorn
from deltalake import write_deltalake
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright
from serving_support import REPO, TOKEN, k, m, make_settings, utc

from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_contract.tables import SILVER
from lambda_contract.windows import HOUR, hour_label, hour_start, hours_of_date
from lambda_testkit.processes import wait_until
from lambda_testkit.sandbox import delete_prefix, free_port
from lambda_testkit.views import arrow_schema, write_gold, write_manifest, write_meta, write_speed_hour
from serving_layer.app import create_app

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = REPO / "reports" / "serving" / "dashboard.png"
EVENTS_PATH = "/v1/revenue/events"
INR = k("ap-south", "electronics", "INR")
EUR = k("eu-west", "books", "EUR")
USD = k("us-east", "toys", "USD")
SETTLED = re.compile("^(loaded|error)$")


class Site:
    """The running server, its data's anchors, and a client of its API for the expected figures."""

    def __init__(
        self, base: str, app: FastAPI, settings: Settings, r: redis.Redis, current: datetime
    ) -> None:
        self.base = base
        self.app = app
        self.settings = settings
        self.r = r
        self.current = current  # the hour the wall clock is in: open in the speed view
        self.day = (current - timedelta(hours=24)).date()  # gold holds this whole date
        self.api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def hourly(self, **params: str) -> dict[str, Any]:
        res = self.api.get("/v1/revenue/hourly", params=params)
        assert res.status_code == 200, res.text
        return res.json()  # type: ignore[no-any-return]

    def window(self, hours: int) -> tuple[datetime, datetime]:
        """The page's preset range, from the wall clock as the page reads it (a run may cross an hour)."""
        end = hour_start(datetime.now(UTC)) + HOUR
        return end - hours * HOUR, end


def gold_metrics(i: int) -> dict[GroupKey, Metrics]:
    """Amounts with four decimals, so the API's half-even rounding to cents is what the page must show."""
    return {
        INR: m(f"{25000 + 137 * i}.{(7919 * i) % 10000:04d}", 5 + i % 3),
        EUR: m(f"{310 + 11 * i}.{(4409 * i) % 10000:04d}", 3, i % 2),
        USD: m(f"{120 + i}.{(1237 * i) % 10000:04d}", 4),
    }


def write_silver_hour_key(
    settings: Settings, hour: datetime, key: GroupKey, revenue: Decimal, orders: int, duplicates: int = 1
) -> None:
    """The events behind one hour and key of gold, in the silver table the recompute writes
    (docs/specs/delta.md): `orders` purchases adding up to `revenue`, then `duplicates` copies."""
    amounts = [(revenue / orders).quantize(Decimal("0.0001"))] * (orders - 1)
    amounts.append(revenue - sum(amounts, Decimal(0)))
    rows = [
        {
            "date": hour.date(),
            "hour_of_day": hour.hour,
            "hour": hour,
            "region": key.region,
            "category": key.category,
            "currency": key.currency,
            "event_type": "purchase",
            "amount": amounts[n % orders],
            "counted": n < orders,
            "reason": None if n < orders else "duplicate",
            "event_id": f"{key.region}-{hour.hour:02d}-{n % orders}",
            "event_time": hour + timedelta(seconds=30 * n + 1),
            "kafka_partition": n % 2,
            "kafka_offset": 1000 + n,
            "run_id": "run-1",  # the manifest's run (write_manifest's default)
        }
        for n in range(orders + duplicates)
    ]
    write_deltalake(
        settings.delta_table_url(SILVER.name),
        pa.Table.from_pylist(rows, schema=arrow_schema(SILVER)),
        mode="append",
        partition_by=list(SILVER.partition_by),
    )


def speed_metrics(i: int, bump: str = "0") -> dict[GroupKey, Metrics]:
    amount = Decimal(f"{380 + 29 * ((i * 5) % 11)}.5055") + Decimal(bump)
    return {EUR: m(str(amount), 3), USD: m(f"{200 + 7 * (i % 5)}.0000", 2)}


def write_speed_recent(site: Site, bump: str = "0") -> None:
    """The last six hours in the speed view, the current one open (hours gold holds serve from gold)."""
    layout = site.settings.redis_layout
    for i in range(6):
        write_speed_hour(site.r, layout, site.current - i * HOUR, speed_metrics(i, bump), closed=i >= 2)


@contextmanager
def serving(app: FastAPI, port: int) -> Iterator[None]:
    """`app` served by uvicorn on `port` in a thread, for the duration of the block."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, timeout=15, interval=0.05), "uvicorn did not start"
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = make_settings(tmp_path_factory.mktemp("dashboard"), os.environ)
    r = redis.Redis.from_url(settings.redis_url, password=settings.resolved_redis_password())
    try:
        r.ping()
    except redis.RedisError as exc:  # pragma: no cover - the services are a precondition
        pytest.fail(f"Redis is not reachable ({exc}); run `make up`")
    now = datetime.now(UTC)
    current = hour_start(now)
    app = create_app(settings, batch_refresh_s=0.0, speed_open_ttl_s=0.0, speed_closed_ttl_s=0.0)
    port = free_port()
    site = Site(f"http://127.0.0.1:{port}", app, settings, r, current)
    gold_hours = hours_of_date(site.day)
    layout = settings.redis_layout
    for i, hour in enumerate(gold_hours):  # the speed view of that date too, for the reconciliation
        speed = gold_metrics(i)
        if i == 20:  # one event the speed layer judged late: explained by the late counter
            speed[USD] = m("0.0000", 0)
            site.r.hset(layout.late(hour), USD.field(), gold_metrics(i)[USD].encode())
        write_speed_hour(r, layout, hour, speed, closed=True)
    write_gold(settings, {h: gold_metrics(i) for i, h in enumerate(gold_hours)})
    write_manifest(settings, gold_hours)
    usd_at_noon = gold_metrics(12)[USD]
    write_silver_hour_key(settings, gold_hours[12], USD, usd_at_noon.revenue, usd_at_noon.orders)
    eur_at_noon = gold_metrics(12)[EUR]  # a producer's retries: more copies than one page holds
    write_silver_hour_key(settings, gold_hours[12], EUR, eur_at_noon.revenue, eur_at_noon.orders, 57)
    gold_end = datetime(site.day.year, site.day.month, site.day.day, tzinfo=UTC) + 24 * HOUR
    for i in range(6, (site.current - gold_end) // HOUR + 1):  # today's older hours, closed
        write_speed_hour(r, layout, current - i * HOUR, speed_metrics(i), closed=True)
    write_speed_recent(site)
    write_meta(r, layout, watermark=now - timedelta(seconds=30), updated=now)
    with serving(app, port):
        yield site
    site.api.close()
    delete_prefix(r, settings.redis_prefix)
    r.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM, "chromium is not installed (make setup installs it)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield pg
    context.close()
    # no script error and no CSP violation (the page's policy allows its own files only)
    assert not [e for e in errors if "Failed to load resource" not in e], errors


def hourly_requests(pg: Page) -> list[dict[str, list[str]]]:
    """The query of every /v1/revenue/hourly call the page makes from now on."""
    seen: list[dict[str, list[str]]] = []

    def on_request(req: Request) -> None:
        url = urlsplit(req.url)
        if url.path == "/v1/revenue/hourly":
            seen.append(parse_qs(url.query))

    pg.on("request", on_request)
    return seen


def open_dashboard(pg: Page, site: Site, query: str = "") -> None:
    pg.goto(f"{site.base}/{query}#token={TOKEN}")
    expect(pg.locator("#board")).to_have_attribute("data-state", SETTLED, timeout=20_000)
    assert pg.locator("#board").get_attribute("data-state") == "loaded", pg.locator("#error").inner_text()


def bar_point(pg: Page, index: int) -> tuple[float, float]:
    """Page coordinates inside the chart's column of hour `index` (just above the axis)."""
    x, y = pg.evaluate(
        "(i) => echarts.getInstanceByDom(document.getElementById('chart'))"
        ".convertToPixel({gridIndex: 0}, [i, 0])",
        index,
    )
    pg.locator("#chart").scroll_into_view_if_needed()
    box = pg.locator("#chart").bounding_box()
    assert box is not None
    return box["x"] + x, box["y"] + y - 4


def index_of(pg: Page, hour: datetime) -> int:
    labels: list[str] = pg.eval_on_selector_all("#hours-table tbody tr", "rs => rs.map(r => r.dataset.hour)")
    return labels.index(hour_label(hour))


def final_hour(site: Site) -> datetime:
    return datetime(site.day.year, site.day.month, site.day.day, 12, tzinfo=UTC)


def test_hover_shows_the_exact_figures_of_the_hour(page: Page, site: Site) -> None:
    open_dashboard(page, site)
    start, end = site.window(48)
    rows = {r["hour"]: r for r in site.hourly(start=hour_label(start), end=hour_label(end))["rows"]}
    # a final hour from gold, the open hour from Redis, and a final hour whose figure ends in 0,
    # which a number re-rendered from a float would print differently (790.00 -> 790)
    zero_ended = [h for h, r in rows.items() if r["status"] == "final" and r["revenue"].endswith("0")]
    hours = [final_hour(site), site.current, *(utc(h) for h in zero_ended[:1])]
    for hour in hours:
        expected = rows[hour_label(hour)]
        page.mouse.move(*bar_point(page, index_of(page, hour)))
        tip = page.locator(".tip")
        expect(tip.locator(".tip-hour")).to_have_text(hour_label(hour))
        expect(tip.locator(".tip-revenue")).to_have_text(f"{expected['revenue']} USD")
        expect(tip.locator(".tip-orders")).to_have_text(str(expected["orders"]))
        expect(tip.locator(".tip-refunds")).to_have_text(str(expected["refunds"]))
        expect(tip.locator(".tip-status")).to_have_text(expected["status"])
        expect(tip.locator(".tip-source")).to_have_text(expected["source"])
    assert rows[hour_label(final_hour(site))]["status"] == "final"
    assert rows[hour_label(site.current)]["status"] == "open"


def test_range_presets_and_a_custom_range_fetch_again(page: Page, site: Site) -> None:
    seen = hourly_requests(page)
    open_dashboard(page, site)
    expect(page.locator("#hours-table tbody tr")).to_have_count(48)
    for label, hours in (("7 d", 168), ("31 d", 744), ("24 h", 24)):
        before = len(seen)
        page.get_by_role("button", name=label, exact=True).click()
        expect(page.locator("#hours-table tbody tr")).to_have_count(hours)
        expect(page.get_by_role("button", name=label, exact=True)).to_have_attribute("aria-pressed", "true")
        start, end = site.window(hours)
        assert {"start": [hour_label(start)], "end": [hour_label(end)], "currency": ["USD"]} in seen[before:]
    before = len(seen)
    custom_start = datetime(site.day.year, site.day.month, site.day.day, 6, tzinfo=UTC)
    page.fill("#start", custom_start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#end", (custom_start + 10 * HOUR).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#hours-table tbody tr")).to_have_count(10)
    expect(page.locator("#hours-table tbody tr").first).to_have_attribute(
        "data-hour", hour_label(custom_start)
    )
    assert any(q["start"] == [hour_label(custom_start)] for q in seen[before:])
    assert page.locator("#presets [aria-pressed=true]").count() == 0


def test_group_by_and_filters_query_the_api_and_show_its_figures(page: Page, site: Site) -> None:
    seen = hourly_requests(page)
    open_dashboard(page, site)
    start, end = site.window(48)
    hour = final_hour(site)
    page.select_option("#group-by", "region")
    expect(page.locator("#board")).to_have_attribute("data-refreshes", "2")
    assert any(q.get("group_by") == ["region"] for q in seen)
    grouped = site.hourly(start=hour_label(start), end=hour_label(end), group_by="region")["rows"]
    page.mouse.move(*bar_point(page, index_of(page, hour)))
    groups = page.locator(".tip .tip-group")
    expected = [f"{g['region']}: {g['revenue']} USD" for g in grouped if g["hour"] == hour_label(hour)]
    expect(groups).to_have_text(expected)
    assert len(expected) == 3

    page.fill("#region", "eu-west")
    page.select_option("#currency", "EUR")  # a change of currency refreshes with both
    expect(page.locator("#board")).to_have_attribute("data-refreshes", "3")
    assert any(q.get("region") == ["eu-west"] and q.get("currency") == ["EUR"] for q in seen)
    query = {"start": hour_label(start), "end": hour_label(end), "region": "eu-west", "currency": "EUR"}
    only_eu = {r["hour"]: r for r in site.hourly(**query)["rows"]}
    row = page.locator(f"#hours-table tbody tr[data-hour='{hour_label(hour)}']")
    expect(row.locator("td").first).to_have_text(f"{only_eu[hour_label(hour)]['revenue']} EUR")
    page.fill("#region", "no such region!")
    page.keyboard.press("Enter")
    expect(page.locator("#error")).to_contain_text("region")


def test_a_click_on_an_hour_opens_its_breakdown_per_key(page: Page, site: Site) -> None:
    open_dashboard(page, site)
    hour = final_hour(site)
    page.mouse.click(*bar_point(page, index_of(page, hour)))
    detail = page.locator("#detail")
    expect(detail).to_have_attribute("data-state", "loaded")
    expect(detail).to_have_attribute("data-hour", hour_label(hour))
    keys = site.hourly(
        start=hour_label(hour), end=hour_label(hour + HOUR), group_by="region,category,currency"
    )["rows"]
    body = page.locator("#detail-table tbody tr")
    expect(body).to_have_count(len(keys))
    for key in keys:
        cells = page.locator(
            f"#detail-table tr[data-key='{key['region']}|{key['category']}|{key['currency']}'] td"
        )
        expect(cells.nth(3)).to_have_text(f"{key['revenue']} USD")
        expect(cells.nth(4)).to_have_text(f"{key['revenue_native']} {key['currency']}")
        expect(cells.nth(7)).to_have_text(str(key["events"]))
    assert len(keys) == 3
    expect(page.locator("#detail-recon")).to_have_attribute("href", f"/reconciliation#date={site.day}")


def test_the_breakdown_lists_the_events_behind_a_key(page: Page, site: Site) -> None:
    open_dashboard(page, site)
    hour = final_hour(site)
    page.mouse.click(*bar_point(page, index_of(page, hour)))
    expect(page.locator("#detail")).to_have_attribute("data-state", "loaded")
    page.locator("#detail-table tr[data-key='us-east|toys|USD'] button").click()
    events = page.locator("#events")
    expect(events).to_have_attribute("data-state", SETTLED)
    if EVENTS_PATH not in site.app.openapi()["paths"]:
        expect(page.locator("#events-message")).to_contain_text("no events route")
        pytest.skip(f"GET {EVENTS_PATH} is not in this app: only the page's message for its 404 was checked")
    params = {"hour": hour_label(hour), "region": "us-east", "category": "toys", "currency": "USD"}
    res = site.api.get(EVENTS_PATH, params={**params, "limit": "50"})
    assert res.status_code == 200, res.text
    doc = res.json()
    assert events.get_attribute("data-state") == "loaded", page.locator("#events-message").inner_text()
    rows = page.locator("#events-table tbody tr")
    expect(rows).to_have_count(len(doc["events"]))
    for n, ev in enumerate(doc["events"]):
        cells = rows.nth(n).locator("td")
        expect(cells.nth(0)).to_have_text(ev["event_id"])
        expect(cells.nth(3)).to_have_text(f"{ev['amount']} USD")
        expect(cells.nth(5)).to_have_text(str(ev["kafka_offset"]))
        expect(cells.nth(7)).to_have_text(ev["reason"] or "–")
    totals = doc["totals"]
    expect(page.locator("#events-totals")).to_contain_text(
        f"counted events {totals['events']}: revenue {totals['revenue']} USD"
    )
    # the counted events add up to the hour's figure for the key in its own currency
    key_row = page.locator("#detail-table tr[data-key='us-east|toys|USD'] td")
    expect(key_row.nth(4)).to_have_text(f"{Decimal(totals['revenue']):.4f} USD")
    assert len(doc["events"]) == 5 and [e["counted"] for e in doc["events"]].count(False) == 1

    # a key with more events than a page: "More events" follows the API's cursor to the end
    page.locator("#detail-table tr[data-key='eu-west|books|EUR'] button").click()
    expect(page.locator("#events-table tbody tr")).to_have_count(50)
    expect(page.locator("#events-totals")).to_contain_text("more events follow")
    page.get_by_role("button", name="More events").click()
    expect(page.locator("#events-table tbody tr")).to_have_count(60)
    expect(page.get_by_role("button", name="More events")).to_be_hidden()
    offsets = page.eval_on_selector_all(
        "#events-table tbody tr td:nth-child(6)", "cs => cs.map(c => c.textContent)"
    )
    assert sorted(offsets, key=int) == [str(1000 + n) for n in range(60)]

    # an hour and key without silver rows: the page says what the API answered
    page.mouse.click(*bar_point(page, index_of(page, hour - HOUR)))
    expect(page.locator("#detail")).to_have_attribute("data-hour", hour_label(hour - HOUR))
    expect(page.locator("#detail")).to_have_attribute("data-state", "loaded")
    page.locator("#detail-table tr[data-key='us-east|toys|USD'] button").click()
    expect(events).to_have_attribute("data-state", SETTLED)
    other = site.api.get(EVENTS_PATH, params={**params, "hour": hour_label(hour - HOUR)})
    if other.status_code == 200:
        expect(page.locator("#events-table tbody tr")).to_have_count(len(other.json()["events"]))
    else:
        expect(page.locator("#events-message")).to_contain_text(f"({other.status_code})")


def test_the_page_refreshes_by_itself_and_shows_how_fresh_the_speed_layer_is(page: Page, site: Site) -> None:
    open_dashboard(page, site, "?refresh=1")
    freshness = page.locator("#freshness")
    expect(freshness).to_have_attribute("data-level", "fresh")
    row = page.locator(f"#hours-table tbody tr[data-hour='{hour_label(site.current)}'] td").first
    before = row.inner_text()
    page.mouse.move(*bar_point(page, index_of(page, site.current)))  # the pointer rests on the open hour
    expect(page.locator(".tip .tip-revenue")).to_have_text(before)
    layout = site.settings.redis_layout
    try:
        write_speed_recent(site, bump="1000")  # the speed layer moves on; nobody touches the page
        now = datetime.now(UTC)
        write_meta(site.r, layout, watermark=now - timedelta(seconds=120), updated=now)
        after = site.hourly(start=hour_label(site.current), end=hour_label(site.current + HOUR))["rows"][0]
        expect(row).to_have_text(f"{after['revenue']} USD", timeout=10_000)
        assert row.inner_text() != before
        expect(page.locator(".tip .tip-revenue")).to_have_text(f"{after['revenue']} USD")  # kept, updated
        expect(freshness).to_have_attribute("data-level", "behind", timeout=10_000)
        write_meta(site.r, layout, watermark=now - timedelta(seconds=1000), updated=now)
        expect(freshness).to_have_attribute("data-level", "stalled", timeout=10_000)
        expect(page.locator("#freshness-text")).to_contain_text("17 min behind")
    finally:
        write_speed_recent(site)
        now = datetime.now(UTC)
        write_meta(site.r, layout, watermark=now - timedelta(seconds=30), updated=now)


def test_with_redis_down_final_hours_show_and_the_others_say_unavailable(page: Page, site: Site) -> None:
    """A second server on the same gold whose Redis nobody listens on: the speed hours have no
    numbers, which the page says (never a zero), while the batch-final hours keep their figures."""
    down = dataclasses.replace(site.settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(down, batch_refresh_s=0.0, speed_open_ttl_s=0.0, speed_closed_ttl_s=0.0)
    port = free_port()
    with (
        serving(app, port),
        httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as api,
    ):
        start, end = site.window(48)
        res = api.get("/v1/revenue/hourly", params={"start": hour_label(start), "end": hour_label(end)})
        assert res.status_code == 200, res.text
        rows = {r["hour"]: r for r in res.json()["rows"]}
        final, current = hour_label(final_hour(site)), hour_label(site.current)
        assert rows[final]["status"] == "final" and rows[current]["status"] == "unavailable"
        page.goto(f"http://127.0.0.1:{port}/#token={TOKEN}")
        expect(page.locator("#board")).to_have_attribute("data-state", "loaded", timeout=20_000)
        cells = page.locator(f"#hours-table tbody tr[data-hour='{final}'] td")
        expect(cells.nth(0)).to_have_text(f"{rows[final]['revenue']} USD")
        cells = page.locator(f"#hours-table tbody tr[data-hour='{current}'] td")
        expect(cells.nth(0)).to_have_text("speed view unavailable")
        expect(cells.nth(1)).to_have_text("–")
        expect(cells.nth(3)).to_have_text("unavailable")
        page.mouse.move(*bar_point(page, index_of(page, site.current)))
        expect(page.locator(".tip .tip-revenue")).to_have_text("speed view unavailable")
        expect(page.locator("#total-sub")).to_contain_text("unavailable (speed view down)")
        expect(page.locator("#freshness")).to_have_attribute("data-level", "stalled")


def test_keyboard_alone_changes_the_range_and_opens_hours(page: Page, site: Site) -> None:
    open_dashboard(page, site)

    def tab_to(selector: str) -> None:
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("(s) => document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("#presets button[data-hours='24']")
    page.keyboard.press("Enter")
    expect(page.locator("#hours-table tbody tr")).to_have_count(24)
    tab_to("#chart")
    last = utc(page.locator("#hours-table tbody tr").last.get_attribute("data-hour") or "")
    for _ in range(3):
        page.keyboard.press("ArrowLeft")  # from the last (current) hour back three
    expect(page.locator(".tip .tip-hour")).to_have_text(hour_label(last - 3 * HOUR))
    page.keyboard.press("Enter")
    expect(page.locator("#detail")).to_have_attribute("data-hour", hour_label(last - 3 * HOUR))
    expect(page.locator("#detail-title")).to_be_focused()

    tab_to("#hours-table button.hour")  # the accessible table of hours: first hour, then down two
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    third = last - 21 * HOUR
    expect(page.locator(f"#hours-table tr[data-hour='{hour_label(third)}']")).to_have_attribute(
        "aria-selected", "true"
    )
    page.keyboard.press("Enter")
    expect(page.locator("#detail")).to_have_attribute("data-hour", hour_label(third))
    expect(page.locator("#detail")).to_have_attribute("data-state", "loaded")


def test_reconciliation_page_is_linked_and_shows_speed_against_batch(page: Page, site: Site) -> None:
    open_dashboard(page, site)
    page.mouse.click(*bar_point(page, index_of(page, final_hour(site))))
    page.locator("#detail-recon").click()
    expect(page).to_have_url(f"{site.base}/reconciliation#date={site.day}")
    expect(page.locator("#recon")).to_have_attribute("data-state", "loaded", timeout=20_000)
    doc = site.api.get(f"/v1/reconciliation/{site.day}").json()
    assert doc["totals"]["late_events"] == 4
    expect(page.locator("#verdict")).to_have_text(doc["totals"]["verdict"])
    expect(page.locator("#recon-hours tbody tr")).to_have_count(24)
    late_hour = doc["hours"][20]
    cells = page.locator(f"#recon-hours tr[data-hour='{late_hour['hour']}'] td")
    expect(cells.nth(2)).to_have_text(late_hour["speed_usd"])
    expect(cells.nth(3)).to_have_text(late_hour["batch_usd"])
    expect(cells.nth(6)).to_have_text("4")  # late events explain the difference
    page.fill("#date", (site.day - timedelta(days=30)).isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#recon-message")).to_contain_text("No report for")


def test_without_a_token_the_page_asks_for_one_and_a_wrong_one_is_refused(page: Page, site: Site) -> None:
    page.goto(f"{site.base}/")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#board")).to_be_hidden()
    page.fill("#token", "wrong-token-0123456789")
    page.get_by_role("button", name="Open dashboard").click()
    expect(page.locator("#login")).to_contain_text("The token was refused")
    page.fill("#token", TOKEN)
    page.get_by_role("button", name="Open dashboard").click()
    expect(page.locator("#board")).to_have_attribute("data-state", "loaded")


def test_screenshot_of_the_dashboard(page: Page, site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's picture, taken from the real page: 48 h, grouped by region, one hour hovered."""
    open_dashboard(page, site)
    page.mouse.click(*bar_point(page, index_of(page, final_hour(site))))
    expect(page.locator("#detail")).to_have_attribute("data-state", "loaded")
    page.mouse.move(*bar_point(page, index_of(page, site.current - 2 * HOUR)))
    expect(page.locator(".tip .tip-hour")).to_have_text(hour_label(site.current - 2 * HOUR))
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 20_000
    with capsys.disabled():
        print(f"\ndashboard screenshot: {SCREENSHOT}")
