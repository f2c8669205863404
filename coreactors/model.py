"""The Model: domain, policy ensemble and interpreter travelling together as one value.

A trained dialogue model is a folder (``domain.yml``, ``domain.json``, ``policy_metadata.json``
and one ``policy_<i>_<Name>`` folder per policy), optionally with an ``nlu/`` folder holding a
trained NLU model, which then becomes the model's interpreter. The layout of Rasa's combined
archives (``core/`` and ``nlu/`` side by side) is read too. Its fingerprint is a hash of that
content, so it changes when, and only when, the model changes. The zip form of the folder is what
model servers serve and ``POST /model`` takes; unzipping refuses paths that escape and archives
that are too big.
"""

import hashlib
import io
import json
import os
import shutil
import zipfile
from typing import Any, Dict, Optional

from coreactors.dialogue.class_paths import MayImport, any_module
from coreactors.dialogue.domain import Domain, InvalidDomain
from coreactors.policies.ensemble import METADATA_FILE, PolicyEnsemble

DOMAIN_FILE = "domain.yml"
NLU_FOLDER = "nlu"
CORE_FOLDER = "core"
STATES_FILE = "domain.json"
FINGERPRINT_FILE = "fingerprint"
# Files whose content does not define the model (when it was made, its cached fingerprint).
VOLATILE = {FINGERPRINT_FILE}
MAX_UNZIPPED_BYTES = 512 * 1024 * 1024


class InvalidModel(ValueError):
    """A model folder or zip that cannot be loaded."""


class Model:
    """An immutable dialogue model; swapping models is swapping references to these."""

    def __init__(self, domain: Domain, policy_ensemble: PolicyEnsemble,
                 interpreter: Any = None, fingerprint: Optional[str] = None,
                 path: Optional[str] = None) -> None:
        self.domain = domain
        self.policy_ensemble = policy_ensemble
        self.interpreter = interpreter
        self.fingerprint = fingerprint
        self.path = path

    @classmethod
    def load(cls, path: str, interpreter: Any = None,
             may_import: MayImport = any_module) -> "Model":
        """Loads a model folder; its ``nlu/`` model, if any, wins over ``interpreter``.
        ``may_import`` says which modules its slot and policy class paths may import (all, for
        the operator's own folders; see ``coreactors.dialogue.class_paths``)."""
        if not path or not os.path.isdir(path):
            raise InvalidModel("{!r} is not a model folder (train one with 'coreactors train')."
                               .format(path))
        core_path = path
        if not os.path.isfile(os.path.join(path, DOMAIN_FILE)) \
                and os.path.isfile(os.path.join(path, CORE_FOLDER, DOMAIN_FILE)):
            core_path = os.path.join(path, CORE_FOLDER)
        domain_path = os.path.join(core_path, DOMAIN_FILE)
        if not os.path.isfile(domain_path):
            raise InvalidModel("{} has no {}: not a trained dialogue model.".format(
                path, DOMAIN_FILE))
        try:
            domain = Domain.load(domain_path, may_import)
            states_path = os.path.join(core_path, STATES_FILE)
            if os.path.exists(states_path):
                with open(states_path, encoding="utf-8") as f:
                    domain.compare_with_states(json.load(f)["states"])
            ensemble = PolicyEnsemble.load(core_path, may_import)
            ensemble.check_domain(domain)
        except (InvalidDomain, ValueError, KeyError, OSError) as e:
            raise InvalidModel("Cannot load the model at {}: {}".format(path, e))
        nlu = load_bundled_nlu(*dict.fromkeys((path, core_path)))
        return cls(domain, ensemble, nlu if nlu is not None else interpreter,
                   fingerprint_of(path), path)

    def with_interpreter(self, interpreter: Any) -> "Model":
        return Model(self.domain, self.policy_ensemble, interpreter, self.fingerprint, self.path)


def load_bundled_nlu(*folders: str) -> Any:
    """The NLU model in the ``nlu/`` subfolder of the first folder that has one, or None."""
    from coreactors.nlu.model import METADATA_FILE as NLU_METADATA, NLUModel
    for folder in folders:
        nlu_path = os.path.join(folder, NLU_FOLDER)
        if os.path.isfile(os.path.join(nlu_path, NLU_METADATA)):
            try:
                return NLUModel.load(nlu_path)
            except ValueError as e:
                raise InvalidModel("Cannot load the NLU model at {}: {}".format(nlu_path, e))
    return None


