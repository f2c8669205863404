"""The pure rooms' structured logger: stdlib records that keep their format and fields."""

import logging

from coreactors.logs import Log, StructuredMessage


def test_records_keep_format_and_fields(caplog):
    log = Log("coreactors.test.logs")
    with caplog.at_level(logging.INFO, logger="coreactors.test.logs"):
        log.info("Slot {slot} of {sender_id} is unknown.", slot="cuisine", sender_id="ann")
    record, = caplog.records
    assert isinstance(record.msg, StructuredMessage)
    assert record.msg.format == "Slot {slot} of {sender_id} is unknown."
    assert record.msg.fields == {"slot": "cuisine", "sender_id": "ann"}
    assert record.getMessage() == "Slot cuisine of ann is unknown."
    assert record.levelno == logging.INFO
    assert record.funcName == "test_records_keep_format_and_fields"  # the caller, not Log


def test_levels_and_failure(caplog):
    log = Log("coreactors.test.logs")
    with caplog.at_level(logging.DEBUG, logger="coreactors.test.logs"):
        log.debug("d")
        log.warn("w")
        log.error("e")
        try:
            raise ValueError("boom")
        except ValueError:
            log.failure("failed on {what}", what="x")
    assert [r.levelno for r in caplog.records] == [
        logging.DEBUG, logging.WARNING, logging.ERROR, logging.ERROR]
    assert caplog.records[-1].exc_info[0] is ValueError
    assert caplog.records[-1].getMessage() == "failed on x"


def test_nothing_is_built_below_the_level(caplog):
    class Loud:
        def __format__(self, spec):
            raise AssertionError("formatted although the level is off")
    log = Log("coreactors.test.logs")
    with caplog.at_level(logging.WARNING, logger="coreactors.test.logs"):
        log.info("{x}", x=Loud())
    assert caplog.records == []


def test_a_wrong_format_keeps_the_message():
    text = str(StructuredMessage("needs {missing}", {"given": 1}))
    assert "needs {missing}" in text and "given" in text
