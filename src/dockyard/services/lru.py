"""A map bounded in bytes that forgets the least recently used entry first, for per-worker caches.

Every per-worker cache is bounded by what it holds, not by how many items: a cache of 4,096
manifests is 4 MB of small ones or 16 GB of 4 MB ones (DESIGN.md, invariant 6). Each entry is
weighed when it is put (``weigh(key, value)``, an estimate of the bytes the entry keeps alive,
its key and the map's own bookkeeping included); an entry heavier than the whole budget is not
kept at all.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

# What the map keeps per entry besides the key and the value: the OrderedDict's hash-table slot
# and linked-list node, and the (weight, value) pair. tracemalloc measures ~155 bytes on CPython
# 3.11 (tests/unit/test_lru.py holds the estimate to it).
ENTRY_OVERHEAD = 200


def weigh_sized(key: object, value: object) -> int:
    """The weight of an entry whose key and value hold no references (str, bytes, int)."""
    return sys.getsizeof(key) + sys.getsizeof(value) + ENTRY_OVERHEAD


class LRU(Generic[K, V]):
    """At most ``max_bytes`` of entries by their weight, and at most ``max_entries`` of them when
    given (0 of either: remember nothing); reads and writes make an entry the newest."""

    def __init__(self, max_bytes: int, weigh: Callable[[K, V], int] = weigh_sized, *,
                 max_entries: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.weigh = weigh
        self.bytes = 0
        self._items: OrderedDict[K, tuple[int, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is None:
            return None
        self._items.move_to_end(key)
        return found[1]

    def put(self, key: K, value: V) -> None:
        self.pop(key)
        weight = self.weigh(key, value)
        if weight > self.max_bytes or self.max_entries == 0:
            return
        self._items[key] = (weight, value)
        self.bytes += weight
        while self.bytes > self.max_bytes or (self.max_entries is not None and len(self._items) > self.max_entries):
            _, (dropped, _) = self._items.popitem(last=False)
            self.bytes -= dropped

    def pop(self, key: K) -> V | None:
        """Forget ``key``; what it held, if anything."""
        found = self._items.pop(key, None)
        if found is None:
            return None
        self.bytes -= found[0]
        return found[1]
