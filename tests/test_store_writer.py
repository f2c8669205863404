"""Tests for the write-behind thread of the network stores (coreactors.stores.writer): waves of
one write per conversation, chains that stop at a failure, ``then``, closing."""

import threading

import pytest

from coreactors.stores.base import StoreError, WriteChain
from coreactors.stores.writer import APPEND, REPLACE, THEN, BatchWriter, Write


class Waves:
    """A write_wave that records each wave and fails the writes it is told to."""

    def __init__(self, hold=False):
        self.waves = []
        self.fail_rows = set()
        self.down = False
        self.gate = threading.Event()
        if not hold:
            self.gate.set()

    def __call__(self, wave):
        self.gate.wait(10)
        if self.down:
            raise StoreError("the store is down")
        self.waves.append([(w.sender_id, w.kind, w.row) for w in wave])
        for write in wave:
            if write.row in self.fail_rows:
                write.error = StoreError("refused " + write.row)


class Outcomes:
    def __init__(self):
        self.seen = {}
        self.lock = threading.Condition()

    def done(self, name):
        def record(error):
            with self.lock:
                self.seen[name] = error
                self.lock.notify_all()
        return record

    def wait(self, count):
        with self.lock:
            assert self.lock.wait_for(lambda: len(self.seen) >= count, 10), self.seen
            return dict(self.seen)


def test_writes_queued_together_share_a_wave_one_per_conversation():
    waves = Waves(hold=True)
    writer = BatchWriter(waves, "test")
    outcomes = Outcomes()
    chains = {name: WriteChain() for name in "abc"}
    writer.submit(Write("a", APPEND, "a0", done=outcomes.done("a0"), chain=chains["a"]))
    # Queued while the first is being written: they go together, a's second in a wave after.
    for row in ("a1", "b0", "c0", "a2", "b1"):
        writer.submit(Write(row[0], APPEND, row, done=outcomes.done(row), chain=chains[row[0]]))
    waves.gate.set()
    assert set(outcomes.wait(6).values()) == {None}
    rows = [[row for _, _, row in wave] for wave in waves.waves]
    flat = [row for wave in rows for row in wave]
    assert [r for r in flat if r[0] == "a"] == ["a0", "a1", "a2"]
    assert all(len({r[0] for r in wave}) == len(wave) for wave in rows)
    assert len(rows) <= 4  # a0 alone, then a1 b0 c0 / a2 b1 (or all of them in three)
    assert all(chain.confirmed == chain.issued for chain in chains.values())
    writer.close()


def test_a_failed_write_fails_the_rest_of_its_chain_and_no_other():
    waves = Waves(hold=True)
    waves.fail_rows.add("a1")
    writer = BatchWriter(waves, "test")
    outcomes = Outcomes()
    a, b = WriteChain(), WriteChain()
    for row, chain in (("a1", a), ("b1", b), ("a2", a), ("b2", b)):
        writer.submit(Write(row[0], APPEND, row, done=outcomes.done(row), chain=chain))
    writer.submit(Write("a", THEN, done=outcomes.done("a-then"), chain=a))
    writer.submit(Write("b", THEN, done=outcomes.done("b-then"), chain=b))
    waves.gate.set()
    seen = outcomes.wait(6)
    assert "refused a1" in str(seen["a1"])
    assert "earlier write" in str(seen["a2"]) and "earlier write" in str(seen["a-then"])
    assert seen["b1"] is None and seen["b2"] is None and seen["b-then"] is None
    assert all(row != "a2" for wave in waves.waves for _, _, row in wave)  # never written
    writer.close()


def test_a_store_that_is_down_fails_the_whole_wave():
    waves = Waves()
    waves.down = True
    writer = BatchWriter(waves, "test")
    write = writer.submit(Write("a", REPLACE, "r"))
    with pytest.raises(StoreError, match="down"):
        write.wait()
    waves.down = False
    writer.submit(Write("a", APPEND, "x")).wait()  # and it goes on when the store is back
    writer.close()


def test_a_write_refused_before_writing_is_only_told_so():
    waves = Waves()
    writer = BatchWriter(waves, "test")
    chain = WriteChain()
    outcomes = Outcomes()
    writer.submit(Write("a", APPEND, done=outcomes.done("bad"), chain=chain,
                        error=StoreError("cannot be encoded")))
    writer.submit(Write("a", APPEND, "later", done=outcomes.done("later"), chain=chain))
    seen = outcomes.wait(2)
    assert "cannot be encoded" in str(seen["bad"]) and "earlier write" in str(seen["later"])
    assert waves.waves == []
    writer.close()


def test_close_writes_what_is_queued_then_refuses():
    waves = Waves(hold=True)
    writer = BatchWriter(waves, "test")
    outcomes = Outcomes()
    for number in range(5):
        writer.submit(Write("s{}".format(number), APPEND, str(number),
                            done=outcomes.done(number)))
    closing = threading.Thread(target=writer.close)
    closing.start()
    waves.gate.set()
    closing.join(10)
    assert set(outcomes.wait(5).values()) == {None}
    late = writer.submit(Write("a", APPEND, "late"))
    with pytest.raises(StoreError, match="closed"):
        late.wait()
