"""The byte-bounded LRU behind the rendered-rows and response caches."""

from __future__ import annotations

import pytest

from serving_layer.cache import ByteBoundedLru

pytestmark = pytest.mark.unit


def test_least_recently_used_entries_go_first_once_over_the_byte_bound() -> None:
    cache: ByteBoundedLru[str, bytes] = ByteBoundedLru(10, len)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"  # a is now the most recent
    cache.put("c", b"1234")  # 12 bytes > 10: b goes
    assert cache.get("b") is None and cache.get("a") == b"1234" and cache.get("c") == b"1234"
    assert cache.bytes == 8 and len(cache) == 2


def test_replacing_a_key_counts_its_size_once_and_one_oversized_entry_is_kept() -> None:
    cache: ByteBoundedLru[str, bytes] = ByteBoundedLru(10, len)
    cache.put("a", b"12")
    cache.put("a", b"123")
    assert cache.bytes == 3
    cache.put("big", b"x" * 50)
    assert len(cache) == 1 and cache.get("big") is not None and cache.bytes == 50
