"""Starting the real coreactors server for end-to-end tests, and talking to it.

The server runs as its own process (``python -m coreactors.run``: twistd, the real reactor, a
real port on 127.0.0.1); tests talk to it over HTTP with the standard library's client.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Dict, List, Optional


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class Server:
    """A running server process; ``request`` talks to it."""

    def __init__(self, workdir: str, args: List[str], env: Optional[Dict[str, str]] = None
                 ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base = "http://127.0.0.1:{}".format(self.port)
        self.log_path = os.path.join(workdir, "server.log")
        self.args = args
        environment = dict(os.environ)
        environment.setdefault("XDG_CACHE_HOME", os.path.join(workdir, "cache"))
        environment.update(env or {})
        self.env = environment
        self.process: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 30.0) -> "Server":
        command = [sys.executable, "-m", "coreactors.run", "--listen",
                   "tcp:{}:interface=127.0.0.1".format(self.port)] + self.args
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, cwd=self.workdir, env=self.env,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the server exited early:\n" + self.log())
            try:
                if self.request("GET", "/").status == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the server did not start in time:\n" + self.log())

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self._log.close()

    def request(self, method: str, path: str, body: Any = None,
                headers: Optional[Dict[str, str]] = None, raw: Optional[bytes] = None,
                timeout: float = 30.0) -> Response:
        data = raw
        headers = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Response(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, dict(e.headers), e.read())

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return self.request("PUT", path, body, **kwargs)


def write(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def multipart(fields: Dict[str, bytes]) -> Any:
    """A multipart/form-data body of file fields, and its Content-Type header."""
    boundary = "----coreactors-" + uuid.uuid4().hex
    body = b""
    for name, data in fields.items():
        body += ("--{}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}.zip\"\r\n"
                 "Content-Type: application/zip\r\n\r\n").format(boundary, name, name).encode()
        body += data + b"\r\n"
    body += "--{}--\r\n".format(boundary).encode()
    return body, {"Content-Type": "multipart/form-data; boundary=" + boundary}


def train_bot(root: str, domain: str, stories: str, policies: str, model: str = "model",
              augmentation_factor: int = 0) -> str:
    """Writes a test bot's domain, stories and policies under ``root`` and trains its dialogue
    model into ``root/model``; returns the model folder."""
    from coreactors.training.train import train_dialogue_model
    root = str(root)
    target = os.path.join(root, model)
    train_dialogue_model(write(os.path.join(root, "domain.yml"), domain),
                         write(os.path.join(root, "stories.md"), stories), target,
                         write(os.path.join(root, "policies.yml"), policies),
                         augmentation_factor=augmentation_factor)
    return target


# A bot of one story, for tests about everything but the dialogue.
GREETING_DOMAIN = """
intents: [greet]
templates:
  utter_greet:
    - "hi"
actions: [utter_greet]
"""
GREETING_STORIES = """
## greet
* greet
    - utter_greet
"""
MEMOIZATION_POLICIES = """
policies:
  - name: MemoizationPolicy
"""


def start_redis(port: int, folder: str) -> subprocess.Popen:
    """A Redis of the test's own on 127.0.0.1:``port`` that keeps nothing on disk (a restart
    empties it), once it answers; skips the test where there is no redis-server binary."""
    import shutil

    import pytest
    import redis
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary to start a Redis of the test's own")
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", folder],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            try:
                client.ping()
                return process
            except redis.RedisError:
                time.sleep(0.05)
    finally:
        client.close()
    process.kill()
    raise AssertionError("the test's Redis did not start")
