"""Tests for coreactors.compact_json: both encoders (the reused C encoder of the
``reused_json_encoder`` fast path, and json.JSONEncoder) write what json's encoder writes."""

import enum
import json
import json.encoder
import math

import numpy as np
import pytest

from coreactors.compact_json import compact_encoder
from coreactors.http.errors import dump_json
from coreactors.stores.base import StoreError, encode_event


class Mood(enum.IntEnum):
    GOOD = 1


class Ratio(float):
    pass


VALUES = [
    None, True, False, 0, -7, 2 ** 70, 1.0, 0.1, 1796536126.7656248, 1e-300, -0.0, "",
    "plain", "quote \" back \\ slash / tab \t newline \n", "caf\u00e9 \u2603 \U0001F600",
    "lone \udc80 surrogate", [], {}, [1, [2, [3, []]]], (1, 2), {"a": {"b": [None, 1.5]}},
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    Mood.GOOD, Ratio(0.25),
    {"event": "user", "timestamp": 1796536126.7656248, "text": "/greet",
     "parse_data": {"intent": {"name": "greet", "confidence": 1.0},
                    "intent_ranking": [{"name": "greet", "confidence": 1.0}], "entities": []},
     "input_channel": None},
]


FAST = pytest.mark.parametrize("fast", [True, False], ids=["reused", "plain"])


@FAST
@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_writes_what_json_writes(value, fast):
    expected = json.JSONEncoder(separators=(",", ":")).encode(value)
    assert compact_encoder(fast=fast)(value) == expected
    assert compact_encoder(allow_nan=False, fast=fast)(value) == expected


@FAST
def test_the_same_encoder_is_reused_many_times(fast):
    encode = compact_encoder(fast=fast)
    for value in VALUES * 3:
        assert encode(value) == json.dumps(value, separators=(",", ":"))


@FAST
def test_non_finite_numbers(fast):
    for number, text in ((math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity")):
        assert compact_encoder(fast=fast)([number]) == "[{}]".format(text)
        with pytest.raises(ValueError):
            compact_encoder(allow_nan=False, fast=fast)({"x": number})


@FAST
def test_default_is_asked_for_other_types_and_without_one_they_are_refused(fast):
    encode = compact_encoder(default=lambda value: value.tolist(), fast=fast)
    assert encode({"scores": np.array([0.5, 0.25])}) == '{"scores":[0.5,0.25]}'
    with pytest.raises(TypeError, match="set"):
        compact_encoder(fast=fast)({"x": {1, 2}})


@FAST
def test_a_cycle_is_refused(fast):
    looped = {"a": []}
    looped["a"].append(looped)
    with pytest.raises(RecursionError):
        compact_encoder(fast=fast)(looped)
    with pytest.raises(StoreError):
        encode_event("s", 0, looped)


def test_without_the_c_accelerator_the_pure_encoder_writes_the_same(monkeypatch):
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    encode = compact_encoder(fast=True)
    for value in VALUES:
        assert encode(value) == json.dumps(value, separators=(",", ":"))


def test_answers_and_events_use_it():
    assert dump_json({"a": [1, math.nan]}) == b'{"a":[1,null]}'
    assert dump_json({"x": np.float32(0.5)}) == b'{"x":0.5}'
    assert encode_event("s", 0, {"event": "bot", "timestamp": 1.5}) == \
        '{"event":"bot","timestamp":1.5}'
