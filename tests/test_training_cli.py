"""Tests for training, evaluation (Rasa Core test_evaluation EV1-EV3) and the command line."""

import os
import subprocess
import sys

import pytest

from coreactors.model import Model
from coreactors.nlu.interpreter import NaturalLanguageInterpreter
from coreactors.training.evaluate import evaluate_stories, write_results
from coreactors.training.train import train_dialogue_model
from shared_data import SHARED_DATA

SHARED_FIXTURES = os.path.join(SHARED_DATA, "fixtures")

DOMAIN_YAML = """
intents: [greet, default, goodbye, affirm]
entities: [name]
slots:
  name: {type: text}
templates:
  utter_greet: ["hey there {name}!"]
  utter_default: ["default message"]
  utter_goodbye: ["bye"]
actions: [utter_greet, utter_default, utter_goodbye]
"""

STORIES = """
## only start
> check_greet
* default
    - utter_default

## only end
* greet OR greet{"name": "Peter"}
    - utter_greet
> check_greet

## three turns
* greet
    - utter_greet
* default
    - utter_default
* goodbye
    - utter_goodbye
"""

E2E_STORIES = """
## greet only
* greet: /greet
    - utter_greet

## several turns
* greet: /greet
    - utter_greet
* default: /default
    - utter_default
* goodbye: /goodbye
    - utter_goodbye
"""

POLICIES = """
policies:
  - name: MemoizationPolicy
    max_history: 3
  - name: KerasPolicy
    epochs: 15
    max_history: 3
  - name: FallbackPolicy
"""

FORM_DOMAIN_YAML = """
intents: [greet, default, goodbye, start_form, stop, affirm, deny, inform]
templates:
  utter_greet: ["hey"]
actions: [utter_default, utter_greet, utter_goodbye, utter_ask_continue]
forms: [some_form]
"""

