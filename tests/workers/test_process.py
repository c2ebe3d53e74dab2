import signal

import pytest

from sae.workers.process import exit_text, parse_bytes


def test_sizes_in_bytes():
    assert parse_bytes("4G") == 4 * 1024 ** 3
    assert parse_bytes("512M") == 512 * 1024 ** 2
    assert parse_bytes("1.5GiB") == int(1.5 * 1024 ** 3)
    assert parse_bytes("1000") == 1000
    with pytest.raises(ValueError, match="not a size"):
        parse_bytes("lots")


def test_how_a_worker_ended_in_words():
    assert exit_text(-signal.SIGKILL) == "killed by SIGKILL (signal 9; the system may have run out of memory)"
    assert exit_text(-signal.SIGTERM) == "killed by SIGTERM (signal 15)"
    assert exit_text(1) == "it exited with code 1"
    assert exit_text(None) == "its connection was lost"
    assert "forkserver ended" in exit_text(255)
