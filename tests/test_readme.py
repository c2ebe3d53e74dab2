"""Every code block of README.md is run, or is listed here with the reason it cannot be.

- A ```python block runs in this process, in a fresh namespace and a fresh temporary working directory (the
  repository root is importable). ``PYTHON_CHECKS`` then checks what the README says of its outcome.
- A ```bash block whose every command is the Lab's command line (``python -m sae ...`` or ``sae ...``) runs
  command by command, each as ``sys.executable -m sae ...`` in a temporary directory holding the user's file
  the README calls ``my.csv``; every command must exit 0. ``CLI_CHECKS`` then checks the outcome.
- Every other block (installing, serving, benchmarks, the source tree) is listed in ``NOT_RUN`` by its first line,
  with the reason.

A block that is neither run nor listed fails ``test_every_block_is_run_or_listed``, and so do a listing or a check
that matches no block (or several), so neither a new block nor a renamed one slips by unchecked.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

NOT_RUN = {  # first line of a block -> why the tests do not run it
    "python3 -m pip install -e . && streamlit run dashboard.py":
        "installs the Lab into the environment and starts a server; tests/test_packaging.py checks the install "
        "and tests/pages/test_browser.py serves and drives the dashboard",
    "bash scripts/test.sh":
        "installs packages and runs the whole suite: it is the command .ci/run runs",
    "sae/":
        "not code: the source tree, whose parts tests/test_architecture.py checks",
    "# .streamlit/secrets.toml (keep it out of version control)":
        "a server's secrets (placeholders for a login provider); tests/pages/test_pages_owners.py gives AppTest the "
        "same [classroom] table and an st.user login",
    "# on the head node (add --node-ip-address=<its address> on a machine with several networks)":
        "starts a Ray cluster and a server (placeholders for addresses); tests/workers/test_ray.py drives a local "
        "Ray instance",
    "python bench/load.py                                  # N = 1, 8, 16, 50 cycles; bench/results/load.json":
        "a benchmark of many browsers against a served dashboard (minutes); tests/test_load_bench.py checks it",
    "python bench/throughput.py     # minibatch training: the dashboard's trainer vs a plain PyTorch loop":
        "benchmarks that print figures, a minute or more each; not timed tests",
}


@dataclass(frozen=True)
class Block:
    language: str  # the fence's info string ("python", "bash", "" for none)
    code: str
    line: int  # 1-based line of the opening fence in README.md

    @property
    def key(self) -> str:
        """The first non-empty line: how the lists of this file name a block."""
        return next((line.strip() for line in self.code.splitlines() if line.strip()), "")

    @property
    def name(self) -> str:
        return f"README.md line {self.line}: ```{self.language} {self.key[:60]!r}"


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, in order."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        opening = re.match(r"^(\s*)```\s*([^`\s]*)", lines[i])
        if not opening:
            i += 1
            continue
        indent, start = len(opening.group(1)), i
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            i += 1
        if i == len(lines):
            raise AssertionError(f"README.md line {start + 1}: a code block is never closed")
        body = "\n".join(line[indent:] if line[:indent].isspace() else line.lstrip()
                         for line in lines[start + 1:i]) if indent else "\n".join(lines[start + 1:i])
        blocks.append(Block(opening.group(2).lower(), body + "\n", start + 1))
        i += 1
    return blocks


def cli_commands(code: str) -> list[list[str]] | None:
    """The block's commands as argument lists of ``python -m sae``, or None unless every command is the Lab's CLI
    (no shell operators, redirections, variables or other programs)."""
    commands = []
    for logical in code.replace("\\\n", " ").splitlines():
        words = shlex.split(logical, comments=True)
        if not words:
            continue
        if any(set(word) & set("|&;<>$`") for word in words):
            return None
        if words[0] in ("python", "python3") and words[1:3] == ["-m", "sae"]:
            commands.append(words[3:])
        elif words[0] == "sae":
            commands.append(words[1:])
        else:
            return None
    return commands or None


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
PYTHON_BLOCKS = [b for b in BLOCKS if b.language in ("python", "py")]
CLI_BLOCKS = [b for b in BLOCKS if b.language in ("bash", "sh", "shell", "console") and cli_commands(b.code)]


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a, b) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), f"{name} differs by {(wa[name] - wb[name]).abs().max().item():.3g}"


# ----------------------------------------------------------------------------- what the python blocks promise

def check_save_load_continue(ns: dict, cwd: Path) -> None:
    """Run directory files as listed; run.step recorded; the continued run = 20 epochs in one go, exactly."""
    from sae import ModelConfig, Trainer
    from sae.runs.files import load_run

    per_epoch = ns["trainer"].steps_per_epoch
    assert sorted(p.name for p in (cwd / "runs/demo").iterdir()) == \
        ["config.json", "history.npz", "model.safetensors", "optimizer.safetensors"]
    assert ns["run"].step == 10 * per_epoch and ns["run"].dataset == "digits"
    saved = load_run(cwd / "runs/demo")
    assert saved.step == 20 * per_epoch and saved.train_config.epochs == 20
    assert np.array_equal(saved.history["step"], np.arange(20 * per_epoch))
    straight = Trainer(ns["data"].X, ModelConfig(64, 25), replace(ns["config"], epochs=20))
    straight.run()
    assert_same_weights(saved.model, straight.model)


def check_user_file(ns: dict, cwd: Path) -> None:
    """CSV: header skipped, labels out of the features, values as written, scaled into [0, 1]; NPY (n, h, w)."""
    from sae.data import load_array

    table, data = ns["table"], ns["data"]
    raw = load_array(cwd / "my.csv", labels_column="label")
    assert raw.X.shape == (200, 10) and raw.X.dtype == np.float32
    np.testing.assert_allclose(raw.X, table[:, :10], rtol=1e-5, atol=1e-6)  # written with 6 significant digits
    assert np.array_equal(raw.labels, table[:, 10].astype(np.int64))
    assert "header" in raw.description and "label" in raw.description
    assert data.X.min() == 0.0 and data.X.max() == 1.0 and np.array_equal(data.labels, raw.labels)
    images, pictures = ns["images"], ns["pictures"]
    assert images.X.shape == (100, 120) and images.image_shape == (12, 10)
    assert np.array_equal(images.X, pictures.reshape(100, 120).astype(np.float32))  # row by row


def check_run_store(ns: dict, cwd: Path) -> None:
    """The run is on disk (a new store object finds it), finished with its metrics; load + continue_run work."""
    from sae.runs.files import continue_run
    from sae.runs.store import RunStore

    trainer = ns["trainer"]
    with RunStore(cwd / "runs/store") as store:
        (record,) = store.list()
        assert (record.name, record.status, record.dataset) == ("digits, 25 units", "finished", "digits")
        assert record.step == trainer.step_count == 10 * trainer.steps_per_epoch
        assert record.reconstruction is not None and 0.3 < record.probe_accuracy <= 1.0  # 10 classes: chance 0.1
        assert_same_weights(store.load_model(record.id), trainer.model)
        more = continue_run(store.load(record.id), ns["data"].X, epochs=12)
        assert more.step_count == record.step
        more.run()
        assert more.step_count == 12 * trainer.steps_per_epoch


def check_exports(ns: dict, cwd: Path) -> None:
    """The bundle holds the run directory's files and reads back the same model; the codes CSV reads back
    exactly; the filters are a PNG; the reproduce script retrains the same weights."""
    from PIL import Image

    from sae.data import load_array
    from sae.evaluation.metrics import hidden_activations

    trainer, model, data, out = ns["trainer"], ns["model"], ns["data"], cwd / "exports"
    with zipfile.ZipFile(out / "model.zip") as zf:
        assert sorted(zf.namelist()) == ["config.json", "history.npz", "model.safetensors"]
    run = ns["run"]
    assert_same_weights(run.model, model)
    assert (run.step, run.dataset, run.train_config) == (trainer.weights_step, "digits", trainer.config)
    codes = load_array(out / "codes.csv", labels_column="label")
    assert np.array_equal(codes.X, hidden_activations(model, data.X)) and np.array_equal(codes.labels, data.labels)
    with Image.open(io.BytesIO((out / "filters.png").read_bytes())) as png:
        assert png.format == "PNG" and min(png.size) >= 5 * 8
    script: dict = {"__name__": "__main__"}
    exec(compile((out / "reproduce.py").read_text(), str(out / "reproduce.py"), "exec"), script)
    assert_same_weights(script["model"], model)


def check_owners(ns: dict, cwd: Path) -> None:
    """Bob was refused; his copy is his, renamed, its parent alice's run; the teacher trashed alice's run."""
    from sae.runs.store import RunStore

    with RunStore(cwd / "runs/class") as store:
        (copy,) = store.list()
        assert (copy.name, copy.owned_by, copy.parent_id) == ("bob's copy", "bob", ns["run_id"])
        (trashed,) = store.trash.list()
        assert (trashed.id, trashed.name, trashed.owned_by) == (ns["run_id"], "alice's run", "alice")


PYTHON_CHECKS: dict[str, Callable[[dict, Path], None]] = {
    "# Save a trained run to a directory, load it back, continue it": check_save_load_continue,
    "# Read your own data: a CSV with a header row and a labels column, and a .npy of images": check_user_file,
    "# Record a run in a run store, list the runs, load one back": check_run_store,
    "# Export a run: the model, its codes, its filters, a script that retrains it": check_exports,
    "# Who may change a run: the store checks the identity token of every change": check_owners,
}


# ----------------------------------------------------------------------------- what the CLI blocks promise

def check_reference_run(results: list[subprocess.CompletedProcess], cwd: Path) -> None:
    """gradcheck passes all 16 combinations; the reference run's files, J and mean rho_hat are the README's."""
    from sae.runs.files import load_run

    assert "--max-iter" in results[0].stdout
    assert results[1].stdout.strip().endswith("16/16 passed")
    out = results[2].stdout
    total = float(re.search(r"loss \(all data\): total ([0-9.e+-]+)", out).group(1))
    rho_hat = float(re.search(r"mean rho_hat ([0-9.e+-]+)", out).group(1))
    assert abs(total - 0.37299) < 4e-4, out  # README: J = 0.37299 (runs part after ~150 iterations: see Notes)
    assert abs(rho_hat - 0.0109) < 5e-4, out  # README: mean rho_hat = 0.0109
    folder = cwd / "runs/ufldl"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "filters.png", "history.npz",
                                                        "model.safetensors"]
    assert load_run(folder).step == 400


def check_resume_and_own_file(results: list[subprocess.CompletedProcess], cwd: Path) -> None:
    """--resume trains 20 more epochs into the same directory, to the weights of 40 epochs in one go; --data
    keeps the labels column out of the features."""
    from sae import Trainer
    from sae.data import load_dataset
    from sae.runs.files import load_run

    first = int(re.search(r"finished: 20 epochs \((\d+) steps\)", results[0].stdout).group(1))
    assert f"in all (from step {first})" in results[1].stdout
    run = load_run(cwd / "runs/digits")
    assert run.step == 2 * first and run.train_config.epochs == 40
    assert "optimizer.safetensors" in {p.name for p in (cwd / "runs/digits").iterdir()}
    assert np.array_equal(run.history["step"], np.arange(2 * first))
    straight = Trainer(load_dataset("digits").X, run.model_config, run.train_config)
    straight.run()  # on one thread (one_torch_thread), as the CLI trains this model
    torch.testing.assert_close(weights(run.model), weights(straight.model), rtol=1e-5, atol=1e-6)
    mine = load_run(cwd / "runs/mine")
    assert mine.dataset == "file:my.csv" and mine.model_config.n_inputs == 64
    assert (cwd / "runs/mine/filters.png").exists()  # 64 = 8 x 8 values per row: images


CLI_CHECKS: dict[str, Callable[[list[subprocess.CompletedProcess], Path], None]] = {
    "python -m sae train --help": check_reference_run,
    "python -m sae train --dataset digits --hidden 36 --rho 0.1 --optimizer adam --epochs 20 --out runs/digits":
        check_resume_and_own_file,
}


def write_users_file(cwd: Path) -> None:
    """``my.csv``, the reader's own file in the README: a header row, 64 pixel columns and a ``label`` column."""
    from sae.data import load_dataset

    digits = load_dataset("digits")
    table = np.column_stack([digits.X[:300], digits.labels[:300]])
    header = ",".join([f"pixel{j}" for j in range(64)] + ["label"])
    np.savetxt(cwd / "my.csv", table, delimiter=",", fmt="%.6g", header=header, comments="")


