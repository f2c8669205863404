"""Tests for the domain, its slots and its templates (semantics note, section 3).

Deliberate differences from Rasa tested here: 7 default actions (no action_back), broken
domains raise ``InvalidDomain`` whose message names the source file and the key.
"""

import os
import random
import textwrap

import pytest
import yaml

from coreactors.dialogue.domain import DEFAULT_ACTION_NAMES, Domain, InvalidDomain, UnknownAction
from coreactors.dialogue.events import SlotSet
from coreactors.dialogue.slots import (
    BooleanSlot, CategoricalSlot, FloatSlot, ListSlot, TextSlot, UnfeaturizedSlot)
from coreactors.dialogue.templates import TemplatedNaturalLanguageGenerator, fill_template
from shared_data import SHARED_DATA

FIXTURES = os.path.join(SHARED_DATA, "fixtures")

DEFAULTS = ["action_listen", "action_restart", "action_default_fallback",
            "action_deactivate_form", "action_revert_fallback_events",
            "action_default_ask_affirmation", "action_default_ask_rephrase"]

# The domain of the /domain example in section 3.8.
EXAMPLE_YAML = """
intents:
  - greet
  - inform:
      use_entities: false
  - bye:
      triggers: utter_bye
entities:
  - name
  - cuisine
slots:
  raw:
    type: unfeaturized
    initial_value: 5
    auto_fill: false
  num:
    type: float
    max_value: 10
    min_value: 0
  cuisine:
    type: categorical
    values: [Thai, italian]
templates:
  utter_greet:
    - text: "hi {name}"
    - text: hello
      buttons:
        - title: a
          payload: /greet
actions:
  - utter_greet
  - utter_bye
  - action_custom
forms:
  - restaurant_form
"""


def load(text, source="test-domain.yml"):
    return Domain.from_yaml(textwrap.dedent(text), source)


def slot_domain(settings):
    """A domain with one slot ``s`` of the given settings."""
    return Domain.from_dict({"slots": {"s": settings}})


def features(settings, value):
    slot = slot_domain(settings).fresh_slots()["s"]
    slot.value = value
    return slot.as_feature()


def fixture_path(relative):
    path = os.path.join(FIXTURES, relative)
    if not os.path.exists(path):
        pytest.skip("shared fixture {} is not available (no shared data folder)".format(path))
    return path


# --------------------------------------------------------------------------- basic loading

def test_empty_domain():
    for text in ("", "{}\n", "intents:\nentities:\nslots:\ntemplates:\nactions:\nforms:\n"):
        domain = load(text)
        assert domain.intents == []
        assert domain.entities == []
        assert domain.slots == []
        assert domain.templates == {}
        assert domain.action_names == DEFAULTS
        assert domain.form_names == []
        assert domain.store_entities_as_slots is True


def test_intents_sorted_and_entities_in_file_order():
    domain = load("""
        intents: [greet, affirm, bye]
        entities: [zeta, alpha, mid]
    """)
    assert domain.intents == ["affirm", "bye", "greet"]
    assert domain.entities == ["zeta", "alpha", "mid"]


def test_slots_sorted_by_name():
    domain = load("""
        slots:
          b: {type: text}
          a: {type: bool}
          c: {type: list}
    """)
    assert [s.name for s in domain.slots] == ["a", "b", "c"]
    assert [type(s) for s in domain.slots] == [BooleanSlot, TextSlot, ListSlot]


def test_load_from_file(tmp_path):
    path = tmp_path / "domain.yml"
    path.write_text("intents: [greet]\nactions: [utter_greet]\n", encoding="utf-8")
    domain = Domain.load(str(path))
    assert domain.intents == ["greet"]
    assert domain.action_names == DEFAULTS + ["utter_greet"]


def test_default_with_slots_fixture():
    domain = Domain.load(fixture_path("test_domains/default_with_slots.yml"))
    assert len(domain.intents) == 10
    assert set(domain.intents) == {"greet", "default", "goodbye", "affirm", "thank_you",
                                   "change_bank_details", "simple", "hello", "why",
                                   "next_intent"}
    assert domain.action_names == DEFAULTS + ["utter_default", "utter_greet", "utter_goodbye"]
    assert domain.num_actions == 10
    assert [s.name for s in domain.slots] == ["name"]
    assert domain.templates["utter_goodbye"] == [{"text": "goodbye 😢"}, {"text": "bye bye 😢"}]
    assert domain.templates["utter_greet"] == [{"text": "hey there {name}!"}]


def test_form_fixture_adds_requested_slot():
    domain = Domain.load(fixture_path("test_domains/form.yml"))
    assert domain.form_names == ["some_form"]
    assert domain.action_names[-1] == "some_form"
    assert [s.name for s in domain.slots] == ["cuisine", "location", "requested_slot"]


# --------------------------------------------------------------------------- slots

