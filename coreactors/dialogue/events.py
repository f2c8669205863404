"""Conversation events: their JSON form, their story-line form and their effect on a tracker.

Every change to a conversation is an event. An event knows three things: how it looks on the
wire (``as_dict`` / ``from_dict``, the same keys as Rasa Core 0.12), how it is written in a story
(``as_story_string``), and what it does to a tracker (``apply_to``). Trackers only change
through events, so replaying a tracker's events always rebuilds the same state.
"""

import datetime
import json
import time
import uuid
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Type

from coreactors.markup import annotate_text

if TYPE_CHECKING:  # pragma: no cover
    from coreactors.dialogue.tracker import DialogueStateTracker


class InvalidEvent(ValueError):
    """An event dict that cannot be turned into an event (unknown type, missing or wrong field)."""


def _now() -> float:
    return time.time()


def _require(parameters: Dict[str, Any], key: str, kind: Any, event_type: str,
             optional: bool = False) -> Any:
    """Reads one field of an event dict, checking its type so bad input fails here, not later."""
    if key not in parameters or parameters[key] is None:
        if optional:
            return None
        raise InvalidEvent("Event '{}' needs the field '{}'.".format(event_type, key))
    value = parameters[key]
    if kind is float and isinstance(value, bool):
        raise InvalidEvent("Field '{}' of event '{}' must be a number.".format(key, event_type))
    if not isinstance(value, kind):
        names = {str: "a string", dict: "an object", list: "a list", bool: "a boolean",
                 float: "a number", (int, float): "a number"}
        raise InvalidEvent("Field '{}' of event '{}' must be {}, got {}.".format(
            key, event_type, names.get(kind, str(kind)), type(value).__name__))
    return value


def _optional_text(parameters: Dict[str, Any], event_type: str) -> Optional[str]:
    text = parameters.get("text")
    if text is not None and not isinstance(text, str):
        raise InvalidEvent("Field 'text' of event '{}' must be a string.".format(event_type))
    return text


def _timestamp(parameters: Dict[str, Any], event_type: str) -> Optional[float]:
    value = parameters.get("timestamp")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidEvent("Field 'timestamp' of event '{}' must be a number.".format(event_type))
    return float(value)


def _action_fields(parameters: Dict[str, Any], event_type: str
                   ) -> "tuple[str, Optional[str], Optional[float]]":
    """``name``, ``policy`` and ``confidence`` of an action-like event, type-checked."""
    name = _require(parameters, "name", str, event_type)
    policy = parameters.get("policy")
    if policy is not None and not isinstance(policy, str):
        raise InvalidEvent("Field 'policy' of event '{}' must be a string.".format(event_type))
    confidence = parameters.get("confidence")
    if confidence is not None and (isinstance(confidence, bool)
                                   or not isinstance(confidence, (int, float))):
        raise InvalidEvent("Field 'confidence' of event '{}' must be a number.".format(
            event_type))
    return name, policy, confidence


class Event:
    """Base of all events. ``type_name`` is the value of the ``event`` key on the wire."""

    type_name = "event"

    def __init__(self, timestamp: Optional[float] = None) -> None:
        # A falsy timestamp means "now", as in Rasa Core.
        self.timestamp = timestamp or _now()

    def as_dict(self) -> Dict[str, Any]:
        return {"event": self.type_name, "timestamp": self.timestamp}

    def as_story_string(self) -> Optional[str]:
        """The line of a story that stands for this event (without ``- ``), or None."""
        return None

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        """Changes the tracker's state; the base event changes nothing."""

    @classmethod
    def _from_parameters(cls, parameters: Dict[str, Any]) -> "Event":
        return cls(_timestamp(parameters, cls.type_name))

    # Equality follows Rasa: events of these simple types are equal to any event of their class.
    def _key(self) -> tuple:
        return ()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._key() == other._key()  # type: ignore

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((self.type_name,) + tuple(_hashable(k) for k in self._key()))

    def __repr__(self) -> str:
        fields = ", ".join("{}={!r}".format(k, v) for k, v in self.as_dict().items()
                           if k not in ("event", "timestamp"))
        return "{}({})".format(type(self).__name__, fields)


