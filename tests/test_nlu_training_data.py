"""Tests for coreactors.nlu.training_data: the NLU markdown and JSON readers and writers."""

import glob
import json
import os
import re

import pytest

from coreactors.nlu.training_data import (
    Message, TrainingData, TrainingDataError, annotate_text, load_data, load_json,
    load_markdown, parse_annotated_text, to_json, to_markdown)
from shared_data import SHARED_DATA




def example_key(message):
    return (message.intent or "", message.text,
            json.dumps(message.entities, sort_keys=True, default=str))


def same_examples(a, b):
    return sorted(a, key=example_key) == sorted(b, key=example_key)


FULL_MARKDOWN = """\
## intent:restaurant_search
- show me [chinese](cuisine) restaurants
* i'm looking for a place in the [north](location) of town
+ find me a place in [NYC](location:New York)

## intent:greet
- hey
- hello there

## synonym:vegetarian
- veggie
- Vegg

## regex:zipcode
- [0-9]{5}
- \\d{5}-\\d{4}

## lookup:city
- Berlin
- New York
"""


# --- annotations -----------------------------------------------------------------------------

def test_parse_annotated_text_offsets_and_values():
    plain, entities = parse_annotated_text("show me [chinese](cuisine) in [NYC](city:New York)")
    assert plain == "show me chinese in NYC"
    assert entities == [
        {"start": 8, "end": 15, "value": "chinese", "entity": "cuisine"},
        {"start": 19, "end": 22, "value": "New York", "entity": "city"},
    ]
    for entity in entities:
        assert plain[entity["start"]:entity["end"]] in ("chinese", "NYC")


def test_parse_annotated_text_without_annotations_and_at_edges():
    assert parse_annotated_text("just text (with parens) and [brackets]") == \
        ("just text (with parens) and [brackets]", [])
    plain, entities = parse_annotated_text("[Berlin](city)")
    assert plain == "Berlin"
    assert entities == [{"start": 0, "end": 6, "value": "Berlin", "entity": "city"}]


@pytest.mark.parametrize("text", ["a [](city) b", "a [x]() b", "a [x](:value) b", "a [x](city:) b"])
def test_parse_annotated_text_rejects_empty_parts(text):
    with pytest.raises(TrainingDataError) as info:
        parse_annotated_text(text)
    assert str(info.value).startswith("<string>: ")


def test_annotate_text_is_the_inverse():
    text = "show me chinese in NYC"
    entities = [
        {"start": 19, "end": 22, "value": "New York", "entity": "city"},
        {"start": 8, "end": 15, "value": "chinese", "entity": "cuisine"},
    ]
    annotated = annotate_text(text, entities)
    assert annotated == "show me [chinese](cuisine) in [NYC](city:New York)"
    assert parse_annotated_text(annotated) == (text, sorted(entities, key=lambda e: e["start"]))


def test_annotate_text_skips_overlaps_and_renders_values_with_str():
    text = "table for three people"
    entities = [
        {"start": 10, "end": 15, "value": 3, "entity": "num_people"},
        {"start": 10, "end": 22, "value": "three people", "entity": "party"},
        {"start": 0, "end": 5, "entity": "thing"},  # no value: the covered text
    ]
    assert annotate_text(text, entities) == "[table](thing) for [three](num_people:3) people"


def test_annotate_text_refuses_what_markdown_cannot_hold():
    with pytest.raises(ValueError):
        annotate_text("see [x](y) here", [])
    with pytest.raises(ValueError):
        annotate_text("abc", [{"start": 0, "end": 3, "value": "abc", "entity": "a:b"}])


# --- markdown reader ---------------------------------------------------------------------------

def test_all_four_markdown_sections():
    data = load_markdown(FULL_MARKDOWN, "nlu.md")
    assert data.intents == ["greet", "restaurant_search"]
    assert data.entity_types == ["cuisine", "location"]
    assert [m.text for m in data.examples] == [
        "show me chinese restaurants", "i'm looking for a place in the north of town",
        "find me a place in NYC", "hey", "hello there"]
    assert data.examples[1].entities == [
        {"start": 31, "end": 36, "value": "north", "entity": "location"}]
    assert data.entity_synonyms == {"nyc": "New York", "veggie": "vegetarian",
                                    "vegg": "vegetarian"}
    assert data.regex_features == [{"name": "zipcode", "pattern": "[0-9]{5}"},
                                   {"name": "zipcode", "pattern": "\\d{5}-\\d{4}"}]
    assert data.lookup_tables == [{"name": "city", "elements": ["Berlin", "New York"]}]


