"""sae.app.memo.ViewCache: per-job values by version, a throttle, frozen values, mutable state."""

import threading
import time
from collections import deque

import pytest

from sae.app.memo import ViewCache


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_memo_computes_once_per_version():
    cache, calls = ViewCache(), []
    compute = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert cache.memo("k", 1, compute) == 1 and cache.memo("k", 1, compute) == 1
    assert cache.memo("k", 2, compute) == 2 and cache.memo("other", 2, compute) == 3
    assert len(calls) == 3 and len(cache) == 2


def test_keep_for_throttles_new_versions_until_the_value_is_old_enough():
    clock = Clock()
    cache = ViewCache(clock)
    assert cache.memo("p", 1, lambda: "v1", keep_for=4.0) == "v1"
    clock.t += 3.0
    assert cache.memo("p", 2, lambda: "v2", keep_for=4.0) == "v1"  # 3 s old: kept although a new version
    clock.t += 2.0
    assert cache.memo("p", 3, lambda: "v3", keep_for=4.0) == "v3"  # 5 s old: refreshed
    assert cache.memo("p", 4, lambda: "v4") == "v4"  # no throttle: every new version computes


def test_put_last_setdefault_clear():
    cache = ViewCache()
    assert cache.last("fig") is None and cache.last("fig", "none") == "none" and "fig" not in cache
    assert cache.put("fig", "figure at step 3") == "figure at step 3"
    assert cache.last("fig") == "figure at step 3" and "fig" in cache
    log = cache.setdefault("log", lambda: deque(maxlen=2))
    log.extend([1, 2, 3])
    assert list(cache.setdefault("log", deque)) == [2, 3]
    cache.clear()
    assert len(cache) == 0 and "log" not in cache


def test_setdefault_creates_one_object_under_concurrency():
    cache, made = ViewCache(), []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        cache.setdefault("x", lambda: made.append(1) or object())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1


def test_refresh_answers_at_once_with_the_last_value_and_computes_the_next_in_the_background():
    cache = ViewCache(Clock())  # time stands still: only versions make a value stale
    assert cache.refresh("probe", 1, lambda: "v1") == "v1"  # the first value: computed here
    release, started = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "v2"

    t0 = time.monotonic()
    assert cache.refresh("probe", 2, slow) == "v1"  # stale: answered at once, v2 computing meanwhile
    assert started.wait(5) and time.monotonic() - t0 < 5
    assert cache.refresh("probe", 3, lambda: pytest.fail("a second computation while one runs")) == "v1"
    release.set()
    cache.join(5)
    assert cache.last("probe") == "v2"
    assert cache.refresh("probe", 2, lambda: pytest.fail("v2 is current")) == "v2"


def test_refresh_keeps_the_stale_value_when_the_background_computation_fails():
    cache = ViewCache()
    cache.refresh("probe", 1, lambda: 0.5)

    def broken() -> float:
        raise RuntimeError("fit failed")

    assert cache.refresh("probe", 2, broken) == 0.5
    cache.join(5)
    assert cache.last("probe") == 0.5
