"""Secrets kept out of the log: the API token travels in the query string (``?token=``, as
Rasa Core 0.12 takes it), so every URL that is logged (the access log's request line and
referrer, the errors that name a request) goes through ``redact`` first. A JWT travels in the
``Authorization`` header, which nothing logs.
"""

import re

REDACTED = "REDACTED"

# A query parameter whose value is a secret: token (Rasa's), access_token (OAuth's habit).
_SECRET_PARAMETER = re.compile(r"([?&;](?:access_)?token=)[^&;#\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` (a URL, or a line holding URLs) with the values of secret query parameters
    replaced by ``REDACTED``."""
    if "token=" not in text.lower():
        return text
    return _SECRET_PARAMETER.sub(r"\g<1>" + REDACTED, text)


__all__ = ["REDACTED", "redact"]
