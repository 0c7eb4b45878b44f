"""A small LRU cache bounded by the bytes its values hold, for rendered rows and responses."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteBoundedLru(Generic[K, V]):
    """Least recently used entries go first once the total size passes `max_bytes`."""

    def __init__(self, max_bytes: int, size_of: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self.size_of = size_of
        self.bytes = 0
        self.evictions = 0  # entries dropped for room, since start (discard does not count)
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def key_list(self) -> list[K]:
        return list(self._entries)

    def discard(self, key: K) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]

    def put(self, key: K, value: V) -> None:
        size = self.size_of(value)
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes and len(self._entries) > 1:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped
            self.evictions += 1
