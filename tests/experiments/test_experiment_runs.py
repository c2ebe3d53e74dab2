"""The experiment pages' library: sae.experiments.denoising, sae.experiments.mistake_compare, sae.viz.experiment_figures (no Streamlit).

The anomaly and self-taught runs with a Progress must return the library's own numbers without one (same
split, same training, same scores), and a progress callback given to the library must see the run and stop it;
the denoising and mistake comparisons must show the effects their pages describe.
"""

import re
import threading

import numpy as np
import plotly.graph_objects as go
import pytest

from sae.viz import experiment_figures as fx
from sae.experiments.anomaly import run_anomaly_experiment
from sae.core.config import ModelConfig, TrainConfig
from sae.data import load_dataset
from sae.experiments.denoising import (denoising_train_config, flag_rates, rethreshold, run_anomaly, run_denoising,
                                      run_self_taught_experiment)
from sae.training.progress import Cancelled, Progress
from sae.experiments.mistake_compare import batch_scores, compare_mistake, mistake_train_config
from sae.experiments.mistakes import MISTAKES
from sae.experiments.selftaught import run_self_taught

QUICK_LBFGS = TrainConfig(rho=0.1, beta=3.0, weight_decay=3e-3, optimizer="lbfgs", max_iter=15, seed=0)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """As in the dashboard: small models on a shared 2-core machine run faster (and far steadier) on one
    intra-op thread than on two threads fighting other processes for the cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_run_anomaly_returns_the_library_result(digits):
    progress = Progress()
    ours = run_anomaly(digits.X, digits.labels, (0, 1, 2), ModelConfig(64, 16), QUICK_LBFGS, seed=3,
                       progress=progress)
    assert progress.state() == (0.97, "scoring every test sample by its own reconstruction error")
    lib = run_anomaly_experiment(digits.X, digits.labels, (0, 1, 2), ModelConfig(64, 16), QUICK_LBFGS, seed=3)
    np.testing.assert_array_equal(ours.train_index, lib.train_index)
    np.testing.assert_array_equal(ours.test_index, lib.test_index)
    np.testing.assert_allclose(ours.test_scores, lib.test_scores, rtol=1e-6)
    assert ours.report.auc == pytest.approx(lib.report.auc, abs=1e-9)
    assert ours.threshold == pytest.approx(lib.threshold, rel=1e-9)
    assert (ours.report.tp, ours.report.fp, ours.report.tn, ours.report.fn) == \
        (lib.report.tp, lib.report.fp, lib.report.tn, lib.report.fn)
    assert ours.class_mean_scores == pytest.approx(lib.class_mean_scores, rel=1e-6)


def test_rethreshold_moves_tau_and_the_counts_not_the_roc(digits):
    exp = run_anomaly(digits.X, digits.labels, (0, 1, 2, 3, 4), ModelConfig(64, 16), QUICK_LBFGS)
    same = rethreshold(exp, exp.k)
    assert same.threshold == exp.threshold and same.tp == exp.report.tp
    low, high = rethreshold(exp, 0.0), rethreshold(exp, 4.0)
    assert low.threshold == pytest.approx(exp.train_scores.mean())
    assert low.tp >= high.tp and low.fp >= high.fp and low.auc == high.auc == exp.report.auc
    rates = flag_rates(exp, low.threshold)
    assert set(rates) == set(range(10)) and all(0 <= r <= 1 for r in rates.values())


def test_run_self_taught_experiment_returns_the_library_result(digits):
    progress = Progress()
    ours = run_self_taught_experiment(digits.X, digits.labels, model_config=ModelConfig(64, 16),
                                      train_config=QUICK_LBFGS, seed=1, progress=progress)
    assert progress.state() == (0.91, "logistic regression on the raw pixels")
    lib = run_self_taught(digits.X, digits.labels, model_config=ModelConfig(64, 16), train_config=QUICK_LBFGS, seed=1)
    assert ours.codes_accuracy == pytest.approx(lib.codes_accuracy, abs=1e-12)
    assert ours.raw_accuracy == pytest.approx(lib.raw_accuracy, abs=1e-12)
    np.testing.assert_array_equal(ours.test_index, lib.test_index)
    np.testing.assert_array_equal(ours.feature_index, lib.feature_index)


@pytest.mark.parametrize("run", [run_anomaly_experiment, run_self_taught])
def test_library_progress_callback_sees_every_phase_and_can_stop_the_run(digits, run):
    calls = []
    run(digits.X, digits.labels, model_config=ModelConfig(64, 16), train_config=QUICK_LBFGS,
        progress=lambda fraction, message: calls.append((fraction, message)))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and 0.9 < fractions[-1] < 1.0
    assert calls[0][1].endswith(": starting") and any(" of 15" in m for _, m in calls)

    def stop_at_the_first_step(fraction, message):
        seen.append(message)
        if " step " in message:
            raise Cancelled("stopped")

    seen = []
    long_run = TrainConfig(rho=0.1, beta=3.0, optimizer="adam", epochs=1000, seed=0)  # thousands of steps
    with pytest.raises(Cancelled):
        run(digits.X, digits.labels, model_config=ModelConfig(64, 16), train_config=long_run,
            progress=stop_at_the_first_step)
    step, total = (int(v.replace(",", "")) for v in re.search(r"step ([\d,]+) of ([\d,]+)", seen[-1]).groups())
    assert 0 < step < total  # stopped between two steps, long before the end


def test_run_self_taught_experiment_refuses_overlapping_classes(digits):
    with pytest.raises(ValueError, match="disjoint"):
        run_self_taught_experiment(digits.X, digits.labels, (4, 5), (4, 6))


def test_denoising_beats_the_noisy_input_and_the_plain_model(digits):
    progress = Progress()
    r = run_denoising(digits.X, "gaussian", 0.4, ModelConfig(64, 32), denoising_train_config("gaussian", 0.4, 40),
                      progress=progress)
    i = r.level_index(0.4)
    assert r.levels[i] == 0.4 and r.status == "finished"
    assert r.psnr_denoised[i] > r.psnr_noisy[i] + 1.0  # measured: ~+7 dB on held-out digits
    assert r.psnr_denoised[i] > r.psnr_plain[i]
    assert np.all(np.diff(r.psnr_noisy) < 0)  # more noise, lower PSNR
    k, n = r.clean.shape
    assert r.noisy.shape == r.denoised.shape == r.plain.shape == (len(r.levels), k, n)
    assert r.noisy.min() >= 0 and r.noisy.max() <= 1  # clipped to the data range
    assert r.n_train + r.n_test == len(digits.X)
    assert progress.state()[0] >= 0.96


def test_masking_noise_zeroes_inputs(digits):
    r = run_denoising(digits.X, "masking", 0.5, ModelConfig(64, 16), denoising_train_config("masking", 0.5, 2),
                      plain=False)
    j = r.level_index(0.5)
    zeroed = np.mean((r.noisy[j] == 0) & (r.clean > 0)) / np.mean(r.clean > 0)
    assert 0.3 < zeroed < 0.7 and r.plain is None and r.psnr_plain is None


def test_denoising_refuses_no_noise(digits):
    with pytest.raises(ValueError, match="needs noise"):
        run_denoising(digits.X, train_config=TrainConfig(epochs=1))


def test_progress_stop_cancels_between_steps(digits):
    progress = Progress()
    errors = []

    def target():
        try:
            run_denoising(load_dataset("mnist").X, progress=progress)
        except Cancelled as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    while progress.state()[0] == 0 and thread.is_alive():
        thread.join(0.02)
    progress.stop()
    thread.join(10)
    assert not thread.is_alive() and errors, "the run ended on the stop"


@pytest.mark.parametrize("name", [n for n, m in MISTAKES.items() if m.loss is not None])
def test_compare_mistake_trains_both_sides_from_the_same_start(digits, name):
    r = compare_mistake(name, digits.X, ModelConfig(64, 25), mistake_train_config(max_iter=30))
    assert r.correct.status == "finished" and r.scores is None
    c, w = r.correct, r.wrong
    assert c.W1.shape == w.W1.shape == (25, 64) and c.rho_hat.shape == w.rho_hat.shape == (25,)
    assert c.errors.shape == w.errors.shape == (len(digits.X),)
    if name == "linear_encoder":
        assert w.status == "diverged" and "NaN" in w.reason
        assert (w.rho_hat < 0).any() and np.isnan(w.summary["final_loss"]) and np.isnan(w.summary["dead"])
    else:
        assert w.status == "finished" and np.isfinite(w.summary["final_loss"])


def test_mistake_effects_at_the_page_setting(digits):
    """The page's default (200 L-BFGS iterations, rho 0.05) shows what each explanation says."""
    scalar = compare_mistake("rho_hat_scalar", digits.X)
    assert scalar.wrong.summary["rho_hat_std"] > 20 * scalar.correct.summary["rho_hat_std"]
    assert scalar.wrong.summary["dead"] > scalar.correct.summary["dead"]
    per_act = compare_mistake("kl_per_activation", digits.X)
    assert per_act.wrong.summary["lifetime_sparsity"] < 0.5 * per_act.correct.summary["lifetime_sparsity"]
    on_out = compare_mistake("kl_on_reconstruction", digits.X)
    assert on_out.wrong.summary["reconstruction"] > 4 * on_out.correct.summary["reconstruction"]


