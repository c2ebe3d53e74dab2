"""Run the dashboard for a benchmark: a loopback-only Streamlit server and headless Chromium.

    with serve() as server:               # streamlit run dashboard.py on a free 127.0.0.1 port
        server.url, server.pid, server.stats()   # stats: threads and RSS read from /proc
    with browser() as b: ...              # Debian's chromium via playwright, no download

The server is killed with its whole process group when the block ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    started: float  # time.perf_counter() when the process was launched
    healthy: float  # seconds from launch to the first "ok" from /_stcore/health

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stats(self) -> dict[str, float]:
        """Threads and resident memory (MiB) of the server process, from /proc."""
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        return {"threads": int(fields["Threads"]), "rss_mib": int(fields["VmRSS"].split()[0]) / 1024}

    def health_latency(self) -> float:
        """Seconds for one GET /_stcore/health."""
        t = time.perf_counter()
        with urllib.request.urlopen(self.url + "/_stcore/health", timeout=10) as r:
            r.read()
        return time.perf_counter() - t


@contextlib.contextmanager
def serve(env: dict[str, str] | None = None, extra_args: tuple[str, ...] = (), timeout: float = 90.0):
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", *extra_args]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=dict(os.environ, **(env or {})))
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError("the Streamlit server exited")
            if time.perf_counter() - started > timeout:
                raise RuntimeError("the Streamlit server did not become healthy")
            time.sleep(0.05)
        yield Server(url, proc, started, time.perf_counter() - started)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@contextlib.contextmanager
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
