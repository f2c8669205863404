"""Tests for the local NLU model (coreactors.nlu.model and its components)."""

import json
import logging
import os
import re

import numpy as np
import pytest

from coreactors.nlu.model import (
    NLUConfig, NLUConfigError, NLUModel, load_nlu_config, nlu_config_from_dict)
from coreactors.nlu.tokenizer import tokenize
from coreactors.nlu.training_data import Message, TrainingData

_ANNOTATION = re.compile(r"\[([^\]]+)\]\(([^:)]+)(?::([^)]+))?\)")


def example(intent, annotated):
    """A Message from ``"text with [value](entity)"`` markup (test-local helper)."""
    text, entities, pos = "", [], 0
    for m in _ANNOTATION.finditer(annotated):
        text += annotated[pos:m.start()]
        start = len(text)
        text += m.group(1)
        entities.append({"start": start, "end": len(text), "value": m.group(3) or m.group(1),
                         "entity": m.group(2)})
        pos = m.end()
    text += annotated[pos:]
    return Message(text=text, intent=intent, entities=entities)


GREET = ["hello", "hi there", "hey", "good morning", "hello bot", "hey there friend",
         "hi", "good evening to you"]
GOODBYE = ["bye", "goodbye", "see you later", "bye bye", "see you soon", "farewell",
           "good night", "talk to you later"]
ORDER = [
    "i want to order a [pizza](food)",
    "can i get a [burger](food) please",
    "order me some [sushi](food)",
    "i would like a [salad](food)",
    "please order [pasta](food) for me",
    "get me a [pizza](food) and a [salad](food)",
    "i'd like to order [noodles](food)",
    "can you order a [burger](food) for dinner",
]


def small_data(extra_examples=(), synonyms=None, regex=None, lookups=None):
    examples = [example("greet", t) for t in GREET] + [example("goodbye", t) for t in GOODBYE] + \
        [example("order", t) for t in ORDER] + list(extra_examples)
    return TrainingData(examples=examples, entity_synonyms=dict(synonyms or {}),
                        regex_features=list(regex or []), lookup_tables=list(lookups or []))


@pytest.fixture(scope="module")
def model():
    return NLUModel.train(small_data(synonyms={"pizza": "pizza"}))


def entity_pairs(result):
    return [(e["entity"], result["text"][e["start"]:e["end"]], e["value"]) for e in result["entities"]]


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------


def test_tokenizer_keeps_offsets_and_splits_punctuation():
    text = "Upgrade 12.04 to s-bahn, Gmail's!"
    tokens = tokenize(text)
    assert [t.text for t in tokens] == ["Upgrade", "12.04", "to", "s-bahn", ",", "Gmail", "'", "s", "!"]
    for t in tokens:
        assert text[t.start:t.end] == t.text


def test_tokenizer_cuts_at_split_points():
    tokens = tokenize("u6train now", split_points=[2])
    assert [(t.text, t.start, t.end) for t in tokens] == [("u6", 0, 2), ("train", 2, 7), ("now", 8, 11)]


# ---------------------------------------------------------------------------
# Parse result shape
# ---------------------------------------------------------------------------


