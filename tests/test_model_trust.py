"""Code from the network: a model that arrives over HTTP (``POST /model``, the model server) may
name only the built-in slot and policy classes unless the operator allows module prefixes
(``--allow_class_path``); a model on disk (``-d``) may name any. The module of a refused class
path is never imported, so its code never runs."""

import io
import json
import os
import sys
import zipfile

import pytest

from coreactors.dialogue.class_paths import any_module, module_prefixes
from coreactors.model import InvalidModel, Model
from coreactors.model_archives import ModelArchives
from live_server import (
    GREETING_STORIES, MEMOIZATION_POLICIES, Server, multipart, train_bot)

DOMAIN = """
intents: [greet]
slots:
  age:
    type: text
templates:
  utter_greet:
    - "hello"
actions: [utter_greet]
"""
STORIES, POLICIES = GREETING_STORIES, MEMOIZATION_POLICIES
# Importing it leaves a mark: proof that a model's class path ran code.
EVIL = """
import os
open(os.environ["COREACTORS_TEST_MARK"], "a").write("imported\\n")
from coreactors.dialogue.slots import TextSlot
class AgeSlot(TextSlot):
    pass
"""


@pytest.fixture
def evil(tmp_path, monkeypatch):
    """The package evilbot on sys.path, and the file its import marks."""
    packages = tmp_path / "packages"
    (packages / "evilbot").mkdir(parents=True)
    (packages / "evilbot" / "__init__.py").write_text("")
    (packages / "evilbot" / "slots.py").write_text(EVIL)
    mark = tmp_path / "mark"
    monkeypatch.setenv("COREACTORS_TEST_MARK", str(mark))
    monkeypatch.syspath_prepend(str(packages))
    yield packages, mark
    for name in ("evilbot", "evilbot.slots", "evilbot.policies"):
        sys.modules.pop(name, None)


def trained(tmp_path, slot_type="evilbot.slots.AgeSlot", policy=None):
    """A model whose slot (and, given ``policy``, first policy) names these class paths, as a
    zip sent by someone else could: the model folder as training wrote it, then edited."""
    model = train_bot(tmp_path / "bot", DOMAIN, STORIES, POLICIES)
    domain_path = os.path.join(model, "domain.yml")
    with open(domain_path) as f:
        text = f.read()
    assert "type: rasa_core.slots.TextSlot" in text
    with open(domain_path, "w") as f:
        f.write(text.replace("rasa_core.slots.TextSlot", slot_type))
    if policy is not None:
        metadata_path = os.path.join(model, "policy_metadata.json")
        with open(metadata_path) as f:
            metadata = json.load(f)
        metadata["policy_names"][0] = policy
        with open(metadata_path, "w") as f:
            json.dump(metadata, f)
    return model


def zipped(model_dir: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for root, _, files in os.walk(model_dir):
            for name in files:
                path = os.path.join(root, name)
                archive.write(path, os.path.relpath(path, model_dir))
    return buffer.getvalue()


def test_module_prefixes_allow_modules_under_them_only():
    may = module_prefixes(["my_bot", " other.sub. ", ""])
    assert may("my_bot") and may("my_bot.slots") and may("other.sub.x")
    assert not may("my_bot_extra") and not may("other") and not may("evil")
    assert not module_prefixes(())("anything") and any_module("anything")


def test_a_model_from_the_network_may_not_import_a_slot_class(tmp_path, evil):
    data = zipped(trained(tmp_path))
    _, mark = evil
    with pytest.raises(InvalidModel, match="--allow_class_path") as refused:
        ModelArchives(parent=str(tmp_path)).load(data)
    assert "evilbot.slots.AgeSlot" in str(refused.value)
    assert not mark.exists()  # never imported
    model = ModelArchives(parent=str(tmp_path), may_import=module_prefixes(["evilbot"])).load(
        data)
    assert mark.read_text() == "imported\n"
    assert type(model.domain.slots[0]).__name__ == "AgeSlot"


def test_a_model_from_the_network_may_not_import_a_policy_class(tmp_path, evil):
    data = zipped(trained(tmp_path, slot_type="rasa_core.slots.TextSlot",
                          policy="evilbot.slots.EvilPolicy"))
    _, mark = evil
    with pytest.raises(InvalidModel, match="--allow_class_path") as refused:
        ModelArchives(parent=str(tmp_path)).load(data)
    assert "evilbot.slots.EvilPolicy" in str(refused.value)
    assert not mark.exists()
    # Allowed, the module is imported (and has no such policy: the model is still refused).
    with pytest.raises(InvalidModel, match="Unknown policy"):
        ModelArchives(parent=str(tmp_path), may_import=module_prefixes(["evilbot"])).load(data)
    assert mark.read_text() == "imported\n"


def test_a_model_on_disk_may_import_its_classes(tmp_path, evil):
    model = Model.load(trained(tmp_path))
    assert type(model.domain.slots[0]).__name__ == "AgeSlot"
    assert evil[1].read_text() == "imported\n"


def test_the_server_refuses_a_posted_model_with_class_paths_unless_allowed(tmp_path, evil):
    packages, mark = evil
    data = zipped(trained(tmp_path))
    plain = train_bot(tmp_path / "plain", DOMAIN, STORIES, POLICIES)
    env = {"PYTHONPATH": str(packages), "COREACTORS_TEST_MARK": str(mark)}
    body, headers = multipart({"model": data})
    for allow, expected in (([], 400), (["--allow_class_path", "other_bot,evilbot"], 204)):
        server = Server(str(tmp_path), ["--enable_api", "-d", plain] + allow, env=env).start()
        try:
            answer = server.request("POST", "/model", raw=body, headers=headers)
            assert answer.status == expected, answer.body
            if expected == 400:
                assert "--allow_class_path" in answer.json()["message"]
                assert not mark.exists()
            else:
                assert mark.read_text() == "imported\n"
        finally:
            server.stop()
