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


def test_the_forkserver_preloads_torch_wherever_the_server_was_started(tmp_path):
    """CPython 3.11's forkserver ignores the sys.path it is given and swallows an ImportError of its preload
    module. A server started outside the repository (sae importable only through sys.path, as in a notebook
    elsewhere or `streamlit run /path/to/dashboard.py`) then got a forkserver without torch, and every worker
    imported torch itself: ~1.7 s before each run's first step instead of ~25 ms."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = f"""
import sys, time
sys.path.insert(0, {str(root)!r})
from multiprocessing import popen_forkserver
from sae.workers.process import LocalBackend
LocalBackend().warm()
pid = popen_forkserver.forkserver._forkserver._forkserver_pid
name = ""
for _ in range(1200):  # the preload imports torch and trains a tiny model: seconds, not minutes
    name = open(f"/proc/{{pid}}/comm").read().strip()
    if name == "sae-forkserver":
        break
    time.sleep(0.1)
print(name)
"""
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.stdout.strip() == "sae-forkserver", out.stderr[-2000:]