def test_parse_shape_and_types(model):
    result = model.parse("i want to order a pizza")
    assert set(result) == {"text", "intent", "intent_ranking", "entities"}
    assert result["text"] == "i want to order a pizza"
    assert set(result["intent"]) == {"name", "confidence"}
    assert type(result["intent"]["confidence"]) is float
    assert 0.0 <= result["intent"]["confidence"] <= 1.0

    ranking = result["intent_ranking"]
    assert 1 <= len(ranking) <= 10
    assert [r["name"] for r in ranking][0] == result["intent"]["name"]
    assert ranking[0]["confidence"] == result["intent"]["confidence"]
    confidences = [r["confidence"] for r in ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert all(type(c) is float for c in confidences)
    assert abs(sum(confidences) - 1.0) < 1e-6

    assert result["entities"], "expected the food entity"
    for entity in result["entities"]:
        assert set(entity) == {"start", "end", "value", "entity", "confidence", "extractor"}
        assert type(entity["start"]) is int and type(entity["end"]) is int
        assert type(entity["confidence"]) is float and 0.0 <= entity["confidence"] <= 1.0
        assert entity["extractor"] == "ner_crf"
    # Everything must go through JSON unchanged (no numpy scalars).
    assert json.loads(json.dumps(result)) == result


def test_intent_ranking_is_capped_at_ten():
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
             "juliett", "kilo", "lima"]
    examples = [Message(text="{} {}".format(w, w), intent="intent_" + w) for w in words]
    result = NLUModel.train(TrainingData(examples=examples)).parse("delta")
    assert len(result["intent_ranking"]) == 10
    assert result["intent"]["name"] == "intent_delta"


def test_empty_text(model):
    assert model.parse("") == {"text": "", "intent": {"name": None, "confidence": 0.0},
                               "intent_ranking": [], "entities": []}


# ---------------------------------------------------------------------------
# Learning
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("text,intent", [
    ("hello there", "greet"),
    ("hey friend", "greet"),
    ("good morning bot", "greet"),
    ("bye for now", "goodbye"),
    ("see you tomorrow", "goodbye"),
    ("i would like to order a burger", "order"),
    ("can you get me some sushi please", "order"),
])
def test_classifies_held_out_phrasings(model, text, intent):
    assert model.parse(text)["intent"]["name"] == intent


def test_training_examples_are_learnt_confidently(model):
    for text, intent in [("hello", "greet"), ("see you later", "goodbye"), ("order me some sushi", "order")]:
        result = model.parse(text)
        assert result["intent"]["name"] == intent
        assert result["intent"]["confidence"] > 0.7, result["intent"]


def test_extracts_entities_with_offsets(model):
    text = "could you order me a salad"
    result = model.parse(text)
    assert entity_pairs(result) == [("food", "salad", "salad")]
    entity = result["entities"][0]
    assert (entity["start"], entity["end"]) == (text.index("salad"), text.index("salad") + len("salad"))


def test_extracts_two_entities(model):
    text = "get me a burger and a pizza"
    result = model.parse(text)
    assert [(e["start"], e["end"], e["value"]) for e in result["entities"]] == [
        (9, 15, "burger"), (22, 27, "pizza")]


def test_synonyms_map_value_and_add_processor():
    data = small_data(extra_examples=[example("order", "i want a [cheeseburger](food:burger)"),
                                      example("order", "one [cheese burger](food:burger) please")],
                      # The test helper does not record annotation synonyms
                      # the way the markdown reader does, so list them here.
                      synonyms={"hamburger": "burger", "cheeseburger": "burger",
                                "cheese burger": "burger"})
    trained = NLUModel.train(data)
    result = trained.parse("i want a Cheeseburger")
    assert len(result["entities"]) == 1
    entity = result["entities"][0]
    assert entity["value"] == "burger"
    assert result["text"][entity["start"]:entity["end"]] == "Cheeseburger"
    assert entity["processors"] == ["ner_synonyms"]
    # An entity whose value no synonym changes has no "processors".
    plain = trained.parse("i want a pizza")["entities"]
    assert [e["value"] for e in plain] == ["pizza"]
    assert "processors" not in plain[0]