def test_batch_mean_score_hides_the_outliers(digits):
    r = compare_mistake("batch_mean_score", digits.X, ModelConfig(64, 25), mistake_train_config(max_iter=60))
    s = r.scores
    assert r.wrong is None and s.n_outliers == 8
    assert s.auc_per_sample > 0.99 and s.hits_per_sample == 8
    assert s.auc_batch_mean < s.auc_per_sample and s.hits_batch_mean < 8
    for start in range(0, len(s.batch_mean), s.batch_size):  # one value per batch
        assert np.all(s.batch_mean[start:start + s.batch_size] == s.batch_mean[start])


def test_batch_scores_with_noise_outliers(digits):
    from sae.training.trainer import Trainer

    trainer = Trainer(digits.X[:1200], ModelConfig(64, 25), mistake_train_config(max_iter=30))
    trainer.run()
    s = batch_scores(trainer.model, digits.X[1200:], n_outliers=5, batch_size=50, outlier="noise")
    assert s.auc_per_sample > 0.99 and s.hits_per_sample == 5 and s.auc_batch_mean < s.auc_per_sample
    with pytest.raises(ValueError, match="outlier"):
        batch_scores(trainer.model, digits.X[:20], 2, outlier="zebra")


def test_figures_are_plotly_figures_with_small_payloads(digits):
    rows = {"noisy": digits.X[:6], "clean": digits.X[6:12]}
    figs = [fx.denoising_grid(rows, (8, 8)),
            fx.psnr_curves(np.array([0.1, 0.2]), np.array([20, 15]), np.array([18, 17]), None, 0.2),
            fx.score_histograms(np.linspace(0, 1, 11), np.arange(10), np.arange(10)[::-1], 0.5, log_y=True),
            fx.roc_figure(np.linspace(0, 1, 5000), np.linspace(0, 1, 5000) ** 0.5, 0.8, (0.1, 0.4)),
            fx.class_bars({0: 0.1, 5: 0.9}, (0,), "t", "flagged"),
            fx.accuracy_figure(0.96, 0.95, chance=0.2),
            fx.rho_hat_comparison(np.full(5, 0.05), np.linspace(-0.2, 0.5, 5), 0.05),
            fx.activation_comparison(np.random.default_rng(0).random((50, 5)), None),
            fx.loss_comparison({"step": np.arange(3), "total": np.ones(3), "reconstruction": np.ones(3)},
                               {"step": np.array([])}),
            fx.batch_score_figure(np.arange(8.0), np.repeat([1.0, 2.0], 4), np.eye(8)[2] > 0, 4)]
    for fig in figs:
        assert isinstance(fig, go.Figure) and len(fig.to_json()) < 200_000
    roc = figs[3]
    assert len(roc.data[1].x) <= 2000  # thinned
    assert "No training steps" in fx.loss_comparison({"step": []}, None).layout.annotations[0].text
    assert fx.log_ticks(np.array([0.5, 40]))["ticktext"] == ["0.5", "1", "2", "5", "10", "20", "50"]
    assert fx.log_ticks(np.array([1e-3, 0.3]), percent=True, mantissas=(1,))["ticktext"] == ["0.1%", "1%", "10%"]
    assert fx.log_ticks(np.array([np.nan, -1.0])) == {}
