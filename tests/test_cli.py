"""The command line: help, gradcheck, a tiny real training run, and clean errors (exit 2, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sae import cli
from sae.core.gradcheck import GradCheck
from sae.runs.files import load_run

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "sae", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_help_explains_every_flag_with_its_default():
    top = run_cli("--help")
    assert top.returncode == 0 and "train" in top.stdout and "gradcheck" in top.stdout
    text = cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    flags = ["--dataset", "--data", "--hidden", "--activation", "--decoder", "--penalty", "--topk", "--rho", "--beta",
             "--weight-decay", "--optimizer", "--lr", "--batch-size", "--epochs", "--max-iter", "--seed", "--out",
             "--quiet"]
    for flag in flags:
        assert flag in text, flag
    flat = " ".join(text.split())
    for default in ("(default: patches)", "(default: 25)", "(default: 0.01)", "(default: 3.0)", "(default: 0.0001)",
                    "(default: lbfgs)", "(default: 400)", "(default: auto)", "(default: kl)"):
        assert default in flat, default
    train = cli.build_parser()._subparsers._group_actions[0].choices["train"]
    for action in train._actions:
        if action.dest != "help":
            assert "(default: " in (action.help or ""), action.option_strings


def test_no_flags_train_the_ufldl_reference_set_up():
    args = cli.build_parser().parse_args(["train"])
    assert (args.dataset, args.hidden, args.activation, args.rho, args.beta, args.weight_decay, args.optimizer,
            args.max_iter, args.seed) == ("patches", 25, "sigmoid", 0.01, 3.0, 1e-4, "lbfgs", 400, 0)


def test_threads_default_to_one_for_small_models_and_can_be_set(tmp_path, capsys, monkeypatch):
    import torch

    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    assert cli.main(["train", "--dataset", "toy", "--max-iter", "5"]) == 0
    assert cli.main(["train", "--dataset", "toy", "--max-iter", "5", "--threads", "2"]) == 0
    assert seen == [1, 2]
    assert "1 torch thread" in capsys.readouterr().err
    assert cli.main(["train", "--dataset", "toy", "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err


def test_gradcheck_passes():
    result = run_cli("gradcheck")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" ok") == 16 and "16/16 passed" in result.stdout


def test_gradcheck_failure_exits_nonzero(monkeypatch, capsys):
    import sae.core.gradcheck

    monkeypatch.setattr(sae.core.gradcheck, "gradient_check_all",
                        lambda seed=0: [GradCheck("sigmoid", "kl", "sigmoid", 1e-11),
                                        GradCheck("tanh", "kl", "sigmoid", 2e-9)])
    assert cli.main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "1/2 passed" in out


def test_train_digits_writes_a_loadable_run(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--dataset", "digits", "--hidden", "16", "--optimizer", "lbfgs", "--max-iter", "15",
                     "--rho", "0.1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for word in ("loss (all data): total", "reconstruction", "sparsity", "weight decay", "mean rho_hat",
                 "dead units", "s training", f"saved {out}"):
        assert word in result.stdout, word
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "history.npz", "filters.png"}
    run = load_run(out)
    assert run.dataset == "digits" and run.model_config.n_inputs == 64 and run.model_config.n_hidden == 16
    assert run.train_config.max_iter == 15 and run.train_config.optimizer == "lbfgs"
    assert 1 <= len(run.history["step"]) <= 15
    png = Image.open(out / "filters.png")
    assert png.size == ((4 * 9 + 1) * 4, (4 * 9 + 1) * 4)  # 4x4 grid of 8x8 filters, 1-pixel borders, scale 4


def test_train_user_csv_in_process(tmp_path, capsys):
    data = tmp_path / "points.csv"
    rng = np.random.default_rng(0)
    np.savetxt(data, rng.normal(size=(40, 5)), delimiter=",")
    out = tmp_path / "csv-run"
    code = cli.main(["train", "--data", str(data), "--hidden", "3", "--epochs", "2", "--quiet", "--out", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: no progress bar
    run = load_run(out)
    assert run.dataset == "file:points.csv"
    assert run.model_config.decoder_activation == "linear"  # auto: the data are not in [0, 1]
    assert not (out / "filters.png").exists()  # 5 features: not images


@pytest.mark.parametrize("args,message", [
    (["train", "--rho", "1.5"], "rho (target activation) must lie strictly between 0 and 1"),
    (["train", "--beta", "-1"], "beta"),
    (["train", "--lr", "0"], "learning rate"),
    (["train", "--hidden", "0"], "n_hidden must be between 1"),
    (["train", "--hidden", "many"], "argument --hidden: invalid int value"),
    (["train", "--dataset", "cifar"], "invalid choice: 'cifar'"),
    (["train", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["train", "--activation", "relu"], "use the L1 or TopK penalty with ReLU"),
    (["train", "--penalty", "topk"], "--penalty topk needs --topk"),
    (["train", "--dataset", "toy", "--hidden", "2", "--topk", "3"], "TopK k must be between 1 and the hidden size 2"),
    (["train", "--data", "/no/such/file.csv"], "Cannot read /no/such/file.csv"),
    (["train", "--dataset", "toy", "--data", "x.csv"], "not allowed with argument"),
    (["train", "--epochs", "0"], "epochs must be > 0"),
    (["train", "--seed", "-1"], "seed must be a whole number >= 0"),
    (["train", "--unknown-flag"], "unrecognized arguments"),
    (["train", "--schedule", "12:beta=lots"], "cannot read the edit '12:beta=lots'"),
    ([], "required: COMMAND"),
])
def test_bad_values_exit_2_with_one_error_line(args, message, capsys):
    try:
        code = cli.main(args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err


def test_bad_inputs_files(tmp_path, capsys):
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("1,2,3\n4,oops,6\n")
    assert cli.main(["train", "--data", str(bad_csv), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert cli.main(["train", "--dataset", "toy", "--quiet", "--out", str(a_file)]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_subprocess_error_has_no_traceback():
    result = run_cli("train", "--dataset", "toy", "--rho", "0")
    assert result.returncode == 2
    assert result.stderr.startswith("error: rho") and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- writes never destroy

def _tree(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_out_holding_a_run_is_refused_naming_resume_and_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--dataset", "toy", "--hidden", "2", "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    before = _tree(out)
    capsys.readouterr()
    assert cli.main(["train", "--dataset", "toy", "--hidden", "3", "--epochs", "1", "--quiet", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "--resume" in captured.err and "--overwrite" in captured.err and captured.err.count("\n") == 1
    assert "loss (all data)" not in captured.out  # refused before training
    assert _tree(out) == before


def test_overwrite_leaves_no_stale_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--dataset", "digits", "--hidden", "4", "--optimizer", "lbfgs", "--max-iter", "2",
                     "--quiet", "--out", str(out)]) == 0
    assert (out / "filters.png").exists()
    assert cli.main(["train", "--dataset", "toy", "--hidden", "3", "--epochs", "1", "--quiet", "--overwrite",
                     "--out", str(out)]) == 0
    assert not (out / "filters.png").exists()  # the 8x8 filters of the digits run are gone with it
    assert load_run(out).model_config.n_hidden == 3
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_out_holding_another_tools_files_is_refused(tmp_path, capsys):
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "config.json").write_text('{"learning_rate": 3}')
    for extra in ([], ["--overwrite"]):
        assert cli.main(["train", "--dataset", "toy", "--epochs", "1", "--quiet", "--out", str(out), *extra]) == 2
        assert "not a run of the Lab" in capsys.readouterr().err
    assert _tree(out) == {"config.json": b'{"learning_rate": 3}'}


def test_unwritable_out_is_found_before_training(tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("")
    assert cli.main(["train", "--dataset", "toy", "--epochs", "1", "--out", str(blocker / "run")]) == 2
    captured = capsys.readouterr()
    assert "not a directory" in captured.err and "loss (all data)" not in captured.out and captured.out == ""


# --------------------------------------------------------------------------- continuing a run

DIGITS_ADAM = ["train", "--dataset", "digits", "--hidden", "6", "--rho", "0.1", "--batch-size", "256", "--quiet",
               "--optimizer", "adam"]


def test_resume_continues_from_the_recorded_step_history_and_optimiser_state(tmp_path, capsys):
    import torch

    straight, out = tmp_path / "straight", tmp_path / "run"
    assert cli.main([*DIGITS_ADAM, "--epochs", "4", "--out", str(straight)]) == 0
    assert cli.main([*DIGITS_ADAM, "--epochs", "2", "--out", str(out)]) == 0
    assert (out / "optimizer.safetensors").exists() and load_run(out).step == 14
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out), "--epochs", "4", "--quiet"]) == 0
    assert f"saved {out}" in capsys.readouterr().out
    run, reference = load_run(out), load_run(straight)
    assert run.step == reference.step == 28
    np.testing.assert_array_equal(run.history["step"], reference.history["step"])
    for name, value in reference.model.state_dict().items():
        assert torch.equal(run.model.state_dict()[name], value), name


def test_resume_with_nothing_left_to_do_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*DIGITS_ADAM, "--epochs", "1", "--out", str(out)]) == 0
    before = _tree(out)
    capsys.readouterr()
    for extra in ([], ["--epochs", "1"]):
        assert cli.main(["train", "--resume", str(out), "--quiet", *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: nothing left to do") and "give --epochs above 1" in err, err
    assert _tree(out) == before


@pytest.mark.parametrize("extra,message", [(["--rho", "0.2"], "--rho cannot change"),
                                           (["--dataset", "toy"], "--dataset cannot change"),
                                           (["--hidden", "25"], "--hidden cannot change")])
def test_resume_refuses_flags_that_would_change_the_run(tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    assert cli.main([*DIGITS_ADAM, "--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out), "--epochs", "2", "--quiet", *extra]) == 2
    assert message in capsys.readouterr().err


def test_resume_of_a_missing_run(tmp_path, capsys):
    assert cli.main(["train", "--resume", str(tmp_path / "nope"), "--epochs", "2"]) == 2
    assert "no run directory" in capsys.readouterr().err


# --------------------------------------------------------------------------- divergence

def test_a_loss_growing_a_million_fold_exits_1_with_the_message(tmp_path, capsys):
    data = tmp_path / "big.npy"
    np.save(data, (np.random.default_rng(0).normal(size=(500, 16)) * 100).astype(np.float32))
    out = tmp_path / "run"
    code = cli.main(["train", "--data", str(data), "--hidden", "8", "--decoder", "linear", "--optimizer", "sgd",
                     "--lr", "1.2", "--beta", "0", "--epochs", "5", "--batch-size", "50", "--quiet", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith("error: diverged: the loss grew to") and "million" in captured.err
    assert "diverged" in captured.out and "finished" not in captured.out
    run = load_run(out)  # the weights kept, with the step they are from
    assert run.step is not None and run.step < 50 and run.optimizer_state is None
    assert f"the weights of step {run.step}" in captured.out


# --------------------------------------------------------------------------- data read as meant

def _pandas_csv(path: Path, frame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_a_pandas_csv_header_is_skipped_and_the_choice_printed(tmp_path, capsys):
    import pandas as pd

    X = np.random.default_rng(0).random((40, 16))
    path = _pandas_csv(tmp_path / "x.csv", pd.DataFrame(X))  # header 0,1,...,15
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(path), "--hidden", "3", "--epochs", "1", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "40 samples x 16 features" in err and "read as a header and skipped" in err
    assert load_run(out).model_config.n_inputs == 16
    assert cli.main(["train", "--data", str(path), "--hidden", "3", "--epochs", "1", "--no-header",
                     "--decoder", "linear"]) == 0
    assert "41 samples x 16 features" in capsys.readouterr().err


def test_labels_column_by_name_or_index_is_not_trained_on(tmp_path, capsys):
    import pandas as pd

    X = np.random.default_rng(0).random((40, 16))
    frame = pd.DataFrame(X)
    frame.insert(0, "label", np.arange(40) % 3)
    named = _pandas_csv(tmp_path / "named.csv", frame)
    plain = tmp_path / "plain.csv"
    np.savetxt(plain, np.column_stack([X, np.arange(40) % 3]), delimiter=",")  # labels last, no header
    for path, column in ((named, "label"), (plain, "-1")):
        out = tmp_path / f"run-{path.stem}"
        assert cli.main(["train", "--data", str(path), "--labels-column", column, "--hidden", "3", "--epochs", "1",
                         "--out", str(out)]) == 0
        assert "labels from column" in capsys.readouterr().err
        assert load_run(out).model_config.n_inputs == 16
    assert cli.main(["train", "--data", str(named), "--labels-column", "colour", "--epochs", "1"]) == 2
    assert "labels column 'colour' not found" in capsys.readouterr().err
    assert cli.main(["train", "--data", str(plain), "--labels-column", "0", "--epochs", "1"]) == 2
    assert "must hold integers; sample 1 has 0.63" in capsys.readouterr().err


def test_help_says_how_npy_shapes_and_headers_are_read():
    text = " ".join(cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help().split())
    assert "(n, h, w)" in text and "images" in text and "--header" in text and "--no-header" in text
    assert "--labels-column" in text


def test_a_schedule_retrains_the_run_a_replay_link_describes(tmp_path, capsys):
    """--schedule applies the edits at their steps: the same weights as a Trainer changed live at those steps."""
    import numpy as np
    import torch

    from sae.core.config import ModelConfig, TrainConfig
    from sae.data import load_dataset
    from sae.training.trainer import Trainer

    out = tmp_path / "run"
    code = cli.main(["train", "--dataset", "digits", "--hidden", "16", "--optimizer", "sgd", "--lr", "0.1",
                     "--batch-size", "64", "--epochs", "2", "--rho", "0.05", "--schedule", "10:beta=10;30:lr=0.05",
                     "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    digits = load_dataset("digits")
    live = Trainer(torch.tensor(digits.X), ModelConfig(64, 16).for_data(digits.X),
                   TrainConfig(optimizer="sgd", lr=0.1, batch_size=64, epochs=2, rho=0.05, seed=0))
    live.run(steps=10)
    live.set_hyperparameters(beta=10.0)
    live.run(steps=20)
    live.set_hyperparameters(lr=0.05)
    live.run()
    saved = load_run(out)
    for name, w in live.model.state_dict().items():
        np.testing.assert_allclose(saved.model.state_dict()[name].numpy(), w.numpy(), rtol=1e-5, atol=1e-6)
