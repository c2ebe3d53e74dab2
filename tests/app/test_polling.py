"""sae.app.polling: the live views' refresh interval follows the number of sessions polling the server."""

from __future__ import annotations

import threading

import pytest

from sae.app.polling import FASTEST, SLOWEST, LivePolls, refresh_interval, server_cores


def test_few_sessions_refresh_fast_many_slower_never_slower_than_a_second():
    assert refresh_interval(0, 2) == refresh_interval(1, 2) == FASTEST == 0.3
    assert refresh_interval(3, 2) == 0.3  # a few viewers on two cores: still three redraws a second
    assert refresh_interval(8, 2) == 0.7
    assert refresh_interval(16, 2) == refresh_interval(1000, 2) == SLOWEST == 1.0  # a class of 16 on two cores


@pytest.mark.parametrize("cores", [1, 2, 4, 8, 64])
def test_the_interval_grows_with_sessions_and_shrinks_with_cores(cores):
    intervals = [refresh_interval(n, cores) for n in range(0, 200)]
    assert intervals == sorted(intervals)
    assert all(FASTEST <= t <= SLOWEST for t in intervals)
    assert all(refresh_interval(n, cores) <= refresh_interval(n, max(1, cores // 2)) for n in range(200))


def test_the_interval_comes_in_steps_so_a_wobbling_count_rarely_changes_it():
    assert len({refresh_interval(n, 2) for n in range(200)}) <= 8
    assert all(round(t * 10) == t * 10 for t in (refresh_interval(n, 2) for n in range(200)))


def test_odd_inputs_give_the_fast_interval_not_an_error():
    assert refresh_interval(-3, 2) == refresh_interval(1, 0) == refresh_interval(1, -1) == FASTEST


def test_live_sessions_are_those_that_polled_within_the_window():
    now = [100.0]
    polls = LivePolls(window=3.0, clock=lambda: now[0])
    polls.poll("a")
    polls.poll("b")
    assert polls.count() == 2
    now[0] += 2.0
    polls.poll("b")  # b polls again, a does not
    now[0] += 2.0
    assert polls.count() == 1
    assert polls.count(including="c") == 2 and polls.count(including="b") == 1
    polls.forget("b")
    assert polls.count() == 0


def test_polls_from_many_threads_are_counted_once_per_session():
    polls = LivePolls()
    threads = [threading.Thread(target=lambda i=i: [polls.poll(f"s{i % 16}") for _ in range(200)]) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert polls.count() == 16


def test_server_cores_is_a_positive_count():
    assert server_cores() >= 1