# ----------------------------------------------------------------------------- the tests

def test_every_block_is_run_or_listed():
    assert BLOCKS, "no code blocks found in README.md"
    problems = []
    for block in BLOCKS:
        runnable = block in PYTHON_BLOCKS or block in CLI_BLOCKS
        listed = block.key in NOT_RUN
        if block in PYTHON_BLOCKS and listed:
            problems.append(f"{block.name}: a python block is always run; remove it from NOT_RUN")
        elif runnable and listed:
            problems.append(f"{block.name}: it runs only the Lab's CLI, so it is run; remove it from NOT_RUN")
        elif not runnable and not listed:
            problems.append(f"{block.name}: neither run nor listed: make it runnable, or add its first line to "
                            f"NOT_RUN in tests/test_readme.py with the reason")
    for key in [*NOT_RUN, *PYTHON_CHECKS, *CLI_CHECKS]:
        count = sum(block.key == key for block in BLOCKS)
        if count != 1:
            problems.append(f"{key!r} (listed in tests/test_readme.py) names {count} README blocks, not one")
    for key in PYTHON_CHECKS:
        if not any(b.key == key for b in PYTHON_BLOCKS):
            problems.append(f"PYTHON_CHECKS: {key!r} is not the first line of a python block")
    for key in CLI_CHECKS:
        if not any(b.key == key for b in CLI_BLOCKS):
            problems.append(f"CLI_CHECKS: {key!r} is not the first line of a CLI block")
    assert not problems, "\n".join(problems)