def _feature_data(with_features):
    examples = [
        example("travel", "i want to fly to [paris](city)"),
        example("travel", "book a flight to [london](city)"),
        example("travel", "flights from [rome](city) please"),
        example("travel", "is it cold in [berlin](city)"),
        example("travel", "[madrid](city) is where i live"),
        example("travel", "show hotels in [vienna](city) tonight"),
        example("travel", "fly me to [san francisco](city)"),
        example("travel", "i need a ticket"),
        example("travel", "what time does the flight leave"),
        example("travel", "any flights tomorrow"),
        example("travel", "i want to fly with my family"),
        example("travel", "book a flight for two people"),
        example("shop", "i want the [red](color) shirt"),
        example("shop", "show me [green](color) shoes"),
        example("shop", "do you have it in [red](color)"),
        example("shop", "i want the large shirt"),
        example("shop", "show me cheap shoes"),
        example("shop", "do you have it in stock"),
    ]
    lookups = [{"name": "city", "elements": ["paris", "london", "rome", "berlin", "madrid", "vienna",
                                             "san francisco", "oslo", "lima", "quito", "new york"]}]
    # A pattern over words, so that nothing but the regex (no word shape,
    # no affix) ties the unseen colours to the seen ones.
    regex = [{"name": "colour", "pattern": r"\b(?:red|green|blue|yellow|purple)\b"}]
    return TrainingData(examples=examples, regex_features=regex if with_features else [],
                        lookup_tables=lookups if with_features else [])


def _confidence(model, text, entity_type):
    found = [e["confidence"] for e in model.parse(text)["entities"] if e["entity"] == entity_type]
    return max(found) if found else 0.0


@pytest.fixture(scope="module")
def feature_models():
    return NLUModel.train(_feature_data(True)), NLUModel.train(_feature_data(False))


@pytest.mark.parametrize("text,city", [("i want to fly to oslo", "oslo"),
                                       ("flights from quito please", "quito"),
                                       ("book a flight to new york", "new york")])
def test_lookup_table_helps_extract_unseen_values(feature_models, text, city):
    with_lookup, without = feature_models
    found = [(e["entity"], text[e["start"]:e["end"]]) for e in with_lookup.parse(text)["entities"]]
    assert found == [("city", city)]
    assert _confidence(with_lookup, text, "city") > _confidence(without, text, "city")


@pytest.mark.parametrize("text,colour", [("i want the purple shirt", "purple"),
                                         ("show me yellow shoes", "yellow")])
def test_regex_feature_helps_extract_entity(feature_models, text, colour):
    with_regex, without = feature_models
    found = [(e["entity"], text[e["start"]:e["end"]]) for e in with_regex.parse(text)["entities"]]
    assert found == [("color", colour)]
    assert _confidence(with_regex, text, "color") > _confidence(without, text, "color")


# ---------------------------------------------------------------------------
# Determinism and persistence
# ---------------------------------------------------------------------------

PROBES = ["hello there", "i want to order a pizza and a salad", "see you", "something else entirely",
          "ORDER SUSHI NOW!!", "x"]


def test_training_is_deterministic():
    data = small_data(synonyms={"hamburger": "burger"})
    a = NLUModel.train(data)
    b = NLUModel.train(data)
    assert [a.parse(t) for t in PROBES] == [b.parse(t) for t in PROBES]


def test_seed_is_used():
    data = small_data()
    a = NLUModel.train(data, NLUConfig(random_seed=1, batch_size=4, entity_batch_size=2))
    b = NLUModel.train(data, NLUConfig(random_seed=2, batch_size=4, entity_batch_size=2))
    assert [a.parse(t) for t in PROBES] != [b.parse(t) for t in PROBES]


def test_persist_load_round_trip(tmp_path):
    data = small_data(synonyms={"hamburger": "burger"},
                      lookups=[{"name": "food", "elements": ["pizza", "ramen"]}],
                      regex=[{"name": "number", "pattern": "[0-9]+"}])
    trained = NLUModel.train(data, NLUConfig(word_ngrams=(1, 2)))
    path = str(tmp_path / "nlu")
    trained.persist(path)
    files = sorted(os.listdir(path))
    assert files == ["entity_extractor.npz", "intent_classifier.npz", "metadata.json"]
    with open(os.path.join(path, "metadata.json")) as f:
        meta = json.load(f)
    assert meta["config"]["word_ngrams"] == [1, 2]
    assert meta["intents"] == ["goodbye", "greet", "order"]
    # Arrays must load without pickle.
    with np.load(os.path.join(path, "intent_classifier.npz"), allow_pickle=False) as npz:
        assert npz.files

    loaded = NLUModel.load(path)
    assert loaded.config == trained.config
    for text in PROBES + ["i want a hamburger"]:
        assert loaded.parse(text) == trained.parse(text)


