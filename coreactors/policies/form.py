"""The form policy: keeps an active form running and lets stories say when it should not.

While a form is active, the form's action runs after every user message and the bot listens
after the form. When the form rejected a message and the training stories show that very
situation as an interruption (an "unhappy path"), the policy steps aside: it turns off the form's
validation for its next run and lets the other policies choose what to do.
"""

from typing import Any, Dict, Hashable, List, Optional, Sequence

from coreactors.dialogue.domain import (
    ACTION_LISTEN_NAME, ACTIVE_FORM_PREFIX, PREV_PREFIX, Domain)
from coreactors.dialogue.events import FormValidation
from coreactors.dialogue.tracker import DialogueStateTracker, State
from coreactors.policies.featurizers import MaxHistoryTrackerFeaturizer, TrackerFeaturizer, Window
from coreactors.policies.memoization import MemoizationPolicy
from coreactors.policies.policy import confidence_scores_for

FORM_SCORE = 1.0


def _active_form(state: Optional[State]) -> Optional[str]:
    if not state:
        return None
    for feature, value in state:
        if feature.startswith(ACTIVE_FORM_PREFIX) and value > 0:
            return feature[len(ACTIVE_FORM_PREFIX):]
    return None


def _after_listen(state: Optional[State]) -> bool:
    return bool(state) and (PREV_PREFIX + ACTION_LISTEN_NAME, 1.0) in state  # type: ignore


def _unhappy_key(window: Window) -> Window:
    """The action before the user's message and the message's state, nothing older."""
    first, last = window[0], window[-1]
    previous = None if first is None else frozenset(
        (k, v) for k, v in first if k.startswith(PREV_PREFIX))
    return (previous, last)


class FormPolicy(MemoizationPolicy):
    """Runs the active form; remembers the stories' interruptions of forms."""

    name = "FormPolicy"
    default_priority = 4

    def __init__(self, featurizer: Optional[TrackerFeaturizer] = None,
                 priority: Optional[int] = None, max_history: Optional[int] = 2,
                 lookup: Optional[Dict[Window, str]] = None) -> None:
        # Two states: the action before the user spoke, and what the user said.
        super().__init__(MaxHistoryTrackerFeaturizer(max_history=2), priority, 2, lookup)

    def train(self, trackers: Sequence[DialogueStateTracker], domain: Domain) -> None:
        originals = [t for t in trackers if not getattr(t, "is_augmented", False)]
        windows, _ = self._training_pairs(originals)
        self.lookup = {}
        for window in windows:
            form = _active_form(window[-1])
            if form and _after_listen(window[-1]):
                self.lookup[_unhappy_key(window)] = form

    def continue_training(self, trackers: Sequence[DialogueStateTracker], domain: Domain,
                          **kwargs: Any) -> None:
        before = dict(self.lookup)
        self.train(trackers, domain)
        before.update(self.lookup)
        self.lookup = before

    def _is_unhappy(self, tracker: DialogueStateTracker, form: str) -> bool:
        window = self.featurizer.prediction_window(tracker)
        return self.lookup.get(_unhappy_key(window)) == form

    def prediction_key(self, tracker: DialogueStateTracker) -> Optional[Hashable]:
        # Without an active form it predicts nothing; with one it may change the tracker.
        return None if tracker.active_form.get("name") else ()

    def predict_action_probabilities(self, tracker: DialogueStateTracker, domain: Domain
                                     ) -> List[float]:
        form = tracker.active_form.get("name")
        if not form:
            return [0.0] * domain.num_actions
        if tracker.latest_action_name == ACTION_LISTEN_NAME:
            if tracker.active_form.get("rejected") and self._is_unhappy(tracker, form):
                if tracker.active_form.get("validate", True):
                    tracker.update(FormValidation(False))
                return [0.0] * domain.num_actions
            return confidence_scores_for(form, FORM_SCORE, domain)
        if tracker.latest_action_name == form:
            return confidence_scores_for(ACTION_LISTEN_NAME, FORM_SCORE, domain)
        return [0.0] * domain.num_actions
