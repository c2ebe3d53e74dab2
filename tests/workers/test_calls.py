"""One call in a worker process (the experiments' and sweep cells' path): results, progress, stop, errors."""

import os
import signal
import time
from functools import partial

import pytest

from sae.core.config import ConfigError
from sae.training.progress import Cancelled, Progress
from sae.workers.calls import WorkerLost, call_in_worker, crosses_processes
from sae.workers.process import LocalBackend

from conftest import wait_for


def report_and_return(value, progress):
    progress(0.5, "half way")
    return value, os.getpid()


def run_until_stopped(progress):
    for i in range(10_000):
        progress(i / 10_000, f"step {i}")
        time.sleep(0.01)
    return "not stopped"


def refuse(progress):
    raise ConfigError("rho must be in (0, 1), got 0")


def niceness(progress):
    return os.nice(0)


def pid_then_sleep(path, progress):
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)


MAIN_SCRIPT = """
import os, sys
from functools import partial
with open(os.environ["MARKS"], "a") as marks:
    marks.write(f"{os.getpid()}\\n")  # every process that runs this file leaves a mark
if __name__ == "__main__":
    from sae.training.progress import Progress
    from sae.workers.calls import call_in_worker
    from sae.workers.process import LocalBackend
    from worker_pid import worker_pid
    print(call_in_worker(worker_pid, Progress(), LocalBackend()))
"""


@pytest.fixture(scope="module")
def backend():
    return LocalBackend()


def test_the_result_comes_back_from_another_process(backend):
    progress = Progress()
    value, pid = call_in_worker(partial(report_and_return, {"a": [1, 2]}), progress, backend)
    assert value == {"a": [1, 2]} and pid != os.getpid()
    assert progress.state() == (0.5, "half way")


def test_workers_run_at_the_lowest_priority_below_the_server(backend):
    """Eight busy workers at nice 5 left the server about 28% of the CPU it asked for; at 19, about 90%."""
    if os.environ.get("SAE_LAB_WORKER_NICE") not in (None, "19"):
        pytest.fail("SAE_LAB_WORKER_NICE is set in the test environment; unset it to test the default")
    assert call_in_worker(niceness, Progress(), backend) == 19  # (whatever the server's own niceness)


def test_stop_reaches_the_worker(backend):
    progress = Progress()
    import threading

    outcome = []

    def run():
        try:
            outcome.append(call_in_worker(run_until_stopped, progress, backend))
        except Cancelled:
            outcome.append("cancelled")

    thread = threading.Thread(target=run)
    thread.start()
    assert wait_for(lambda: progress.state()[1].startswith("step"))
    progress.stop()
    thread.join(10)
    assert outcome == ["cancelled"]


def test_the_worker_s_exception_is_raised_here(backend):
    with pytest.raises(ConfigError, match="rho must be in"):
        call_in_worker(refuse, Progress(), backend)


def test_a_killed_worker_is_reported(backend, tmp_path):
    import threading

    path = tmp_path / "pid"
    errors = []

    def run():
        try:
            call_in_worker(partial(pid_then_sleep, str(path)), Progress(), backend)
        except WorkerLost as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=run)
    thread.start()
    assert wait_for(lambda: path.exists() and path.read_text())
    os.kill(int(path.read_text()), signal.SIGKILL)
    thread.join(10)
    assert errors and "SIGKILL" in errors[0]


def test_the_worker_does_not_run_the_server_s_main_script(tmp_path):
    """In the dashboard __main__ is Streamlit's page script: a worker must never execute it again (the
    forkserver's own Popen would, as ``__mp_main__``)."""
    import subprocess
    import sys
    from pathlib import Path

    script, marks = tmp_path / "main_script.py", tmp_path / "marks"
    script.write_text(MAIN_SCRIPT)
    (tmp_path / "worker_pid.py").write_text("import os\n\ndef worker_pid(progress):\n    return os.getpid()\n")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "MARKS": str(marks), "PYTHONPATH": f"{root}:{tmp_path}"})
    assert out.returncode == 0, out.stderr
    worker, lines = out.stdout.split()[-1], marks.read_text().split()
    assert len(lines) == 1 and worker not in lines  # only the main process ran the script


def test_closures_do_not_cross_but_partials_do():
    assert crosses_processes(partial(report_and_return, 1))
    assert not crosses_processes(lambda progress: 1)
