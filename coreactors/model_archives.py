"""Model zips unpacked into temporary folders, loaded, and removed once no model in use needs
them: the one loading path of the model server's models and of ``POST /model``.

Loading is blocking (unzip, disk, numpy): it runs off the reactor thread. The bookkeeping
(``published``, ``discard``) does no I/O, so the reactor may call it.
"""

import atexit
import copy
import os
import shutil
import tempfile
import threading
from typing import List, Optional, Set

from coreactors.dialogue.class_paths import MayImport, module_prefixes
from coreactors.logs import Log
from coreactors.model import MAX_UNZIPPED_BYTES, InvalidModel, Model, unzip_model

log = Log(__name__)


class ModelArchives:
    """Unpacks model zips into fresh temporary folders and loads them (off the reactor thread).

    Every folder made here is removed once no model in use needs it: the folders of the model
    in use and of the one before it stay (actors take a new model between two messages, so the
    previous one may still be finishing a turn), and so do folders of models loaded but not
    handed over yet. The rest go after each swap, at each load, and when the server stops.
    """

    def __init__(self, parent: Optional[str] = None,
                 max_unzipped_bytes: int = MAX_UNZIPPED_BYTES,
                 may_import: MayImport = module_prefixes(())) -> None:
        """``may_import``: the modules these models' class paths may import (a model that
        arrives over the network: none unless the operator allows some; see
        ``coreactors.dialogue.class_paths``)."""
        self.parent = parent
        self.max_unzipped_bytes = max_unzipped_bytes
        self.may_import = may_import
        self._lock = threading.Lock()
        self._folders: List[str] = []  # made here and not removed yet, oldest first
        self._pending: Set[str] = set()  # loaded, not handed to the Supervisor yet
        self._in_use: List[Optional[str]] = [None, None]  # model paths: current, previous
        self._atexit = False

    def load(self, data: bytes, fingerprint: Optional[str] = None) -> Model:
        """The model in zip ``data``, unpacked and checked; raises InvalidModel.

        Blocking (unzip, disk, numpy): never call it on the reactor thread. The model's
        fingerprint is ``fingerprint`` (a model server's ETag) or else its content's."""
        self.prune()
        # The real path: unzip_model returns paths under it, and published() compares them
        # without touching the disk (it runs on the reactor).
        folder = os.path.realpath(tempfile.mkdtemp(prefix="coreactors-model-", dir=self.parent))
        try:
            model = Model.load(unzip_model(data, folder, self.max_unzipped_bytes),
                               may_import=self.may_import)
        except InvalidModel:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        except Exception as e:  # whatever a broken model trips over, it is the model's fault
            shutil.rmtree(folder, ignore_errors=True)
            log.debug("Loading an archived model failed: {error!r}", error=e)
            raise InvalidModel("The archive holds no usable model: {}: {}".format(
                type(e).__name__, e))
        with self._lock:
            self._folders.append(folder)
            self._pending.add(folder)
            if not self._atexit:
                # twistd ends with SIGTERM's default action, which skips atexit; stopping the
                # supervisor cleans up then. This covers every other way out.
                atexit.register(self.remove_all)
                self._atexit = True
        if fingerprint is not None and fingerprint != model.fingerprint:
            # A copy, not a new Model(...): whatever else a Model carries travels along.
            model = copy.copy(model)
            model.fingerprint = fingerprint
        return model

    def published(self, path: Optional[str]) -> None:
        """Bookkeeping only (no I/O, so the reactor may call it): ``path`` is the folder of
        the model now in use."""
        with self._lock:
            if path != self._in_use[0]:
                self._in_use = [path, self._in_use[0]]
            for folder in list(self._pending):
                if _inside(path, folder):
                    self._pending.discard(folder)

    def prune(self) -> None:
        """Removes the folders no model in use needs (blocking)."""
        with self._lock:
            stale = [f for f in self._folders if f not in self._pending
                     and not any(_inside(p, f) for p in self._in_use)]
            self._folders = [f for f in self._folders if f not in stale]
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)

    def discard(self, model: Model) -> None:
        """A loaded model that will not be used: its folder may go."""
        with self._lock:
            for folder in list(self._pending):
                if _inside(model.path, folder):
                    self._pending.discard(folder)

    def remove_all(self) -> None:
        """Removes every folder made here (the server is stopping; models live in memory)."""
        with self._lock:
            folders, self._folders = self._folders, []
            self._pending.clear()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def _inside(path: Optional[str], folder: str) -> bool:
    if not path:
        return False
    path = os.path.normpath(os.path.abspath(path))
    return path == folder or path.startswith(folder + os.sep)


__all__ = ["ModelArchives"]
