"""Runs made to show the unit states and the run-health check, and a healthy default run that must stay quiet."""

import numpy as np
import pytest

from sae.app.derived import Derived
from sae.app.settings import Settings
from sae.data import load_dataset
from sae.evaluation.units import UnitState
from sae.training.status import RunStatus
from sae.training.trainer import Trainer


@pytest.fixture(scope="module")
def patches():
    return load_dataset("patches")


def _train(data, settings):
    trainer = Trainer(data.X, settings.model_config(data), settings.train_config())
    return trainer, trainer.run()


def _derived(data, settings, snap):
    return Derived(snap, data, np.arange(1000), settings.model_config(data), penalty=settings.penalty)


def test_beta_50_units_on_target_are_not_dead(patches):
    """beta = 50 holds every rho_hat_j at rho = 0.02 with activations that never exceed 0.1: on target, alive."""
    settings = Settings(beta=50.0, epochs=5)
    trainer, snap = _train(patches, settings)
    d = _derived(patches, settings, snap)
    assert np.abs(d.rho_hat / settings.rho - 1).max() < 0.5
    assert len(d.dead) == 0 and d.headline()["dead"] == 0
    assert d.units.counts()[UnitState.ON_TARGET] == settings.n_hidden
    assert "warning" not in snap.reason


def test_sgd_at_lr_3_kills_every_unit_and_the_run_says_so(patches):
    settings = Settings(optimizer="sgd", lr=3.0, epochs=5)
    trainer, snap = _train(patches, settings)
    d = _derived(patches, settings, snap)
    assert len(d.dead) == settings.n_hidden
    assert snap.status == RunStatus.FINISHED
    assert "all 36 units are dead" in snap.reason, snap.reason


@pytest.mark.parametrize("dataset", ["patches", "digits"])
def test_a_healthy_default_run_stays_quiet(dataset):
    data = load_dataset(dataset)
    settings = Settings(dataset=dataset, epochs=5)
    trainer, snap = _train(data, settings)
    assert snap.status == RunStatus.FINISHED and "warning" not in snap.reason, snap.reason
    d = _derived(data, settings, snap)
    assert len(d.dead) == 0
