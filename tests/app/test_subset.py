"""sae.app.subset: the rows the derived views use, in an order whose every prefix is representative.

The stored MNIST sample is sorted by class: the views that take "the first N" rows of the subset (the Codes
page's 300 points, the Reconstructions page's "fixed" samples, the activation trace) saw digits 0-3 only.
"""

import numpy as np

from sae.app.job import Job, subset_indices
from sae.app.settings import Settings
from sae.app.subset import stratified_order
from sae.app.views import pick_samples
from sae.data import load_dataset


def test_every_prefix_of_a_stratified_order_has_each_class_in_proportion():
    labels = np.repeat([0, 1, 2, 3], [100, 100, 100, 300])  # sorted, one class three times as common
    order = stratified_order(np.arange(len(labels)), labels, seed=0)
    assert sorted(order.tolist()) == list(range(len(labels)))  # a permutation of the given rows
    for n in (12, 60, 200):
        counts = np.bincount(labels[order[:n]], minlength=4)
        expected = n * np.array([1, 1, 1, 3]) / 6
        assert np.all(np.abs(counts - expected) <= 1.5), (n, counts)
    assert (order == stratified_order(np.arange(len(labels)), labels, seed=0)).all()  # fixed seed: stable views
    assert not (order == stratified_order(np.arange(len(labels)), labels, seed=1)).all()


def test_without_labels_the_order_is_random_not_sorted():
    rows = np.arange(0, 2000, 2)
    order = stratified_order(rows, None, seed=0)
    assert sorted(order.tolist()) == rows.tolist()
    assert abs(np.mean(order[:100]) - np.mean(rows)) < 300  # the first rows are spread over the whole set


def test_views_of_the_sorted_mnist_sample_see_every_digit():
    data = load_dataset("mnist")
    assert (np.diff(data.labels) >= 0).all()  # the stored sample is sorted by class: the trap
    job = Job(Settings(dataset="mnist", n_hidden=16), data, subset_indices(data.n_samples))
    try:
        shares = np.bincount(data.labels[job.subset[:300]], minlength=10) / 300  # the Codes page's 300 points
        assert shares.min() >= 0.06 and shares.max() <= 0.14, shares
        d = job.derived()
        fixed = d.labels[pick_samples(d.errors, 16, "fixed")]  # the Reconstructions page's "fixed" samples
        assert len(np.unique(fixed)) >= 8, fixed
        traced = data.labels[job.subset[:256]]  # the activation trace's rows
        assert len(np.unique(traced)) == 10
    finally:
        job.stop("test over")
