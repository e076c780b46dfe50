"""The detectors' text caches stay within their entry and character budgets."""
from __future__ import annotations

import pytest

from detectors._lru import TextLRU


def test_least_recently_used_text_goes_first() -> None:
    lru: TextLRU[int] = TextLRU(max_entries=2, max_chars=100, max_text_chars=100)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "a" is now the most recent
    lru.put("c", 3)
    assert "b" not in lru and lru.get("a") == 1 and lru.get("c") == 3


def test_unique_long_texts_cannot_grow_the_cache_past_its_character_budget() -> None:
    lru: TextLRU[int] = TextLRU(max_entries=1000, max_chars=10_000, max_text_chars=4_000)
    for i in range(500):
        lru.put(f"{i:04d}" + "x" * 2_996, i)  # 3,000 characters each
        assert lru.chars <= 10_000
    assert len(lru) == 3 and lru.chars == 9_000
    assert lru.get("0499" + "x" * 2_996) == 499


def test_a_text_over_the_per_text_limit_is_not_kept_and_disabled_caches_keep_nothing() -> None:
    lru: TextLRU[int] = TextLRU(max_entries=10, max_chars=100, max_text_chars=20)
    lru.put("y" * 21, 1)
    assert len(lru) == 0 and lru.chars == 0
    off: TextLRU[int] = TextLRU(max_entries=0, max_chars=100, max_text_chars=100)
    off.put("a", 1)
    assert off.get("a") is None


def test_putting_a_known_text_again_replaces_its_value_without_counting_it_twice() -> None:
    lru: TextLRU[int] = TextLRU(max_entries=4, max_chars=100, max_text_chars=100)
    lru.put("abc", 1)
    lru.put("abc", 2)
    assert lru.get("abc") == 2 and lru.chars == 3 and len(lru) == 1


def test_negative_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        TextLRU(max_entries=-1, max_chars=10, max_text_chars=10)