def test_annotated_value_records_a_lower_cased_synonym():
    data = load_markdown(
        "## intent:inform\n- a table for [Two](people:2) in [NYC](city:New York)\n")
    assert data.entity_synonyms == {"two": "2", "nyc": "New York"}
    assert data.examples[0].entities[0]["value"] == "2"
    # A plain annotation is not a synonym.
    assert load_markdown("## intent:inform\n- in [Berlin](city)\n").entity_synonyms == {}


def test_conflicting_synonyms_keep_the_last():
    text = ("## intent:inform\n- [moderate](price:mid)\n\n"
            "## synonym:middle\n- Moderate\n")
    assert load_markdown(text).entity_synonyms == {"moderate": "middle"}


def test_header_titles_are_stripped():
    # Rasa 0.13 would give " greet" here; we deliberately give "greet".
    data = load_markdown("##   intent:  greet  \n- hi\n## Intent:Make Update\n- upgrade\n")
    assert data.intents == ["Make Update", "greet"]


def test_empty_intent_section_is_fine():
    data = load_markdown("## intent:empty\n\n## intent:greet\n- hi\n")
    assert data.intents == ["greet"]


def test_multi_line_comments_are_stripped_and_line_numbers_kept():
    text = ("<!-- a comment\n"
            "## intent:hidden\n"
            "- never seen\n"
            "-->\n"
            "## intent:greet <!-- trailing -->\n"
            "- hi <!-- inline --> there\n"
            "<!-- odd closing --!>\n"
            "- hello\n")
    data = load_markdown(text, "nlu.md")
    assert data.intents == ["greet"]
    assert [m.text for m in data.examples] == ["hi  there", "hello"]

    with pytest.raises(TrainingDataError) as info:
        load_markdown(text + "<!--\n\n-->\n## wrong:x\n", "nlu.md")
    assert info.value.line == 12
    assert str(info.value).startswith("nlu.md:12: ")


def test_plain_headings_and_prose_outside_sections_are_ignored():
    data = load_markdown("# My bot\nSome words about it.\n## intent:greet\n- hi\n")
    assert [m.text for m in data.examples] == ["hi"]


def test_lookup_table_from_a_file(tmp_path):
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "cities.txt").write_text("Berlin\n\n  Paris  \nNew York\n",
                                                    encoding="utf-8")
    nlu_file = tmp_path / "nlu.md"
    nlu_file.write_text("## lookup:city\ntables/cities.txt\n- Rome\n", encoding="utf-8")
    data = load_data(str(nlu_file))
    assert data.lookup_tables == [{"name": "city",
                                   "elements": ["Berlin", "Paris", "New York", "Rome"]}]

    nlu_file.write_text("## lookup:city\n- Rome\ntables/missing.txt\n", encoding="utf-8")
    with pytest.raises(TrainingDataError) as info:
        load_data(str(nlu_file))
    assert (info.value.filename, info.value.line) == (str(nlu_file), 3)
    assert "missing.txt" in str(info.value)


def test_json_lookup_table_from_a_file(tmp_path):
    (tmp_path / "cities.txt").write_text("Berlin\nParis\n", encoding="utf-8")
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"rasa_nlu_data": {
        "lookup_tables": [{"name": "city", "elements": "cities.txt"}]}}), encoding="utf-8")
    assert load_data(str(path)).lookup_tables == [{"name": "city",
                                                   "elements": ["Berlin", "Paris"]}]


@pytest.mark.parametrize("text, line, fragment", [
    ("## intent:greet\n- hi\n\n## intnet:bye\n- bye\n", 4, "unknown section 'intnet'"),
    ("# title\n- an orphan item\n", 2, "outside any section"),
    ("## intent:greet\n- hi\n## Notes\n- stray\n", 4, "outside any section"),
    ("## intent:greet\n- hi [](city)\n", 2, "empty text"),
    ("## intent:greet\n- hi\n- in [Berlin]()\n", 3, "empty entity type"),
    ("## intent:\n- hi\n", 1, "without a name"),
    ("## intent:greet\n- hi\nhello\n", 3, "not a list item"),
    ("## intent:greet\n-\n", 2, "empty list item"),
    ("## regex:zip\n- [0-9\n", 2, "invalid regex"),
])
def test_markdown_errors_name_file_and_line(text, line, fragment):
    with pytest.raises(TrainingDataError) as info:
        load_markdown(text, "data/nlu.md")
    assert info.value.filename == "data/nlu.md"
    assert info.value.line == line
    assert str(info.value).startswith("data/nlu.md:{}: ".format(line))
    assert fragment in str(info.value)


