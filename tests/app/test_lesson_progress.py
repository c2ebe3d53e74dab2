"""Lesson progress (sae.app.lesson_progress): kept per learner in lessons.sqlite beside the run store; survives a new
store object and a new process; counts every try; a session's progress merges in; a foreign file is refused."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sae.app.lesson_progress import (DB_FILE, LearnerProgress, ProgressError, ProgressStore, SessionProgress,
                                     StepRecord)

ROOT = Path(__file__).resolve().parents[2]


def test_a_check_is_recorded_with_its_tries_and_the_first_pass(tmp_path):
    store = ProgressStore(tmp_path)
    store.record("browser-0001", "ufldl", "setup", False, "not yet", now=10.0)
    rec = store.record("browser-0001", "ufldl", "setup", True, "done: numbers", now=20.0)
    assert (rec.tries, rec.failures, rec.passed_at, rec.last_ok, rec.message) == (2, 1, 20.0, True, "done: numbers")
    rec = store.record("browser-0001", "ufldl", "setup", False, "broke it again", now=30.0)
    assert rec.done and rec.passed_at == 20.0 and not rec.last_ok  # once done, done
    assert store.done("browser-0001", "ufldl") == {"setup"}
    assert store.records("browser-0002") == {}  # another browser
    assert (tmp_path / DB_FILE).exists()


def test_progress_survives_a_new_store_object_and_a_new_process(tmp_path):
    ProgressStore(tmp_path).record("browser-0003", "beta", "kills", True, "units died at β = 50")
    assert ProgressStore(tmp_path).done("browser-0003", "beta") == {"kills"}
    code = ("import sys; from sae.app.lesson_progress import ProgressStore\n"
            "s = ProgressStore(sys.argv[1]); s.record('browser-0003', 'beta', 'adam', True, 'written elsewhere')\n"
            "print(sorted(s.done('browser-0003', 'beta')))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "['adam', 'kills']", out.stderr[-2000:]
    assert ProgressStore(tmp_path).records("browser-0003")[("beta", "adam")].message == "written elsewhere"


def test_concurrent_checks_are_all_counted(tmp_path):
    store = ProgressStore(tmp_path)

    def tries(k: int) -> None:
        for i in range(20):
            store.record("browser-0004", "ufldl", "terms", (i + k) % 2 == 0, f"try {i}")

    threads = [threading.Thread(target=tries, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec = store.records("browser-0004")[("ufldl", "terms")]
    assert rec.tries == 80 and rec.failures == 40 and rec.done


def test_a_sessions_progress_merges_into_the_learners(tmp_path):
    store = ProgressStore(tmp_path)
    store.record("browser-0005", "ufldl", "setup", False, "old", now=5.0)
    session = SessionProgress()
    session.record("ufldl", "setup", True, "passed in the session", now=8.0)
    session.record("edges", "edges", False, "no edges yet", now=9.0)
    store.merge("browser-0005", session.records())
    recs = store.records("browser-0005")
    assert recs[("ufldl", "setup")] == StepRecord("ufldl", "setup", 2, 1, 8.0, True, "passed in the session", 8.0)
    assert recs[("edges", "edges")].tries == 1 and not recs[("edges", "edges")].done


def test_session_and_learner_progress_share_an_interface(tmp_path):
    for progress in (SessionProgress(), LearnerProgress(ProgressStore(tmp_path), "browser-0006")):
        progress.record("ufldl", "setup", True, "a")
        progress.record("edges", "edges", True, "b")
        assert set(progress.records()) == {("ufldl", "setup"), ("edges", "edges")}
        progress.clear("ufldl")
        assert set(progress.records()) == {("edges", "edges")}
        progress.clear()
        assert progress.records() == {}


def test_bad_keys_and_foreign_files_are_refused(tmp_path):
    store = ProgressStore(tmp_path / "ok")
    for bad in ("", "x" * 65, None):
        with pytest.raises(ValueError):
            store.record(bad, "ufldl", "setup", True, "")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / DB_FILE).write_bytes(b"not a database at all" * 100)
    with pytest.raises(ProgressError, match="move it away"):
        ProgressStore(tmp_path / "garbage")
    (tmp_path / "other").mkdir()
    with sqlite3.connect(tmp_path / "other" / DB_FILE) as db:
        db.execute("CREATE TABLE something (x)")
    with pytest.raises(ProgressError, match="not the Lab's lesson progress"):
        ProgressStore(tmp_path / "other")


def test_the_run_store_beside_it_is_untouched(tmp_path):
    from sae.runs.store import DB_FILE as RUNS_FILE
    from sae.runs.store import RunStore

    with RunStore(tmp_path) as runs:
        before = runs.list()
        ProgressStore(tmp_path).record("browser-0007", "ufldl", "setup", True, "")
    with sqlite3.connect(tmp_path / RUNS_FILE) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "progress" not in tables
    with RunStore(tmp_path) as runs:  # opens as before
        assert runs.list() == before
