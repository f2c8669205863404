"""The policy contract: train on trackers, predict the next action's probabilities, persist, load."""

import json
import os
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple, Type

from coreactors.dialogue.domain import Domain
from coreactors.dialogue.tracker import DialogueStateTracker
from coreactors.policies.featurizers import (
    MaxHistoryTrackerFeaturizer, TrackerFeaturizer, load_featurizer)

FEATURIZER_FILE = "featurizer.json"


class Policy:
    """Base of all policies. ``priority`` breaks ties between equally confident policies."""

    name = "Policy"
    default_priority = 1
    # Whether ``featurizer:`` may be configured (policies without featurization say no).
    uses_featurizer = True

    def __init__(self, featurizer: Optional[TrackerFeaturizer] = None,
                 priority: Optional[int] = None) -> None:
        self.featurizer = featurizer if featurizer is not None else self.standard_featurizer()
        self.priority = self.default_priority if priority is None else int(priority)

    def standard_featurizer(self) -> Optional[TrackerFeaturizer]:
        return MaxHistoryTrackerFeaturizer(max_history=5)

    @property
    def max_history(self) -> Optional[int]:
        return self.featurizer.max_history if self.featurizer is not None else None

    def train(self, trackers: Sequence[DialogueStateTracker], domain: Domain) -> None:
        """Learns from training trackers; policies that learn nothing keep this."""

    def predict_action_probabilities(self, tracker: DialogueStateTracker, domain: Domain
                                     ) -> List[float]:
        raise NotImplementedError

    def continue_training(self, trackers: Sequence[DialogueStateTracker], domain: Domain,
                          **kwargs: Any) -> None:
        """Learns from more trackers (online learning); by default retrains on them."""
        self.train(trackers, domain)

    # The methods whose behaviour prediction_key describes: a subclass overriding any of them
    # without a prediction_key of its own gets none (see keys_predictions).
    key_covers: Tuple[str, ...] = ("predict_action_probabilities",)

    def prediction_key(self, tracker: DialogueStateTracker) -> Optional[Hashable]:
        """Everything about ``tracker`` this policy's prediction depends on (its trained state
        and the domain aside), as a hashable value: two trackers with equal keys get equal
        predictions, so the ensemble can remember them. None: the policy cannot say (it
        reads more of the conversation, or changes the tracker), and nothing is remembered."""
        return None

    # Persistence: a folder with the featurizer and a JSON file of settings (``_settings``),
    # plus whatever a subclass adds in ``_persist_extra``.

    settings_file = "policy.json"

    def _settings(self) -> Dict[str, Any]:
        return {"priority": self.priority}

    def persist(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        if self.featurizer is not None:
            self.featurizer.persist(os.path.join(path, FEATURIZER_FILE))
        with open(os.path.join(path, self.settings_file), "w", encoding="utf-8") as f:
            json.dump(self._settings(), f, indent=2, sort_keys=True)
        self._persist_extra(path)

    def _persist_extra(self, path: str) -> None:
        pass

    @classmethod
    def load(cls, path: str) -> "Policy":
        settings: Dict[str, Any] = {}
        settings_path = os.path.join(path, cls.settings_file)
        if os.path.exists(settings_path):
            with open(settings_path, encoding="utf-8") as f:
                settings = json.load(f)
        featurizer_path = os.path.join(path, FEATURIZER_FILE)
        featurizer = load_featurizer(featurizer_path) if os.path.exists(featurizer_path) else None
        policy = cls._from_settings(featurizer, settings)
        policy._load_extra(path)
        return policy

    @classmethod
    def _from_settings(cls, featurizer: Optional[TrackerFeaturizer], settings: Dict[str, Any]
                       ) -> "Policy":
        return cls(featurizer=featurizer, **settings)

    def _load_extra(self, path: str) -> None:
        pass

    def __repr__(self) -> str:
        return "<{} priority={}>".format(type(self).__name__, self.priority)


def keys_predictions(policy: Policy) -> bool:
    """Whether ``policy``'s class describes its predictions with ``prediction_key``: the class
    that defines prediction_key also defines (or inherits unchanged) every method it covers."""
    owner = _defining_class(type(policy), "prediction_key")
    return owner is not Policy and all(
        issubclass(owner, _defining_class(type(policy), name)) for name in owner.key_covers)


def _defining_class(cls: Type[Any], name: str) -> Type[Any]:
    return next(c for c in cls.__mro__ if name in vars(c))


def confidence_scores_for(action_name: str, value: float, domain: Domain) -> List[float]:
    """A probability list with ``value`` on one action and zero elsewhere."""
    result = [0.0] * domain.num_actions
    if domain.has_action(action_name):
        result[domain.index_for_action(action_name)] = value
    return result
