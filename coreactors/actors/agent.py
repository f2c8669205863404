"""The agent: what the HTTP layer talks to (``IConversations``, ``IModelArchives``).

Rasa's server asked one ``Agent`` for everything; so does ours, and the agent passes each
request to the object whose job it is: requests about a conversation to the ``Supervisor``
(which routes them to the conversation's actor), requests about the model to
``ModelRequests``. It holds no state of its own.
"""

from typing import Any, Dict, List, Optional

from twisted.internet.defer import Deferred
from zope.interface import implementer

from coreactors.actors.interface import IConversations, IModelArchives
from coreactors.actors.messages import MessageListener
from coreactors.actors.model_requests import ModelRequests
from coreactors.actors.supervisor import Supervisor
from coreactors.dialogue.domain import Domain
from coreactors.dialogue.tracker import EventVerbosity


@implementer(IConversations, IModelArchives)
class Agent:
    """One process's conversations and model, as the HTTP layer sees them."""

    def __init__(self, supervisor: Supervisor,
                 model_requests: Optional[ModelRequests] = None) -> None:
        self.supervisor = supervisor
        self.model_requests = model_requests or ModelRequests(supervisor)

    # ----------------------------------------------------------------- the model

    @property
    def is_ready(self) -> bool:
        return self.supervisor.is_ready

    @property
    def fingerprint(self) -> Optional[str]:
        return self.supervisor.fingerprint

    def domain(self) -> Domain:
        return self.supervisor.domain()

    def parse(self, text: str) -> Deferred:
        return self.model_requests.parse(text)

    def predict_for_events(self, events: List[Dict[str, Any]]) -> Deferred:
        return self.model_requests.predict_for_events(events)

    def evaluate(self, stories: str, e2e: bool) -> Deferred:
        return self.model_requests.evaluate(stories, e2e)

    def finetune(self, events: List[Dict[str, Any]]) -> Deferred:
        return self.model_requests.finetune(events)

    def load_model_archive(self, data: bytes) -> Deferred:
        return self.model_requests.load_model_archive(data)

    # ----------------------------------------------------------------- conversations

    def handle_message(self, sender_id: str, text: str, input_channel: Optional[str] = None,
                       listener: Optional[MessageListener] = None) -> Deferred:
        return self.supervisor.handle_message(sender_id, text, input_channel, listener)

    def log_message(self, sender_id: str, text: str, parse_data: Optional[Dict[str, Any]],
                    verbosity: EventVerbosity) -> Deferred:
        return self.supervisor.log_message(sender_id, text, parse_data, verbosity)

    def tracker(self, sender_id: str, verbosity: EventVerbosity,
                until: Optional[float] = None) -> Deferred:
        return self.supervisor.tracker(sender_id, verbosity, until)

    def story(self, sender_id: str, until: Optional[float] = None) -> Deferred:
        return self.supervisor.story(sender_id, until)

    def append_events(self, sender_id: str, events: List[Dict[str, Any]],
                      verbosity: EventVerbosity) -> Deferred:
        return self.supervisor.append_events(sender_id, events, verbosity)

    def replace_events(self, sender_id: str, events: List[Dict[str, Any]],
                       verbosity: EventVerbosity) -> Deferred:
        return self.supervisor.replace_events(sender_id, events, verbosity)

    def predict(self, sender_id: str) -> Deferred:
        return self.supervisor.predict(sender_id)

    def execute(self, sender_id: str, action: str, policy: Optional[str],
                confidence: Optional[float], verbosity: EventVerbosity) -> Deferred:
        return self.supervisor.execute(sender_id, action, policy, confidence, verbosity)

    def conversation_ids(self) -> Deferred:
        return self.supervisor.conversation_ids()


__all__ = ["Agent"]
