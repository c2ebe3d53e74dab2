"""Shared test settings, fixtures and helpers.

Every training run started through the dashboard's session layer is recorded in the run store
(``sae.runs.store``), whose directory comes from ``SAE_LAB_DATA`` (default ``~/.local/share/sae-lab``).
Tests must never write there: each test gets its own temporary store directory.

- ``lab_data`` (every test): that temporary store directory.
- ``restore_process_state`` (module scope; opt in with ``pytestmark = pytest.mark.usefixtures(...)``): for the
  modules that run the dashboard under AppTest.
- ``stop_live_jobs``: every training job of the session layer a test started is stopped after it.
- ``store``: a fresh ``RunStore`` in the test's ``tmp_path / "lab"``, with ``MC``, ``TC``, ``make_model``,
  ``snapshot`` and ``history`` to fill it (``from conftest import ...``).
"""

from __future__ import annotations

import gc
import io
import json
import sys
import time

import numpy as np
import pytest
import torch

from sae import ModelConfig, SparseAutoencoder, TrainConfig
from sae.training.status import RunStatus
from sae.training.trainer import Snapshot


@pytest.fixture(autouse=True)
def lab_data(tmp_path, monkeypatch):
    """A fresh run-store directory for every test (never the user's real one)."""
    path = tmp_path / "sae-lab-data"
    monkeypatch.setenv("SAE_LAB_DATA", str(path))
    return path


# ----------------------------------------------------------------------------- the dashboard under AppTest

@pytest.fixture(scope="module")
def restore_process_state():
    """Leave the test process as the module found it for the tests that follow:
    - the dashboard sets torch to one thread for its process;
    - Streamlit runs each script as ``sys.modules["__main__"]`` and leaves it there, so a later
      ``multiprocessing`` spawn would re-run dashboard.py in its child;
    - the dashboard freezes the heap it starts with (``sae.ui.page.configure_process``)."""
    n, main = torch.get_num_threads(), sys.modules["__main__"]
    yield
    torch.set_num_threads(n)
    sys.modules["__main__"] = main
    gc.unfreeze()


@pytest.fixture(scope="module", autouse=True)
def _page_modules_restore_process_state(request):
    """Every module of tests/pages runs the dashboard, so each gets ``restore_process_state``, present and
    future ones alike: one that forgot it left ``sys.modules["__main__"]`` pointing at a Streamlit script, and
    the multiprocessing tests of tests/runs, which run after tests/pages, failed in their spawned children."""
    if "pages" in request.path.parts:
        request.getfixturevalue("restore_process_state")
    yield


@pytest.fixture
def job():
    """An idle training job of the dashboard on the digits (9 hidden units, 1,000 epochs), stopped after the test."""
    from sae.app.job import Job, subset_indices
    from sae.app.settings import Settings
    from sae.data import load_dataset

    data = load_dataset("digits")
    j = Job(Settings(dataset="digits", n_hidden=9, epochs=1000), data, subset_indices(data.n_samples))
    yield j
    j.stop("test over")


@pytest.fixture
def stop_live_jobs():
    """Every job a test started is stopped (the server keeps one training slot per spare core)."""
    yield
    from sae.app import reaper

    for job in reaper.live_jobs():
        job.stop("test over")


# ----------------------------------------------------------------------------- the run store

