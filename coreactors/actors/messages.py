"""Everything an actor receives, as types: what the Supervisor and the model watcher send.

A conversation actor receives four kinds of message: ``Ask`` (a request about the
conversation and the ``Reply`` its answer goes to), ``TakeModel`` (the model to use from its
next request on), ``TakeConversation`` (hold another sender's conversation from now on) and
``Passivate`` (stop: the conversation is stored, its actor is no longer needed). The requests are frozen dataclasses named after what they ask for; the actor matches on
their type, so a request can be followed from the sender to its handler, and a value that is
not a request is refused where it is sent (``TypeError``), not deep inside a worker.

The model watcher's actor receives ``Poll`` (pull once, answer the new model or None) and
``Prune`` (remove the unpacked folders no model in use needs).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from coreactors.actors.interface import MessageListener
from coreactors.dialogue.tracker import EventVerbosity

if TYPE_CHECKING:  # only for the annotations: the model is a value carried along
    from coreactors.stores.lock import Lease
    from coreactors.actors.reply import Reply
    from coreactors.model import Model

class ConversationRequest:
    """A request about one conversation (the base of the request types below)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class HandleMessage(ConversationRequest):
    """A user message: run the turn; answers the list of bot messages."""

    text: str
    input_channel: Optional[str] = None
    listener: Optional[MessageListener] = None


@dataclass(frozen=True, slots=True)
class LogMessage(ConversationRequest):
    """A user message logged without predicting; answers the tracker state."""

    text: str
    parse_data: Optional[Dict[str, Any]]
    verbosity: EventVerbosity


@dataclass(frozen=True, slots=True)
class GetTracker(ConversationRequest):
    """Answers the tracker state (as it was at ``until``, when given)."""

    verbosity: EventVerbosity
    until: Optional[float] = None


@dataclass(frozen=True, slots=True)
class GetStory(ConversationRequest):
    """Answers the conversation as story markdown (up to ``until``, when given)."""

    until: Optional[float] = None


@dataclass(frozen=True, slots=True)
class AppendEvents(ConversationRequest):
    """Appends events (all or none); answers the tracker state."""

    events: List[Dict[str, Any]]
    verbosity: EventVerbosity


@dataclass(frozen=True, slots=True)
class ReplaceEvents(ConversationRequest):
    """Replaces the conversation's events; answers the tracker state."""

    events: List[Dict[str, Any]]
    verbosity: EventVerbosity


@dataclass(frozen=True, slots=True)
class Predict(ConversationRequest):
    """Answers the next action's scores without running it."""


@dataclass(frozen=True, slots=True)
class Execute(ConversationRequest):
    """Runs one action; answers {"tracker": state, "messages": [...]}."""

    action: str
    policy: Optional[str]
    confidence: Optional[float]
    verbosity: EventVerbosity


@dataclass(frozen=True, slots=True)
class Ask:
    """A request and where its answer goes; with a lock store, the conversation's lease the
    request holds."""

    request: ConversationRequest
    reply: "Reply"
    lease: Optional["Lease"] = None


@dataclass(frozen=True, slots=True)
class TakeModel:
    """Use ``model`` from the next request on (a request in progress finishes with the old)."""

    model: "Model"


@dataclass(frozen=True, slots=True)
class Passivate:
    """Stop once the messages before this one are handled (the Supervisor sends it to an actor
    with nothing in flight that has been idle too long)."""


@dataclass(frozen=True, slots=True)
class TakeConversation:
    """Drop the conversation held so far (it is stored) and hold ``sender_id``'s from now on:
    at the actor cap, the least recently used idle actor takes over a new sender's
    conversation instead of being stopped while another is started."""

    sender_id: str


@dataclass(frozen=True, slots=True)
class Poll:
    """Pull once from the model server; ``reply`` gets the new Model, or None."""

    reply: "Reply"


@dataclass(frozen=True, slots=True)
class Prune:
    """Remove the unpacked model folders no model in use needs."""


CONVERSATION_REQUESTS = (HandleMessage, LogMessage, GetTracker, GetStory, AppendEvents,
                         ReplaceEvents, Predict, Execute)

__all__ = ["AppendEvents", "Ask", "CONVERSATION_REQUESTS", "ConversationRequest", "Execute",
           "GetStory", "GetTracker", "HandleMessage", "LogMessage", "MessageListener", "Poll",
           "Passivate", "Predict", "Prune", "ReplaceEvents", "TakeConversation", "TakeModel"]
