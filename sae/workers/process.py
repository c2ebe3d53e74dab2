"""Local worker processes: one per run (or task), forked from a forkserver that has torch and the library
preloaded (``sae.workers.preload``).

Why a process per run: measured here (2-core EPYC), a forked worker starts training ~25 ms after the request
and adds ~26 MB of private memory (its torch pages are shared with the forkserver); the operating system
shares the cores among N runs fairly (each ~cores/N), with no queue; a worker that is killed, or that
exhausts its memory, takes down only its own run. Workers run at the lowest priority (``nice`` 19) below the
server, so pages stay responsive when runs use every core: the scheduler weighs a nice-0 server at 1024 and a
nice-19 worker at 15, so 16 busy workers together still leave the server ~80% of the CPU it asks for (at nice 5,
weight 335, eight workers left it ~28%). Priority costs the runs nothing while the server is idle: they share
whatever it leaves. ``SAE_LAB_WORKER_NICE`` overrides it (0: runs equal to the server and to anything else on
the machine).

A worker's lifetime: it builds its host (``sae.workers.host``), then its main thread obeys the commands read
from its end of a pipe while a sender thread writes the newest state to it; it ends on the command "close"
or when the server's end closes (the server died). Memory: ``SAE_LAB_WORKER_MEMORY`` (bytes, or "4G") caps
each worker's data segment (``RLIMIT_DATA``), so a run that needs more fails with an allocation error instead
of the machine swapping; default half the machine's memory.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import multiprocessing
import os
import re
import signal
import threading
from multiprocessing import popen_forkserver, reduction, spawn
from multiprocessing.context import ForkServerProcess
from typing import Any, Callable

from sae.workers.host import HostFailed, TaskHost, TrainerHost, TrainerSpec

logger = logging.getLogger(__name__)

PRELOAD = "sae.workers.preload"
NICE = 19  # workers' niceness above the server's (SAE_LAB_WORKER_NICE overrides it; 0: equal to the server)
CLOSE_SECONDS = 3.0
FORKSERVER_GONE = 255  # the exit code multiprocessing reports for a worker whose forkserver has ended  # how long close() waits for a worker to end before killing it


_shutting_down = threading.Event()
atexit.register(_shutting_down.set)  # runs before multiprocessing's own exit handler ends the workers


def shutting_down() -> bool:
    """Whether this process is exiting (its workers are being ended: not a fault to recover from)."""
    return _shutting_down.is_set()


def parse_bytes(text: str) -> int:
    """``"4G"``, ``"512M"``, ``"1500000000"`` -> bytes. ValueError for anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ValueError(f"not a size in bytes: {text!r} (for example 4G or 512M)")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def default_memory_limit() -> int:
    """Half the machine's memory (``SAE_LAB_WORKER_MEMORY`` overrides it)."""
    env = os.environ.get("SAE_LAB_WORKER_MEMORY")
    if env:
        return parse_bytes(env)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def name_process(name: str) -> None:
    """Show ``name`` for this process in ps/top (Linux ``comm``; 15 characters), so workers can be told apart."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(name[:15])
    except OSError:
        pass


def _limit_memory(limit: int | None) -> None:
    """Cap this worker's data segment at what it uses now plus ``limit`` bytes (allocations beyond fail)."""
    if not limit:
        return
    import resource

    used = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmData:"):
                used = int(line.split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (used + limit, resource.RLIM_INFINITY))


def _serve(conn, make_host: Callable[[], Any], memory_limit: int | None) -> None:
    """A worker's main: build the host, send its states from a thread, obey commands here."""
    name_process("sae-worker")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the server's terminal ends the server, which ends us
    try:
        os.nice(int(os.environ.get("SAE_LAB_WORKER_NICE", NICE)))
    except (OSError, ValueError):
        pass
    try:
        _limit_memory(memory_limit)
        host = make_host()
    except BaseException as exc:  # noqa: BLE001 - the server shows it; the worker ends
        conn.send(HostFailed(f"{type(exc).__name__}: {exc}"))
        return

    def send_states() -> None:
        while True:
            update = host.next_update()
            if update is None:
                return
            try:
                conn.send(update)
            except OSError:
                return

    sender = threading.Thread(target=send_states, name="sae-worker-sender", daemon=True)
    sender.start()
    try:
        while True:
            command = conn.recv()
            if command[0] == "close":
                break
            try:
                host.handle(*command)
            except Exception:  # noqa: BLE001 - one bad command must not end the run
                logger.exception("worker %d: command %r failed", os.getpid(), command[0])
    except (EOFError, OSError):
        pass  # the server is gone
    finally:
        host.close("the server closed this run")
        sender.join(CLOSE_SECONDS)


