"""Observers: the list of callbacks a Trainer calls with every Snapshot (sae.training.observers)."""

import logging
import warnings

import numpy as np
import pytest

from sae import ModelConfig, TrainConfig, Trainer
from sae.training.observers import Observers
from sae.training.status import RunStatus


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).random((200, 12)).astype(np.float32)


def trainer_of(X, **kwargs) -> Trainer:
    return Trainer(X, ModelConfig(12, 4), TrainConfig(epochs=2, batch_size=50), snapshot_interval=0.0, **kwargs)


def test_observers_are_called_in_the_order_added():
    calls = []
    observers = Observers([lambda s: calls.append(("a", s))])
    observers.add(lambda s: calls.append(("b", s)))
    observers.notify(1)
    observers.notify(2)
    assert calls == [("a", 1), ("b", 1), ("a", 2), ("b", 2)] and len(observers) == 2


def test_remove_and_replace():
    calls = []
    first, second = (lambda s: calls.append(1)), (lambda s: calls.append(2))
    observers = Observers([first, second])
    observers.remove(first)
    assert first not in observers and list(observers) == [second]
    with pytest.raises(ValueError):
        observers.remove(first)
    with pytest.raises(TypeError):
        observers.add("not callable")
    observers.replace(second, first)
    assert list(observers) == [first]
    observers.replace(None, second)
    observers.replace(first, None)
    assert list(observers) == [second]


def test_a_failing_observer_is_reported_once_and_does_not_stop_the_others(caplog):
    calls = []

    def broken(snapshot):
        raise RuntimeError(f"observer bug {snapshot}")

    observers = Observers([broken, calls.append])
    with caplog.at_level(logging.DEBUG, logger="sae.training.observers"), \
            pytest.warns(RuntimeWarning, match="observer bug 0") as caught:
        for i in range(3):
            observers.notify(i)
    assert calls == [0, 1, 2]  # the observer after the broken one saw every snapshot
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    assert str(observers.error) == "observer bug 2"  # the last exception
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].exc_info[1].args == ("observer bug 0",)
    assert "broken" in warned[0].getMessage()
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 2  # the repeats, quietly


def test_each_failing_observer_is_reported():
    def one(snapshot):
        raise ValueError("one")

    def two(snapshot):
        raise KeyError("two")

    observers = Observers([one, two])
    with pytest.warns(RuntimeWarning) as caught:
        observers.notify(0)
        observers.notify(1)
    assert sorted(str(w.message) for w in caught) == ["on_snapshot callback failed: KeyError('two')",
                                                      "on_snapshot callback failed: ValueError('one')"]


def test_trainer_calls_every_observer_with_every_snapshot(X):
    first, second, third = [], [], []
    trainer = trainer_of(X, on_snapshot=first.append, observers=[second.append])
    trainer.add_observer(third.append)
    assert trainer.observers == (first.append, second.append, third.append)
    final = trainer.run()
    assert first == second and [s.version for s in first] == list(range(final.version + 1))
    assert third == first[1:]  # added after the first (idle) snapshot
    assert final.status == RunStatus.FINISHED and first[-1] is final


def test_trainer_remove_observer_stops_the_calls(X):
    seen, kept = [], []
    trainer = trainer_of(X, observers=[seen.append, kept.append])
    trainer.run(steps=2)
    trainer.remove_observer(seen.append)
    trainer.run()
    assert len(seen) < len(kept) and seen == kept[:len(seen)]
    assert trainer.observers == (kept.append,)
    with pytest.raises(ValueError):
        trainer.remove_observer(seen.append)


def test_an_observer_may_remove_itself_while_being_called(X):
    calls, after = [], []
    trainer = trainer_of(X)

    def once(snapshot):
        calls.append(snapshot.version)
        trainer.remove_observer(once)

    trainer.add_observer(once)
    trainer.add_observer(after.append)
    final = trainer.run()
    assert calls == [1] and [s.version for s in after] == list(range(1, final.version + 1))


def test_on_snapshot_attribute_replaces_its_observer(X):
    old, new, other = [], [], []
    trainer = trainer_of(X, on_snapshot=old.append, observers=[other.append])
    assert trainer.on_snapshot == old.append
    trainer.on_snapshot = new.append
    assert trainer.observers == (other.append, new.append)
    trainer.run()
    assert len(old) == 1 and len(new) == len(other) - 1
    trainer.on_snapshot = None
    assert trainer.observers == (other.append,) and trainer.on_snapshot is None


def test_a_failing_observer_does_not_stop_training_in_the_background(X, caplog):
    seen = []

    def broken(snapshot):
        if snapshot.step > 0:
            raise RuntimeError("observer bug")

    trainer = trainer_of(X, observers=[broken, seen.append])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with caplog.at_level(logging.WARNING, logger="sae.training.observers"):
            trainer.start()
            trainer.join(20)
    assert trainer.latest().status == RunStatus.FINISHED and seen[-1].status == RunStatus.FINISHED
    assert isinstance(trainer.callback_error, RuntimeError)
    assert len([r for r in caplog.records if "broken" in r.getMessage()]) == 1
