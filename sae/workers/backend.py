"""Which backend trains the dashboard's runs, chosen once per process:

- ``SAE_LAB_RAY_ADDRESS`` set (or :func:`use_ray` from the dashboard's ``--ray-address`` flag): Ray actors
  on that cluster (``sae.workers.ray_backend``);
- ``SAE_LAB_WORKERS=threads``: threads of this process (the Trainer's own background thread; for platforms
  without a forkserver, and for debugging);
- otherwise: local worker processes (``sae.workers.process``).

:func:`new_trainer` builds the run handle for the chosen backend (a ``RemoteTrainer``, or a ``Trainer`` in
thread mode), :func:`call` runs one experiment or sweep cell there, :func:`warm` prepares the backend ahead
of the first click.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

from sae.training.progress import Progress
from sae.training.trainer import Trainer
from sae.workers.calls import call_in_worker, crosses_processes
from sae.workers.process import LocalBackend
from sae.workers.remote import RemoteTrainer

_backend: Any = None
_chosen = False
_lock = threading.Lock()


def _choose() -> Any:
    address = os.environ.get("SAE_LAB_RAY_ADDRESS")
    if address:
        from sae.workers.ray_backend import RayBackend

        return RayBackend(address)
    if os.environ.get("SAE_LAB_WORKERS", "processes").lower() == "threads":
        return None
    return LocalBackend()


def run_backend() -> Any:
    """The process-wide backend (None: threads of this process)."""
    global _backend, _chosen
    with _lock:
        if not _chosen:
            _backend, _chosen = _choose(), True
        return _backend


def use_backend(backend: Any) -> Any:
    """Make ``backend`` the process-wide one (None: threads); returns the previous one (tests restore it)."""
    global _backend, _chosen
    previous = run_backend()
    with _lock:
        _backend, _chosen = backend, True
        return previous


def use_ray(address: str | None) -> Any:
    """Train on the Ray cluster at ``address`` from now on (see ``sae.workers.ray_backend``)."""
    from sae.workers.ray_backend import RayBackend

    return use_backend(RayBackend(address))


def configure_from_args(args: list[str]) -> Any:
    """``--ray-address ADDRESS`` (or ``--ray-address=ADDRESS``) among the dashboard's own arguments (after
    ``--`` on ``streamlit run``'s command line): train on that Ray cluster. Returns the backend in use."""
    for i, arg in enumerate(args):
        if arg == "--ray-address" and i + 1 < len(args):
            use_ray(args[i + 1])
        elif arg.startswith("--ray-address="):
            use_ray(arg.split("=", 1)[1])
    return run_backend()


def describe() -> str:
    backend = run_backend()
    return "threads of the server" if backend is None else backend.name


def warm() -> None:
    """Prepare the backend now (start the forkserver, connect to Ray), not at the first run."""
    backend = run_backend()
    if backend is not None:
        backend.warm()


def new_trainer(X, model_config=None, config=None, **kwargs) -> Trainer | RemoteTrainer:
    """A run handle with the Trainer's API on the process-wide backend (arguments as for ``Trainer``;
    ``slots`` only matters in thread mode)."""
    backend = run_backend()
    if backend is None:
        return Trainer(X, model_config, config, **kwargs)
    kwargs.pop("slots", None)
    return RemoteTrainer(backend, X, model_config, config, **kwargs)


def call(fn: Callable[..., Any], progress: Progress) -> Any:
    """``fn(progress=progress)`` on the process-wide backend: in a worker when ``fn`` pickles, else here."""
    backend = run_backend()
    if backend is None or not crosses_processes(fn):
        return fn(progress=progress)
    return call_in_worker(fn, progress, backend)


__all__ = ["run_backend", "use_backend", "use_ray", "configure_from_args", "describe", "warm", "new_trainer", "call"]
