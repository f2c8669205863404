"""``endpoints.yml``: where the action server, the model server, NLU and the tracker store are.

Each block becomes an ``EndpointConfig`` (``url``, ``params``, ``headers``, ``basic_auth``,
``token``, ``token_name``, and any other keys in ``kwargs``), as Rasa Core 0.12 reads it.
``${VAR}`` in a value is replaced by the environment variable.
"""

import os
import re
from typing import Any, Dict, Optional

import yaml

_ENV = re.compile(r"\$\{([^}]+)\}")


class EndpointError(ValueError):
    """An endpoints or credentials file that cannot be used."""


class EndpointConfig:
    """One endpoint: a URL and how to call it."""

    def __init__(self, url: Optional[str] = None, params: Optional[Dict[str, Any]] = None,
                 headers: Optional[Dict[str, Any]] = None,
                 basic_auth: Optional[Dict[str, str]] = None, token: Optional[str] = None,
                 token_name: str = "token", **kwargs: Any) -> None:
        self.url = url
        self.params = dict(params or {})
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self.basic_auth = basic_auth
        self.token = token
        self.token_name = token_name
        self.kwargs = kwargs

    def query(self) -> Dict[str, Any]:
        query = dict(self.params)
        if self.token is not None:
            query[self.token_name] = self.token
        return query

    def auth(self) -> Optional[tuple]:
        if not self.basic_auth:
            return None
        return (str(self.basic_auth.get("username", "")),
                str(self.basic_auth.get("password", "")))

    @classmethod
    def from_dict(cls, data: Any, name: str) -> "EndpointConfig":
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise EndpointError("'{}' must be a mapping (url, token, ...).".format(name))
        return cls(**{str(k): v for k, v in data.items()})


def _substitute(value: Any) -> Any:
    if isinstance(value, str):
        def replace(match: "re.Match[str]") -> str:
            name = match.group(1)
            if name not in os.environ:
                raise EndpointError("The environment variable '{}' is not set.".format(name))
            return os.environ[name]
        return _ENV.sub(replace, value)
    if isinstance(value, dict):
        return {k: _substitute(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v) for v in value]
    return value


def read_yaml_config(path: Optional[str]) -> Dict[str, Any]:
    """A YAML mapping file (endpoints or credentials) with ``${VAR}`` resolved; {} for None."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise EndpointError("{}: cannot read it: {}".format(path, e.strerror))
    except yaml.YAMLError as e:
        raise EndpointError("{}: not valid YAML: {}".format(path, e))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EndpointError("{}: must be a mapping of names to settings.".format(path))
    return _substitute(data)


class AvailableEndpoints:
    """The blocks of an endpoints file."""

    def __init__(self, data: Dict[str, Any]) -> None:
        self.raw = data

        def block(*names: str) -> Optional[EndpointConfig]:
            for name in names:
                if data.get(name) is not None:
                    return EndpointConfig.from_dict(data[name], name)
            return None
        self.action = block("action_endpoint")
        # ``model`` is the documented key; Rasa Core 0.12's code read ``models``.
        self.model = block("model", "models")
        self.nlu = block("nlu")
        self.nlg = block("nlg")
        self.tracker_store: Optional[Dict[str, Any]] = data.get("tracker_store")
        self.lock_store: Optional[Dict[str, Any]] = data.get("lock_store")

    @classmethod
    def read(cls, path: Optional[str]) -> "AvailableEndpoints":
        return cls(read_yaml_config(path))