def test_error_without_filename_says_string():
    with pytest.raises(TrainingDataError) as info:
        load_markdown("- orphan\n")
    assert str(info.value).startswith("<string>:1: ")
    assert isinstance(info.value, ValueError)


# --- JSON reader ------------------------------------------------------------------------------

def test_json_format_with_legacy_keys_and_missing_value():
    document = {"rasa_nlu_data": {
        "common_examples": [
            {"text": "show me chinese restaurants", "intent": "restaurant_search",
             "entities": [{"start": 8, "end": 15, "entity": "cuisine"}]},
            {"text": "book for three", "intent": "inform",
             "entities": [{"start": 9, "end": 14, "value": 3, "entity": "people"}]},
        ],
        "intent_examples": [{"text": "hello", "intent": "greet"}],
        "entity_examples": [{"text": "in Berlin",
                             "entities": [{"start": 3, "end": 9, "value": "Berlin",
                                           "entity": "city"}]}],
        "regex_features": [{"name": "zipcode", "pattern": "[0-9]{5}"}],
        "lookup_tables": [{"name": "city", "elements": ["Berlin", "New York"]}],
        "entity_synonyms": [{"value": "vegetarian", "synonyms": ["veggie", "Vegg"]}],
    }}
    data = load_json(json.dumps(document), "data.json")
    assert [(m.text, m.intent) for m in data.examples] == [
        ("show me chinese restaurants", "restaurant_search"), ("book for three", "inform"),
        ("hello", "greet"), ("in Berlin", None)]
    assert data.examples[0].entities == [
        {"start": 8, "end": 15, "value": "chinese", "entity": "cuisine"}]
    assert data.examples[1].entities[0]["value"] == 3
    assert data.examples[2].entities == []
    assert data.intents == ["greet", "inform", "restaurant_search"]
    assert data.entity_types == ["city", "cuisine", "people"]
    assert data.regex_features == [{"name": "zipcode", "pattern": "[0-9]{5}"}]
    assert data.lookup_tables == [{"name": "city", "elements": ["Berlin", "New York"]}]
    # The value that differs from its text is a synonym, as in markdown.
    assert data.entity_synonyms == {"veggie": "vegetarian", "vegg": "vegetarian", "three": "3"}


def test_json_syntax_error_names_file_and_line():
    with pytest.raises(TrainingDataError) as info:
        load_json('{"rasa_nlu_data": {\n  "common_examples": [\n    {"text": "hi",}\n]}}',
                  "data.json")
    assert info.value.line == 3
    assert str(info.value).startswith("data.json:3: ")


@pytest.mark.parametrize("document, fragment", [
    ([], "rasa_nlu_data"),
    ({"sentences": []}, "rasa_nlu_data"),
    ({"rasa_nlu_data": {"common_examples": {}}}, "must be a list"),
    ({"rasa_nlu_data": {"common_example": []}}, "unknown key"),
    ({"rasa_nlu_data": {"common_examples": [{"intent": "greet"}]}}, "common_examples[0]"),
    ({"rasa_nlu_data": {"common_examples": [{"text": "", "intent": "greet"}]}}, "'text'"),
    ({"rasa_nlu_data": {"intent_examples": [
        {"text": "hi", "entities": [{"start": 0, "entity": "x"}]}]}}, "lacks end"),
    ({"rasa_nlu_data": {"common_examples": [
        {"text": "hi", "entities": [{"start": 0, "end": 9, "entity": "x"}]}]}}, "span"),
    ({"rasa_nlu_data": {"entity_synonyms": [{"value": "v", "synonyms": "x"}]}}, "synonyms"),
    ({"rasa_nlu_data": {"lookup_tables": [{"name": "c", "elements": [1]}]}}, "elements"),
    ({"rasa_nlu_data": {"regex_features": [{"name": "r", "pattern": "("}]}}, "invalid regex"),
])
def test_json_wrong_shape_names_file(document, fragment):
    with pytest.raises(TrainingDataError) as info:
        load_json(json.dumps(document), "data.json")
    assert info.value.filename == "data.json"
    assert str(info.value).startswith("data.json: ")
    assert fragment in str(info.value)


# --- writers and round trips -------------------------------------------------------------------