@pytest.mark.parametrize("settings, value, expected", [
    # text
    ({"type": "text"}, None, [0.0]),
    ({"type": "text"}, "x", [1.0]),
    ({"type": "text"}, "", [1.0]),
    ({"type": "text"}, [], [1.0]),
    ({"type": "text"}, 0, [1.0]),
    # bool: two features, "is set" and "is true"
    ({"type": "bool"}, None, [0.0, 0.0]),
    ({"type": "bool"}, True, [1.0, 1.0]),
    ({"type": "bool"}, False, [1.0, 0.0]),
    ({"type": "bool"}, "1", [1.0, 1.0]),
    ({"type": "bool"}, "0", [1.0, 0.0]),
    ({"type": "bool"}, 2, [1.0, 1.0]),
    ({"type": "bool"}, "true", [0.0, 0.0]),
    ({"type": "bool"}, [1], [0.0, 0.0]),
    # categorical: one-hot over lower-cased values
    ({"type": "categorical", "values": ["Thai", "italian"]}, "thai", [1.0, 0.0]),
    ({"type": "categorical", "values": ["Thai", "italian"]}, "ITALIAN", [0.0, 1.0]),
    ({"type": "categorical", "values": ["Thai", "italian"]}, "greek", [0.0, 0.0]),
    ({"type": "categorical", "values": ["Thai", "italian"]}, None, [0.0, 0.0]),
    ({"type": "categorical", "values": ["a", "None"]}, None, [0.0, 1.0]),
    ({"type": "categorical", "values": [1, 2, True]}, 2, [0.0, 1.0, 0.0]),
    ({"type": "categorical", "values": [1, 2, True]}, "true", [0.0, 0.0, 1.0]),
    # float: clamp to [min, max], scale to [0, 1]
    ({"type": "float"}, None, [0.0]),
    ({"type": "float"}, 0.25, [0.25]),
    ({"type": "float"}, 7, [1.0]),
    ({"type": "float"}, -3, [0.0]),
    ({"type": "float"}, "0.5", [0.5]),
    ({"type": "float"}, "abc", [0.0]),
    ({"type": "float", "min_value": -10, "max_value": 10}, 5, [0.75]),
    ({"type": "float", "min_value": -10, "max_value": 10}, 100, [1.0]),
    ({"type": "float", "min_value": -10, "max_value": 10}, -100, [0.0]),
    ({"type": "float", "min_value": 2, "max_value": 4}, 3.5, [0.75]),
    # list
    ({"type": "list"}, None, [0.0]),
    ({"type": "list"}, [], [0.0]),
    ({"type": "list"}, ["a"], [1.0]),
    ({"type": "list"}, ["a", "b"], [1.0]),
    ({"type": "list"}, 0, [0.0]),
    ({"type": "list"}, 5, [0.0]),
    # unfeaturized
    ({"type": "unfeaturized"}, None, []),
    ({"type": "unfeaturized"}, "anything", []),
])
def test_slot_featurization(settings, value, expected):
    assert features(settings, value) == pytest.approx(expected)
    slot = slot_domain(settings).slots[0]
    assert slot.feature_dimensionality() == len(expected)


def test_feature_dimensionality_per_type():
    domain = load("""
        slots:
          t: {type: text}
          b: {type: bool}
          c: {type: categorical, values: [a, b, c]}
          f: {type: float}
          l: {type: list}
          u: {type: unfeaturized}
    """)
    assert {s.name: s.feature_dimensionality() for s in domain.slots} == {
        "t": 1, "b": 2, "c": 3, "f": 1, "l": 1, "u": 0}


def test_categorical_values_lower_cased():
    domain = load("slots:\n  c: {type: categorical, values: [Thai, ITALIAN, 3]}\n")
    assert domain.slots[0].values == ["thai", "italian", "3"]
    assert domain.as_dict()["slots"]["c"]["values"] == ["thai", "italian", "3"]


def test_float_defaults():
    slot = load("slots:\n  f: {type: float}\n").slots[0]
    assert (slot.min_value, slot.max_value) == (0.0, 1.0)


@pytest.mark.parametrize("settings", [
    "{type: float, min_value: 1, max_value: 1}",
    "{type: float, min_value: 5, max_value: 1}",
    "{type: float, min_value: 2}",
    "{type: float, max_value: -1}",
])
def test_float_min_not_below_max_is_an_error(settings):
    with pytest.raises(InvalidDomain) as info:
        load("slots:\n  f: " + settings + "\n", "float.yml")
    message = str(info.value)
    assert "float.yml" in message and "slots.f" in message
    assert "min_value" in message


def test_float_slot_class_rejects_min_ge_max():
    with pytest.raises(ValueError):
        FloatSlot("f", min_value=1.0, max_value=0.5)


def test_slot_type_names_and_class_paths():
    domain = load("""
        slots:
          a: {type: rasa_core.slots.TextSlot}
          b: {type: BooleanSlot}
          c: {type: boolean}
          d: {type: rasa_core.slots.CategoricalSlot, values: [x]}
          e: {type: coreactors.dialogue.slots.ListSlot}
    """)
    assert [type(s) for s in domain.slots] == [TextSlot, BooleanSlot, BooleanSlot,
                                               CategoricalSlot, ListSlot]


