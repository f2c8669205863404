"""One thread's own connection to Redis, for the threads that call Redis on every turn (the
tracker store's writer, the lock desk).

redis-py's client takes a connection from its pool for every command, checks the process id,
wraps the call in its retry machinery and gives the connection back: about half of a command's
cost on the client, which a busy server feels on every turn. A thread that owns a connection
needs none of it. ``RedisLink`` keeps one connection made by the client's pool (same host,
password, database, timeouts, parser) and runs Lua scripts on it: ``EVALSHA``, loading the
script once when Redis does not know it (after a restart, say). A connection that fails is
dropped and made again once, at once, as the client's ``Retry(NoBackoff(), 1)`` does; a second
failure is the caller's.
"""

import hashlib
from typing import Any, Sequence

import redis
from redis.exceptions import ConnectionError, NoScriptError, TimeoutError


class RedisLink:
    """A connection of one thread's own, from ``client``'s pool settings; not thread-safe."""

    def __init__(self, client: "redis.Redis") -> None:
        self._pool = client.connection_pool
        self._connection: Any = None

    def run_script(self, script: "Script", keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """The script's answer; redis-py's exceptions for Redis's errors."""
        for attempt in (1, 2):
            connection = self._connection
            if connection is None:
                connection = self._connection = self._pool.make_connection()
            try:
                try:
                    return self._evalsha(connection, script, keys, args)
                except NoScriptError:
                    connection.send_command("SCRIPT", "LOAD", script.text)
                    connection.read_response()
                    return self._evalsha(connection, script, keys, args)
            except (ConnectionError, TimeoutError, OSError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _evalsha(connection: Any, script: "Script", keys: Sequence[Any],
                 args: Sequence[Any]) -> Any:
        connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return connection.read_response()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.disconnect()
            except (redis.RedisError, OSError):
                pass


class Script:
    """A Lua script's text and its SHA-1 (the name Redis knows it by)."""

    __slots__ = ("text", "sha")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode("utf-8")).hexdigest()


__all__ = ["RedisLink", "Script"]
