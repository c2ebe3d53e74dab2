import numpy as np
import pytest

from sae.training.history import History


def test_keeps_everything_until_full():
    h = History(("step", "loss"), capacity=8)
    for step in range(8):
        h.append(step, [step, 10.0 - step])
    assert len(h) == 8 and h.stride == 1
    np.testing.assert_array_equal(h.to_dict()["step"], np.arange(8))


@pytest.mark.parametrize("n_steps", [9, 100, 12345])
def test_bounded_even_and_spanning(n_steps):
    h = History(("step",), capacity=16)
    for step in range(n_steps):
        if h.wants(step):
            h.append(step, [step])
    steps = h.to_dict()["step"]
    assert len(steps) <= 16
    assert steps[0] == 0 and steps[-1] >= n_steps - h.stride
    assert np.all(np.diff(steps) == h.stride)  # evenly spaced over the whole run


def test_copies_are_independent():
    h = History(("step",), capacity=4)
    h.append(0, [0])
    d = h.to_dict()
    d["step"][0] = 99
    assert h.to_dict()["step"][0] == 0


def test_load_thins_to_capacity():
    h = History(("step", "loss"), capacity=4)
    h.load({"step": np.arange(0, 20, 2), "loss": np.ones(10)})
    d = h.to_dict()
    assert len(d["step"]) <= 4 and d["step"][0] == 0 and h.stride == d["step"][1] - d["step"][0]


def test_rejects_bad_capacity():
    with pytest.raises(ValueError):
        History(("a",), capacity=3)
