"""What the HTTP layer may ask of the actor system, and the errors it may get back.

Every method is called on the reactor thread and returns a Deferred (or a plain value for the
cheap, immutable model facts). The HTTP layer knows this interface, never the actors behind it.
"""

from typing import Any, Callable, Dict, List, Optional

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from coreactors.dialogue.tracker import EventVerbosity

# Called on the reactor thread with each bot message as the turn produces it.
MessageListener = Callable[[Dict[str, Any]], None]


class ConversationError(Exception):
    """A request the actor system refused; ``status`` and ``reason`` go into the error body."""

    status = 400
    reason = "BadRequest"

    def __init__(self, message: str, status: Optional[int] = None,
                 reason: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if reason is not None:
            self.reason = reason


class NoModelLoaded(ConversationError):
    status = 503
    reason = "NoAgent"


class StoreUnavailable(ConversationError):
    status = 503
    reason = "StoreUnavailable"


class IConversations(Interface):
    """The actor system as the HTTP layer sees it (``coreactors.actors.agent.Agent``)."""

    is_ready = Attribute("True once a model is loaded.")
    fingerprint = Attribute("The fingerprint of the model in use, or None.")

    def domain():
        """The model's Domain (raises NoModelLoaded)."""

    def parse(text: str) -> Deferred:
        """Fires with what the model's interpreter makes of ``text``; touches no conversation."""

    def handle_message(sender_id: str, text: str, input_channel: Optional[str],
                       listener: Optional[MessageListener]) -> Deferred:
        """Runs a turn; fires with the list of bot messages."""

    def log_message(sender_id: str, text: str, parse_data: Optional[Dict[str, Any]],
                    verbosity: EventVerbosity) -> Deferred:
        """Logs a user message without predicting; fires with the tracker state."""

    def tracker(sender_id: str, verbosity: EventVerbosity, until: Optional[float]) -> Deferred:
        """Fires with the tracker state (at ``until`` when given)."""

    def story(sender_id: str, until: Optional[float]) -> Deferred:
        """Fires with the conversation as story markdown."""

    def append_events(sender_id: str, events: List[Dict[str, Any]],
                      verbosity: EventVerbosity) -> Deferred:
        """Appends events (a bad event fails the whole call with a 400 ConversationError and
        changes nothing); fires with the tracker state."""

    def replace_events(sender_id: str, events: List[Dict[str, Any]],
                       verbosity: EventVerbosity) -> Deferred:
        """Replaces the conversation's events; fires with the tracker state."""

    def predict(sender_id: str) -> Deferred:
        """Fires with {scores, policy, confidence, tracker} without running an action."""

    def execute(sender_id: str, action: str, policy: Optional[str],
                confidence: Optional[float], verbosity: EventVerbosity) -> Deferred:
        """Runs one action; fires with {"tracker": state, "messages": [...]}."""

    def conversation_ids() -> Deferred:
        """Fires with the list of known sender ids."""

    def predict_for_events(events: List[Dict[str, Any]]) -> Deferred:
        """POST /predict: fires with {scores, policy, tracker} for a throwaway tracker."""

    def evaluate(stories: str, e2e: bool) -> Deferred:
        """POST /evaluate: fires with the evaluation JSON."""

    def finetune(events: List[Dict[str, Any]]) -> Deferred:
        """POST /finetune: continues training on a posted conversation; fires with None."""


class IModelArchives(Interface):
    """Taking a zipped model (``POST /model``); the Agent provides it beside
    IConversations. An app whose conversations do not provide it answers 404 there."""

    def load_model_archive(data: bytes) -> Deferred:
        """Unpacks, loads and checks the zip off the reactor thread, then swaps the model in
        (as a model from the model server is); fires with the new fingerprint (the content's),
        or fails with a 400 ConversationError (reason ``InvalidModel``)."""
