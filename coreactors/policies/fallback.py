"""Fallback policies: act when the bot did not understand or does not know what to do."""

from typing import Any, Dict, Hashable, List, Optional, Sequence

from coreactors.dialogue.domain import (
    ACTION_DEFAULT_ASK_AFFIRMATION_NAME, ACTION_DEFAULT_ASK_REPHRASE_NAME,
    ACTION_DEFAULT_FALLBACK_NAME, ACTION_LISTEN_NAME, ACTION_REVERT_FALLBACK_EVENTS_NAME, Domain,
    InvalidDomain)
from coreactors.dialogue.tracker import DialogueStateTracker
from coreactors.policies.featurizers import TrackerFeaturizer
from coreactors.policies.policy import Policy, confidence_scores_for


def nlu_confidence(tracker: DialogueStateTracker) -> float:
    confidence = (tracker.latest_message.intent or {}).get("confidence")
    return 1.0 if confidence is None else float(confidence)


class FallbackPolicy(Policy):
    """Runs the fallback action when NLU is unsure, or when no policy is confident enough.

    It predicts the fallback action with ``core_threshold``, so it wins only when every other
    policy is less sure than that; right after a user message whose intent confidence is below
    ``nlu_threshold`` it predicts the fallback action outright.
    """

    name = "FallbackPolicy"
    default_priority = 3
    uses_featurizer = False

    def __init__(self, featurizer: Optional[TrackerFeaturizer] = None,
                 priority: Optional[int] = None, nlu_threshold: float = 0.3,
                 core_threshold: float = 0.3,
                 fallback_action_name: str = ACTION_DEFAULT_FALLBACK_NAME) -> None:
        super().__init__(None, priority)
        self.nlu_threshold = float(nlu_threshold)
        self.core_threshold = float(core_threshold)
        self.fallback_action_name = fallback_action_name

    def standard_featurizer(self) -> None:
        return None

    def should_nlu_fallback(self, confidence: float, last_action: Optional[str]) -> bool:
        return confidence < self.nlu_threshold and last_action == ACTION_LISTEN_NAME

    def fallback_scores(self, domain: Domain, score: float = 1.0) -> List[float]:
        return confidence_scores_for(self.fallback_action_name, score, domain)

    def predict_action_probabilities(self, tracker: DialogueStateTracker, domain: Domain
                                     ) -> List[float]:
        if tracker.latest_action_name == self.fallback_action_name:
            return confidence_scores_for(ACTION_LISTEN_NAME, 1.0, domain)
        if self.should_nlu_fallback(nlu_confidence(tracker), tracker.latest_action_name):
            return self.fallback_scores(domain)
        return self.fallback_scores(domain, self.core_threshold)

    key_covers = ("predict_action_probabilities", "should_nlu_fallback", "fallback_scores")

    def prediction_key(self, tracker: DialogueStateTracker) -> Optional[Hashable]:
        return tracker.latest_action_name, nlu_confidence(tracker)

    settings_file = "fallback_policy.json"

    def _settings(self) -> Dict[str, Any]:
        return {"priority": self.priority, "nlu_threshold": self.nlu_threshold,
                "core_threshold": self.core_threshold,
                "fallback_action_name": self.fallback_action_name}


class TwoStageFallbackPolicy(FallbackPolicy):
    """Asks the user to affirm an unsure intent, then to rephrase, before falling back."""

    name = "TwoStageFallbackPolicy"

    def __init__(self, featurizer: Optional[TrackerFeaturizer] = None,
                 priority: Optional[int] = None, nlu_threshold: float = 0.3,
                 core_threshold: float = 0.3,
                 fallback_core_action_name: str = ACTION_DEFAULT_FALLBACK_NAME,
                 fallback_nlu_action_name: str = ACTION_DEFAULT_FALLBACK_NAME,
                 deny_suggestion_intent_name: str = "out_of_scope") -> None:
        super().__init__(None, priority, nlu_threshold, core_threshold,
                         fallback_core_action_name)
        self.fallback_nlu_action_name = fallback_nlu_action_name
        self.deny_suggestion_intent_name = deny_suggestion_intent_name

    def train(self, trackers: Sequence[DialogueStateTracker], domain: Domain) -> None:
        self._check_domain(domain)

    def _check_domain(self, domain: Domain) -> None:
        if self.deny_suggestion_intent_name not in domain.intents:
            raise InvalidDomain(
                "The TwoStageFallbackPolicy needs the intent '{}' (its "
                "'deny_suggestion_intent_name') in the domain.".format(
                    self.deny_suggestion_intent_name))

    def predict_action_probabilities(self, tracker: DialogueStateTracker, domain: Domain
                                     ) -> List[float]:
        self._check_domain(domain)
        latest = tracker.latest_action_name
        confidence = nlu_confidence(tracker)
        intent = (tracker.latest_message.intent or {}).get("name")
        low = confidence < self.nlu_threshold
        helpers = (ACTION_DEFAULT_ASK_AFFIRMATION_NAME, ACTION_DEFAULT_ASK_REPHRASE_NAME,
                   self.fallback_action_name)

        def scores(name: str) -> List[float]:
            return confidence_scores_for(name, 1.0, domain)

        if latest in helpers:
            return scores(ACTION_LISTEN_NAME)
        if latest == ACTION_LISTEN_NAME:
            after_affirmation = tracker.last_executed_action_has(
                ACTION_DEFAULT_ASK_AFFIRMATION_NAME)
            after_rephrase = tracker.last_executed_action_has(ACTION_DEFAULT_ASK_REPHRASE_NAME)
            if after_affirmation and intent == self.deny_suggestion_intent_name:
                asked_before = tracker.last_executed_action_has(
                    ACTION_DEFAULT_ASK_REPHRASE_NAME, skip=1)
                return scores(self.fallback_nlu_action_name if asked_before
                              else ACTION_DEFAULT_ASK_REPHRASE_NAME)
            if after_rephrase:
                return scores(ACTION_DEFAULT_ASK_AFFIRMATION_NAME if low
                              else ACTION_REVERT_FALLBACK_EVENTS_NAME)
            if after_affirmation:
                return scores(self.fallback_nlu_action_name if low
                              else ACTION_REVERT_FALLBACK_EVENTS_NAME)
            if low:
                return scores(ACTION_DEFAULT_ASK_AFFIRMATION_NAME)
        return self.fallback_scores(domain, self.core_threshold)

    settings_file = "two_stage_fallback_policy.json"

    def _settings(self) -> Dict[str, Any]:
        return {"priority": self.priority, "nlu_threshold": self.nlu_threshold,
                "core_threshold": self.core_threshold,
                "fallback_core_action_name": self.fallback_action_name,
                "fallback_nlu_action_name": self.fallback_nlu_action_name,
                "deny_suggestion_intent_name": self.deny_suggestion_intent_name}
