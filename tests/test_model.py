"""Tests for the model folder: persist, load (A1/A3), fingerprint, zip and safe unzip."""

import io
import json
import os
import stat
import zipfile

import pytest

from coreactors.dialogue.domain import Domain
from coreactors.model import (
    FINGERPRINT_FILE, InvalidModel, Model, fingerprint_of, unzip_model, zip_model)
from coreactors.nlu.interpreter import RegexInterpreter
from coreactors.policies.ensemble import METADATA_FILE
from coreactors.training.train import load_training_trackers, train_dialogue_model
from shared_data import SHARED_DATA

SHARED_BOTS = os.path.join(SHARED_DATA, "bots")

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

POLICIES = """
policies:
  - name: MemoizationPolicy
    max_history: 3
  - name: KerasPolicy
    epochs: 15
    max_history: 3
    hidden_layers_sizes: [16]
  - name: FallbackPolicy
  - name: MappingPolicy
"""


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "domain.yml").write_text(DOMAIN_YAML)
    (folder / "stories.md").write_text(STORIES)
    (folder / "policies.yml").write_text(POLICIES)
    return folder


def train(data, out, augmentation=5, stories="stories.md"):
    return train_dialogue_model(str(data / "domain.yml"), str(data / stories), str(out),
                                str(data / "policies.yml"), augmentation_factor=augmentation)


@pytest.fixture
def trained(data, tmp_path):
    out = tmp_path / "model"
    model = train(data, out)
    return model, out


# --------------------------------------------------------------------------- persist and load

def test_persisted_model_layout(trained):
    model, out = trained
    names = sorted(os.listdir(str(out)))
    assert names == sorted(["domain.yml", "domain.json", METADATA_FILE, FINGERPRINT_FILE,
                            "policy_0_MemoizationPolicy", "policy_1_NeuralPolicy",
                            "policy_2_FallbackPolicy", "policy_3_MappingPolicy"])
    with open(str(out / "domain.json")) as f:
        assert json.load(f)["states"] == model.domain.input_states
    assert model.path == str(out)


def test_train_persist_load_round_trip(trained, data):
    # A1
    model, out = trained
    loaded = Model.load(str(out))
    assert loaded.domain.action_names == model.domain.action_names
    assert loaded.domain.intents == model.domain.intents
    assert loaded.domain.entities == model.domain.entities
    assert loaded.domain.templates == model.domain.templates
    assert [s.name for s in loaded.domain.slots] == [s.name for s in model.domain.slots]
    assert type(loaded.policy_ensemble) is type(model.policy_ensemble)
    assert [type(p) for p in loaded.policy_ensemble.policies] == [
        type(p) for p in model.policy_ensemble.policies]
    assert loaded.fingerprint == model.fingerprint
    assert loaded.path == str(out)
    trackers = load_training_trackers(model.domain, str(data / "stories.md"),
                                      model.policy_ensemble.policies, 5)
    assert trackers
    for tracker in trackers:
        tracker_for_loaded = tracker.with_domain(loaded.domain)
        expected = model.policy_ensemble.probabilities_using_best_policy(tracker, model.domain)
        got = loaded.policy_ensemble.probabilities_using_best_policy(tracker_for_loaded,
                                                                      loaded.domain)
        assert got[1] == expected[1]
        assert got[0] == pytest.approx(expected[0], abs=1e-7)


def test_moodbot_round_trip(tmp_path):
    bot = os.path.join(SHARED_BOTS, "moodbot")
    if not os.path.isdir(bot):
        pytest.skip("moodbot example data not available under {}".format(SHARED_BOTS))
    config = tmp_path / "policies.yml"
    config.write_text("policies:\n  - name: AugmentedMemoizationPolicy\n")
    out = tmp_path / "moodbot_model"
    model = train_dialogue_model(os.path.join(bot, "domain.yml"),
                                 os.path.join(bot, "data", "stories.md"), str(out), str(config),
                                 augmentation_factor=5)
    loaded = Model.load(str(out))
    original = Domain.load(os.path.join(bot, "domain.yml"))
    assert loaded.domain.action_names == original.action_names
    assert loaded.domain.intents == original.intents
    assert loaded.domain.templates == original.templates
    assert [type(p).__name__ for p in loaded.policy_ensemble.policies] == [
        "AugmentedMemoizationPolicy"]
    assert loaded.fingerprint == model.fingerprint


