"""What a trained sparse autoencoder does to data: errors, sparsity, PCA of codes, linear probes.

All functions take numpy arrays (or a model and data) and return numpy arrays or floats, so the
dashboard, the CLI and a notebook read the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sae.core.model import SparseAutoencoder, unit_activity
from sae.evaluation.units import UnitState, unit_states


def _tensor(X) -> torch.Tensor:
    """A float32 tensor of X; numpy input is copied (data sets are read-only arrays)."""
    return X.detach().float() if isinstance(X, torch.Tensor) else torch.from_numpy(np.array(X, dtype=np.float32))


@torch.no_grad()
def hidden_activations(model: SparseAutoencoder, X, batch_size: int = 4096) -> np.ndarray:
    """a = f(W1 x + b1) for every sample: (m, n) -> (m, s)."""
    X = _tensor(X)
    return torch.cat([model.encode(X[i:i + batch_size]) for i in range(0, len(X), batch_size)]).numpy()


@torch.no_grad()
def reconstructions(model: SparseAutoencoder, X, batch_size: int = 4096) -> np.ndarray:
    """x_hat for every sample: (m, n) -> (m, n)."""
    X = _tensor(X)
    return torch.cat([model(X[i:i + batch_size])[0] for i in range(0, len(X), batch_size)]).numpy()


def reconstruction_errors(model: SparseAutoencoder, X) -> np.ndarray:
    """Each sample's own error 1/2 ||x_hat_i - x_i||^2: (m, n) -> (m,). (Not a batch mean: a per-sample score.)"""
    X = np.asarray(X, dtype=np.float32)
    return 0.5 * ((reconstructions(model, X) - X) ** 2).sum(axis=1)


def rho_hat(activations: np.ndarray, activation: str = "sigmoid") -> np.ndarray:
    """rho_hat_j = mean_i a_ij (tanh measured on (a+1)/2): (m, s) -> (s,)."""
    return np.asarray(unit_activity(torch.as_tensor(activations), activation).mean(0))


def active(activations: np.ndarray, activation: str = "sigmoid", threshold: float | None = None) -> np.ndarray:
    """Boolean (m, s): unit j counts as active on sample i when its activity exceeds ``threshold``.

    Default threshold: 0 for relu (exact zeros), 0.1 on the [0, 1] activity scale for sigmoid and tanh.
    """
    if threshold is None:
        threshold = 0.0 if activation == "relu" else 0.1
    return unit_activity(torch.as_tensor(activations), activation).numpy() > threshold


def dead_units(activations: np.ndarray, activation: str = "sigmoid", threshold: float | None = None) -> np.ndarray:
    """Indices of units never active on any sample (see ``active``): (m, s) -> (k,)."""
    return np.flatnonzero(~active(activations, activation, threshold).any(axis=0))


def dense_units(activations: np.ndarray, activation: str = "sigmoid", threshold: float | None = None,
                fraction: float = 0.5) -> np.ndarray:
    """Indices of units active on more than ``fraction`` of the samples: (m, s) -> (k,)."""
    return np.flatnonzero(active(activations, activation, threshold).mean(axis=0) > fraction)


def l0_per_sample(activations: np.ndarray, activation: str = "sigmoid", threshold: float | None = None) -> np.ndarray:
    """Number of active units of each sample: (m, s) -> (m,)."""
    return active(activations, activation, threshold).sum(axis=1)


def _treves_rolls(a: np.ndarray, axis: int) -> np.ndarray:
    """Treves-Rolls sparseness S = (1 - (mean a)^2 / mean a^2) / (1 - 1/N) in [0, 1]; 1 = sparsest."""
    n = a.shape[axis]
    mean, mean_sq = a.mean(axis=axis), (a ** 2).mean(axis=axis)
    ratio = np.divide(mean ** 2, mean_sq, out=np.ones_like(mean), where=mean_sq > 0)
    return (1.0 - ratio) / (1.0 - 1.0 / n) if n > 1 else np.zeros_like(mean)


def lifetime_sparsity(activations: np.ndarray, activation: str = "sigmoid") -> np.ndarray:
    """Per unit: how selectively it fires across samples (Treves-Rolls over samples): (m, s) -> (s,)."""
    return _treves_rolls(np.asarray(unit_activity(torch.as_tensor(activations), activation)), axis=0)


def population_sparsity(activations: np.ndarray, activation: str = "sigmoid") -> np.ndarray:
    """Per sample: how few units carry it (Treves-Rolls over units): (m, s) -> (m,)."""
    return _treves_rolls(np.asarray(unit_activity(torch.as_tensor(activations), activation)), axis=1)


@dataclass(frozen=True)
class Summary:
    """Headline numbers of a model on a data set."""

    reconstruction: float  # mean over samples of 1/2 ||x_hat - x||^2
    rho_hat_mean: float
    rho_hat_std: float
    dead_units: int
    dense_units: int
    l0_mean: float
    lifetime_sparsity: float  # mean over units
    population_sparsity: float  # mean over samples