def test_block_parser_finds_fences_and_the_cli():
    text = "# t\n```python\nx = 1\n```\ntext\n```\ntree/\n```\n  ```bash\n  sae train \\\n    --epochs 2  # c\n  ```\n"
    blocks = readme_blocks(text)
    assert [(b.language, b.key, b.line) for b in blocks] == [("python", "x = 1", 2), ("", "tree/", 6),
                                                            ("bash", "sae train \\", 9)]
    assert cli_commands(blocks[2].code) == [["train", "--epochs", "2"]]
    for code in ("pip install -e . && sae train\n", "python bench/load.py\n", "sae train > out.txt\n",
                 "SAE_LAB_DATA=x sae train\n", "ray start --head\n", "# only a comment\n"):
        assert cli_commands(code) is None, code
    with pytest.raises(AssertionError, match="never closed"):
        readme_blocks("```python\nx = 1\n")


@pytest.fixture
def one_torch_thread():
    """Train on one torch thread, as the CLI and the dashboard do for these small models: on a busy 2-core machine a
    second thread only waits (the README's Threads note); the results agree to rounding."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: f"line{b.line}")
def test_python_block_runs(block, tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    code = "\n" * block.line + block.code  # tracebacks give README.md's own line numbers
    exec(compile(code, str(README), "exec"), namespace)
    check = PYTHON_CHECKS.get(block.key)
    if check is not None:
        check(namespace, tmp_path)


@pytest.mark.parametrize("block", CLI_BLOCKS, ids=lambda b: f"line{b.line}")
def test_cli_block_runs(block, tmp_path, one_torch_thread):
    write_users_file(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    results = []
    for args in cli_commands(block.code):
        result = subprocess.run([sys.executable, "-m", "sae", *args], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=300, check=False)
        assert result.returncode == 0, f"{block.name}: python -m sae {shlex.join(args)} exited " \
                                       f"{result.returncode}\n{result.stdout}\n{result.stderr}"
        results.append(result)
    check = CLI_CHECKS.get(block.key)
    if check is not None:
        check(results, tmp_path)