def test_to_markdown_layout():
    data = load_markdown(FULL_MARKDOWN)
    text = to_markdown(data)
    assert text.startswith("## intent:greet\n- hey\n- hello there\n\n## intent:restaurant_search\n"
                           "- show me [chinese](cuisine) restaurants\n")
    assert "- find me a place in [NYC](location:New York)\n" in text
    assert "\n\n## synonym:New York\n- nyc\n\n## synonym:vegetarian\n- veggie\n- vegg\n" in text
    assert "\n\n## regex:zipcode\n- [0-9]{5}\n- \\d{5}-\\d{4}\n" in text
    assert text.endswith("\n\n## lookup:city\n- Berlin\n- New York\n")


def test_to_markdown_refuses_examples_without_intent():
    with pytest.raises(ValueError):
        to_markdown(TrainingData(examples=[Message("hi")]))


def test_to_json_layout():
    data = load_markdown(FULL_MARKDOWN)
    document = json.loads(to_json(data))
    assert list(document) == ["rasa_nlu_data"]
    nlu = document["rasa_nlu_data"]
    assert set(nlu) == {"common_examples", "regex_features", "lookup_tables", "entity_synonyms"}
    assert nlu["common_examples"][0] == {
        "text": "show me chinese restaurants", "intent": "restaurant_search",
        "entities": [{"start": 8, "end": 15, "value": "chinese", "entity": "cuisine"}]}
    assert nlu["common_examples"][3] == {"text": "hey", "intent": "greet"}
    assert {"value": "vegetarian", "synonyms": ["veggie", "vegg"]} in nlu["entity_synonyms"]
    assert nlu["lookup_tables"] == [{"name": "city", "elements": ["Berlin", "New York"]}]


def assert_same_data(a, b):
    assert same_examples(a.examples, b.examples)
    assert a.entity_synonyms == b.entity_synonyms
    assert a.regex_features == b.regex_features
    assert a.lookup_tables == b.lookup_tables


ROUND_TRIP_MARKDOWN = FULL_MARKDOWN + """
## regex:phone
- \\+?[0-9 ]+

## regex:zipcode
- [A-Z]{2}[0-9]{3}

## intent:inform
- [three](people:3) people in [Köln](city:Cologne) [tonight](time)
- [moderate](price:mid) prices

## synonym:mid
- medium
"""


def test_markdown_round_trip():
    data = load_markdown(ROUND_TRIP_MARKDOWN)
    again = load_markdown(to_markdown(data))
    assert_same_data(data, again)
    assert len(again.regex_features) == 4


def test_json_round_trip():
    data = load_markdown(ROUND_TRIP_MARKDOWN)
    data.examples.append(Message("in Berlin", None, [
        {"start": 3, "end": 9, "value": "Berlin", "entity": "city"}]))
    again = load_json(to_json(data))
    assert again == data


def test_merge_combines_and_later_synonym_wins():
    a = load_markdown("## intent:greet\n- hi\n## synonym:x\n- same\n## regex:r\n- a\n")
    b = load_markdown("## intent:bye\n- bye\n## synonym:y\n- same\n## lookup:l\n- e\n")
    merged = a.merge(b)
    assert [m.text for m in merged.examples] == ["hi", "bye"]
    assert merged.entity_synonyms == {"same": "y"}
    assert merged.regex_features == [{"name": "r", "pattern": "a"}]
    assert merged.lookup_tables == [{"name": "l", "elements": ["e"]}]
    merged.examples[0].text = "changed"
    assert a.examples[0].text == "hi"


# --- files and folders -------------------------------------------------------------------------

def test_folder_loading_skips_hidden_and_non_nlu_files(tmp_path):
    (tmp_path / "a.md").write_text("## intent:greet\n- hi\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text(json.dumps({"rasa_nlu_data": {
        "common_examples": [{"text": "bye", "intent": "goodbye"}]}}), encoding="utf-8")
    (tmp_path / "sub" / "deeper").mkdir()
    (tmp_path / "sub" / "deeper" / "c.md").write_text("## synonym:NYC\n- big apple\n",
                                                      encoding="utf-8")
    (tmp_path / ".hidden.md").write_text("## intent:secret\n- psst\n", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "d.md").write_text("## intent:secret\n- psst\n", encoding="utf-8")
    (tmp_path / "stories.md").write_text("## happy path\n* greet\n  - utter_greet\n",
                                         encoding="utf-8")
    (tmp_path / "README.md").write_text("# Data\n- see `## intent:greet` above\n",
                                        encoding="utf-8")
    (tmp_path / "other.json").write_text('{"sentences": []}', encoding="utf-8")
    (tmp_path / "cities.txt").write_text("## intent:secret\n- psst\n", encoding="utf-8")

    data = load_data(str(tmp_path))
    assert sorted(m.text for m in data.examples) == ["bye", "hi"]
    assert data.intents == ["goodbye", "greet"]
    assert data.entity_synonyms == {"big apple": "NYC"}


