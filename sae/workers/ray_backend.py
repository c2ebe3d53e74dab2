"""Runs and tasks as Ray actors on a cluster (``SAE_LAB_RAY_ADDRESS``, or ``--ray-address`` after ``--`` on
the dashboard's command line): the server drives them exactly as local workers, and their snapshots stream
back to it through a long poll.

Each run is one actor hosting a :class:`sae.workers.host.TrainerHost` (an experiment or a sweep cell: a
:class:`sae.workers.host.TaskHost`), with two concurrency groups of one thread each: ``commands`` (the
control calls, executed in the order sent: each carries a sequence number) and ``updates`` (the server's
long poll for the newest state). Actors reserve ``SAE_LAB_RAY_CPUS_PER_RUN`` CPUs (default 0.1: ten runs per
core before Ray places them elsewhere) and are spread over the nodes. The ``sae`` package travels with the
job (``runtime_env.py_modules``), so nodes need only the requirements installed. Ray is imported only here,
and only when this backend is chosen: the embedded default needs no Ray and starts nothing extra.
"""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path
from typing import Any, Callable

from sae.workers.host import HostFailed, TaskHost, TrainerHost, TrainerSpec

CPUS_PER_RUN = 0.1
PACKAGE = str(Path(__file__).resolve().parents[1])  # sae/, shipped to the actors' nodes
POLL_SECONDS = 1.0  # the long poll's wait in the actor

_actor_class = None
_actor_lock = threading.Lock()


def _host_actor():
    """The actor class, defined on first use (so importing this module does not import Ray)."""
    global _actor_class
    with _actor_lock:
        if _actor_class is None:
            import ray

            @ray.remote(concurrency_groups={"commands": 1, "updates": 1})
            class HostActor:
                def __init__(self, kind: str, payload: Any) -> None:
                    self.failed: HostFailed | None = None
                    self.next_seq, self.waiting = 0, {}
                    try:
                        self.host = TrainerHost(payload) if kind == "trainer" else TaskHost(payload)
                    except Exception as exc:  # noqa: BLE001 - reported through next_update
                        self.host, self.failed = None, HostFailed(f"{type(exc).__name__}: {exc}")

                @ray.method(concurrency_group="commands")
                def command(self, seq: int, command: tuple) -> None:
                    self.waiting[seq] = command
                    while self.next_seq in self.waiting:
                        todo = self.waiting.pop(self.next_seq)
                        self.next_seq += 1
                        if self.host is None:
                            continue
                        if todo[0] == "close":
                            self.host.close("the server closed this run")
                        else:
                            self.host.handle(*todo)

                @ray.method(concurrency_group="updates")
                def next_update(self, timeout: float) -> Any:
                    if self.failed is not None:
                        return self.failed
                    return self.host.next_update(timeout)

            _actor_class = HostActor
        return _actor_class


class RayChannel:
    """The server's end of one actor (the interface of ``sae.workers.process.LocalChannel``)."""

    pid = None

    def __init__(self, actor) -> None:
        self.actor = actor
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._end = "its Ray actor ended"

    def send(self, command: tuple) -> None:
        with self._lock:  # numbered in the order sent; the actor runs them in that order
            self.actor.command.remote(next(self._seq), command)

    def recv(self, timeout: float | None = None):
        import ray

        while True:
            try:
                message = ray.get(self.actor.next_update.remote(POLL_SECONDS if timeout is None else timeout))
            except ray.exceptions.RayError as exc:
                self._end = f"its Ray actor died: {str(exc).strip().splitlines()[0][:200]}"
                raise EOFError(self._end) from exc
            except SystemExit as exc:  # ray.shutdown() in this process
                self._end = "Ray was shut down in the server"
                raise EOFError(self._end) from exc
            if message is not None or timeout is not None:
                return message

    def end_text(self) -> str:
        return self._end

    def close(self, timeout: float = 3.0) -> None:
        import ray

        try:
            self.send(("close",))
            ray.get(self.actor.next_update.remote(0.0), timeout=timeout)
        except Exception:  # noqa: BLE001 - the actor is going away either way
            pass
        try:
            ray.kill(self.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead
            pass


class RayBackend:
    """Runs as Ray actors of the cluster at ``address`` ("auto", "ray://host:10001", "host:6379"; None: a
    local Ray instance started here, with ``init_options`` for ``ray.init``, e.g. the tests'
    ``num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False``)."""

    name = "Ray"

    def __init__(self, address: str | None = None, cpus_per_run: float | None = None,
                 init_options: dict | None = None) -> None:
        self.address = address
        self.init_options = dict(init_options or {})
        env = os.environ.get("SAE_LAB_RAY_CPUS_PER_RUN")
        self.cpus_per_run = cpus_per_run if cpus_per_run is not None else float(env) if env else CPUS_PER_RUN
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Connect to the cluster (once per process), shipping the ``sae`` package with the job (a process that
        already called ``ray.init`` must have made ``sae`` importable on the nodes itself)."""
        import ray

        with self._lock:
            if not ray.is_initialized():
                ray.init(address=self.address, runtime_env={"py_modules": [PACKAGE]}, log_to_driver=False,
                         **self.init_options)

    def _open(self, kind: str, payload: Any) -> RayChannel:
        self.warm()
        actor = _host_actor().options(num_cpus=self.cpus_per_run, scheduling_strategy="SPREAD").remote(kind, payload)
        return RayChannel(actor)

    def open_trainer(self, spec: TrainerSpec) -> RayChannel:
        return self._open("trainer", spec)

    def open_task(self, fn: Callable[..., Any]) -> RayChannel:
        return self._open("task", fn)


__all__ = ["RayBackend", "RayChannel", "CPUS_PER_RUN"]
