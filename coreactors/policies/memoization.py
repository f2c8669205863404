"""Memoization: remember the exact state windows of the training stories and their next action.

A window seen in training predicts its action with confidence 1.0; anything else predicts
nothing. A window seen with two different actions is ambiguous and forgotten. The augmented
variant also tries the conversation with its oldest turns forgotten, so a remembered turn still
matches after an unrelated earlier turn.
"""

import json
import os
from typing import Any, Dict, Hashable, List, Optional, Sequence, Set

from coreactors.dialogue.domain import Domain
from coreactors.dialogue.tracker import DialogueStateTracker
from coreactors.logs import Log
from coreactors.policies.featurizers import MaxHistoryTrackerFeaturizer, TrackerFeaturizer, Window
from coreactors.policies.policy import Policy, confidence_scores_for

log = Log(__name__)

LOOKUP_FILE = "memorized_turns.json"


def window_to_json(window: Window) -> List[Any]:
    return [None if s is None else sorted([k, v] for k, v in s) for s in window]


def window_from_json(data: List[Any]) -> Window:
    return tuple(None if s is None else frozenset((k, float(v)) for k, v in s) for s in data)


class MemoizationPolicy(Policy):
    """Predicts exactly what the training stories did in exactly the same situation."""

    name = "MemoizationPolicy"
    default_priority = 2

    def __init__(self, featurizer: Optional[TrackerFeaturizer] = None,
                 priority: Optional[int] = None, max_history: Optional[int] = 5,
                 lookup: Optional[Dict[Window, str]] = None) -> None:
        if featurizer is None:
            featurizer = MaxHistoryTrackerFeaturizer(max_history=max_history)
        super().__init__(featurizer, priority)
        self.lookup: Dict[Window, str] = lookup or {}
        self.is_enabled = True

    def _training_pairs(self, trackers: Sequence[DialogueStateTracker]):
        return self.featurizer.training_examples(trackers)

    def train(self, trackers: Sequence[DialogueStateTracker], domain: Domain) -> None:
        # The stories as written come first; glued (augmented) stories only add the situations
        # between stories, and never override or erase what a written story says.
        originals = [t for t in trackers if not getattr(t, "is_augmented", False)]
        augmented = [t for t in trackers if getattr(t, "is_augmented", False)]
        self.lookup = {}
        ambiguous: Set[Window] = set()
        for window, label in zip(*self._training_pairs(originals)):
            self._add(window, label, ambiguous)
        written = set(self.lookup) | ambiguous
        extra: Dict[Window, str] = {}
        extra_ambiguous: Set[Window] = set()
        for window, label in zip(*self._training_pairs(augmented)):
            if window in written or window in extra_ambiguous:
                continue
            known = extra.get(window)
            if known is None:
                extra[window] = label
            elif known != label:
                del extra[window]
                extra_ambiguous.add(window)
        self.lookup.update(extra)
        log.debug("{policy} memorized {turns} turns.", policy=self.name, turns=len(self.lookup))

    def _add(self, window: Window, label: str, ambiguous: Set[Window]) -> None:
        if window in ambiguous:
            return
        known = self.lookup.get(window)
        if known is None:
            self.lookup[window] = label
        elif known != label:
            del self.lookup[window]
            ambiguous.add(window)

    def continue_training(self, trackers: Sequence[DialogueStateTracker], domain: Domain,
                          **kwargs: Any) -> None:
        # Online learning: newer examples overwrite older ones.
        windows, labels = self._training_pairs(trackers)
        for window, label in zip(windows, labels):
            self.lookup[window] = label

    def recall(self, tracker: DialogueStateTracker, domain: Domain) -> Optional[str]:
        return self.lookup.get(self.featurizer.prediction_window(tracker))

    key_covers = ("predict_action_probabilities", "recall")

    def prediction_key(self, tracker: DialogueStateTracker) -> Optional[Hashable]:
        return self.is_enabled, self.featurizer.prediction_window(tracker)

    def predict_action_probabilities(self, tracker: DialogueStateTracker, domain: Domain
                                     ) -> List[float]:
        if not self.is_enabled:
            return [0.0] * domain.num_actions
        action = self.recall(tracker, domain)
        if action is None:
            return [0.0] * domain.num_actions
        return confidence_scores_for(action, 1.0, domain)

    def _settings(self) -> Dict[str, Any]:
        return {"priority": self.priority, "max_history": self.max_history}

    @classmethod
    def _from_settings(cls, featurizer, settings):
        return cls(featurizer=featurizer, priority=settings.get("priority"),
                   max_history=settings.get("max_history", 5))

    def _persist_extra(self, path: str) -> None:
        entries = [{"states": window_to_json(w), "action": a} for w, a in self.lookup.items()]
        entries.sort(key=lambda e: json.dumps(e, sort_keys=True))
        with open(os.path.join(path, LOOKUP_FILE), "w", encoding="utf-8") as f:
            json.dump({"max_history": self.max_history, "lookup": entries}, f)

    def _load_extra(self, path: str) -> None:
        lookup_path = os.path.join(path, LOOKUP_FILE)
        if not os.path.exists(lookup_path):
            log.info("No memorized turns at {path}; starting empty.", path=lookup_path,
                     policy=self.name)
            return
        with open(lookup_path, encoding="utf-8") as f:
            data = json.load(f)
        self.lookup = {window_from_json(e["states"]): e["action"] for e in data["lookup"]}


class AugmentedMemoizationPolicy(MemoizationPolicy):
    """Memoization that, on a miss, retries with the oldest turns of the conversation forgotten."""

    name = "AugmentedMemoizationPolicy"
    # How far back the retries reach, in actions: bounds the cost in long conversations.
    MAX_FORGET_STEPS = 20

    def recall(self, tracker: DialogueStateTracker, domain: Domain) -> Optional[str]:
        window = self.featurizer.prediction_window(tracker)
        action = self.lookup.get(window)
        if action is not None:
            return action
        # Starting from the second action: each retry forgets one more turn. Only the latest
        # actions are looked at, so a long conversation costs no more than a short one.
        candidates = tracker.last_action_positions(self.MAX_FORGET_STEPS + 1)[1:]
        for start in candidates:
            shortened = DialogueStateTracker.from_events(
                tracker.sender_id, tracker.applied_events_from(start), domain)
            candidate = self.featurizer.prediction_window(shortened)
            if candidate == window:
                continue
            window = candidate
            action = self.lookup.get(window)
            if action is not None:
                return action
        return None
