"""Run the dashboard outside pytest's AppTest: a loopback-only Streamlit server and headless Chromium.

    with serve() as server:               # streamlit run dashboard.py on a free 127.0.0.1 port
        server.url, server.pid, server.stats()   # stats: threads and RSS read from /proc
    with serve(data_dir=tmp, env={"SAE_LAB_WORKERS": "threads"}, log=path) as server: ...
    with browser() as b: ...              # Debian's chromium via playwright, no download

The one place that starts the server, for the benchmarks (bench/), the browser tests (tests/test_browser.py)
and the screenshots (docs/screenshots.py). The server is killed with its whole process group when the block
ends, whatever happens. ``launch()`` + ``Server.wait_healthy()`` + ``Server.stop()`` are the same steps
for a caller that must stop the server from elsewhere (bench/load.py's watchdog).
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
CHROMIUM = os.environ.get("SAE_CHROMIUM", "/usr/bin/chromium")
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
    healthy: float = float("nan")  # seconds from launch to the first "ok" from /_stcore/health
    log: Path | None = None  # the server's stdout and stderr, if kept

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

    def wait_healthy(self, timeout: float = 90.0) -> None:
        """Poll /_stcore/health until it answers 200; RuntimeError if the process exits or ``timeout`` passes
        (with the tail of the log, if kept)."""
        while True:
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("the Streamlit server exited" + self._log_tail())
            if time.perf_counter() - self.started > timeout:
                raise RuntimeError(f"the Streamlit server did not answer /_stcore/health within {timeout:.0f} s"
                                   + self._log_tail())
            time.sleep(0.05)
        self.healthy = time.perf_counter() - self.started

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it is still there 10 s later. Idempotent."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def _log_tail(self, chars: int = 3000) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return ":\n" + self.log.read_text(errors="replace")[-chars:]


def launch(env: dict[str, str] | None = None, extra_args: tuple[str, ...] | list[str] = (),
           data_dir: str | Path | None = None, log: str | Path | None = None) -> Server:
    """Start `streamlit run dashboard.py` on a free loopback port, in its own process group; do not wait.

    env: added to this process's environment (e.g. ``{"SAE_LAB_WORKERS": "threads"}``).
    extra_args: more `streamlit run` options (e.g. ``("--server.disconnectedSessionTTL", "15")``).
    data_dir: the run store (``SAE_LAB_DATA``); None keeps this process's setting.
    log: a file for the server's stdout and stderr; None discards them.
    """
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
           *extra_args]
    full_env = dict(os.environ, **(env or {}))
    if data_dir is not None:
        full_env["SAE_LAB_DATA"] = str(data_dir)
    log = None if log is None else Path(log)
    out = subprocess.DEVNULL if log is None else open(log, "wb")  # noqa: SIM115 - the child holds it
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=full_env)
    finally:
        if log is not None:
            out.close()  # the child has its own copy
    return Server(f"http://127.0.0.1:{port}", proc, started, log=log)


@contextlib.contextmanager
def serve(env: dict[str, str] | None = None, extra_args: tuple[str, ...] | list[str] = (), timeout: float = 90.0,
          data_dir: str | Path | None = None, log: str | Path | None = None):
    """``launch()`` the server, wait until it is healthy (at most ``timeout`` s), yield its ``Server``; stop it
    at the end of the block, whatever happens."""
    server = launch(env, extra_args, data_dir, log)
    try:
        server.wait_healthy(timeout)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def browser(nice: int = 0):
    """Headless Debian chromium (``SAE_CHROMIUM`` overrides the path) through playwright; closed at the end.

    ``nice`` > 0 starts it (and so every renderer it forks) at that niceness, in a session of its own whose
    scheduler autogroup has that niceness too (with ``kernel.sched_autogroup_enabled``, Linux shares the CPU
    between sessions first, so a niced browser in the bench's session would still take half the machine from
    the server's session). On a machine that also runs the server, the pages then take only the CPU the server
    and its workers leave, as browsers on the students' own machines would take none of it."""
    import stat
    import tempfile

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="sae-bench-") as tmp, sync_playwright() as p:
        executable = CHROMIUM
        if nice:
            executable = str(Path(tmp) / "chromium")
            Path(executable).write_text(
                "#!/bin/sh\n"
                f"exec setsid -w sh -c 'echo {int(nice)} > /proc/self/autogroup 2>/dev/null; "
                f"exec nice -n {int(nice)} \"$0\" \"$@\"' \"{CHROMIUM}\" \"$@\"\n")
            Path(executable).chmod(stat.S_IRWXU)
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