def test_model_without_entities(tmp_path):
    data = TrainingData(examples=[example("greet", t) for t in GREET] +
                        [example("goodbye", t) for t in GOODBYE])
    trained = NLUModel.train(data)
    assert trained.entity_extractor is None
    result = trained.parse("hello friend")
    assert result["intent"]["name"] == "greet" and result["entities"] == []
    # Persisting over a model that had entities must not leave its extractor behind.
    NLUModel.train(small_data()).persist(str(tmp_path / "m"))
    trained.persist(str(tmp_path / "m"))
    assert "entity_extractor.npz" not in os.listdir(str(tmp_path / "m"))
    assert NLUModel.load(str(tmp_path / "m")).parse("hello friend") == result


def test_model_without_intents():
    data = TrainingData(examples=[example(None, t) for t in ORDER])
    trained = NLUModel.train(data)
    result = trained.parse("order a pizza")
    assert result["intent"] == {"name": None, "confidence": 0.0}
    assert result["intent_ranking"] == []
    assert [e["value"] for e in result["entities"]] == ["pizza"]


def test_model_with_one_intent():
    trained = NLUModel.train(TrainingData(examples=[example("greet", t) for t in GREET]))
    result = trained.parse("anything")
    assert result["intent"] == {"name": "greet", "confidence": 1.0}
    assert result["intent_ranking"] == [{"name": "greet", "confidence": 1.0}]


def test_intent_threshold():
    trained = NLUModel.train(small_data(), NLUConfig(intent_threshold=0.99))
    result = trained.parse("qwerty")
    assert result["intent"]["name"] is None
    assert result["intent"]["confidence"] == result["intent_ranking"][0]["confidence"] > 0.0


@pytest.mark.parametrize("damage", ["missing_dir", "no_metadata", "bad_json", "wrong_format",
                                    "missing_npz", "truncated_npz", "wrong_shape"])