def test_custom_slot_class(tmp_path, monkeypatch):
    (tmp_path / "my_custom_slots.py").write_text(textwrap.dedent("""
        from coreactors.dialogue.slots import Slot

        class CustomSlot(Slot):
            type_name = "custom"
            rasa_class = "my_custom_slots.CustomSlot"

            def as_feature(self):
                return [0.5]
    """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    domain = load("slots:\n  custom:\n    type: my_custom_slots.CustomSlot\n")
    assert type(domain.slots[0]).__name__ == "CustomSlot"
    assert domain.input_states == prev_states_with(["slot_custom_0"])
    state = domain.state_of({}, domain.fresh_slots(), None, None, binary=True)
    assert state == {"slot_custom_0": 0.5}


def prev_states_with(prefix):
    return list(prefix) + ["prev_" + a for a in DEFAULTS]


@pytest.mark.parametrize("type_name", ["blubblubblub", "tests.conftest.Unknown",
                                       "collections.OrderedDict", "os.path", "no_module.Slot"])
def test_unknown_slot_type(type_name):
    with pytest.raises(InvalidDomain) as info:
        load("slots:\n  weird:\n    type: {}\n".format(type_name), "unknown-slot.yml")
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "unknown-slot.yml" in message
    assert "weird" in message
    assert type_name in message


def test_slot_without_type_is_an_error():
    with pytest.raises(InvalidDomain) as info:
        load("slots:\n  notype:\n    initial_value: 1\n", "notype.yml")
    assert "notype.yml" in str(info.value) and "notype" in str(info.value)
    assert "type" in str(info.value)


@pytest.mark.parametrize("slot_yaml, fragment", [
    ("{type: text, values: [a]}", "slots.s"),
    ("{type: categorical}", "slots.s"),
    ("{type: categorical, values: a}", "slots.s"),
    ("{type: bool, auto_fill: 'no'}", "slots.s.auto_fill"),
    ("[text]", "slots.s"),
    ("text", "slots.s"),
    ("{type: float, min_value: low}", "slots.s"),
])
def test_bad_slot_settings(slot_yaml, fragment):
    with pytest.raises(InvalidDomain) as info:
        load("slots:\n  s: {}\n".format(slot_yaml), "bad-slot.yml")
    assert "bad-slot.yml" in str(info.value)
    assert fragment in str(info.value)


def test_slot_common_keys():
    domain = load("""
        slots:
          s:
            type: text
            initial_value: hello
            auto_fill: false
            value_reset_delay: 3
    """)
    slot = domain.slots[0]
    assert (slot.initial_value, slot.auto_fill, slot.value_reset_delay) == ("hello", False, 3)
    assert domain.fresh_slots()["s"].value == "hello"


def test_fresh_slots_are_independent_copies():
    domain = load("slots:\n  c: {type: categorical, values: [a, b], initial_value: a}\n")
    one, two = domain.fresh_slots(), domain.fresh_slots()
    one["c"].value = "b"
    assert two["c"].value == "a"
    assert domain.slots[0].value == "a"
    assert one["c"].values == ["a", "b"]
    assert one["c"] is not domain.slots[0]


def test_slot_reset_and_copy():
    slot = TextSlot("t", initial_value="x")
    slot.value = "y"
    clone = slot.copy()
    assert clone.value == "y" and clone is not slot
    slot.reset()
    assert slot.value == "x"
    assert clone.value == "y"
    assert "object at 0x" not in repr(slot)


def test_persistence_info_per_type():
    assert TextSlot("t").persistence_info() == {
        "type": "rasa_core.slots.TextSlot", "initial_value": None, "auto_fill": True}
    assert BooleanSlot("b", True, False).persistence_info() == {
        "type": "rasa_core.slots.BooleanSlot", "initial_value": True, "auto_fill": False}
    assert ListSlot("l").persistence_info()["type"] == "rasa_core.slots.ListSlot"
    assert UnfeaturizedSlot("u").persistence_info()["type"] == \
        "rasa_core.slots.UnfeaturizedSlot"
    assert FloatSlot("f", max_value=5, min_value=1).persistence_info() == {
        "type": "rasa_core.slots.FloatSlot", "initial_value": None, "auto_fill": True,
        "max_value": 5, "min_value": 1}
    assert CategoricalSlot("c", values=["A"]).persistence_info() == {
        "type": "rasa_core.slots.CategoricalSlot", "initial_value": None, "auto_fill": True,
        "values": ["a"]}


# --------------------------------------------------------------------------- requested_slot

def test_requested_slot_added_with_forms_at_the_end():
    domain = load("""
        slots:
          zz: {type: text}
          aa: {type: text}
        forms: [some_form]
    """)
    assert [s.name for s in domain.slots] == ["aa", "zz", "requested_slot"]
    assert isinstance(domain.slots[-1], UnfeaturizedSlot)
    assert "requested_slot" in domain.as_dict()["slots"]


def test_no_requested_slot_without_forms():
    assert load("slots:\n  a: {type: text}\n").slot("requested_slot") is None


def test_requested_slot_not_added_twice():
    domain = load("""
        slots:
          requested_slot: {type: text}
        forms: [f]
    """)
    assert [s.name for s in domain.slots] == ["requested_slot"]
    assert isinstance(domain.slots[0], TextSlot)


# --------------------------------------------------------------------------- intents

@pytest.mark.parametrize("intents, expected", [
    (["greet", "goodbye"],
     {"greet": {"use_entities": True}, "goodbye": {"use_entities": True}}),
    ([{"greet": {"use_entities": False}}, "goodbye"],
     {"greet": {"use_entities": False}, "goodbye": {"use_entities": True}}),
    ([{"greet": {"triggers": "utter_goodbye"}}, "goodbye"],
     {"greet": {"use_entities": True, "triggers": "utter_goodbye"},
      "goodbye": {"use_entities": True}}),
    ([{"greet": {"triggers": "utter_goodbye", "use_entities": False}},
      {"goodbye": {"use_entities": False}}],
     {"greet": {"use_entities": False, "triggers": "utter_goodbye"},
      "goodbye": {"use_entities": False}}),
    ([{"greet": None}], {"greet": {"use_entities": True}}),
    ([{"greet": {"custom_prop": [1, 2]}}], {"greet": {"use_entities": True,
                                                      "custom_prop": [1, 2]}}),
])
def test_intent_properties(intents, expected):
    domain = Domain.from_dict({"intents": intents})
    assert domain.intent_properties == expected
    assert domain.intents == sorted(expected)


def test_uses_entities():
    domain = Domain.from_dict({"intents": ["greet", {"inform": {"use_entities": False}}]})
    assert domain.uses_entities("greet") is True
    assert domain.uses_entities("inform") is False
    assert domain.uses_entities("unknown_intent") is True
    assert domain.uses_entities(None) is True


def test_repeated_intent_is_merged():
    domain = load("intents: [greet, greet, bye]\n")
    assert domain.intents == ["bye", "greet"]
    assert domain.as_dict()["intents"] == [{"greet": {"use_entities": True}},
                                           {"bye": {"use_entities": True}}]


def test_use_entities_must_be_boolean():
    with pytest.raises(InvalidDomain) as info:
        load("intents:\n  - greet:\n      use_entities: [name]\n", "intents.yml")
    assert "intents.yml" in str(info.value)
    assert "intents.greet.use_entities" in str(info.value)


@pytest.mark.parametrize("props", ["[1, 2]", "foo"])
def test_intent_properties_must_be_a_mapping(props):
    with pytest.raises(InvalidDomain) as info:
        load("intents:\n  - greet: {}\n".format(props), "intent-props.yml")
    assert "intent-props.yml" in str(info.value)
    assert "greet" in str(info.value)


# --------------------------------------------------------------------------- actions

def test_action_index_order():
    domain = load("""
        actions: [utter_greet, utter_bye, action_custom]
        forms: [restaurant_form]
    """)
    assert DEFAULT_ACTION_NAMES == DEFAULTS
    assert domain.action_names == DEFAULTS + ["utter_greet", "utter_bye", "action_custom",
                                              "restaurant_form"]
    assert domain.num_actions == 11
    assert [domain.index_for_action(a) for a in domain.action_names] == list(range(11))
    assert domain.index_for_action("action_listen") == 0
    assert domain.index_for_action("action_default_ask_rephrase") == 6
    assert domain.index_for_action("restaurant_form") == 10
    assert domain.user_actions == ["utter_greet", "utter_bye", "action_custom"]


def test_domain_action_list_with_module_style_names():
    # AC4 with our 7 default actions
    domain = Domain.from_dict({"actions": ["my_module.ActionTest", "utter_test"]})
    assert domain.action_names == DEFAULTS + ["my_module.ActionTest", "utter_test"]


def test_listing_a_default_action_keeps_its_index():
    domain = load("actions: [utter_greet, action_default_fallback, action_listen]\n")
    assert domain.action_names == DEFAULTS + ["utter_greet"]
    assert domain.index_for_action("action_default_fallback") == 2
    assert domain.as_dict()["actions"] == ["utter_greet", "action_default_fallback",
                                           "action_listen"]


@pytest.mark.parametrize("text, duplicate", [
    ("actions: [random_name, random_name]\n", "random_name"),
    ("actions: [a]\nforms: [a]\n", "a"),
    ("forms: [f, f]\n", "f"),
    ("forms: [action_restart]\n", "action_restart"),
])
def test_duplicate_actions(text, duplicate):
    with pytest.raises(InvalidDomain) as info:
        load(text, "dup.yml")
    assert isinstance(info.value, ValueError)
    assert "dup.yml" in str(info.value)
    assert duplicate in str(info.value)


def test_unknown_action_index():
    domain = load("actions: [utter_greet]\n")
    with pytest.raises(UnknownAction) as info:
        domain.index_for_action("utter_nope")
    assert isinstance(info.value, KeyError)
    assert "utter_nope" in str(info.value)
    assert "utter_greet" in str(info.value)
    assert domain.has_action("utter_greet")
    assert not domain.has_action("utter_nope")


# --------------------------------------------------------------------------- templates

def test_template_variants():
    domain = load("""
        templates:
          utter_plain:
            - hello
            - "hi {name}"
          utter_map:
            - text: hey
              buttons:
                - {title: great, payload: /mood_great}
              image: https://example.com/img.png
              custom: {a: 1}
          utter_single_string: just one
          utter_single_map: {text: only map}
    """)
    assert domain.templates == {
        "utter_plain": [{"text": "hello"}, {"text": "hi {name}"}],
        "utter_map": [{"text": "hey", "buttons": [{"title": "great", "payload": "/mood_great"}],
                       "image": "https://example.com/img.png", "custom": {"a": 1}}],
        "utter_single_string": [{"text": "just one"}],
        "utter_single_map": [{"text": "only map"}],
    }


@pytest.mark.parametrize("templates_yaml, fragment", [
    ("  utter_image:\n    - image: https://example.com/i.png\n", "templates.utter_image"),
    ("  utter_x:\n    - hello\n    - buttons: []\n", "variant 2"),
    ("  utter_x: []\n", "templates.utter_x"),
    ("  utter_x:\n", "templates.utter_x"),
    ("  utter_x:\n    - [a, b]\n", "templates.utter_x"),
    ("  utter_x: 5\n", "templates.utter_x"),
])
def test_bad_templates(templates_yaml, fragment):
    with pytest.raises(InvalidDomain) as info:
        load("templates:\n" + templates_yaml, "templates.yml")
    assert "templates.yml" in str(info.value)
    assert fragment in str(info.value)


def test_map_variant_without_text_names_the_text_key():
    with pytest.raises(InvalidDomain, match="'text'"):
        load("templates:\n  utter_image:\n    - image: https://example.com/i.png\n")


# --------------------------------------------------------------------------- other errors

@pytest.mark.parametrize("text, fragment", [
    ("- a\n- b\n", "mapping"),
    ("intents: greet\n", "'intents'"),
    ("intents: {greet: 1}\n", "'intents'"),
    ("entities: name\n", "'entities'"),
    ("entities: [[a]]\n", "'entities'"),
    ("actions: utter_greet\n", "'actions'"),
    ("actions: [{a: 1}]\n", "'actions'"),
    ("forms: {f: 1}\n", "'forms'"),
    ("slots: [a, b]\n", "'slots'"),
    ("templates: [a]\n", "'templates'"),
    ("config: [a]\n", "'config'"),
    ("config:\n  store_entities_as_slots: maybe\n", "config.store_entities_as_slots"),
    ("config:\n  unknown_option: 1\n", "config.unknown_option"),
    ("intents: [greet\n", "YAML"),
])
def test_errors_name_the_file_and_key(tmp_path, text, fragment):
    path = tmp_path / "broken_domain.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidDomain) as info:
        Domain.load(str(path))
    message = str(info.value)
    assert str(path) in message
    assert fragment in message


def test_missing_file_is_an_invalid_domain(tmp_path):
    path = str(tmp_path / "nope.yml")
    with pytest.raises(InvalidDomain) as info:
        Domain.load(path)
    assert path in str(info.value)


def test_unknown_top_level_keys_are_allowed():
    domain = load("intents: [greet]\nsomething_else: 1\n")
    assert domain.intents == ["greet"]


def test_config_keys():
    domain = load("config:\n  store_entities_as_slots: false\n  restart_intent: reset\n")
    assert domain.store_entities_as_slots is False
    assert domain.restart_intent == "reset"
    assert load("").restart_intent == "restart"
    assert domain.as_dict()["config"] == {"store_entities_as_slots": False}


# --------------------------------------------------------------------------- slots_for_entities

ENTITY_DOMAIN = """
entities: [name, cuisine, tags, location, quiet]
slots:
  name: {type: text}
  cuisine: {type: categorical, values: [thai, italian]}
  tags: {type: list}
  location: {type: unfeaturized}
  quiet: {type: text, auto_fill: false}
"""


def test_slots_for_entities():
    domain = load(ENTITY_DOMAIN)
    entities = [{"entity": "name", "value": "Joe"}, {"entity": "tags", "value": "a"},
                {"entity": "name", "value": "Ann"}, {"entity": "tags", "value": "b"},
                {"entity": "cuisine", "value": "thai"}, {"entity": "location", "value": "x"},
                {"entity": "quiet", "value": "q"}, {"entity": "not_a_slot", "value": 1}]
    events = domain.slots_for_entities(entities)
    # Sorted slot order; a list slot collects all values, other slots take the last one;
    # auto_fill false slots are skipped.
    assert events == [SlotSet("cuisine", "thai"), SlotSet("location", "x"),
                      SlotSet("name", "Ann"), SlotSet("tags", ["a", "b"])]
    assert [(e.key, e.value) for e in events] == [("cuisine", "thai"), ("location", "x"),
                                                  ("name", "Ann"), ("tags", ["a", "b"])]


def test_slots_for_entities_single_list_value():
    events = load(ENTITY_DOMAIN).slots_for_entities([{"entity": "tags", "value": "a"}])
    assert [(e.key, e.value) for e in events] == [("tags", ["a"])]


def test_slots_for_entities_nothing_to_fill():
    domain = load(ENTITY_DOMAIN)
    assert domain.slots_for_entities([]) == []
    assert domain.slots_for_entities([{"entity": "other", "value": 1}]) == []
    assert domain.slots_for_entities([{"entity": "quiet", "value": 1}]) == []


def test_slots_for_entities_disabled():
    domain = load(ENTITY_DOMAIN + "config:\n  store_entities_as_slots: false\n")
    assert domain.slots_for_entities([{"entity": "name", "value": "Joe"}]) == []


def test_slots_for_entities_accepts_a_generator():
    domain = load(ENTITY_DOMAIN)
    events = domain.slots_for_entities(e for e in [{"entity": "name", "value": "Joe"}])
    assert [(e.key, e.value) for e in events] == [("name", "Joe")]


# --------------------------------------------------------------------------- input states

def test_input_states_order():
    domain = load(EXAMPLE_YAML)
    assert domain.input_states == [
        "intent_bye", "intent_greet", "intent_inform",
        "entity_name", "entity_cuisine",
        "slot_cuisine_0", "slot_cuisine_1", "slot_num_0",
        "prev_action_listen", "prev_action_restart", "prev_action_default_fallback",
        "prev_action_deactivate_form", "prev_action_revert_fallback_events",
        "prev_action_default_ask_affirmation", "prev_action_default_ask_rephrase",
        "prev_utter_greet", "prev_utter_bye", "prev_action_custom", "prev_restaurant_form",
        "active_form_restaurant_form",
    ]
    assert domain.num_states == len(domain.input_states)
    assert domain.input_state_index["slot_num_0"] == 7


def test_input_states_bool_slot_has_two_features():
    domain = load("slots:\n  b: {type: bool}\n  a: {type: list}\n")
    assert domain.input_states[:3] == ["slot_a_0", "slot_b_0", "slot_b_1"]


def test_compare_with_states():
    domain = load(EXAMPLE_YAML)
    domain.compare_with_states(list(domain.input_states))
    with pytest.raises(InvalidDomain, match="[Rr]etrain"):
        domain.compare_with_states(domain.input_states[:-1])
    with pytest.raises(InvalidDomain):
        domain.compare_with_states(list(reversed(domain.input_states)))


# --------------------------------------------------------------------------- state_of

STATE_DOMAIN = """
intents:
  - greet
  - inform:
      use_entities: false
entities: [name, cuisine]
slots:
  name: {type: text}
  flag: {type: bool}
  raw: {type: unfeaturized}
  level: {type: float, max_value: 4}
actions: [utter_greet]
forms: [some_form]
"""


def parse(intent, confidence=1.0, entities=(), ranking=None):
    data = {"intent": {"name": intent, "confidence": confidence},
            "entities": [{"entity": e, "value": "v", "start": 0, "end": 1} for e in entities],
            "text": "x"}
    if ranking is not None:
        data["intent_ranking"] = [{"name": n, "confidence": c} for n, c in ranking]
    return data


def test_state_of_full():
    domain = load(STATE_DOMAIN)
    slots = domain.fresh_slots()
    slots["name"].value = "Joe"
    slots["flag"].value = False
    slots["raw"].value = "ignored"
    slots["level"].value = 1
    state = domain.state_of(parse("greet", 0.9, ["name", "cuisine"]), slots, "utter_greet",
                            "some_form", binary=True)
    assert state == {"intent_greet": 1.0, "entity_name": 1.0, "entity_cuisine": 1.0,
                     "slot_name_0": 1.0, "slot_flag_0": 1.0, "slot_level_0": 0.25,
                     "prev_utter_greet": 1.0, "active_form_some_form": 1.0}


def test_state_of_empty():
    domain = load(STATE_DOMAIN)
    assert domain.state_of({"intent": {}, "entities": [], "text": None}, domain.fresh_slots(),
                           None, None, binary=True) == {}
    assert domain.state_of({}, {}, None, None, binary=False) == {}


def test_state_of_use_entities_false_drops_entity_features():
    domain = load(STATE_DOMAIN)
    slots = domain.fresh_slots()
    slots["name"].value = "Joe"
    state = domain.state_of(parse("inform", 1.0, ["name", "cuisine"]), slots, "action_listen",
                            None, binary=True)
    assert state == {"intent_inform": 1.0, "slot_name_0": 1.0, "prev_action_listen": 1.0}


def test_state_of_binary_keeps_only_top_intent():
    domain = load(STATE_DOMAIN)
    data = parse("greet", 0.6, ranking=[("greet", 0.6), ("inform", 0.4)])
    assert domain.state_of(data, {}, None, None, binary=True) == {"intent_greet": 1.0}


def test_state_of_training_keeps_intent_ranking():
    domain = load(STATE_DOMAIN)
    data = parse("greet", 0.6, ranking=[("greet", 0.6), ("inform", 0.4), (None, 0.1)])
    assert domain.state_of(data, {}, None, None, binary=False) == {
        "intent_greet": 0.6, "intent_inform": 0.4}


def test_state_of_training_without_ranking_uses_confidence():
    domain = load(STATE_DOMAIN)
    assert domain.state_of(parse("greet", 0.3), {}, None, None, binary=False) == {
        "intent_greet": 0.3}
    no_confidence = {"intent": {"name": "greet"}, "entities": []}
    assert domain.state_of(no_confidence, {}, None, None, binary=False) == {"intent_greet": 1.0}


def test_state_of_skips_unknown_actions_and_entities_without_name():
    domain = load(STATE_DOMAIN)
    data = {"intent": {"name": "greet"}, "entities": [{"value": "x"}, {"entity": "name"}]}
    state = domain.state_of(data, {}, "not_an_action", None, binary=True)
    assert state == {"intent_greet": 1.0, "entity_name": 1.0}


def test_state_of_only_nonzero_slot_features():
    domain = load(STATE_DOMAIN)
    slots = domain.fresh_slots()
    slots["flag"].value = True
    slots["level"].value = 0
    assert domain.state_of({}, slots, None, None, binary=True) == {
        "slot_flag_0": 1.0, "slot_flag_1": 1.0}


def test_state_features_are_input_states():
    domain = load(STATE_DOMAIN)
    slots = domain.fresh_slots()
    for slot in slots.values():
        slot.value = True
    state = domain.state_of(parse("greet", 1.0, ["name", "cuisine"]), slots, "some_form",
                            "some_form", binary=True)
    assert set(state) <= set(domain.input_states)


# --------------------------------------------------------------------------- as_dict / as_yaml

def test_as_dict_example():
    domain = load(EXAMPLE_YAML)
    assert domain.as_dict() == {
        "config": {"store_entities_as_slots": True},
        "intents": [{"greet": {"use_entities": True}},
                    {"inform": {"use_entities": False}},
                    {"bye": {"triggers": "utter_bye", "use_entities": True}}],
        "entities": ["name", "cuisine"],
        "slots": {"cuisine": {"type": "rasa_core.slots.CategoricalSlot",
                              "initial_value": None, "auto_fill": True,
                              "values": ["thai", "italian"]},
                  "num": {"type": "rasa_core.slots.FloatSlot", "initial_value": None,
                          "auto_fill": True, "max_value": 10, "min_value": 0},
                  "raw": {"type": "rasa_core.slots.UnfeaturizedSlot",
                          "initial_value": 5, "auto_fill": False},
                  # The form machinery's slot, as /domain shows it with forms.
                  "requested_slot": {"type": "rasa_core.slots.UnfeaturizedSlot",
                                     "initial_value": None, "auto_fill": True}},
        "templates": {"utter_greet": [{"text": "hi {name}"},
                                      {"text": "hello",
                                       "buttons": [{"title": "a", "payload": "/greet"}]}]},
        "actions": ["utter_greet", "utter_bye", "action_custom"],
        "forms": ["restaurant_form"],
    }
    assert list(domain.as_dict()) == ["config", "intents", "entities", "slots", "templates",
                                      "actions", "forms"]
    assert list(domain.as_dict()["slots"]) == ["cuisine", "num", "raw", "requested_slot"]


def test_as_dict_is_a_copy():
    domain = load(EXAMPLE_YAML)
    data = domain.as_dict()
    data["templates"]["utter_greet"][0]["text"] = "changed"
    data["actions"].append("x")
    data["intents"][0]["greet"]["use_entities"] = False
    assert domain.templates["utter_greet"][0]["text"] == "hi {name}"
    assert domain.user_actions == ["utter_greet", "utter_bye", "action_custom"]
    assert domain.uses_entities("greet") is True


def test_as_yaml_exact():
    domain = Domain.from_dict({"actions": ["utter_greet"],
                               "config": {"store_entities_as_slots": True},
                               "entities": [], "forms": [], "intents": [], "slots": {},
                               "templates": {"utter_greet": [{"text": "hey there!"}]}})
    assert domain.as_yaml() == textwrap.dedent("""\
        %YAML 1.1
        ---
        actions:
        - utter_greet
        config:
          store_entities_as_slots: true
        entities: []
        forms: []
        intents: []
        slots: {}
        templates:
          utter_greet:
          - text: hey there!
        """)


def test_as_yaml_keys_sorted_and_reloadable():
    domain = load(EXAMPLE_YAML)
    text = domain.as_yaml()
    assert text.startswith("%YAML 1.1\n---\n")
    top_keys = [line.split(":")[0] for line in text.splitlines()[2:]
                if line and not line.startswith((" ", "-"))]
    assert top_keys == sorted(top_keys)
    assert top_keys == ["actions", "config", "entities", "forms", "intents", "slots",
                        "templates"]
    assert yaml.safe_load(text.split("---\n", 1)[1]) == domain.as_dict()
    reloaded = Domain.from_yaml(text, "reloaded.yml")
    assert reloaded.as_dict() == domain.as_dict()
    assert reloaded.action_names == domain.action_names
    assert reloaded.input_states == domain.input_states
    assert reloaded.intent_properties == domain.intent_properties
    assert reloaded.templates == domain.templates


def test_as_yaml_unicode():
    domain = load("templates:\n  utter_bye: ['goodbye 😢']\n")
    assert "goodbye 😢" in domain.as_yaml()
    assert Domain.from_yaml(domain.as_yaml()).templates == domain.templates


def test_persist(tmp_path):
    domain = load(EXAMPLE_YAML)
    path = tmp_path / "domain.yml"
    domain.persist(str(path))
    assert path.read_text(encoding="utf-8") == domain.as_yaml()
    assert Domain.load(str(path)).as_dict() == domain.as_dict()


# --------------------------------------------------------------------------- templates / NLG

def test_fill_template_variables():
    filled = fill_template({"text": "hey there {name}!"}, {"name": "Joe"})
    assert filled == {"text": "hey there Joe!"}


def test_fill_template_none_value():
    assert fill_template({"text": "hey there {name}!"}, {"name": None}) == {
        "text": "hey there None!"}


def test_fill_template_unknown_variable_leaves_text_unfilled():
    template = {"text": "hey {name}, you like {cuisine}"}
    assert fill_template(template, {"name": "Joe"}) == template


def test_fill_template_without_values_does_no_formatting():
    template = {"text": "literal {{braces}} and {name}"}
    assert fill_template(template, {}) == template
    assert fill_template({"text": "only {{braces}}"}, {}) == {"text": "only {{braces}}"}
    assert fill_template({"text": "only {{braces}}"}, {"x": 1}) == {"text": "only {braces}"}
    assert fill_template(template, {"name": "Joe"}) == {
        "text": "literal {braces} and Joe"}


def test_fill_template_only_fills_text():
    template = {"text": "hi {name}", "buttons": [{"title": "{name}", "payload": "/x"}],
                "image": "https://x/{name}.png"}
    filled = fill_template(template, {"name": "Joe"})
    assert filled == {"text": "hi Joe", "buttons": [{"title": "{name}", "payload": "/x"}],
                      "image": "https://x/{name}.png"}
    assert template["text"] == "hi {name}"


@pytest.mark.parametrize("text", ["{0}", "{", "{name.attr}", "{name:d}", "{name!z}"])
def test_fill_template_bad_format_leaves_text_unfilled(text):
    assert fill_template({"text": text}, {"name": "Joe"}) == {"text": text}


def test_fill_template_type_error_leaves_text_unfilled():
    assert fill_template({"text": "{name[0]}"}, {"name": None}) == {"text": "{name[0]}"}


def test_fill_template_without_text():
    template = {"image": "https://x/img.png"}
    assert fill_template(template, {"name": "Joe"}) == template


def test_nlg_generate_fills_slots_and_kwargs():
    nlg = TemplatedNaturalLanguageGenerator({"utter_greet": [{"text": "hi {name} {x}"}]})
    assert nlg.generate("utter_greet", {"name": "Joe", "x": 1}) == {"text": "hi Joe 1"}
    assert nlg.generate("utter_greet", {"name": "Joe", "x": 1}, x="two") == {
        "text": "hi Joe two"}
    assert nlg.generate("utter_missing", {"name": "Joe"}) is None
    assert nlg.has_template("utter_greet")
    assert not nlg.has_template("utter_missing")


def test_nlg_generate_returns_a_copy_the_caller_may_change():
    template = {"text": "hi", "buttons": [{"title": "yes", "payload": "/affirm"}],
                "custom": {"nested": [1, 2.5, True, None]}}
    nlg = TemplatedNaturalLanguageGenerator({"utter_greet": [template]})
    message = nlg.generate("utter_greet", {})
    assert message == template
    message["buttons"][0]["title"] = "changed"
    message["custom"]["nested"].append("more")
    message["text"] = "changed"
    assert nlg.generate("utter_greet", {}) == {
        "text": "hi", "buttons": [{"title": "yes", "payload": "/affirm"}],
        "custom": {"nested": [1, 2.5, True, None]}}


def test_nlg_generate_kwarg_called_name():
    nlg = TemplatedNaturalLanguageGenerator({"utter_greet": [{"text": "hi {name}"}]})
    assert nlg.generate("utter_greet", {"name": "Joe"}, **{"name": "Ann"}) == {
        "text": "hi Ann"}
    # Action servers send template variables as keys next to "template"; any name must work.
    nlg = TemplatedNaturalLanguageGenerator(
        {"utter_x": [{"text": "{template_name} {slot_values} {self}"}]})
    assert nlg.generate("utter_x", {}, template_name="a", slot_values="b", self="c") == {
        "text": "a b c"}


def test_nlg_returns_copies():
    templates = {"utter_x": [{"text": "hi", "buttons": [{"title": "a", "payload": "/a"}]}]}
    nlg = TemplatedNaturalLanguageGenerator(templates)
    result = nlg.generate("utter_x", {})
    result["buttons"].append({"title": "b"})
    result["text"] = "changed"
    assert templates == {"utter_x": [{"text": "hi",
                                      "buttons": [{"title": "a", "payload": "/a"}]}]}


def test_nlg_seeded_random_choice():
    templates = {"utter_bye": [{"text": "one"}, {"text": "two"}, {"text": "three"}]}

    def draws(seed, n=60):
        nlg = TemplatedNaturalLanguageGenerator(templates, rng=random.Random(seed))
        return [nlg.generate("utter_bye", {})["text"] for _ in range(n)]

    assert draws(7) == draws(7)
    assert set(draws(7)) == {"one", "two", "three"}
    assert draws(7) != draws(8)


def test_nlg_single_variant_does_not_use_randomness():
    class NoRandom(random.Random):
        def randrange(self, *args, **kwargs):  # pragma: no cover - must not be called
            raise AssertionError("random used for a single variant")

        def random(self):  # pragma: no cover
            raise AssertionError("random used for a single variant")

    nlg = TemplatedNaturalLanguageGenerator({"utter_x": [{"text": "only"}]}, rng=NoRandom(1))
    assert nlg.generate("utter_x", {}) == {"text": "only"}


def test_nlg_with_domain_templates():
    domain = load("""
        slots:
          name: {type: text}
        templates:
          utter_greet:
            - text: "hey there {name}!"
    """)
    nlg = TemplatedNaturalLanguageGenerator(domain.templates, rng=random.Random(0))
    slots = domain.fresh_slots()
    values = {n: s.value for n, s in slots.items()}
    assert nlg.generate("utter_greet", values) == {"text": "hey there None!"}
    values["name"] = "Rasa"
    assert nlg.generate("utter_greet", values) == {"text": "hey there Rasa!"}


class AgeSlot(TextSlot):
    """A custom slot type, named by its class path in a domain."""


def test_a_custom_slot_class_survives_persisting_the_domain(tmp_path):
    domain = Domain.from_yaml("intents: [greet]\nslots:\n  age:\n    type: test_domain.AgeSlot\n")
    assert type(domain.slots[0]) is AgeSlot
    path = str(tmp_path / "domain.yml")
    domain.persist(path)
    assert "type: test_domain.AgeSlot" in open(path).read()
    assert type(Domain.load(path).slots[0]) is AgeSlot
    # The built-in ones keep Rasa's class paths.
    text = Domain.from_yaml("slots:\n  name:\n    type: text\n")
    assert text.slots[0].class_path() == "rasa_core.slots.TextSlot"
