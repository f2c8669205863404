"""Choosing the tracker store from the ``tracker_store:`` block of endpoints.yml.

No block means the SQLite store at the default path, so conversations survive a restart unless
the operator asks otherwise. The block's type is spelled ``type`` or, as in Rasa Core 0.12,
``store_type`` (which wins when both are given)::

    tracker_store:
      store_type: sqlite          # or: memory / in_memory / InMemoryTrackerStore
      db: conversations.db        # or path: ..., or url: sqlite:///conversations.db

``type: redis`` keeps them in Redis (``coreactors.stores.redis``), with Rasa's keys::

    tracker_store:
      type: redis                 # Rasa 0.12: store_type: redis
      url: localhost              # the host (or a redis://[:password@]host:port/db URL)
      port: 6379
      db: 0
      password: ...
      record_exp: 86400           # seconds after its last write a conversation expires
      key_prefix: coreactors      # coreactors' own: the prefix of every key it writes

``type: sql`` with ``dialect: postgresql`` keeps them in PostgreSQL
(``coreactors.stores.sql``), with Rasa 1.x's keys ``url`` (the host), ``port``, ``db``,
``username``, ``password``; ``dialect: sqlite`` (Rasa's default) is the SQLite store on the
file ``db``.

Rasa's other stores (``mongod``, custom classes) are refused with a ``ValueError``
naming the types coreactors supports, rather than quietly falling back to another store and
losing conversations the operator meant to keep elsewhere.
"""

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from coreactors.stores.base import TrackerStore
from coreactors.stores.memory import InMemoryTrackerStore
from coreactors.stores.sqlite import SQLiteTrackerStore

if TYPE_CHECKING:
    from coreactors.stores.lock import RedisLockStore

SQLITE_TYPES = ("sqlite",)
MEMORY_TYPES = ("memory", "in_memory", "inmemorytrackerstore")
REDIS_TYPES = ("redis", "redistrackerstore")
SQL_TYPES = ("sql", "sqltrackerstore")
SUPPORTED = ("'sqlite' (the default), 'memory' (also 'in_memory', 'InMemoryTrackerStore'), "
             "'redis' and 'sql' (dialect postgresql or sqlite)")

_FILE_KEYS = ("db", "path", "url")
_SQLITE_URL = "sqlite:///"


def store_from_endpoint(config: Optional[Dict[str, Any]],
                        default_path: str = "coreactors.db",
                        writer_setup: Optional[Callable[[], None]] = None) -> TrackerStore:
    """Builds the store the ``tracker_store:`` block asks for (the block, not all endpoints).

    Raises ValueError for a type coreactors does not support or a malformed block, and
    StoreError when the SQLite file cannot be opened. ``writer_setup`` runs first on a
    store's writer thread, if it has one.
    """
    if config is None:
        return SQLiteTrackerStore(default_path, writer_setup=writer_setup)
    if not isinstance(config, dict):
        raise ValueError("tracker_store must be a mapping (type, db, ...), got {}".format(
            type(config).__name__))
    store_type = _store_type(config)
    if store_type is None or store_type.lower() in SQLITE_TYPES:
        return SQLiteTrackerStore(_sqlite_path(config, default_path),
                                  writer_setup=writer_setup)
    if store_type.lower() in MEMORY_TYPES:
        return InMemoryTrackerStore()
    if store_type.lower() in REDIS_TYPES:
        return _redis_store(config, writer_setup)
    if store_type.lower() in SQL_TYPES:
        return _sql_store(config, default_path, writer_setup)
    raise ValueError("tracker_store type {!r} is not supported by coreactors; supported types "
                     "are {}".format(store_type, SUPPORTED))


def _setting(config: Dict[str, Any], key: str, kind: type, default: Any,
             block: str = "tracker_store") -> Any:
    value = config.get(key)
    if value is None:
        return default
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError("{} {} must be a {}, got {!r}".format(
            block, key, kind.__name__, value))


def is_shared(store: TrackerStore) -> bool:
    """Whether several processes may serve the store's conversations (with a lock store): the
    stores that keep versions and refuse stale writes (Redis, PostgreSQL)."""
    from coreactors.stores.base import VersionedTrackerStore
    return isinstance(store, VersionedTrackerStore)


