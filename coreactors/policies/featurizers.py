"""Featurizers: from a tracker's state history to what a policy learns from.

A state is a set of (feature, value) pairs. The single-state featurizer turns one state into a
vector in the domain's feature order; tracker featurizers cut the state history into windows
(the last ``max_history`` states, padded at the front) paired with the action taken next.
"""

import json
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from coreactors.dialogue.domain import Domain
from coreactors.dialogue.tracker import DialogueStateTracker, State, padded_window
from coreactors.policies.memory import AnswerMemory

# A window of states, oldest first; None stands for "before the conversation started".
Window = Tuple[Optional[State], ...]


class InvalidFeaturizerConfig(ValueError):
    """A featurizer configuration that cannot be built."""


class BinarySingleStateFeaturizer:
    """One vector position per domain feature; padding is all -1."""

    name = "BinarySingleStateFeaturizer"
    # Conversations revisit the same few states over and over: remember their vectors.
    VECTORS_REMEMBERED = 20000

    def __init__(self) -> None:
        self._vectors = AnswerMemory(self.VECTORS_REMEMBERED)

    def encode_window(self, window: Window, domain: Domain) -> np.ndarray:
        """The window's vectors, concatenated oldest first."""
        vectors = self._vectors.answers_for(domain)
        parts = []
        for state in window:
            vector = vectors.get(state)
            if vector is None:
                vector = self.encode(state, domain)
                self._vectors.remember(vectors, state, vector)
            parts.append(vector)
        return np.concatenate(parts)

    def encode(self, state: Optional[State], domain: Domain) -> np.ndarray:
        vector = np.zeros(domain.num_states, dtype=np.float32)
        if state is None:
            vector.fill(-1.0)
            return vector
        index = domain.input_state_index
        for feature, value in state:
            i = index.get(feature)
            if i is not None:
                vector[i] = value
        return vector


class TrackerFeaturizer:
    """Cuts trackers into (window, next action) training examples."""

    name = "TrackerFeaturizer"

    def __init__(self, state_featurizer: Optional[BinarySingleStateFeaturizer] = None,
                 max_history: Optional[int] = 5, remove_duplicates: bool = True) -> None:
        self.state_featurizer = state_featurizer or BinarySingleStateFeaturizer()
        self.max_history = max_history
        self.remove_duplicates = remove_duplicates

    def window_length(self) -> int:
        return self.max_history or 5

    def training_examples(self, trackers: Sequence[DialogueStateTracker]
                          ) -> Tuple[List[Window], List[str]]:
        """(window, next action) pairs of the trackers' predictable actions.

        With ``remove_duplicates`` an example seen n times is kept 1 + log2(n) times: far
        fewer examples to learn from, while a situation the stories show a thousand times still
        outweighs a contradicting one they show once.
        """
        length = self.window_length()
        counts: Dict[Tuple[Window, str], int] = {}
        for tracker in trackers:
            states, actions = tracker.training_examples()
            for i, (action, predictable) in enumerate(actions):
                if predictable:
                    key = (padded_window(states[:i + 1], length), action)
                    counts[key] = counts.get(key, 0) + 1
        windows: List[Window] = []
        labels: List[str] = []
        for (window, action), count in counts.items():
            copies = 1 + int(math.log2(count)) if self.remove_duplicates else count
            windows.extend([window] * copies)
            labels.extend([action] * copies)
        return windows, labels

    def prediction_window(self, tracker: DialogueStateTracker) -> Window:
        return tracker.last_window(self.window_length())

    def as_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "max_history": self.max_history,
                "remove_duplicates": self.remove_duplicates,
                "state_featurizer": self.state_featurizer.name}

    def persist(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.as_dict(), f, indent=2)


class MaxHistoryTrackerFeaturizer(TrackerFeaturizer):
    """Windows of the last ``max_history`` states (default 5)."""

    name = "MaxHistoryTrackerFeaturizer"


class FullDialogueTrackerFeaturizer(TrackerFeaturizer):
    """The whole dialogue as the window: as long as the longest training dialogue."""

    name = "FullDialogueTrackerFeaturizer"

    def __init__(self, state_featurizer: Optional[BinarySingleStateFeaturizer] = None,
                 max_history: Optional[int] = None, remove_duplicates: bool = True) -> None:
        super().__init__(state_featurizer, max_history, remove_duplicates)

    def training_examples(self, trackers: Sequence[DialogueStateTracker]
                          ) -> Tuple[List[Window], List[str]]:
        longest = max((len(t.training_examples()[0]) for t in trackers), default=1)
        self.max_history = max(1, longest)
        return super().training_examples(trackers)


FEATURIZERS = {cls.name: cls for cls in (MaxHistoryTrackerFeaturizer,
                                         FullDialogueTrackerFeaturizer)}
# Rasa's label-tokenizer featurizer served its embedding policy; binary features serve ours.
STATE_FEATURIZERS = {"BinarySingleStateFeaturizer": BinarySingleStateFeaturizer,
                     "LabelTokenizerSingleStateFeaturizer": BinarySingleStateFeaturizer}


def featurizer_from_config(config: Any) -> TrackerFeaturizer:
    """Builds a tracker featurizer from the ``featurizer:`` list of a policy configuration."""
    if isinstance(config, list):
        if len(config) != 1:
            raise InvalidFeaturizerConfig("'featurizer' must be a list with exactly one item.")
        config = config[0]
    if not isinstance(config, dict) or "name" not in config:
        raise InvalidFeaturizerConfig("a featurizer needs a 'name'.")
    config = dict(config)
    name = str(config.pop("name")).rsplit(".", 1)[-1]
    cls = FEATURIZERS.get(name)
    if cls is None:
        raise InvalidFeaturizerConfig("unknown featurizer '{}' (known: {}).".format(
            name, ", ".join(sorted(FEATURIZERS))))
    state_config = config.pop("state_featurizer", None)
    state_featurizer = None
    if state_config is not None:
        if isinstance(state_config, list):
            if len(state_config) != 1:
                raise InvalidFeaturizerConfig(
                    "'state_featurizer' must be a list with exactly one item.")
            state_config = state_config[0]
        state_name = str(state_config.get("name") if isinstance(state_config, dict)
                         else state_config).rsplit(".", 1)[-1]
        if state_name not in STATE_FEATURIZERS:
            raise InvalidFeaturizerConfig("unknown state featurizer '{}'.".format(state_name))
        state_featurizer = STATE_FEATURIZERS[state_name]()
    unknown = set(config) - {"max_history", "remove_duplicates"}
    if unknown:
        raise InvalidFeaturizerConfig("unknown featurizer option(s): {}.".format(
            ", ".join(sorted(unknown))))
    return cls(state_featurizer, **config)


def load_featurizer(path: str) -> TrackerFeaturizer:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    cls = FEATURIZERS.get(data.get("name"), MaxHistoryTrackerFeaturizer)
    return cls(STATE_FEATURIZERS.get(data.get("state_featurizer"), BinarySingleStateFeaturizer)(),
               data.get("max_history"), data.get("remove_duplicates", True))