def trainer_worker(conn, spec: TrainerSpec, memory_limit: int | None) -> None:
    _serve(conn, lambda: TrainerHost(spec), memory_limit)


def task_worker(conn, fn: Callable[..., Any], memory_limit: int | None) -> None:
    _serve(conn, lambda: TaskHost(fn), memory_limit)


class _WorkerPopen(popen_forkserver.Popen):
    """The forkserver's Popen, except that the worker does not re-run the server's ``__main__``: in the
    dashboard that is Streamlit's script (the page being run), which must never run in a worker."""

    def _launch(self, process_obj) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buf = io.BytesIO()
        popen_forkserver.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            popen_forkserver.set_spawning_popen(None)
        self.sentinel, w = popen_forkserver.forkserver.connect_to_new_process(self._fds)
        _parent_w = os.dup(w)
        self.finalizer = popen_forkserver.util.Finalize(self, popen_forkserver.util.close_fds, (_parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = popen_forkserver.forkserver.read_signed(self.sentinel)


class _WorkerProcess(ForkServerProcess):
    @staticmethod
    def _Popen(process_obj):
        return _WorkerPopen(process_obj)


def exit_text(exitcode: int | None) -> str:
    """Why a worker ended, for a person: ``killed by SIGKILL (signal 9; the system may have run out of memory)``."""
    if exitcode is None:
        return "its connection was lost"
    if exitcode == FORKSERVER_GONE:
        return "the workers' forkserver ended, as it does when the server stops"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "a signal"
        hint = "; the system may have run out of memory" if -exitcode == signal.SIGKILL else ""
        return f"killed by {name} (signal {-exitcode}{hint})"
    return f"it exited with code {exitcode}"


@contextlib.contextmanager
def _package_importable():
    """PYTHONPATH names the folder holding ``sae`` while the forkserver starts. CPython 3.11's forkserver ignores
    the sys.path it is handed and silently skips a preload module it cannot import, so a server whose ``sae``
    came from its own sys.path (a notebook elsewhere, ``streamlit run /path/to/dashboard.py``) would get a
    forkserver without torch, and every worker would import it anew (~1.7 s before a run's first step)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, before) if p)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


class LocalChannel:
    """The server's end of one local worker: send commands, receive states, see how it ended."""

    def __init__(self, process: multiprocessing.Process, conn) -> None:
        self.process, self._conn = process, conn
        self._send_lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def send(self, command: tuple) -> None:
        """Send one command; a worker that is gone is not an error here (``recv`` reports it)."""
        with self._send_lock:
            try:
                self._conn.send(command)
            except OSError:
                pass

    def recv(self, timeout: float | None = None):
        """The next state from the worker (None if none came within ``timeout`` seconds); EOFError once it has
        ended."""
        try:
            if timeout is not None and not self._conn.poll(timeout):
                return None
            return self._conn.recv()
        except OSError as exc:
            raise EOFError(str(exc)) from exc

    def end_text(self) -> str:
        self.process.join(1.0)
        return exit_text(self.process.exitcode)

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Ask the worker to end; kill it if it has not after ``timeout`` seconds."""
        self.send(("close",))
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1.0)
        try:
            self._conn.close()
        except OSError:
            pass


class LocalBackend:
    """Starts local worker processes (see the module docstring). ``memory_limit``: bytes per worker (None: no
    cap; default :func:`default_memory_limit`)."""

    name = "local processes"

    def __init__(self, memory_limit: int | None | str = "default") -> None:
        self.memory_limit = default_memory_limit() if memory_limit == "default" else memory_limit
        self._lock = threading.Lock()
        self._warm = False

    def warm(self) -> None:
        """Start the forkserver (import torch there, a tiny run) now rather than at the first run (~2-5 s)."""
        with self._lock:
            if not self._warm:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload([PRELOAD])
                with _package_importable():
                    popen_forkserver.forkserver.ensure_running()
                self._warm = True

    def _start(self, target: Callable, payload: Any) -> LocalChannel:
        self.warm()
        ours, theirs = multiprocessing.Pipe(duplex=True)
        process = _WorkerProcess(target=target, args=(theirs, payload, self.memory_limit), name="sae-worker",
                                 daemon=True)
        process.start()
        theirs.close()
        return LocalChannel(process, ours)

    def open_trainer(self, spec: TrainerSpec) -> LocalChannel:
        return self._start(trainer_worker, spec)

    def open_task(self, fn: Callable[..., Any]) -> LocalChannel:
        return self._start(task_worker, fn)


__all__ = ["LocalBackend", "LocalChannel", "exit_text", "parse_bytes", "default_memory_limit", "trainer_worker",
           "task_worker", "shutting_down", "name_process", "PRELOAD", "NICE"]
