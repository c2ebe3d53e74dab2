"""Continuing a run for real: from its recorded step, history and optimiser state (saved with the run), to the
same weights as a run that was never interrupted; a call with nothing left to do says so."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae import ConfigError, ModelConfig, TrainConfig, Trainer
from sae.data import load_dataset
from sae.runs.files import continue_run, load_run, save_run
from sae.training.status import RunStatus


@pytest.fixture(scope="module")
def X():
    return load_dataset("digits").X[:400]


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("optimizer,lr", [("adam", 1e-2), ("sgd", 0.3)])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, X, optimizer, lr):
    config = TrainConfig(rho=0.1, optimizer=optimizer, lr=lr, batch_size=64, epochs=2.5, seed=3)
    straight = Trainer(X, ModelConfig(64, 9), TrainConfig(**{**config.__dict__, "epochs": 5.0}))
    straight.run()
    first = Trainer(X, ModelConfig(64, 9), config)
    first.run()  # stops mid-epoch: the batch order of that epoch must be kept too
    save_run(tmp_path / "run", first.model, first.config, first.history(), "digits", step=first.step_count,
             optimizer_state=first.optimizer_state())
    run = load_run(tmp_path / "run")
    assert run.step == first.step_count == 15 and run.optimizer_state is not None
    trainer = continue_run(run, X, epochs=5)
    snap = trainer.run()
    assert snap.status == RunStatus.FINISHED and snap.step == straight.step_count == 30
    for name, value in weights(straight.model).items():
        torch.testing.assert_close(trainer.model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    np.testing.assert_array_equal(trainer.history()["step"], straight.history()["step"])
    np.testing.assert_allclose(trainer.history()["total"], straight.history()["total"], rtol=1e-6)


def test_continue_run_takes_a_path_and_lbfgs_restarts_its_memory(tmp_path, X):
    first = Trainer(X, ModelConfig(64, 9), TrainConfig(rho=0.1, optimizer="lbfgs", max_iter=5))
    first.run()
    save_run(tmp_path / "run", first.model, first.config, first.history(), "digits", step=first.step_count,
             optimizer_state=first.optimizer_state())
    trainer = continue_run(tmp_path / "run", X, max_iter=8)
    assert trainer.step_count == 5 and trainer.run().step == 8
    assert len(trainer.history()["step"]) == 8


def test_nothing_left_to_do_is_said_not_an_empty_loss(tmp_path, X):
    first = Trainer(X, ModelConfig(64, 9), TrainConfig(rho=0.1, batch_size=64, epochs=1))
    first.run()
    again = Trainer(X, config=first.config, model=first.model, start_step=first.step_count, history=first.history())
    snap = again.run()
    assert snap.step == first.step_count
    assert snap.reason.startswith("nothing left to do") and "set_budget" in snap.reason
    assert set(snap.losses) == {"total", "reconstruction", "sparsity", "weight_decay"}  # of the weights it holds
    save_run(tmp_path / "run", first.model, first.config, first.history(), step=first.step_count)
    with pytest.raises(ConfigError, match="nothing left to do: .*at epoch 1 of 1.*epochs above 1"):
        continue_run(tmp_path / "run", X)
    with pytest.raises(ConfigError, match="nothing left to do"):
        continue_run(tmp_path / "run", X, epochs=1)
    assert continue_run(tmp_path / "run", X, epochs=2).run().step == 2 * first.step_count


def test_a_run_without_optimiser_state_continues_with_a_fresh_one(tmp_path, X):
    first = Trainer(X, ModelConfig(64, 9), TrainConfig(rho=0.1, batch_size=64, epochs=1))
    first.run()
    save_run(tmp_path / "run", first.model, first.config, first.history(), step=first.step_count)
    assert load_run(tmp_path / "run").optimizer_state is None
    assert continue_run(tmp_path / "run", X, epochs=2).run().status == RunStatus.FINISHED


def test_optimiser_state_of_another_model_is_refused(X):
    first = Trainer(X, ModelConfig(64, 9), TrainConfig(rho=0.1, batch_size=64, epochs=1))
    first.run()
    with pytest.raises(ConfigError, match="optimiser state"):
        Trainer(X, ModelConfig(64, 7), TrainConfig(rho=0.1, batch_size=64, epochs=2),
                optimizer_state=first.optimizer_state())
