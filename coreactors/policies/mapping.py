"""The mapping policy: intents that always trigger one action (``triggers:`` in the domain)."""

from typing import Hashable, List, Optional

from coreactors.dialogue.domain import ACTION_LISTEN_NAME, Domain
from coreactors.dialogue.tracker import DialogueStateTracker
from coreactors.policies.featurizers import TrackerFeaturizer
from coreactors.policies.policy import Policy, confidence_scores_for


def triggered_action(domain: Domain, intent: Optional[str]) -> Optional[str]:
    props = domain.intent_properties.get(intent) if intent else None
    if not props:
        return None
    # ``maps_to`` is the 0.13 spelling of the same property.
    return props.get("triggers") or props.get("maps_to")


class MappingPolicy(Policy):
    """After a user message with a mapped intent, run its action; then listen."""

    name = "MappingPolicy"
    default_priority = 5
    uses_featurizer = False

    def __init__(self, featurizer: Optional[TrackerFeaturizer] = None,
                 priority: Optional[int] = None) -> None:
        super().__init__(None, priority)

    def standard_featurizer(self) -> None:
        return None

    def prediction_key(self, tracker: DialogueStateTracker) -> Optional[Hashable]:
        return (tracker.latest_message.intent or {}).get("name"), tracker.latest_action_name

    def predict_action_probabilities(self, tracker: DialogueStateTracker, domain: Domain
                                     ) -> List[float]:
        action = triggered_action(domain, (tracker.latest_message.intent or {}).get("name"))
        if action is None:
            return [0.0] * domain.num_actions
        if tracker.latest_action_name == ACTION_LISTEN_NAME:
            return confidence_scores_for(action, 1.0, domain)
        if tracker.latest_action_name == action:
            return confidence_scores_for(ACTION_LISTEN_NAME, 1.0, domain)
        return [0.0] * domain.num_actions
