"""Fuzzes the real server against its own OpenAPI document with schemathesis.

The server runs as its own process (``live_server.Server``, ``--enable_api``, the in-memory
tracker store) on a small bot trained here. schemathesis reads the document from the running
server's ``GET /openapi.yml`` and, for every operation in it, sends generated requests (valid
ones and, in its negative mode, invalid ones), then checks each answer: never a 5xx, a status
code, content type and body that the document lists for that operation.

The example counts are small and Hypothesis runs derandomized, so the run is the same on every
machine and stays well under a minute on two cores. Requests of all operations share one
server, so one operation's cases see the conversations and the model that earlier cases left
behind, as a real server would.
"""

import os
import re
from typing import Any, List

import pytest
import yaml

from coreactors.http.app import OPENAPI_PATH
from live_server import Server, train_bot, write

schemathesis = pytest.importorskip("schemathesis")
import requests  # noqa: E402  (schemathesis brings it)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

DOMAIN = """
intents:
  - greet
  - goodbye
entities:
  - name
slots:
  name:
    type: text
templates:
  utter_greet:
    - text: "hey {name}!"
      buttons:
        - title: "bye"
          payload: "/goodbye"
  utter_goodbye:
    - text: "bye"
actions:
  - utter_greet
  - utter_goodbye
"""

STORIES = """
## greet
* greet
    - utter_greet

## goodbye
* goodbye
    - utter_goodbye
"""

POLICIES = """
policies:
  - name: MemoizationPolicy
    max_history: 3
  - name: FallbackPolicy
"""

# Generated requests per operation and mode (valid / invalid input). For a deeper search,
# FUZZ_EXAMPLES=300; FUZZ_RANDOM=1 draws new inputs on every run instead of the fixed ones.
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
DERANDOMIZE = not os.environ.get("FUZZ_RANDOM")

CHECKS = [schemathesis.checks.not_a_server_error,
          schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance,
          schemathesis.checks.response_schema_conformance]


def _documented_operations() -> List[str]:
    # Collected from the packaged file; each test then finds its operation in the document the
    # server serves, so a route missing from either one fails.
    with open(OPENAPI_PATH, encoding="utf-8") as f:
        document = yaml.safe_load(f)
    return ["{} {}".format(method.upper(), path)
            for path, item in document["paths"].items()
            for method in item if method in _METHODS]


_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory):
    model = train_bot(tmp_path_factory.mktemp("fuzzbot"), DOMAIN, STORIES, POLICIES)
    workdir = str(tmp_path_factory.mktemp("fuzz-server"))
    endpoints = write(os.path.join(workdir, "endpoints.yml"), "tracker_store:\n  type: memory\n")
    # A small body limit, so that generated bodies run into the 413 path now and then.
    running = Server(workdir, ["--enable_api", "-d", model,
                               "--endpoints", endpoints, "--max_body_bytes", "4096",
                               "--quiet"]).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def guarded_server(fuzzed_server, tmp_path_factory):
    """The same model behind an API token: the document's 401s must hold too."""
    workdir = str(tmp_path_factory.mktemp("fuzz-guarded"))
    endpoints = write(os.path.join(workdir, "endpoints.yml"), "tracker_store:\n  type: memory\n")
    model = fuzzed_server.args[fuzzed_server.args.index("-d") + 1]
    running = Server(workdir, ["--enable_api", "-d", model, "--endpoints", endpoints,
                               "--auth_token", "s3cret", "--quiet"]).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api_schema(fuzzed_server):
    return schemathesis.openapi.from_url(fuzzed_server.base + "/openapi.yml")


@pytest.fixture(scope="module")
def guarded_schema(guarded_server):
    return schemathesis.openapi.from_url(guarded_server.base + "/openapi.yml")


@pytest.fixture(scope="module")
def session():
    with requests.Session() as shared:
        yield shared


def test_the_served_document_is_the_packaged_one(fuzzed_server):
    answer = fuzzed_server.get("/openapi.yml")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("application/yaml")
    with open(OPENAPI_PATH, "rb") as f:
        assert answer.body == f.read()
    from coreactors import __version__
    assert yaml.safe_load(answer.body)["info"]["version"] == __version__


def test_the_document_is_served_without_the_api_and_without_credentials():
    from treq.testing import StubTreq
    from coreactors.http.app import CoreApp
    app = CoreApp(None, enable_api=False, authorize=lambda request, sender_id: (
        401, "NotAuthenticated", "no credentials"))
    stub = StubTreq(app.resource())
    answers: List[Any] = []
    stub.get("http://core.test/openapi.yml").addCallback(
        lambda response: stub.content(response).addCallback(
            lambda body: answers.append((response.code, body))))
    stub.flush()
    with open(OPENAPI_PATH, "rb") as f:
        assert answers == [(200, f.read())]


def test_the_document_describes_every_route_the_app_serves():
    from coreactors.http.app import CoreApp
    documented = set(_documented_operations())
    served = set()
    for rule in CoreApp.app.url_map.iter_rules():
        # Klein spells path parameters <name>; the channel routes are documented for "rest".
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        path = path.replace("{channel}", "rest")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add("{} {}".format(method, path))
    assert served - documented == set()


def _fuzz_cases() -> List[Any]:
    cases = []
    for label in _documented_operations():
        for mode in ("positive", "negative"):
            cases.append(pytest.param(label, mode, id="{}-{}".format(label, mode)))
    return cases


@pytest.mark.parametrize("label, mode", _fuzz_cases())
def test_every_operation_answers_as_documented(api_schema, fuzzed_server, session, label, mode):
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, "GET /openapi.yml does not describe " + label

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=DERANDOMIZE, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(GenerationMode(mode)))
    def run(case):
        case.call_and_validate(base_url=fuzzed_server.base, session=session, checks=CHECKS,
                               timeout=30)

    try:
        run()
    except Unsatisfiable:
        if mode == "positive":
            raise
        pytest.skip("{} takes no input that could be made invalid".format(label))


@pytest.mark.parametrize("label", _documented_operations())
def test_with_auth_every_operation_answers_as_documented(guarded_server, guarded_schema,
                                                        session, label):
    operation = guarded_schema.find_operation_by_label(label)
    assert operation is not None, "GET /openapi.yml does not describe " + label

    @settings(max_examples=5, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(GenerationMode.POSITIVE))
    def run(case):
        case.call_and_validate(base_url=guarded_server.base, session=session, checks=CHECKS,
                               timeout=30)

    run()