def test_load_with_interpreter(trained):
    _, out = trained
    interpreter = RegexInterpreter()
    model = Model.load(str(out), interpreter)
    assert model.interpreter is interpreter
    other = model.with_interpreter(None)
    assert other.interpreter is None and other.domain is model.domain
    assert other.fingerprint == model.fingerprint


NLU_MD = """
## intent:greet
- hello
- hi there
- good morning

## intent:goodbye
- bye
- see you later
- good night
"""


def nlu_model():
    from coreactors.nlu.model import NLUModel
    from coreactors.nlu.training_data import load_markdown
    return NLUModel.train(load_markdown(NLU_MD))


def test_a_bundled_nlu_model_becomes_the_interpreter(trained):
    model, out = trained
    nlu_model().persist(str(out / "nlu"))
    loaded = Model.load(str(out), RegexInterpreter())
    assert loaded.interpreter.parse("hello")["intent"]["name"] == "greet"
    # The NLU model is part of the model: another NLU model is another fingerprint.
    assert loaded.fingerprint != model.fingerprint


def test_rasa_combined_layout_core_and_nlu_side_by_side(data, tmp_path):
    root = tmp_path / "stack"
    train(data, root / "core")
    nlu_model().persist(str(root / "nlu"))
    loaded = Model.load(str(root))
    assert loaded.interpreter.parse("see you later")["intent"]["name"] == "goodbye"
    assert set(loaded.domain.intents) == {"greet", "default", "goodbye", "affirm"}


def test_a_broken_bundled_nlu_model_is_an_invalid_model(trained):
    _, out = trained
    (out / "nlu").mkdir()
    (out / "nlu" / "metadata.json").write_text("{not json")
    with pytest.raises(InvalidModel) as info:
        Model.load(str(out))
    assert "NLU" in str(info.value)


def test_retraining_the_dialogue_model_keeps_its_nlu_folder(trained, data):
    _, out = trained
    nlu_model().persist(str(out / "nlu"))
    train(data, out)
    assert Model.load(str(out)).interpreter.parse("hi there")["intent"]["name"] == "greet"


def test_a_zipped_model_carries_its_nlu(trained, tmp_path):
    _, out = trained
    nlu_model().persist(str(out / "nlu"))
    folder = unzip_model(zip_model(str(out)), str(tmp_path / "unzipped"))
    loaded = Model.load(folder)
    assert loaded.interpreter.parse("good night")["intent"]["name"] == "goodbye"
    assert loaded.fingerprint == Model.load(str(out)).fingerprint


@pytest.mark.parametrize("make", [
    lambda root: str(root / "data" / "stories.md"),           # A3: a data file
    lambda root: str(root / "data"),                          # a folder of training data
    lambda root: str(root / "does_not_exist"),
    lambda root: "",
])
def test_loading_a_non_model_is_invalid(data, tmp_path, make):
    with pytest.raises(InvalidModel) as info:
        Model.load(make(tmp_path))
    assert isinstance(info.value, ValueError)


def test_loading_without_policies_is_invalid(trained):
    _, out = trained
    os.remove(str(out / METADATA_FILE))
    with pytest.raises(InvalidModel):
        Model.load(str(out))


def test_loading_with_changed_domain_states_is_invalid(trained):
    _, out = trained
    with open(str(out / "domain.json"), "w") as f:
        json.dump({"states": ["intent_other"]}, f)
    with pytest.raises(InvalidModel) as info:
        Model.load(str(out))
    assert "etrain" in str(info.value)


def test_persist_replaces_an_earlier_model(trained, data, tmp_path):
    _, out = trained
    (data / "policies.yml").write_text("policies:\n  - name: MemoizationPolicy\n")
    train(data, out)
    assert not os.path.exists(str(out / "policy_1_NeuralPolicy"))
    assert [type(p).__name__ for p in Model.load(str(out)).policy_ensemble.policies] == [
        "MemoizationPolicy"]


# --------------------------------------------------------------------------- fingerprint

def test_fingerprint_is_stable_across_retraining(trained, data, tmp_path):
    model, out = trained
    again = train(data, tmp_path / "again")
    assert again.fingerprint == model.fingerprint
    assert fingerprint_of(str(out)) == model.fingerprint
    with open(str(out / FINGERPRINT_FILE)) as f:
        assert f.read().strip() == model.fingerprint
    # retraining into the same folder too
    assert train(data, out).fingerprint == model.fingerprint