def _hashable(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


class UserUttered(Event):
    """The user said something; ``parse_data`` is what the interpreter made of it."""

    type_name = "user"

    def __init__(self, text: Optional[str] = None, intent: Optional[Dict[str, Any]] = None,
                 entities: Optional[List[Dict[str, Any]]] = None,
                 parse_data: Optional[Dict[str, Any]] = None, timestamp: Optional[float] = None,
                 input_channel: Optional[str] = None, message_id: Optional[str] = None) -> None:
        self.text = text
        self.intent = intent if intent else {}
        self.entities = entities if entities else []
        self.input_channel = input_channel
        self.message_id = message_id
        if parse_data:
            self.parse_data = parse_data
        else:
            self.parse_data = {"intent": self.intent, "entities": self.entities, "text": text}
        super().__init__(timestamp)

    @classmethod
    def empty(cls) -> "UserUttered":
        return cls(None)

    @property
    def intent_name(self) -> Optional[str]:
        return self.intent.get("name") if self.intent else None

    def as_dict(self) -> Dict[str, Any]:
        d = super().as_dict()
        d.update({"text": self.text, "parse_data": self.parse_data,
                  "input_channel": self.input_channel})
        return d

    @classmethod
    def _from_parameters(cls, parameters: Dict[str, Any]) -> "UserUttered":
        parse_data = _require(parameters, "parse_data", dict, cls.type_name, optional=True)
        text = _optional_text(parameters, cls.type_name)
        if parse_data is None:
            # Rasa Core crashed here (a 500); a user event without parse data has no intent.
            parse_data = {"intent": {}, "entities": [], "text": text}
        intent = parse_data.get("intent") or {}
        entities = parse_data.get("entities") or []
        if not isinstance(intent, dict):
            raise InvalidEvent("'parse_data.intent' of event 'user' must be an object.")
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            raise InvalidEvent("'parse_data.entities' of event 'user' must be a list of objects.")
        channel = parameters.get("input_channel")
        if channel is not None and not isinstance(channel, str):
            raise InvalidEvent("Field 'input_channel' of event 'user' must be a string.")
        return cls(text, intent, entities, parse_data, _timestamp(parameters, cls.type_name),
                   channel)

    def _key(self) -> tuple:
        return (self.text, _hashable(self.intent), _hashable(self.entities),
                _hashable(self.parse_data))

    def as_story_string(self, e2e: bool = False) -> Optional[str]:
        if not self.intent:
            return str(self.text)
        name = self.intent.get("name")
        if e2e:
            # Entities logged through the API may lack offsets or not fit the text, and some
            # texts cannot be written as markdown annotations at all: then the line says less
            # (the text without entities, or the plain intent line) rather than nothing.
            for entities in (self.entities, []):
                try:
                    return "{}: {}".format(name, annotate_text(self.text or "", entities))
                except (KeyError, TypeError, ValueError):
                    continue
        if self.entities:
            values = {}
            for entity in self.entities:
                values[entity.get("entity")] = entity.get("value")
            return "{}{}".format(name, json.dumps(values))
        return str(name)

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        tracker._on_user_uttered(self)


class BotUttered(Event):
    """The bot said something; ``data`` carries buttons, elements and the attachment."""

    type_name = "bot"

    def __init__(self, text: Optional[str] = None, data: Any = None,
                 timestamp: Optional[float] = None) -> None:
        self.text = text
        self.data = data
        super().__init__(timestamp)

    @classmethod
    def empty(cls) -> "BotUttered":
        return cls()

    def as_dict(self) -> Dict[str, Any]:
        d = super().as_dict()
        d.update({"text": self.text, "data": self.data})
        return d

    @classmethod
    def _from_parameters(cls, parameters: Dict[str, Any]) -> "BotUttered":
        return cls(_optional_text(parameters, cls.type_name), parameters.get("data"),
                   _timestamp(parameters, cls.type_name))

    def _key(self) -> tuple:
        return (self.text, _hashable(self.data))

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        tracker.latest_bot_utterance = self


class AgentUttered(Event):
    """A message from an agent outside the bot (a human hand-over); changes nothing."""

    type_name = "agent"

    def __init__(self, text: Optional[str] = None, data: Any = None,
                 timestamp: Optional[float] = None) -> None:
        self.text = text
        self.data = data
        super().__init__(timestamp)

    def as_dict(self) -> Dict[str, Any]:
        d = super().as_dict()
        d.update({"text": self.text, "data": self.data})
        return d

    @classmethod
    def _from_parameters(cls, parameters: Dict[str, Any]) -> "AgentUttered":
        return cls(_optional_text(parameters, cls.type_name), parameters.get("data"),
                   _timestamp(parameters, cls.type_name))

    def _key(self) -> tuple:
        return (self.text, _hashable(self.data))


class SlotSet(Event):
    """Sets a slot's value."""

    type_name = "slot"

    def __init__(self, key: str, value: Any = None, timestamp: Optional[float] = None) -> None:
        self.key = key
        self.value = value
        super().__init__(timestamp)

    def as_dict(self) -> Dict[str, Any]:
        d = super().as_dict()
        d.update({"name": self.key, "value": self.value})
        return d

    @classmethod
    def _from_parameters(cls, parameters: Dict[str, Any]) -> "SlotSet":
        return cls(_require(parameters, "name", str, cls.type_name), parameters.get("value"),
                   _timestamp(parameters, cls.type_name))

    def _key(self) -> tuple:
        return (self.key, _hashable(self.value))

    def as_story_string(self) -> str:
        return "{}{}".format(self.type_name, json.dumps({self.key: self.value}))

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        tracker._set_slot(self.key, self.value)


class Restarted(Event):
    """Resets the conversation; everything before it stops counting."""

    type_name = "restart"

    def as_story_string(self) -> str:
        return self.type_name

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        tracker._reset()
        tracker.followup_action = "action_listen"


class UserUtteranceReverted(Event):
    """Undoes the latest user message and everything after it ("rewind")."""

    type_name = "rewind"

    def as_story_string(self) -> str:
        return self.type_name

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        tracker._revert_user_utterance()


class ActionReverted(Event):
    """Undoes the latest action and everything after it ("undo")."""

    type_name = "undo"

    def as_story_string(self) -> str:
        return self.type_name

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        tracker._revert_action()


class AllSlotsReset(Event):
    """Puts every slot back to its initial value."""

    type_name = "reset_slots"

    def as_story_string(self) -> str:
        return self.type_name

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        tracker._reset_slots()


class ReminderScheduled(Event):
    """Asks for an action to run later. Scheduling is the server's job; the tracker is unchanged."""

    type_name = "reminder"

    def __init__(self, action_name: str, trigger_date_time: datetime.datetime,
                 name: Optional[str] = None, kill_on_user_message: bool = True,
                 timestamp: Optional[float] = None) -> None:
        self.action_name = action_name
        self.trigger_date_time = trigger_date_time
        self.name = name if name is not None else str(uuid.uuid1())
        self.kill_on_user_message = kill_on_user_message
        super().__init__(timestamp)

    def _properties(self) -> Dict[str, Any]:
        return {"action": self.action_name, "date_time": self.trigger_date_time.isoformat(),
                "name": self.name, "kill_on_user_msg": self.kill_on_user_message}

    def as_dict(self) -> Dict[str, Any]:
        d = super().as_dict()
        d.update(self._properties())
        return d

    @classmethod
    def _from_parameters(cls, parameters: Dict[str, Any]) -> "ReminderScheduled":
        action = _require(parameters, "action", str, cls.type_name)
        raw = _require(parameters, "date_time", str, cls.type_name)
        try:
            when = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEvent("Field 'date_time' of event 'reminder' is not an ISO 8601 date: "
                               "{!r}.".format(raw))
        name = parameters.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidEvent("Field 'name' of event 'reminder' must be a string.")
        kill = parameters.get("kill_on_user_msg", True)
        if not isinstance(kill, bool):
            raise InvalidEvent("Field 'kill_on_user_msg' of event 'reminder' must be a boolean.")
        return cls(action, when, name, kill, _timestamp(parameters, cls.type_name))

    def _key(self) -> tuple:
        return (self.name,)

    def as_story_string(self) -> str:
        return "{}{}".format(self.type_name, json.dumps(self._properties()))


class StoryExported(Event):
    """Marks that the story was exported. Unlike Rasa, applying it never writes a file."""

    type_name = "export"

    def as_story_string(self) -> str:
        return self.type_name


class FollowupAction(Event):
    """Forces the next action, skipping prediction."""

    type_name = "followup"

    def __init__(self, name: str, timestamp: Optional[float] = None) -> None:
        self.action_name = name
        super().__init__(timestamp)

    def as_dict(self) -> Dict[str, Any]:
        d = super().as_dict()
        d["name"] = self.action_name
        return d

    @classmethod
    def _from_parameters(cls, parameters: Dict[str, Any]) -> "FollowupAction":
        return cls(_require(parameters, "name", str, cls.type_name),
                   _timestamp(parameters, cls.type_name))

    def _key(self) -> tuple:
        return (self.action_name,)

    def as_story_string(self) -> str:
        return "{}{}".format(self.type_name, json.dumps({"name": self.action_name}))

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        tracker.followup_action = self.action_name


class ConversationPaused(Event):
    """The bot stops acting until the conversation resumes (a human takes over)."""

    type_name = "pause"

    def as_story_string(self) -> str:
        return self.type_name

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        tracker.paused = True


class ConversationResumed(Event):
    """The bot acts again."""

    type_name = "resume"

    def as_story_string(self) -> str:
        return self.type_name

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        tracker.paused = False


class ActionExecuted(Event):
    """An action ran; ``policy`` and ``confidence`` say who predicted it and how surely."""

    type_name = "action"

    def __init__(self, action_name: str, policy: Optional[str] = None,
                 confidence: Optional[float] = None, timestamp: Optional[float] = None,
                 unpredictable: bool = False) -> None:
        self.action_name = action_name
        self.policy = policy
        self.confidence = confidence
        # Set by the story reader for a bot-first story opening: no training example for it.
        self.unpredictable = unpredictable
        super().__init__(timestamp)

    def as_dict(self) -> Dict[str, Any]:
        d = super().as_dict()
        d.update({"name": self.action_name, "policy": self.policy,
                  "confidence": self.confidence})
        return d

    @classmethod
    def _from_parameters(cls, parameters: Dict[str, Any]) -> "ActionExecuted":
        name, policy, confidence = _action_fields(parameters, cls.type_name)
        return cls(name, policy, confidence, _timestamp(parameters, cls.type_name))

    def _key(self) -> tuple:
        # Rasa compares actions by name only.
        return (self.action_name,)

    def as_story_string(self) -> str:
        return self.action_name

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        tracker._on_action_executed(self.action_name)


class Form(Event):
    """Activates the named form, or deactivates the active one when the name is null."""

    type_name = "form"

    def __init__(self, name: Optional[str], timestamp: Optional[float] = None) -> None:
        self.name = name
        super().__init__(timestamp)

    def as_dict(self) -> Dict[str, Any]:
        d = super().as_dict()
        d["name"] = self.name
        return d

    @classmethod
    def _from_parameters(cls, parameters: Dict[str, Any]) -> "Form":
        name = parameters.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidEvent("Field 'name' of event 'form' must be a string or null.")
        return cls(name, _timestamp(parameters, cls.type_name))

    def _key(self) -> tuple:
        return (self.name,)

    def as_story_string(self) -> str:
        return "{}{}".format(self.type_name, json.dumps({"name": self.name}))

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        tracker._change_form_to(self.name)


class FormValidation(Event):
    """Turns the active form's validation on or off for its next run."""

    type_name = "form_validation"

    def __init__(self, validate: bool, timestamp: Optional[float] = None) -> None:
        self.validate = validate
        super().__init__(timestamp)

    def as_dict(self) -> Dict[str, Any]:
        d = super().as_dict()
        d["validate"] = self.validate
        return d

    @classmethod
    def _from_parameters(cls, parameters: Dict[str, Any]) -> "FormValidation":
        return cls(_require(parameters, "validate", bool, cls.type_name),
                   _timestamp(parameters, cls.type_name))

    def _key(self) -> tuple:
        return ()

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        tracker.active_form["validate"] = self.validate


class ActionExecutionRejected(Event):
    """An action (usually a form) refused to run; the next prediction skips it."""

    type_name = "action_execution_rejected"

    def __init__(self, action_name: str, policy: Optional[str] = None,
                 confidence: Optional[float] = None, timestamp: Optional[float] = None) -> None:
        self.action_name = action_name
        self.policy = policy
        self.confidence = confidence
        super().__init__(timestamp)

    def as_dict(self) -> Dict[str, Any]:
        d = super().as_dict()
        d.update({"name": self.action_name, "policy": self.policy,
                  "confidence": self.confidence})
        return d

    @classmethod
    def _from_parameters(cls, parameters: Dict[str, Any]) -> "ActionExecutionRejected":
        name, policy, confidence = _action_fields(parameters, cls.type_name)
        return cls(name, policy, confidence, _timestamp(parameters, cls.type_name))

    def _key(self) -> tuple:
        return (self.action_name, self.policy, self.confidence)

    def apply_to(self, tracker: "DialogueStateTracker") -> None:
        if tracker.active_form.get("name") == self.action_name:
            tracker.active_form["rejected"] = True


EVENT_TYPES: Dict[str, Type[Event]] = {
    cls.type_name: cls for cls in (
        UserUttered, BotUttered, AgentUttered, SlotSet, Restarted, UserUtteranceReverted,
        ActionReverted, AllSlotsReset, ReminderScheduled, StoryExported, FollowupAction,
        ConversationPaused, ConversationResumed, ActionExecuted, Form, FormValidation,
        ActionExecutionRejected)
}


def event_from_dict(parameters: Any) -> Event:
    """Builds an event from its JSON form; raises ``InvalidEvent`` with a clear message."""
    if not isinstance(parameters, dict):
        raise InvalidEvent("An event must be a JSON object, got {}.".format(
            type(parameters).__name__))
    type_name = parameters.get("event")
    if not isinstance(type_name, str):
        raise InvalidEvent("An event needs an 'event' field naming its type.")
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise InvalidEvent("Unknown event name '{}'. Known events: {}.".format(
            type_name, ", ".join(sorted(EVENT_TYPES))))
    return cls._from_parameters(parameters)


def events_from_dicts(items: Any) -> List[Event]:
    """Builds a list of events; the whole list fails if one item is bad, so nothing half-applies."""
    if not isinstance(items, list):
        raise InvalidEvent("Expected a list of events, got {}.".format(type(items).__name__))
    events = []
    for index, item in enumerate(items):
        try:
            events.append(event_from_dict(item))
        except InvalidEvent as e:
            raise InvalidEvent("Event {} of the list: {}".format(index, e))
    return events


def events_as_dicts(events: Iterable[Event]) -> List[Dict[str, Any]]:
    return [e.as_dict() for e in events]