FORM_STORIES = """
## happy
* greet
    - utter_greet
* start_form
    - some_form
    - form{"name": "some_form"}
* form: inform
    - form: some_form
    - form{"name": null}
* default
    - utter_default

## unhappy
* greet
    - utter_greet
* start_form
    - some_form
    - form{"name": "some_form"}
* default
    - utter_default
    - some_form
    - form{"name": null}
* goodbye
    - utter_goodbye

## stop then continue
* start_form
    - some_form
    - form{"name": "some_form"}
* stop
    - utter_ask_continue
* affirm
    - some_form
    - form{"name": null}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    (folder / "domain.yml").write_text(DOMAIN_YAML)
    (folder / "stories.md").write_text(STORIES)
    (folder / "e2e.md").write_text(E2E_STORIES)
    (folder / "policies.yml").write_text(POLICIES)
    (folder / "wrong.md").write_text("## wrong story\n* greet\n    - utter_goodbye\n")
    return folder


@pytest.fixture(scope="module")
def model_path(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "dialogue"
    train_dialogue_model(str(data / "domain.yml"), str(data / "stories.md"), str(out),
                         str(data / "policies.yml"), augmentation_factor=5)
    return out


@pytest.fixture(scope="module")
def model(model_path):
    return Model.load(str(model_path))


# --------------------------------------------------------------------------- training

def test_train_returns_a_model_and_can_dump_stories(data, tmp_path):
    out = tmp_path / "m"
    model = train_dialogue_model(str(data / "domain.yml"), str(data / "stories.md"), str(out),
                                 str(data / "policies.yml"), augmentation_factor=0,
                                 dump_stories=True)
    assert model.fingerprint and model.path == str(out)
    dumped = (out / "stories.md").read_text()
    assert "## three turns" in dumped
    assert "- utter_goodbye" in dumped


def test_train_without_output_does_not_persist(data, tmp_path):
    model = train_dialogue_model(str(data / "domain.yml"), str(data / "stories.md"), None,
                                 str(data / "policies.yml"), augmentation_factor=0)
    assert model.fingerprint is None and model.path is None
    assert len(model.policy_ensemble.policies) == 3


def test_training_with_forms_needs_a_form_policy(tmp_path):
    (tmp_path / "domain.yml").write_text(FORM_DOMAIN_YAML)
    (tmp_path / "stories.md").write_text(FORM_STORIES)
    (tmp_path / "policies.yml").write_text("policies:\n  - name: MemoizationPolicy\n")
    from coreactors.dialogue.domain import InvalidDomain
    with pytest.raises(InvalidDomain):
        train_dialogue_model(str(tmp_path / "domain.yml"), str(tmp_path / "stories.md"),
                             str(tmp_path / "m"), str(tmp_path / "policies.yml"))
    assert not (tmp_path / "m").exists()


def test_progress_callback_sees_the_epochs(data):
    seen = []
    train_dialogue_model(str(data / "domain.yml"), str(data / "stories.md"), None,
                         str(data / "policies.yml"), augmentation_factor=0,
                         progress=lambda epoch, epochs, loss, acc: seen.append((epoch, epochs)))
    assert seen and seen[-1][1] == 15


# --------------------------------------------------------------------------- evaluation

def test_evaluation_of_the_training_stories_is_perfect(model, data, tmp_path):
    # EV1/EV2
    result = evaluate_stories(model, str(data / "stories.md"))
    assert len(result.stories) == 3
    assert result.failed_stories == []
    assert result.story_accuracy == 1.0
    assert result.report.accuracy == 1.0
    assert all(a["action"] == a["predicted"] for s in result.stories for a in s.actions)
    path = write_results(result, str(tmp_path / "results"))
    assert os.path.basename(path) == "failed_stories.md"
    with open(path) as f:
        assert "All stories passed" in f.read()


def test_evaluation_result_json(model, data):
    result = evaluate_stories(model, str(data / "stories.md")).as_dict()
    assert set(result) == {"report", "precision", "f1", "accuracy", "actions",
                           "in_training_data_fraction", "is_end_to_end_evaluation"}
    assert result["is_end_to_end_evaluation"] is False
    assert set(result["actions"][0]) == {"action", "predicted", "confidence", "policy"}
    assert result["precision"] == 1.0 and result["f1"] == 1.0 and result["accuracy"] == 1.0
    assert 0.0 < result["in_training_data_fraction"] <= 1.0
    memorized = sum(1 for a in result["actions"]
                    if (a["policy"] or "").endswith("_MemoizationPolicy"))
    assert result["in_training_data_fraction"] == pytest.approx(
        memorized / len(result["actions"]))
    assert isinstance(result["report"], str) and "utter_greet" in result["report"]


def test_wrong_story_is_reported(model, data, tmp_path):
    result = evaluate_stories(model, str(data / "wrong.md"))
    assert len(result.failed_stories) == 1
    assert result.story_accuracy == 0.0
    markdown = result.failed_stories_markdown()
    assert markdown.startswith("## wrong story\n* greet\n")
    assert "    - utter_goodbye   <!-- predicted: utter_greet -->" in markdown
    path = write_results(result, str(tmp_path / "out"))
    with open(path) as f:
        assert "<!-- predicted: utter_greet -->" in f.read()
    # evaluation carries on with the story's action: the final listen is right
    actions = result.stories[0].actions
    assert [(a["action"], a["predicted"]) for a in actions] == [
        ("action_listen", "action_listen"), ("utter_goodbye", "utter_greet"),
        ("action_listen", "action_listen")]


def test_evaluation_from_text(model):
    result = evaluate_stories(model, text="## t\n* greet\n    - utter_greet\n")
    assert len(result.stories) == 1 and not result.failed_stories


def test_e2e_evaluation(model, data):
    # EV3
    result = evaluate_stories(model, str(data / "e2e.md"), e2e=True)
    assert len(result.stories) == 2
    assert result.failed_stories == []
    as_dict = result.as_dict()
    assert as_dict["is_end_to_end_evaluation"] is True
    assert as_dict["accuracy"] == 1.0


class AlwaysGreet(NaturalLanguageInterpreter):
    def parse(self, text):
        return {"text": text, "intent": {"name": "greet", "confidence": 0.9},
                "intent_ranking": [], "entities": []}


def test_e2e_evaluation_with_an_intent_mismatch(model):
    text = ("## mismatch\n* greet: hello there\n    - utter_greet\n"
            "* default: see you\n    - utter_default\n")
    result = evaluate_stories(model, text=text, e2e=True, interpreter=AlwaysGreet())
    (story,) = result.stories
    assert story.failed
    assert story.intents == [("greet", "greet"), ("default", "greet")]
    markdown = result.failed_stories_markdown()
    assert "* default: see you   <!-- predicted: greet: see you -->" in markdown
    assert "* greet: hello there\n" in markdown
    # the gold intent is what the dialogue sees: the actions are still right
    assert all(a["action"] == a["predicted"] for a in story.actions)
    # intents count in the metrics of an e2e evaluation
    assert result.report.accuracy < 1.0


def test_e2e_fixture_file(model):
    path = os.path.join(SHARED_FIXTURES, "test_evaluations", "end_to_end_story.md")
    if not os.path.exists(path):
        pytest.skip("Rasa fixtures not available under {}".format(SHARED_FIXTURES))
    result = evaluate_stories(model, path, e2e=True)
    assert len(result.stories) == 2
    assert result.failed_stories == []


def test_evaluation_handles_form_rejections(tmp_path):
    (tmp_path / "domain.yml").write_text(FORM_DOMAIN_YAML)
    (tmp_path / "stories.md").write_text(FORM_STORIES)
    (tmp_path / "policies.yml").write_text(
        "policies:\n  - name: MemoizationPolicy\n    max_history: 3\n  - name: FormPolicy\n")
    model = train_dialogue_model(str(tmp_path / "domain.yml"), str(tmp_path / "stories.md"),
                                 str(tmp_path / "m"), str(tmp_path / "policies.yml"),
                                 augmentation_factor=0)
    result = evaluate_stories(model, str(tmp_path / "stories.md"))
    assert [s.name for s in result.failed_stories] == []
    unhappy = [s for s in result.stories if s.name == "unhappy"][0]
    # the interruption inside the form was predicted by memoization after the form stepped aside
    predicted = [(a["action"], a["policy"]) for a in unhappy.actions]
    assert ("utter_default", "policy_0_MemoizationPolicy") in predicted
    assert ("action_listen", "policy_1_FormPolicy") in predicted
    # without the rejection the form policy would have won at that point
    from coreactors.dialogue.events import ActionExecuted, Form, UserUttered
    from coreactors.dialogue.tracker import DialogueStateTracker
    from coreactors.processor import MessageProcessor

    def said(intent):
        return UserUttered("/" + intent, {"name": intent, "confidence": 1.0})

    tracker = DialogueStateTracker.from_events("t", [
        ActionExecuted("action_listen"), said("greet"), ActionExecuted("utter_greet"),
        ActionExecuted("action_listen"), said("start_form"), ActionExecuted("some_form"),
        Form("some_form"), ActionExecuted("action_listen"), said("default")], model.domain)
    action, policy, _ = MessageProcessor(model).predict_next_action(tracker)
    assert (action.name(), policy) == ("some_form", "policy_1_FormPolicy")


# --------------------------------------------------------------------------- command line

def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m"] + list(args), cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_cli_train_core(data, tmp_path):
    out = tmp_path / "cli_model"
    proc = run("coreactors.cli", "train", "core", "-d", str(data / "domain.yml"), "-s",
               str(data / "stories.md"), "-o", str(out), "-c", str(data / "policies.yml"),
               "--augmentation", "0")
    assert proc.returncode == 0, proc.stderr
    assert "fingerprint" in proc.stdout
    model = Model.load(str(out))
    assert model.fingerprint in proc.stdout


def test_python_m_coreactors_train(data, tmp_path):
    out = tmp_path / "m"
    proc = run("coreactors.train", "-d", str(data / "domain.yml"), "-s",
               str(data / "stories.md"), "-o", str(out), "-c", str(data / "policies.yml"),
               "--augmentation", "0", "--dump_stories", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert (out / "policy_metadata.json").exists()
    assert (out / "stories.md").exists()


def test_cli_train_without_core_and_default_config(data, tmp_path):
    # "train" alone means "train core"; without -c the packaged default policies are used
    out = tmp_path / "m"
    proc = run("coreactors.cli", "train", "-d", str(data / "domain.yml"), "-s",
               str(data / "stories.md"), "-o", str(out), "--augmentation", "0", "-q")
    assert proc.returncode == 0, proc.stderr
    names = sorted(n for n in os.listdir(str(out)) if n.startswith("policy_")
                   and os.path.isdir(str(out / n)))
    assert names == ["policy_0_NeuralPolicy", "policy_1_FallbackPolicy",
                     "policy_2_MemoizationPolicy", "policy_3_FormPolicy"]


def test_cli_train_missing_arguments(data):
    proc = run("coreactors.cli", "train", "core", "-d", str(data / "domain.yml"))
    assert proc.returncode == 2
    assert "required" in proc.stderr


def test_cli_train_bad_domain(data, tmp_path):
    bad = tmp_path / "bad_domain.yml"
    bad.write_text("intents: [greet]\nslots:\n  x:\n    type: no_such_type\n")
    proc = run("coreactors.cli", "train", "core", "-d", str(bad), "-s",
               str(data / "stories.md"), "-o", str(tmp_path / "m"))
    assert proc.returncode == 1
    assert "bad_domain.yml" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m").exists()


def test_cli_train_bad_stories(data, tmp_path):
    bad = tmp_path / "bad_stories.md"
    bad.write_text("## s\n* greet\n    - slot{oops}\n")
    proc = run("coreactors.cli", "train", "core", "-d", str(data / "domain.yml"), "-s",
               str(bad), "-o", str(tmp_path / "m"), "-q")
    assert proc.returncode == 1
    assert "bad_stories.md:3" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_train_bad_policy_config(data, tmp_path):
    bad = tmp_path / "bad_policies.yml"
    bad.write_text("policies:\n  - name: MemoizationPolicy\n    no_such_option: 1\n")
    proc = run("coreactors.cli", "train", "core", "-d", str(data / "domain.yml"), "-s",
               str(data / "stories.md"), "-o", str(tmp_path / "m"), "-c", str(bad), "-q")
    assert proc.returncode == 1
    assert "bad_policies.yml" in proc.stderr


def test_cli_evaluate(model_path, data, tmp_path):
    out = tmp_path / "results"
    proc = run("coreactors.cli", "evaluate", "-d", str(model_path), "-s",
               str(data / "stories.md"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "3 of 3" in proc.stdout
    assert "All stories passed" in (out / "failed_stories.md").read_text()


def test_cli_evaluate_failures_and_exit_code(model_path, data, tmp_path):
    out = tmp_path / "results"
    proc = run("coreactors.evaluate", "core", "-d", str(model_path), "-s",
               str(data / "wrong.md"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "0 of 1" in proc.stdout
    assert "<!-- predicted: utter_greet -->" in (out / "failed_stories.md").read_text()
    proc = run("coreactors.cli", "evaluate", "-d", str(model_path), "-s",
               str(data / "wrong.md"), "-o", str(out), "--fail_on_prediction_errors")
    assert proc.returncode == 1
    proc = run("coreactors.cli", "evaluate", "-d", str(model_path), "-s",
               str(data / "stories.md"), "-o", str(out), "--fail_on_prediction_errors")
    assert proc.returncode == 0


def test_cli_evaluate_e2e(model_path, data, tmp_path):
    proc = run("coreactors.cli", "evaluate", "-d", str(model_path), "-s",
               str(data / "e2e.md"), "-o", str(tmp_path / "r"), "--e2e")
    assert proc.returncode == 0, proc.stderr
    assert "2 of 2" in proc.stdout


def test_cli_evaluate_not_a_model(data, tmp_path):
    proc = run("coreactors.cli", "evaluate", "-d", str(data), "-s", str(data / "stories.md"),
               "-o", str(tmp_path / "r"))
    assert proc.returncode == 1
    assert str(data) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_init_writes_the_default_bot_and_it_trains(tmp_path):
    target = tmp_path / "bot"
    proc = run("coreactors.cli", "init", str(target))
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(str(target))) == ["domain.yml", "nlu.md", "policies.yml",
                                               "stories.md"]
    (target / "stories.md").write_text("## mine\n* greet\n    - utter_greet\n")
    proc = run("coreactors.cli", "init", str(target))
    assert proc.returncode == 0
    assert "exists" in proc.stdout
    assert (target / "stories.md").read_text() == "## mine\n* greet\n    - utter_greet\n"
    proc = run("coreactors.cli", "init", str(target), "--force")
    assert proc.returncode == 0
    assert (target / "stories.md").read_text() != "## mine\n* greet\n    - utter_greet\n"
    proc = run("coreactors.cli", "train", "core", "-d", "domain.yml", "-s", "stories.md",
               "-o", "models/dialogue", "-c", "policies.yml", "--augmentation", "0", "-q",
               cwd=str(target))
    assert proc.returncode == 0, proc.stderr
    model = Model.load(str(target / "models" / "dialogue"))
    result = evaluate_stories(model, str(target / "stories.md"))
    assert result.failed_stories == []
    # Trained into the dialogue model's nlu/ folder, the NLU model travels with it.
    proc = run("coreactors.cli", "train", "nlu", "--data", "nlu.md", "-o", "models/dialogue",
               "--fixed_model_name", "nlu", cwd=str(target))
    assert proc.returncode == 0, proc.stderr
    model = Model.load(str(target / "models" / "dialogue"))
    assert model.interpreter.parse("hello there")["intent"]["name"] == "greet"


def test_cli_without_command_prints_help():
    proc = run("coreactors.cli")
    assert proc.returncode == 2
    assert "usage" in proc.stdout.lower()
    version = run("coreactors.cli", "--version")
    assert version.returncode == 0
    import coreactors
    assert coreactors.__version__ in version.stdout


def test_cli_main_in_process(data, tmp_path, capsys):
    from coreactors.cli import main
    out = tmp_path / "m"
    code = main(["train", "-d", str(data / "domain.yml"), "-s", str(data / "stories.md"),
                 "-o", str(out), "-c", str(data / "policies.yml"), "--augmentation", "0",
                 "-q"])
    assert code == 0
    assert main(["evaluate", "-d", str(out), "-s", str(data / "wrong.md"), "-o",
                 str(tmp_path / "r"), "--fail_on_prediction_errors"]) == 1
    captured = capsys.readouterr()
    assert "0 of 1" in captured.out
