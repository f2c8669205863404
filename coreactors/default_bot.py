"""The embedded default bot: trained from the package's own training data on first use, cached.

The model folder holds the dialogue model and, in ``nlu/``, the NLU model trained on the bot's
``nlu.md``, so plain text ("hello", "a large latte please") works out of the box.

The cache folder is named after a hash of the training data, so a new version of the bot's data
trains a new model, and an unchanged one is trained once per machine.
"""

import hashlib
import os
import shutil
import tempfile
from typing import Optional

DEFAULT_BOT_DIR = os.path.join(os.path.dirname(__file__), "data", "default_bot")
TRAINING_FILES = ("domain.yml", "stories.md", "policies.yml", "nlu.md")


def _data_hash() -> str:
    digest = hashlib.sha256()
    for name in TRAINING_FILES:
        with open(os.path.join(DEFAULT_BOT_DIR, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()[:16]


def cache_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "coreactors")


def default_model_path(cache_dir: Optional[str] = None) -> str:
    """The trained default bot's model folder, training it first if it is not cached yet."""
    root = cache_dir or cache_root()
    target = os.path.join(root, "default_bot-" + _data_hash())
    if os.path.isfile(os.path.join(target, "policy_metadata.json")):
        return target
    from coreactors.model import NLU_FOLDER, refresh_fingerprint
    from coreactors.training.nlu import train_nlu_model
    from coreactors.training.train import train_dialogue_model
    os.makedirs(root, exist_ok=True)
    # Train beside the target and rename, so a half-written model is never found.
    scratch = tempfile.mkdtemp(prefix=".training-", dir=root)
    try:
        model_dir = os.path.join(scratch, "model")
        train_dialogue_model(os.path.join(DEFAULT_BOT_DIR, "domain.yml"),
                             os.path.join(DEFAULT_BOT_DIR, "stories.md"), model_dir,
                             os.path.join(DEFAULT_BOT_DIR, "policies.yml"))
        # The bot understands plain text, not only /intent messages: its NLU model travels in
        # the model folder's nlu/ (see coreactors.model).
        train_nlu_model(os.path.join(DEFAULT_BOT_DIR, "nlu.md"), None, model_dir,
                        fixed_model_name=NLU_FOLDER)
        refresh_fingerprint(model_dir)
        try:
            os.rename(os.path.join(scratch, "model"), target)
        except OSError:
            if not os.path.isdir(target):  # another process may have won the race
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
