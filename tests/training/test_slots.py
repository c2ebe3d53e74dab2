"""sae.training.slots: the queued sentence."""

from sae.training.slots import queued_reason


def test_queued_reason_one_sentence():
    assert queued_reason(4, 1) == "queued: all 4 training slots of this server are busy; 1 run ahead of this one"
    assert queued_reason(1, 0).endswith("; 0 runs ahead of this one")
    assert queued_reason(2, -1).endswith("; 0 runs ahead of this one")  # not in the line (yet): nobody ahead
    assert queued_reason(2, 3).endswith("3 runs ahead of this one")