def test_corrupt_model_dir_raises_value_error(tmp_path, damage):
    path = str(tmp_path / "nlu")
    NLUModel.train(small_data()).persist(path)
    meta_path = os.path.join(path, "metadata.json")
    npz_path = os.path.join(path, "intent_classifier.npz")
    if damage == "missing_dir":
        path = str(tmp_path / "nowhere")
    elif damage == "no_metadata":
        os.remove(meta_path)
    elif damage == "bad_json":
        with open(meta_path, "w") as f:
            f.write("{not json")
    elif damage == "wrong_format":
        with open(meta_path, "w") as f:
            json.dump({"format": "something-else"}, f)
    elif damage == "missing_npz":
        os.remove(npz_path)
    elif damage == "truncated_npz":
        with open(npz_path, "rb") as f:
            head = f.read(100)
        with open(npz_path, "wb") as f:
            f.write(head)
    elif damage == "wrong_shape":
        with np.load(npz_path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["weights_0"] = arrays["weights_0"][:-1]
        np.savez(npz_path, **arrays)
    with pytest.raises(ValueError):
        NLUModel.load(path)


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    return str(path)


def test_config_defaults():
    assert load_nlu_config(None) == NLUConfig()
    config = NLUConfig()
    assert config.language == "en" and config.pipeline == "coreactors" and config.random_seed == 42


@pytest.mark.parametrize("pipeline", ["spacy_sklearn", "tensorflow_embedding", "supervised_embeddings",
                                      "coreactors"])
def test_config_accepts_rasa_pipeline_names(tmp_path, pipeline):
    config = load_nlu_config(write(tmp_path, "config.yml", "language: de\npipeline: {}\n".format(pipeline)))
    assert config.pipeline == "coreactors"
    assert config.language == "de"


def test_config_unknown_pipeline_name_rejected():
    with pytest.raises(NLUConfigError, match="no_such_pipeline"):
        nlu_config_from_dict({"pipeline": "no_such_pipeline"})


def test_config_list_pipeline_maps_options(tmp_path, caplog):
    content = """\
language: en
pipeline:
- name: tokenizer_whitespace
- name: intent_featurizer_count_vectors
  min_ngram: 1
  max_ngram: 3
- name: intent_classifier_tensorflow_embedding
  epochs: 50
  batch_size: [16, 64]
  num_neg: 20
- name: ner_crf
  max_iterations: 25
  L2_c: 0.5
- name: ner_synonyms
- name: ner_duckling_http
  url: http://localhost:8000
- name: my.custom.Component
"""
    with caplog.at_level(logging.INFO, logger="coreactors.nlu.model"):
        config = load_nlu_config(write(tmp_path, "config.yml", content))
    assert config.word_ngrams == (1, 3)
    assert config.epochs == 50
    assert config.batch_size == 64
    assert config.entity_epochs == 25
    assert config.entity_l2 == 0.5
    assert config.char_ngrams == NLUConfig().char_ngrams
    logged = caplog.text
    assert "ner_duckling_http" in logged and "my.custom.Component" in logged and "num_neg" in logged


def test_config_list_pipeline_char_analyzer_and_own_component():
    config = nlu_config_from_dict({"pipeline": [
        {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
        {"name": "coreactors", "l2": 0.01, "keyword_view": False},
        "EntitySynonymMapper",
    ]})
    assert config.char_ngrams == (1, 4)
    assert config.l2 == 0.01 and config.keyword_view is False


def test_config_top_level_options_and_json(tmp_path):
    config = load_nlu_config(write(tmp_path, "config.json",
                                   '{"language": "en", "pipeline": "coreactors", "epochs": 10, '
                                   '"char_ngrams": [3, 4], "random_seed": 7}'))
    assert (config.epochs, config.char_ngrams, config.random_seed) == (10, (3, 4), 7)


def test_config_unknown_option_rejected(tmp_path):
    path = write(tmp_path, "config.yml", "language: en\npipeline: coreactors\nepochz: 10\n")
    with pytest.raises(NLUConfigError, match="epochz"):
        load_nlu_config(path)


def test_config_unknown_option_in_own_component_rejected():
    with pytest.raises(NLUConfigError, match="bogus"):
        nlu_config_from_dict({"pipeline": [{"name": "coreactors", "bogus": 1}]})


@pytest.mark.parametrize("raw,name", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": "many"}, "epochs"),
    ({"word_ngrams": [3, 1]}, "word_ngrams"),
    ({"char_ngrams": [2]}, "char_ngrams"),
    ({"learning_rate": -1}, "learning_rate"),
    ({"intent_threshold": 1.5}, "intent_threshold"),
    ({"keyword_view": "yes"}, "keyword_view"),
    ({"pipeline": 5}, "pipeline"),
])
def test_config_invalid_values_rejected(raw, name):
    with pytest.raises(NLUConfigError, match=name):
        nlu_config_from_dict(raw)


def test_config_file_errors(tmp_path):
    with pytest.raises(NLUConfigError):
        load_nlu_config(str(tmp_path / "missing.yml"))
    with pytest.raises(NLUConfigError):
        load_nlu_config(write(tmp_path, "bad.yml", "pipeline: [unclosed\n"))
    with pytest.raises(NLUConfigError):
        load_nlu_config(write(tmp_path, "list.yml", "- a\n- b\n"))
    assert load_nlu_config(write(tmp_path, "empty.yml", "")) == NLUConfig()
