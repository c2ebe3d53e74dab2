"""Defaults per data set: each built-in set's defaults deliver what the Filters page promises for it
(measured by sae.evaluation.filters), and the URL layer gives them for ``?data=<set>``."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from sae import Trainer
from sae.app.settings import DATASET_DEFAULTS, DATASET_PROMISES, Settings, defaults_for
from sae.data import DATASETS, load_dataset
from sae.evaluation.filters import filter_report
from sae.evaluation.metrics import hidden_activations, reconstructions
from sae.ui.url import check_url, url_params


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as the dashboard's trainers use: on a busy 2-core machine two threads ran 5-10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _train(name: str, **budget):
    """Train ``name`` briefly with its default objective (and the budget / optimiser given)."""
    data = load_dataset(name)
    settings = replace(defaults_for(name), **budget)
    trainer = Trainer(data.X, settings.model_config(data), settings.train_config())
    snap = trainer.run()
    return data, trainer, snap.weights["encoder.weight"]


def test_every_built_in_set_has_defaults_and_a_promise():
    assert set(DATASET_DEFAULTS) == set(DATASETS) == set(DATASET_PROMISES)
    assert defaults_for("patches") == Settings()
    mnist = defaults_for("mnist")  # UFLDL's MNIST settings
    assert (mnist.rho, mnist.beta, mnist.weight_decay, mnist.n_hidden) == (0.1, 3.0, 3e-3, 196)
    assert defaults_for("upload") == Settings(dataset="upload")


def test_the_default_budget_lasts_for_a_demo():
    # 300 epochs on patches took 7.6 s: the default must run for minutes, not seconds
    assert Settings().epochs >= 10_000
    for name in DATASETS:
        data = load_dataset(name)
        settings = defaults_for(name)
        steps_per_epoch = max(1, data.n_samples // min(settings.batch_size, data.n_samples))
        assert settings.epochs * steps_per_epoch >= 100_000, name


def test_patches_defaults_give_oriented_edges():
    _, _, W = _train("patches", optimizer="lbfgs", max_iter=100)
    report = filter_report(W, (8, 8))
    assert report.orientation > 0.3 and report.orientation > 2.5 * report.orientation_noise, report


def test_mnist_defaults_give_strokes_not_templates():
    # measured: whole-digit templates (rho 0.02, lambda 1e-4, or too few samples) score 0.3-0.55, noise ~0.2
    _, _, W = _train("mnist", epochs=25)
    report = filter_report(W, (28, 28))
    assert report.localization > 0.6 and report.localization > 2.5 * report.localization_noise, report


def test_digits_defaults_give_local_blobs_and_strokes():
    _, _, W = _train("digits", optimizer="lbfgs", max_iter=200)
    report = filter_report(W, (8, 8))
    assert report.localization > report.localization_noise + 0.1, report


def test_toy_defaults_give_a_binary_code():
    data, trainer, _ = _train("toy", epochs=1000)
    A = hidden_activations(trainer.model, data.X)
    codes = {tuple(row) for row in np.round(A).astype(int)}
    assert len(codes) == 4  # four inputs, four different on/off patterns of the two units
    assert (reconstructions(trainer.model, data.X).argmax(axis=1) == np.arange(4)).all()


@pytest.mark.parametrize("name", DATASETS)
def test_a_link_with_only_the_data_set_gives_its_defaults(name):
    settings, warnings = check_url({"data": name})
    assert settings == defaults_for(name) and not warnings
    assert url_params(settings) == ({} if name == "patches" else {"data": name})


def test_values_in_the_link_win_over_the_data_sets_defaults():
    settings, _ = check_url({"data": "mnist", "rho": "0.05", "hidden": "64"})
    assert (settings.rho, settings.n_hidden, settings.weight_decay) == (0.05, 64, 3e-3)
    assert url_params(settings) == {"data": "mnist", "rho": "0.05", "hidden": "64"}
    # a value equal to the patches' default but not to MNIST's stays in the link
    assert url_params(replace(defaults_for("mnist"), rho=0.02))["rho"] == "0.02"


def test_a_bad_value_falls_back_to_the_data_sets_default():
    settings, warnings = check_url({"data": "mnist", "rho": "7"})
    assert settings.rho == 0.1 and "default 0.1" in warnings[0]