def test_folder_loading_reports_broken_nlu_files(tmp_path):
    (tmp_path / "good.md").write_text("## intent:greet\n- hi\n", encoding="utf-8")
    (tmp_path / "bad.json").write_text('{"rasa_nlu_data": {', encoding="utf-8")
    with pytest.raises(TrainingDataError) as info:
        load_data(str(tmp_path))
    assert info.value.filename == str(tmp_path / "bad.json")


def test_single_file_format_by_content(tmp_path):
    json_file = tmp_path / "data.txt"
    json_file.write_text(to_json(load_markdown(FULL_MARKDOWN)), encoding="utf-8")
    md_file = tmp_path / "nlu"
    md_file.write_text("\ufeff" + FULL_MARKDOWN, encoding="utf-8")
    assert_same_data(load_data(str(json_file)), load_data(str(md_file)))
    other = tmp_path / "notes.txt"
    other.write_text("hello\n", encoding="utf-8")
    with pytest.raises(TrainingDataError) as info:
        load_data(str(other))
    assert str(info.value).startswith(str(other) + ": ")
    with pytest.raises(TrainingDataError):
        load_data(str(tmp_path / "missing.md"))


# --- the real data files -----------------------------------------------------------------------

def real_files():
    return sorted(glob.glob(os.path.join(SHARED_DATA, "bots", "*", "data", "nlu*.md")) +
                  glob.glob(os.path.join(SHARED_DATA, "nlu", "*", "train.md")) +
                  glob.glob(os.path.join(SHARED_DATA, "nlu", "*", "test.md")))


# From the corpora's README tables (train / test sentences).
CORPUS_SIZES = {
    "ChatbotCorpus/train.md": 100, "ChatbotCorpus/test.md": 106,
    "AskUbuntuCorpus/train.md": 53, "AskUbuntuCorpus/test.md": 109,
    "WebApplicationsCorpus/train.md": 30, "WebApplicationsCorpus/test.md": 59,
}


def test_real_data_files_load():
    if not os.path.isdir(SHARED_DATA):
        pytest.skip("{} does not exist; the real NLU data files are not available".format(
            SHARED_DATA))
    files = real_files()
    assert len(files) >= 9, files
    for path in files:
        with open(path, encoding="utf-8") as f:
            raw = f.read()
        # Counted independently: list items and intent headers in the file.
        item_lines = len(re.findall(r"^\s*[-*+]\s*\S", raw, re.MULTILINE))
        intent_headers = set(h.strip() for h in
                             re.findall(r"^##\s*intent:(.*)$", raw, re.MULTILINE))
        data = load_data(path)
        assert len(data.examples) == item_lines > 20, path
        assert 2 <= len(data.intents) <= len(intent_headers), path
        for message in data.examples:
            assert message.text and message.intent
            for entity in message.entities:
                assert 0 <= entity["start"] < entity["end"] <= len(message.text)
        for suffix, size in CORPUS_SIZES.items():
            if path.endswith(suffix):
                assert len(data.examples) == size, path
        # And the writers keep every file intact.
        assert_same_data(data, load_markdown(to_markdown(data)))
        assert load_json(to_json(data)) == data


def test_real_data_folders_skip_non_nlu_files():
    if not os.path.isdir(os.path.join(SHARED_DATA, "nlu")):
        pytest.skip("{}/nlu does not exist; the NLU corpora are not available".format(
            SHARED_DATA))
    # READMEs (which mention "## intent:" mid-line) and the corpora's own JSON are passed over.
    data = load_data(os.path.join(SHARED_DATA, "nlu"))
    expected = sum(size for suffix, size in CORPUS_SIZES.items()
                   if os.path.exists(os.path.join(SHARED_DATA, "nlu", suffix)))
    assert len(data.examples) == expected
    for path in glob.glob(os.path.join(SHARED_DATA, "nlu", "*", "*.json")):
        with pytest.raises(TrainingDataError, match="rasa_nlu_data"):
            load_data(path)
