import threading

from sae.workers.mailbox import Mailbox


def test_the_newest_item_wins_and_take_empties_the_box():
    box = Mailbox()
    box.put(1)
    box.put(2)
    assert box.take(0) == 2
    assert box.take(0) is None


def test_take_waits_for_a_put_and_close_wakes_it():
    box = Mailbox()
    got = []
    reader = threading.Thread(target=lambda: got.append(box.take(5)))
    reader.start()
    box.put("x")
    reader.join(5)
    assert got == ["x"]
    reader = threading.Thread(target=lambda: got.append(box.take(5)))
    reader.start()
    box.close()
    reader.join(5)
    assert got == ["x", None] and box.closed


def test_what_was_put_before_close_is_still_taken():
    box = Mailbox()
    box.put("last")
    box.close()
    assert box.take(0) == "last" and box.take(0) is None