def summarize(model: SparseAutoencoder, X) -> Summary:
    A = hidden_activations(model, X)
    act = model.activation
    r = rho_hat(A, act)
    return Summary(float(reconstruction_errors(model, X).mean()), float(r.mean()), float(r.std()),
                   len(dead_units(A, act)), len(dense_units(A, act)), float(l0_per_sample(A, act).mean()),
                   float(lifetime_sparsity(A, act).mean()), float(population_sparsity(A, act).mean()))


def pca_projection(Z: np.ndarray, n_components: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of Z (m, d) on their first principal components (scikit-learn PCA).

    Returns (coords (m, k), explained_variance_ratio (k,)), k = min(n_components, m, d).
    """
    from sklearn.decomposition import PCA

    Z = np.asarray(Z, dtype=np.float64)
    k = max(1, min(n_components, *Z.shape))
    pca = PCA(n_components=k, random_state=seed).fit(Z)
    return pca.transform(Z), pca.explained_variance_ratio_


def linear_probe(features: np.ndarray, labels: np.ndarray, test_size: float = 0.25, seed: int = 0,
                 max_iter: int = 300) -> float:
    """Held-out accuracy of a logistic regression on ``features`` (m, d) predicting ``labels`` (m,).

    Stratified split; features standardised on the training part only.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels)
    counts = np.unique(labels, return_counts=True)[1]
    stratify = labels if counts.min() >= 2 else None
    Xtr, Xte, ytr, yte = train_test_split(features, labels, test_size=test_size, random_state=seed, stratify=stratify)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    return float(probe.fit(Xtr, ytr).score(Xte, yte))


def probe_accuracy(features: np.ndarray, labels: np.ndarray | None, min_samples: int = 20) -> float | None:
    """:func:`linear_probe` where it means something: None without labels, with a single class or with fewer
    than ``min_samples`` rows; chance (1 / number of classes) when every feature is constant (nothing to
    separate, e.g. the codes of dead units)."""
    if labels is None or len(features) < min_samples:
        return None
    classes = len(np.unique(labels))
    if classes < 2:
        return None
    features = np.asarray(features)
    if features.size == 0 or np.ptp(features, axis=0).max() <= 0:
        return 1.0 / classes
    return linear_probe(features, labels)


def pca_or_zeros(Z: np.ndarray, n_components: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pca_projection`, or zeros ((m, n_components) coordinates, (n_components,) ratios) when every column
    of Z is constant (no direction to find)."""
    Z = np.asarray(Z)
    if Z.size and np.ptp(Z, axis=0).max() > 0:
        return pca_projection(Z, n_components)
    return np.zeros((len(Z), n_components)), np.zeros(n_components)


def probe_codes_vs_raw(model: SparseAutoencoder, X, labels, test_size: float = 0.25, seed: int = 0) -> dict[str, float]:
    """Linear-probe accuracy on the codes a (m, s) against the raw inputs X (m, n), same split."""
    return {"codes": linear_probe(hidden_activations(model, X), labels, test_size, seed),
            "raw": linear_probe(np.asarray(X), labels, test_size, seed)}


PROBE_SAMPLES = 2000  # the final linear probe of evaluate_run fits on at most this many samples (speed)


def evaluate_run(model: SparseAutoencoder, X, labels=None, *, probe: bool = True, probe_samples: int = PROBE_SAMPLES,
                 seed: int = 0, rho: float | None = None) -> tuple[dict[str, float], np.ndarray]:
    """Final metrics of a model on its data, as recorded with a finished run (sae.runs.recorder.RunRecorder).

    Returns ({reconstruction, rho_hat_mean, rho_hat_std, dead_units, dense_units, l0_mean,
    probe_accuracy (only with labels and ``probe``)}, rho_hat (n_hidden,) on all of X).
    The probe (logistic regression on the codes, :func:`linear_probe`) fits on at most
    ``probe_samples`` samples drawn with ``seed``. ``rho``: the run's KL target; with it, dead and dense units are
    counted by :func:`sae.evaluation.units.unit_states` (relative to rho, as the live pages count them); without it
    (L1, TopK) by activity alone.
    """
    X = np.asarray(X, dtype=np.float32)
    A = hidden_activations(model, X)
    act = model.activation
    target = rho
    rho = rho_hat(A, act).astype(np.float64)
    out = {"reconstruction": float(reconstruction_errors(model, X).mean()), "rho_hat_mean": float(rho.mean()),
           "rho_hat_std": float(rho.std()), "l0_mean": float(l0_per_sample(A, act).mean())}
    counts = unit_states(A, target, act).counts()
    out["dead_units"], out["dense_units"] = float(counts[UnitState.DEAD]), float(counts[UnitState.DENSE])
    if probe and labels is not None:
        labels = np.asarray(labels)
        index = np.arange(len(X))
        if len(index) > probe_samples:
            index = np.sort(np.random.default_rng(seed).choice(len(X), probe_samples, replace=False))
        if len(np.unique(labels[index])) >= 2:
            out["probe_accuracy"] = linear_probe(A[index], labels[index], seed=seed)
    return out, rho
