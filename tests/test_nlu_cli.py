"""Tests for ``coreactors train nlu`` and ``coreactors evaluate nlu`` (run as the user runs them)."""

import json
import os
import re
import subprocess
import sys

import pytest

from coreactors.nlu.model import NLUModel
from coreactors.training.nlu import evaluate_nlu
from coreactors.nlu.training_data import load_markdown

TRAIN_MD = """
## intent:greet
- hello
- hi
- good morning
- hey there

## intent:goodbye
- bye
- see you later
- good night
- farewell

## intent:order
- I want a [pizza](dish)
- one [burger](dish) please
- can I get a [salad](dish)
- a [big burger](dish:burger) please
- [pizza](dish) for me

## synonym:burger
- big burger
"""

TEST_MD = """
## intent:greet
- hello there
- hi

## intent:goodbye
- bye bye
- see you

## intent:order
- I want a [salad](dish)
- one [pizza](dish)
"""

TRAIN_JSON = {"rasa_nlu_data": {"common_examples": [
    {"text": "hello", "intent": "greet", "entities": []},
    {"text": "hi there", "intent": "greet", "entities": []},
    {"text": "bye", "intent": "goodbye", "entities": []},
    {"text": "see you", "intent": "goodbye", "entities": []},
]}}

CONFIG = """
language: en
pipeline: supervised_embeddings
"""


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "coreactors.cli"] + list(args), cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "nlu.md").write_text(TRAIN_MD)
    (tmp_path / "test.md").write_text(TEST_MD)
    (tmp_path / "nlu.json").write_text(json.dumps(TRAIN_JSON))
    (tmp_path / "config.yml").write_text(CONFIG)
    return tmp_path


def test_train_nlu_with_a_fixed_name_like_rasa_nlu_train(files):
    proc = run("train", "nlu", "-c", "config.yml", "--data", "nlu.md", "-o", "models/nlu",
               "--fixed_model_name", "current", cwd=str(files))
    assert proc.returncode == 0, proc.stderr
    target = files / "models" / "nlu" / "current"
    assert str(os.path.join("models", "nlu", "current")) in proc.stdout
    model = NLUModel.load(str(target))
    assert model.parse("hello")["intent"]["name"] == "greet"
    entity = model.parse("a big burger please")["entities"][0]
    assert (entity["entity"], entity["value"]) == ("dish", "burger")


def test_train_nlu_with_a_project_and_a_timestamped_name(files):
    proc = run("train", "nlu", "--data", "nlu.json", "-o", "models", "--project", "bots",
               cwd=str(files))
    assert proc.returncode == 0, proc.stderr
    names = os.listdir(str(files / "models" / "bots"))
    assert len(names) == 1 and re.match(r"^model_\d{8}-\d{6}$", names[0])
    model = NLUModel.load(str(files / "models" / "bots" / names[0]))
    assert model.parse("see you")["intent"]["name"] == "goodbye"


def test_evaluate_nlu_prints_intent_and_entity_scores(files):
    assert run("train", "nlu", "--data", "nlu.md", "-o", "models",
               "--fixed_model_name", "current", cwd=str(files)).returncode == 0
    proc = run("evaluate", "nlu", "-u", "models/current", "--data", "test.md",
               "--report", "scores.json", cwd=str(files))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Intent evaluation on 6 examples" in out
    assert re.search(r"accuracy: \d\.\d{4}", out)
    for intent in ("greet", "goodbye", "order"):
        assert re.search(r"^\s*{}\s+\d\.\d\d\s+\d\.\d\d\s+\d\.\d\d\s+2$".format(intent), out,
                         re.MULTILINE), out
    assert "confus" in out
    assert re.search(r"Entity evaluation .*precision \d\.\d{4}\s+recall \d\.\d{4}\s+F1 \d\.\d{4}",
                     out)
    report = json.loads((files / "scores.json").read_text())
    assert set(report["intent_evaluation"]["per_intent"]) == {"greet", "goodbye", "order"}
    assert "f1_score" in report["entity_evaluation"]


@pytest.mark.parametrize("args, message", [
    (["train", "nlu", "--data", "missing.md"], "missing.md"),
    (["train", "nlu", "--data", "nlu.md", "-c", "bad.yml"], "bad.yml"),
    (["evaluate", "nlu", "-u", "models/none", "--data", "test.md"], "models/none"),
])
def test_nlu_commands_report_errors_without_a_traceback(files, args, message):
    (files / "bad.yml").write_text("pipeline: no_such_template\n")
    proc = run(*args, cwd=str(files))
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


class Scripted:
    """An interpreter answering from a table, to check the scoring itself."""

    def __init__(self, answers):
        self.answers = answers

    def parse(self, text):
        intent, entities = self.answers[text]
        return {"text": text, "intent": {"name": intent, "confidence": 1.0},
                "entities": entities}


def test_evaluation_counts_an_entity_only_when_type_and_text_match():
    examples = load_markdown("""
## intent:order
- I want a [pizza](dish)
- one [burger](dish) and a [cola](drink)
## intent:greet
- hello
""").examples
    interpreter = Scripted({
        "I want a pizza": ("order", [{"entity": "dish", "start": 9, "end": 14}]),
        # Right text, wrong type; and a span one character short.
        "one burger and a cola": ("greet", [{"entity": "drink", "start": 4, "end": 10},
                                            {"entity": "drink", "start": 17, "end": 20}]),
        "hello": ("greet", []),
    })
    result = evaluate_nlu(interpreter, examples)
    assert result.intents.accuracy == pytest.approx(2 / 3)
    assert result.confusions == [("order", "greet", 1)]
    assert (result.entities.true_positives, result.entities.false_positives,
            result.entities.false_negatives) == (1, 2, 2)
    assert result.entities.precision == pytest.approx(1 / 3)
    assert result.entities.recall == pytest.approx(1 / 3)