def test_fingerprint_changes_with_the_data(trained, data, tmp_path):
    model, _ = trained
    (data / "more.md").write_text(STORIES + "\n## extra\n* affirm\n    - utter_default\n")
    other = train(data, tmp_path / "other", stories="more.md")
    assert other.fingerprint != model.fingerprint
    # the neural policy learns from the glued stories too: another model
    assert train(data, tmp_path / "aug0", augmentation=0).fingerprint != model.fingerprint


def test_fingerprint_ignores_trained_at_but_not_content(trained):
    model, out = trained
    path = str(out / METADATA_FILE)
    with open(path) as f:
        metadata = json.load(f)
    metadata["trained_at"] = "19990101-000000"
    with open(path, "w") as f:
        json.dump(metadata, f, indent=4)
    assert fingerprint_of(str(out)) == model.fingerprint
    # the cached fingerprint file does not count either
    (out / FINGERPRINT_FILE).write_text("something else\n")
    assert fingerprint_of(str(out)) == model.fingerprint
    with open(str(out / "policy_2_FallbackPolicy" / "fallback_policy.json")) as f:
        settings = json.load(f)
    settings["nlu_threshold"] = 0.99
    with open(str(out / "policy_2_FallbackPolicy" / "fallback_policy.json"), "w") as f:
        json.dump(settings, f)
    assert fingerprint_of(str(out)) != model.fingerprint


# --------------------------------------------------------------------------- zip

def test_zip_unzip_round_trip(trained, tmp_path):
    model, out = trained
    data = zip_model(str(out))
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "domain.yml" in names and "policy_0_MemoizationPolicy/memorized_turns.json" in names
    assert not any(n.startswith("/") or ".." in n for n in names)
    target = tmp_path / "unzipped"
    folder = unzip_model(data, str(target))
    assert os.path.realpath(folder) == os.path.realpath(str(target))
    loaded = Model.load(folder)
    assert loaded.fingerprint == model.fingerprint
    assert loaded.domain.action_names == model.domain.action_names


def test_unzip_into_a_wrapping_folder(trained, tmp_path):
    model, out = trained
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for root, _, files in os.walk(str(out)):
            for name in files:
                full = os.path.join(root, name)
                archive.write(full, "dialogue/" + os.path.relpath(full, str(out)))
    folder = unzip_model(buffer.getvalue(), str(tmp_path / "t"))
    assert os.path.basename(folder) == "dialogue"
    assert Model.load(folder).fingerprint == model.fingerprint


def zip_with(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info, content in entries:
            archive.writestr(info, content)
    return buffer.getvalue()


@pytest.mark.parametrize("name", [
    "../x",
    "a/../../x",
    "/etc/evil",
    "..\\x",
    "C:/evil",
])
def test_unzip_refuses_escaping_paths(tmp_path, name):
    target = tmp_path / "target"
    data = zip_with([("domain.yml", "intents: []\n"), (name, "boom")])
    with pytest.raises(InvalidModel):
        unzip_model(data, str(target))
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "evil").exists()
    # nothing is written at all
    assert not target.exists() or os.listdir(str(target)) == []


def test_unzip_refuses_symlinks(tmp_path):
    info = zipfile.ZipInfo("link")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = zip_with([(info, "/etc/passwd")])
    with pytest.raises(InvalidModel) as info_error:
        unzip_model(data, str(tmp_path / "target"))
    assert "link" in str(info_error.value)
    assert not os.path.lexists(str(tmp_path / "target" / "link"))


def test_unzip_refuses_oversize_archives(tmp_path):
    data = zip_with([("domain.yml", "x" * 2000), ("other", "y" * 2000)])
    with pytest.raises(InvalidModel):
        unzip_model(data, str(tmp_path / "target"), max_total_bytes=3000)
    # within the limit it works
    folder = unzip_model(data, str(tmp_path / "ok"), max_total_bytes=5000)
    assert os.path.getsize(os.path.join(folder, "other")) == 2000


def test_unzip_refuses_what_is_not_a_zip(tmp_path):
    with pytest.raises(InvalidModel):
        unzip_model(b"this is not a zip", str(tmp_path / "target"))