MC, TC = ModelConfig(12, 5, decoder_activation="sigmoid"), TrainConfig(rho=0.1, beta=2.0, epochs=3, batch_size=16)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` s pass (False); for threads and fragments."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False


def make_model(seed: int = 0, n: int = 12, s: int = 5) -> SparseAutoencoder:
    model = SparseAutoencoder(n, s)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model


def snapshot(model: SparseAutoencoder, step: int, status: str = RunStatus.RUNNING, total: float = 1.0) -> Snapshot:
    s = model.config.n_hidden
    return Snapshot(step=step, epoch=step / 4, losses={"total": total, "reconstruction": total * 0.9,
                                                       "sparsity": total * 0.1, "weight_decay": 0.001},
                    rho_hat=np.linspace(0.05, 0.2, s), weights={k: v.detach().numpy().copy()
                                                                for k, v in model.state_dict().items()},
                    hyper={"rho": 0.1, "beta": 2.0, "weight_decay": 1e-4, "lr": 0.01}, samples_per_s=1.0,
                    elapsed=step * 0.01, status=status, reason="")


def history(rows: int, offset: float = 0.0) -> dict[str, np.ndarray]:
    step = np.arange(rows, dtype=np.float64)
    return {"step": step, "epoch": step / 4, "time": step * 0.01, "total": 1.0 / (1 + step) + offset,
            "rho_hat_mean": np.full(rows, 0.1)}


def old_database(root, version: int, run: str | None = None):
    """An open sqlite3 connection to ``root/runs.sqlite`` as the Lab of schema ``version`` wrote it (its first schema,
    the migrations up to ``version``, the meta table); ``run``: the name of one finished run in it (id ``"a" * 32``,
    configs ``MC`` and ``TC``). The caller may add rows; it commits and closes."""
    import sqlite3

    from sae.core.config import config_to_dict
    from sae.runs import database
    from sae.runs.store import DB_FILE

    root.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(root / DB_FILE)
    conn.executescript(database._SCHEMA)
    for target in range(2, version + 1):
        for statement in database.MIGRATIONS[target]:
            conn.execute(statement)
    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                     [("schema_version", str(version)), ("application", "sae-lab"), ("created", "0")])
    if run is not None:
        conn.execute("INSERT INTO runs (id, name, dataset, created, updated, status, model_config, train_config, "
                     "owner, pid, host) VALUES (?, ?, 'toy', 1.0, 2.0, 'finished', ?, ?, 'x', 1, 'h')",
                     ("a" * 32, run, json.dumps(config_to_dict(MC)), json.dumps(config_to_dict(TC))))
    return conn


@pytest.fixture
def store(tmp_path):
    """A fresh run store in ``tmp_path / "lab"`` (apart from ``lab_data``), closed after the test."""
    from sae.runs.store import RunStore

    with RunStore(tmp_path / "lab") as s:
        yield s


# ----------------------------------------------------------------------------- charts under AppTest

def chart_payloads(at) -> list[tuple[str, str]]:
    """(id, figure JSON) of every chart of an AppTest run in page order: ``st.plotly_chart`` elements and the
    live charts of ``sae.ui.chart`` (a components-v2 element whose data carries the figure as JSON)."""
    from sae.ui.chart import COMPONENT, decode_figure

    out: list[tuple[str, str]] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        kind = getattr(node, "type", None)
        if kind == "plotly_chart":
            out.append((proto.id, proto.spec))
        elif kind == "bidi_component" and proto.component_name == COMPONENT:
            out.append((proto.id, json.dumps(decode_figure(proto.bytes))))  # as the browser draws it
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    return out


def figure_specs(at) -> list[dict]:
    """The figures (Plotly JSON as dicts) of every chart of an AppTest run, in page order."""
    return [json.loads(spec) for _, spec in chart_payloads(at)]


# ----------------------------------------------------------------------------- uploads that must never be unpickled

def npy_bytes(arr, allow_pickle: bool = False) -> bytes:
    """``arr`` as the bytes of an .npy file (an upload)."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


UNPICKLED: list[str] = []


def _record_unpickle() -> str:
    UNPICKLED.append("unpickled!")
    return "payload"


class Trap:
    """Unpickling this object calls _record_unpickle: proof that a loader ran pickle."""

    def __reduce__(self):
        return (_record_unpickle, ())


@pytest.fixture
def in_threads():
    """Train in threads of this process (``SAE_LAB_WORKERS=threads``) for the test, then restore the backend."""
    from sae.workers.backend import use_backend

    previous = use_backend(None)
    yield
    use_backend(previous)
