"""Unit tests of the model-loading path (coreactors.actors.model_watcher) and of POST /model.

The pulling itself runs against a real model server in test_model_watcher_e2e.py; here are the
pieces that are clearer on their own: the settings of the ``model`` block, the unpacked folders
(fingerprint, clean-up, refusals) and the route's handling of uploads (StubTreq, in memory).
"""

import io
import json
import os
import zipfile
from typing import Any, List

import pytest
from treq.testing import StubTreq
from twisted.internet import defer
from zope.interface import implementer

from coreactors.actors.interface import ConversationError, IModelArchives
from coreactors.actors.model_server import (
    DEFAULT_MAX_DOWNLOAD_BYTES, MIN_WAIT_TIME, PullSettings)
from coreactors.endpoints import EndpointConfig, EndpointError
from coreactors.http.app import CoreApp
from coreactors.model import InvalidModel, fingerprint_of, zip_model
from coreactors.model_archives import ModelArchives

DOMAIN = """
intents:
  - greet
templates:
  utter_hello:
    - text: "hello"
actions:
  - utter_hello
"""

STORIES = """
## greet
* greet
    - utter_hello
"""

POLICIES = """
policies:
  - name: MemoizationPolicy
    max_history: 2
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from coreactors.training.train import train_dialogue_model
    root = tmp_path_factory.mktemp("bot")
    for name, text in (("domain.yml", DOMAIN), ("stories.md", STORIES),
                       ("policies.yml", POLICIES)):
        (root / name).write_text(text)
    train_dialogue_model(str(root / "domain.yml"), str(root / "stories.md"),
                         str(root / "model"), str(root / "policies.yml"),
                         augmentation_factor=0)
    return str(root / "model")


# --------------------------------------------------------------------------- settings


def settings(**block: Any) -> PullSettings:
    block.setdefault("url", "http://models.test/model")
    return PullSettings.from_endpoint(EndpointConfig.from_dict(block, "model"))


def test_settings_defaults_are_rasas():
    assert settings() == PullSettings(100.0, 300.0, DEFAULT_MAX_DOWNLOAD_BYTES)


@pytest.mark.parametrize("value, expected", [
    (None, None), (10, 10.0), ("10", 10.0), (0.2, 0.2), (0, MIN_WAIT_TIME)])
def test_wait_time_between_pulls(value, expected):
    assert settings(wait_time_between_pulls=value).wait_time == expected


@pytest.mark.parametrize("block", [
    {"wait_time_between_pulls": "10s"}, {"wait_time_between_pulls": -1},
    {"wait_time_between_pulls": True}, {"timeout": 0}, {"max_download_bytes": "big"},
    {"url": None}, {"url": "models.test/model"}])
def test_bad_settings_are_refused_at_start(block):
    with pytest.raises(EndpointError):
        settings(**block)


# --------------------------------------------------------------------------- ModelArchives


def wrapped(model_dir: str, top: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for root, _, files in os.walk(model_dir):
            for name in files:
                path = os.path.join(root, name)
                archive.write(path, top + "/" + os.path.relpath(path, model_dir))
    return buffer.getvalue()


def folders(parent: str) -> List[str]:
    return sorted(os.listdir(parent))


def test_load_gives_the_content_fingerprint_or_the_one_given(model_dir, tmp_path):
    archives = ModelArchives(parent=str(tmp_path))
    model = archives.load(zip_model(model_dir))
    assert model.fingerprint == fingerprint_of(model_dir)
    assert model.domain.action_names[-1] == "utter_hello"
    etagged = archives.load(wrapped(model_dir, "top"), fingerprint='"etag-1"')
    assert etagged.fingerprint == '"etag-1"'
    assert os.path.basename(etagged.path) == "top"


def test_only_the_model_in_use_and_the_one_before_keep_their_folders(model_dir, tmp_path):
    parent = str(tmp_path)
    archives = ModelArchives(parent=parent)
    data = zip_model(model_dir)
    first = archives.load(data, "1")
    archives.published(first.path)
    second = archives.load(data, "2")
    archives.published(second.path)
    third = archives.load(data, "3")  # loaded, not handed over yet: kept too
    archives.prune()
    assert len(folders(parent)) == 3
    archives.published(third.path)
    archives.prune()
    kept = folders(parent)
    assert len(kept) == 2 and not os.path.exists(first.path)
    assert os.path.exists(second.path) and os.path.exists(third.path)
    unused = archives.load(data, "4")
    archives.discard(unused)
    archives.prune()
    assert folders(parent) == kept
    archives.remove_all()
    assert folders(parent) == []


def test_a_folder_it_did_not_make_is_never_removed(model_dir, tmp_path):
    archives = ModelArchives(parent=str(tmp_path))
    archives.published(model_dir)  # the -d model
    archives.published(archives.load(zip_model(model_dir)).path)
    archives.published(archives.load(zip_model(model_dir)).path)
    archives.prune()
    archives.remove_all()
    assert os.path.isfile(os.path.join(model_dir, "domain.yml"))


@pytest.mark.parametrize("entries, words", [
    ({"../evil.txt": b"x"}, "escapes"),
    ({"/etc/evil.txt": b"x"}, "escapes"),
    ({"README.md": b"no model"}, "domain.yml"),
    ({"domain.yml": b"intents: [a"}, "Cannot load"),
])
def test_refused_archives_leave_nothing_behind(tmp_path, entries, words):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    parent = tmp_path / "models"
    parent.mkdir()
    archives = ModelArchives(parent=str(parent))
    with pytest.raises(InvalidModel) as refused:
        archives.load(buffer.getvalue())
    assert words in str(refused.value)
    assert folders(str(parent)) == []
    assert not (tmp_path / "evil.txt").exists()


def test_not_a_zip_and_too_big(model_dir, tmp_path):
    archives = ModelArchives(parent=str(tmp_path))
    with pytest.raises(InvalidModel, match="Not a zip"):
        archives.load(b"PK\x03\x04 and then nothing")
    small = ModelArchives(parent=str(tmp_path), max_unzipped_bytes=100)
    with pytest.raises(InvalidModel, match="more than 100 bytes"):
        small.load(zip_model(model_dir))
    assert folders(str(tmp_path)) == []


# --------------------------------------------------------------------------- POST /model


@implementer(IModelArchives)
class FakeArchives:
    def __init__(self) -> None:
        self.received: List[bytes] = []
        self.failure = None

    def load_model_archive(self, data: bytes) -> defer.Deferred:
        self.received.append(data)
        if self.failure is not None:
            return defer.fail(self.failure)
        return defer.succeed("fp-new")


def form(name: str, data: bytes) -> Any:
    """A multipart/form-data upload of one file, as ``curl -F name=@file`` sends it."""
    boundary = "b0undary"
    body = ("--{0}\r\nContent-Disposition: form-data; name=\"{1}\"; filename=\"m.zip\"\r\n"
            "Content-Type: application/zip\r\n\r\n").format(boundary, name).encode()
    body += data + "\r\n--{}--\r\n".format(boundary).encode()
    return {"data": body,
            "headers": {"Content-Type": "multipart/form-data; boundary=" + boundary}}


def app(conversations: Any, **kwargs: Any) -> CoreApp:
    # The upload is read in the calling thread: StubTreq answers without a running reactor.
    return CoreApp(conversations, in_thread=defer.maybeDeferred, **kwargs)


def post(stub: StubTreq, **kwargs: Any):
    answers: List[Any] = []
    d = stub.post("http://core.test/model", **kwargs)
    d.addCallback(lambda r: stub.content(r).addCallback(lambda body: answers.append((r, body))))
    stub.flush()
    response, body = answers[0]
    return response.code, json.loads(body) if body else None


def test_post_model_takes_the_form_field(tmp_path):
    fake = FakeArchives()
    stub = StubTreq(app(fake).resource())
    code, body = post(stub, **form("model", b"zip bytes"))
    assert code == 204 and body is None
    assert fake.received == [b"zip bytes"]

    fake.failure = ConversationError("Not a zip archive: no", 400, "InvalidModel")
    code, body = post(stub, **form("model", b"zip bytes"))
    assert code == 400 and body["reason"] == "InvalidModel" and "Not a zip" in body["message"]

    code, body = post(stub, **form("other", b"z"))
    assert code == 400 and body["reason"] == "InvalidParameter"
    assert body["details"]["parameter"] == "model"
    code, body = post(stub, data=b"zip bytes", headers={"Content-Type": "application/zip"})
    assert code == 400 and body["reason"] == "BadRequest"
    assert len(fake.received) == 2


def test_post_model_has_its_own_size_limit():
    fake = FakeArchives()
    stub = StubTreq(app(fake, max_body_bytes=1000, max_model_bytes=3000).resource())
    code, body = post(stub, **form("model", b"x" * 4000))
    assert code == 413 and body["reason"] == "PayloadTooLarge"
    assert fake.received == []
    # A model bigger than any JSON request, within the model limit.
    code, _ = post(stub, **form("model", b"x" * 2000))
    assert code == 204 and fake.received == [b"x" * 2000]


def test_post_model_is_absent_when_the_conversations_cannot_load_models():
    stub = StubTreq(app(object()).resource())
    code, body = post(stub, **form("model", b"z"))
    assert code == 404 and body["reason"] == "NotFound"