def refresh_fingerprint(path: str) -> str:
    """Recomputes and writes the fingerprint file after the folder changed (an NLU model added)."""
    fingerprint = fingerprint_of(path)
    with open(os.path.join(path, FINGERPRINT_FILE), "w", encoding="utf-8") as f:
        f.write(fingerprint + "\n")
    return fingerprint


def persist_model(path: str, domain: Domain, ensemble: PolicyEnsemble) -> str:
    """Writes a model folder (replacing an earlier model there) and returns its fingerprint."""
    if os.path.exists(os.path.join(path, METADATA_FILE)):
        # The old dialogue model goes; an NLU model trained into its nlu/ folder stays.
        for name in os.listdir(path):
            if name == NLU_FOLDER:
                continue
            full = os.path.join(path, name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.remove(full)
    os.makedirs(path, exist_ok=True)
    domain.persist(os.path.join(path, DOMAIN_FILE))
    with open(os.path.join(path, STATES_FILE), "w", encoding="utf-8") as f:
        json.dump({"states": domain.input_states}, f, indent=2)
    ensemble.persist(path)
    return refresh_fingerprint(path)


def _canonical(relative: str, content: bytes) -> bytes:
    if relative == METADATA_FILE:
        # When it was trained does not make it another model.
        metadata: Dict[str, Any] = json.loads(content.decode("utf-8"))
        metadata.pop("trained_at", None)
        metadata.pop("python", None)
        return json.dumps(metadata, sort_keys=True).encode("utf-8")
    return content


def fingerprint_of(path: str) -> str:
    """A hash of the model folder's content (file names and bytes)."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            relative = os.path.relpath(full, path).replace(os.sep, "/")
            if relative in VOLATILE:
                continue
            with open(full, "rb") as f:
                content = _canonical(relative, f.read())
            digest.update(relative.encode("utf-8") + b"\0")
            digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()[:32]


def zip_model(path: str) -> bytes:
    """The model folder as a zip archive (paths relative to the folder)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                archive.write(full, os.path.relpath(full, path).replace(os.sep, "/"))
    return buffer.getvalue()


def unzip_model(data: bytes, target: str, max_total_bytes: int = MAX_UNZIPPED_BYTES) -> str:
    """Unpacks a model zip into ``target``; refuses escaping paths, links and oversize content.

    Returns the folder holding the model: ``target`` itself, or its single top folder when the
    archive wraps the model in one.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise InvalidModel("Not a zip archive: {}".format(e))
    root = os.path.realpath(target)
    with archive:
        total = 0
        for info in archive.infolist():
            name = info.filename
            if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/") \
                    or ":" in name:
                raise InvalidModel("The archive has a path that escapes its folder: {!r}"
                                   .format(name))
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise InvalidModel("The archive contains a symbolic link: {!r}".format(name))
            destination = os.path.realpath(os.path.join(root, name))
            if os.path.commonpath([root, destination]) != root:
                raise InvalidModel("The archive has a path that escapes its folder: {!r}"
                                   .format(name))
            total += info.file_size
            if total > max_total_bytes:
                raise InvalidModel("The archive unpacks to more than {} bytes.".format(
                    max_total_bytes))
        os.makedirs(root, exist_ok=True)
        written = 0
        for info in archive.infolist():
            destination = os.path.join(root, info.filename)
            if info.is_dir():
                os.makedirs(destination, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            with archive.open(info) as source, open(destination, "wb") as sink:
                while True:
                    chunk = source.read(1 << 16)
                    if not chunk:
                        break
                    written += len(chunk)
                    if written > max_total_bytes:
                        raise InvalidModel("The archive unpacks to more than {} bytes.".format(
                            max_total_bytes))
                    sink.write(chunk)
    entries = [e for e in os.listdir(root) if not e.startswith(".")]
    if DOMAIN_FILE not in entries and len(entries) == 1 \
            and os.path.isdir(os.path.join(root, entries[0])):
        return os.path.join(root, entries[0])
    return root
