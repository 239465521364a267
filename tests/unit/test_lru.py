"""Per-worker caches are bounded in bytes (DESIGN.md, invariant 6): the LRU map's budget holds
whatever is put in it, however many or however large the entries."""

from __future__ import annotations

import sys
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.services.lru import ENTRY_OVERHEAD, LRU, weigh_sized


@settings(max_examples=80)
@given(st.integers(0, 20_000), st.lists(st.tuples(st.integers(0, 50), st.integers(0, 5000)), max_size=200))
def test_the_weight_kept_never_exceeds_the_budget(budget: int, puts: list[tuple[int, int]]) -> None:
    """Whatever sequence of puts: the weight kept is the sum of the entries kept, and within budget."""
    cache: LRU[str, bytes] = LRU(budget)
    for key, size in puts:
        cache.put(f"k{key}", b"x" * size)
        assert cache.bytes <= budget
    kept = [f"k{key}" for key in range(51) if cache.get(f"k{key}") is not None]
    assert cache.bytes == sum(weigh_sized(key, cache.get(key)) for key in kept)
    assert len(cache) == len(kept)


def test_least_recently_used_goes_first_and_reads_count_as_use() -> None:
    """Three entries fit in the budget; a fourth pushes out the one least recently read or put."""
    one = weigh_sized("a", b"1" * 100)
    cache: LRU[str, bytes] = LRU(3 * one)
    for key in "abc":
        cache.put(key, key.encode() * 100)
    assert cache.get("a") == b"a" * 100  # "a" is now the newest
    cache.put("d", b"d" * 100)
    assert cache.get("b") is None
    assert [k for k in "acd" if cache.get(k) is not None] == ["a", "c", "d"]


def test_an_entry_heavier_than_the_budget_is_not_kept_and_drops_its_older_value() -> None:
    cache: LRU[str, bytes] = LRU(10_000)
    cache.put("m", b"small")
    cache.put("m", b"x" * 20_000)
    assert cache.get("m") is None
    assert cache.bytes == 0


def test_a_count_bound_still_applies_when_given_and_zero_of_either_keeps_nothing() -> None:
    counted: LRU[str, bytes] = LRU(1 << 20, max_entries=2)
    for key in "abc":
        counted.put(key, b"v")
    assert len(counted) == 2
    assert counted.get("a") is None
    for cache in (LRU[str, bytes](0), LRU[str, bytes](1 << 20, max_entries=0)):
        cache.put("a", b"v")
        assert cache.get("a") is None
        assert cache.bytes == 0


def test_the_weight_of_small_entries_is_not_less_than_the_memory_they_keep() -> None:
    """The estimate is honest: 5,000 entries of 300-byte values take no more memory than weighed
    (traced allocations), so the budget is a real bound on the cache's memory."""
    cache: LRU[str, bytes] = LRU(1 << 30)
    values = [(f"sha256:{i:064x}", bytes(300) + i.to_bytes(4, "big")) for i in range(5000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key, value in values:
            cache.put(key, value)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Keys and values were made before measuring: what the cache itself added is its bookkeeping.
    assert used <= len(values) * ENTRY_OVERHEAD
    assert cache.bytes >= sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in values) + used