def lock_store_from_endpoint(config: Optional[Dict[str, Any]]) -> Optional["RedisLockStore"]:
    """The lock store the ``lock_store:`` block asks for, or None for none (one process: its
    conversation actors alone keep each conversation's turns apart)::

        lock_store:
          type: redis               # Rasa 1.x's key; in_memory (or no block): none
          url: localhost            # the host, or a redis://[:password@]host:port/db URL
          port: 6379
          db: 0
          password: ...
          key_prefix: coreactors
          lifetime: 10              # seconds a process's tickets live without renewal
          wait_timeout: 30          # seconds a request waits for its lease before a 503
    """
    if config is None:
        return None
    if not isinstance(config, dict):
        raise ValueError("lock_store must be a mapping (type, url, ...), got {}".format(
            type(config).__name__))
    lock_type = config.get("store_type", config.get("type"))
    if not isinstance(lock_type, str) or not lock_type.strip():
        raise ValueError("lock_store type must be given: redis (or in_memory for one process)")
    lock_type = lock_type.strip().lower()
    if lock_type in ("in_memory", "memory", "inmemorylockstore"):
        return None
    if lock_type not in ("redis", "redislockstore"):
        raise ValueError("lock_store type {!r} is not supported by coreactors; supported types "
                         "are 'redis' and 'in_memory' (one process)".format(lock_type))
    from coreactors.stores.lock import DEFAULT_LIFETIME, DEFAULT_PREFIX, RedisLockStore
    return RedisLockStore.from_config(
        host=_setting(config, "url", str, "localhost", "lock_store"),
        port=_setting(config, "port", int, 6379, "lock_store"),
        db=_setting(config, "db", int, 0, "lock_store"),
        password=_setting(config, "password", str, None, "lock_store"),
        prefix=_setting(config, "key_prefix", str, DEFAULT_PREFIX, "lock_store"),
        lifetime=_setting(config, "lifetime", float, DEFAULT_LIFETIME, "lock_store"))


def lock_wait_timeout(config: Optional[Dict[str, Any]]) -> float:
    """The ``lock_store:`` block's ``wait_timeout`` (seconds)."""
    from coreactors.stores.lock import DEFAULT_WAIT_TIMEOUT
    timeout = _setting(config or {}, "wait_timeout", float, DEFAULT_WAIT_TIMEOUT, "lock_store")
    if timeout <= 0:
        raise ValueError("lock_store wait_timeout must be positive, got {!r}".format(timeout))
    return timeout


def _sql_store(config: Dict[str, Any], default_path: str,
               writer_setup: Optional[Callable[[], None]]) -> TrackerStore:
    dialect = _setting(config, "dialect", str, "sqlite").strip().lower()
    if dialect == "sqlite":
        return SQLiteTrackerStore(_setting(config, "db", str, default_path),
                                  writer_setup=writer_setup)
    if dialect not in ("postgresql", "postgres"):
        raise ValueError("tracker_store type sql: dialect {!r} is not supported; supported "
                         "dialects are postgresql and sqlite".format(dialect))
    from coreactors.stores.sql import SQLTrackerStore
    return SQLTrackerStore.from_config(
        host=_setting(config, "url", str, "localhost"), port=_setting(config, "port", int, 5432),
        db=_setting(config, "db", str, "rasa"), username=_setting(config, "username", str, None),
        password=_setting(config, "password", str, None))


def _redis_store(config: Dict[str, Any],
                 writer_setup: Optional[Callable[[], None]] = None) -> TrackerStore:
    from coreactors.stores.redis import DEFAULT_PREFIX, RedisTrackerStore
    return RedisTrackerStore.from_config(
        host=_setting(config, "url", str, "localhost"),
        port=_setting(config, "port", int, 6379), db=_setting(config, "db", int, 0),
        password=_setting(config, "password", str, None),
        record_exp=_setting(config, "record_exp", float, None),
        prefix=_setting(config, "key_prefix", str, DEFAULT_PREFIX), writer_setup=writer_setup)


def _store_type(config: Dict[str, Any]) -> Optional[str]:
    """The block's type: ``store_type`` (Rasa Core 0.12's key) before ``type``; None if neither."""
    for key in ("store_type", "type"):
        value = config.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise ValueError("tracker_store {} must be a non-empty string, got {!r}; supported "
                             "types are {}".format(key, value, SUPPORTED))
        return value.strip()
    return None


def _sqlite_path(config: Dict[str, Any], default_path: str) -> str:
    """The database file named by ``db``, ``path`` or ``url``; they must agree if several."""
    paths = {}
    for key in _FILE_KEYS:
        value = config.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise ValueError("tracker_store {} must name the SQLite file, got {!r}".format(
                key, value))
        paths[key] = _file_from_url(value.strip()) if key == "url" else value.strip()
    if len(set(paths.values())) > 1:
        raise ValueError("tracker_store names different SQLite files ({}); give only one of "
                         "db, path and url".format(", ".join(
                             "{}: {!r}".format(key, path) for key, path in paths.items())))
    return next(iter(paths.values()), default_path)


def _file_from_url(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``, ``sqlite:////abs.db`` -> ``/abs.db``; others as is.

    This is SQLAlchemy's spelling, which Rasa users already write; a plain file name is taken
    as it is. Any other scheme (``redis://``, ``mongodb://``, ``postgresql://``) is refused so
    that it does not become a file of that name.
    """
    if url.lower().startswith(_SQLITE_URL):
        path = url[len(_SQLITE_URL):]
        if not path:
            raise ValueError("tracker_store url {!r} names no SQLite file".format(url))
        return path
    if "://" in url or url.lower().startswith("sqlite:"):
        raise ValueError("tracker_store url {!r} is not a SQLite file; write a file name or "
                         "sqlite:///file.db (supported types are {})".format(url, SUPPORTED))
    return url
