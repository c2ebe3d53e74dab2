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


def test_since_gives_the_rows_a_reader_lacks_and_everything_once_rows_it_holds_changed():
    h = History(("step",), capacity=8)
    for step in range(5):
        h.append(step, [step])
    generation, start, rows = h.since(-1, 0)  # a new reader: everything
    assert start == 0 and list(rows["step"]) == [0, 1, 2, 3, 4]
    h.append(5, [5])
    h.append(6, [6])
    g, start, new = h.since(generation, 5)
    assert (g, start, list(new["step"])) == (generation, 5, [5, 6])
    assert list(h.since(generation, 7)[2]["step"]) == []  # up to date
    for step in range(7, 9):  # the ninth row thins the buffer: the rows a reader holds are no longer there
        h.append(step, [step])
    g2, start, rows = h.since(generation, 7)
    assert g2 != generation and start == 0 and list(rows["step"]) == list(h.to_dict()["step"])
    assert h.since(g2, 99)[1] == 0  # a reader claiming more rows than there are gets everything
    h.load({"step": np.arange(3.0)})
    assert h.since(g2, len(rows["step"]))[1] == 0  # loaded rows replace all
