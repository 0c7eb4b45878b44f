"""Gold is read for the requested range only: by date partition, into a bounded LRU, and a new gold
version drops exactly the dates whose files changed. Real Delta tables (delta-rs), no mocks."""

from __future__ import annotations

import asyncio
import os
import random
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from serving_support import hours_from, k, m, make_settings, utc

from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_contract.tables import GOLD
from lambda_testkit.views import arrow_schema, write_gold, write_manifest
from serving_layer.merge import BatchView
from serving_layer.stores import BatchStore, load_gold

pytestmark = pytest.mark.integration

DAYS = hours_from(utc("2026-11-16T00:00:00Z"), 5 * 24)  # five dates, 16-20 November


def random_rows(seed: int, hours: list[datetime]) -> dict[datetime, dict[GroupKey, Metrics]]:
    rnd = random.Random(seed)
    keys = [
        k(r, c, cur) for r in ("eu-west", "us-east") for c in ("books", "games") for cur in ("EUR", "USD")
    ]
    return {
        h: {key: m(str(Decimal(rnd.randint(-(10**6), 10**8)).scaleb(-4)), rnd.randint(0, 9)) for key in keys}
        for h in hours
    }


def store_of(settings: Settings) -> BatchStore:
    store = BatchStore(settings, refresh_interval_s=0.0)
    assert store.refresh()
    return store


def view(store: BatchStore, hours: list[datetime]) -> BatchView:
    return asyncio.run(store.view(store.state, hours))


def plain(data: object) -> dict[GroupKey, Metrics]:
    return dict(data.items())  # type: ignore[attr-defined]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, os.environ)


def test_a_day_reads_only_its_date_and_the_rows_equal_the_whole_table(settings: Settings) -> None:
    rows = random_rows(1, DAYS)
    write_gold(settings, rows)
    write_gold(
        settings, {DAYS[30]: {k("eu-west", "books", "EUR"): m("0.0001")}}
    )  # a second file, a duplicate key
    write_manifest(settings, DAYS)
    store = store_of(settings)
    day = DAYS[24:48]
    got = view(store, day)
    assert store.dates_read == 1 and store.cache.key_list() == [day[0].date()]
    whole = load_gold(DeltaTable(settings.delta_table_url(GOLD.name)))
    assert {h: plain(got.hours[h]) for h in day} == {h: whole[h] for h in day}
    assert plain(got.hours[DAYS[30]])[k("eu-west", "books", "EUR")] == rows[DAYS[30]][
        k("eu-west", "books", "EUR")
    ] + m("0.0001")
    view(store, day)  # cached: not read again
    assert store.dates_read == 1


def test_only_computed_hours_are_read(settings: Settings) -> None:
    write_gold(settings, random_rows(2, DAYS))
    write_manifest(settings, DAYS[:24])
    store = store_of(settings)
    got = view(store, DAYS)
    assert store.dates_read == 1 and set(got.hours) == set(DAYS[:24])


def test_the_cache_is_bounded_but_a_request_keeps_every_date_it_needs(settings: Settings) -> None:
    write_gold(settings, random_rows(3, DAYS))
    write_manifest(settings, DAYS)
    store = store_of(settings)
    store.cache.max_bytes = 1  # below one date: the setting's MiB is too coarse for a small table
    got = view(store, DAYS)
    assert set(got.hours) == set(DAYS) and store.dates_read == 5
    assert len(store.cache) == 1  # the newest date only
    view(store, DAYS[:24])
    assert store.dates_read == 6  # evicted, so read again


def test_a_new_gold_version_drops_exactly_the_dates_whose_files_changed(settings: Settings) -> None:
    write_gold(settings, random_rows(4, DAYS))
    write_manifest(settings, DAYS)
    store = store_of(settings)
    before = view(store, DAYS)
    # The recompute replaces one date in one commit (replaceWhere date = D).
    changed = {h: {k(): m("7.0000")} for h in DAYS[48:72]}
    data = pa.Table.from_pylist(
        [
            {"date": h.date(), "hour": h, "region": key.region, "category": key.category,
             "currency": key.currency, "revenue": v.revenue, "orders": v.orders,
             "refunds": v.refunds, "events": v.events}
            for h, groups in changed.items() for key, v in groups.items()
        ],
        schema=arrow_schema(GOLD),
    )  # fmt: skip
    write_deltalake(
        settings.delta_table_url(GOLD.name), data, mode="overwrite", predicate=f"date = '{DAYS[48].date()}'"
    )
    assert store.refresh()
    assert set(store.cache.key_list()) == {h.date() for h in DAYS} - {DAYS[48].date()}
    after = view(store, DAYS)
    assert store.dates_read == 6
    assert plain(after.hours[DAYS[50]]) == {k(): m("7.0000")}
    for h in DAYS:
        same_date = h.date() != DAYS[48].date()
        assert (after.tokens[h] == before.tokens[h]) is same_date, h
    assert plain(after.hours[DAYS[0]]) == plain(before.hours[DAYS[0]])


def test_a_date_read_before_a_refresh_is_not_cached_stale(settings: Settings) -> None:
    write_gold(settings, {DAYS[0]: {k(): m("1.0000")}})
    write_manifest(settings, DAYS[:24])
    store = store_of(settings)
    read = store._read_dates([DAYS[0].date()])  # read at version 0 ...
    write_gold(settings, {DAYS[1]: {k(): m("2.0000")}})  # ... a new file for the same date lands
    assert store.refresh()
    store._keep(read)
    assert len(store.cache) == 0
    assert plain(view(store, DAYS[:2]).hours[DAYS[1]]) == {k(): m("2.0000")}
