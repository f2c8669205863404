"""The dialogue state tracker: one conversation's events and the state they add up to.

The tracker changes only through events (``update``). It keeps, as it goes, the history of
states that policies featurize, so predicting in a long conversation costs the same as in a
short one. Reverting events (rewind, undo) costs the same at any point of a conversation: the
tracker keeps its state every MARK_EVERY applied events (a ``_Mark``) and where the actions and
user messages are; a revert goes back to the latest mark before its target and applies the few
events from there again, instead of replaying the conversation (only a revert further back
than the marks kept, after a long run of reverts, replays from the start).
"""

import bisect
import enum
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple, Type

from coreactors.dialogue.domain import ACTION_LISTEN_NAME, Domain, StateFeatures
from coreactors.dialogue.events import (
    ActionExecuted, ActionReverted, BotUttered, Event, Form, Restarted, SlotSet, UserUttered,
    UserUtteranceReverted, events_from_dicts)
from coreactors.dialogue.stories import story_from_events
from coreactors.logs import Log

log = Log(__name__)

# A state is the set of (feature name, value) pairs of one moment of the conversation.
State = StateFeatures

DEFAULT_SENDER_ID = "default"


class EventVerbosity(enum.Enum):
    """Which events ``current_state`` includes."""

    NONE = 1
    APPLIED = 2
    AFTER_RESTART = 3
    ALL = 4

    @classmethod
    def from_name(cls, name: str) -> "EventVerbosity":
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError("Invalid event verbosity '{}' (one of {}).".format(
                name, ", ".join(v.name for v in cls)))


def _empty_parse_data() -> Dict[str, Any]:
    return {"intent": {}, "entities": [], "text": None}


def padded_window(states: Sequence[Optional[State]], n: int) -> Tuple[Optional[State], ...]:
    """The last ``n`` of ``states``, padded in front with None to ``n``."""
    window = list(states[-n:]) if n > 0 else []
    return tuple([None] * (n - len(window)) + window)


class DialogueStateTracker:
    """One conversation: its events and its current state."""

    def __init__(self, sender_id: str, domain: Domain) -> None:
        self.sender_id = sender_id
        self.domain = domain
        self.events: List[Event] = []
        self.slots = domain.fresh_slots()
        # The slots, actions and intents any event names, as Domain.reading_changes does:
        # a new domain that differs in none of them reads this conversation the same way.
        self._mentions: Set[Tuple[str, str]] = set()
        # The current state and the windows of past states (by length) asked for since the
        # last change: every policy of a prediction asks for the same ones. Only events
        # change them: _apply, _reset and switch_domain forget them.
        self._state_cache: Optional[State] = None
        self._windows: Dict[int, Tuple[Optional[State], ...]] = {}
        self._slot_names: Tuple[str, ...] = tuple(self.slots)
        self._slot_list = list(self.slots.values())
        self._reset()

    # ----------------------------------------------------------------- building

    @classmethod
    def from_events(cls, sender_id: str, events: List[Event], domain: Domain
                    ) -> "DialogueStateTracker":
        tracker = cls(sender_id, domain)
        for event in events:
            tracker.update(event)
        return tracker

    @classmethod
    def from_dicts(cls, sender_id: str, event_dicts: Any, domain: Domain
                   ) -> "DialogueStateTracker":
        """Rebuilds a tracker from JSON events; raises ``InvalidEvent`` before changing anything."""
        return cls.from_events(sender_id, events_from_dicts(event_dicts), domain)

    def update(self, event: Event) -> None:
        """Logs the event and applies it."""
        if not isinstance(event, Event):
            raise TypeError("Can only log events, got {!r}.".format(event))
        self.events.append(event)
        self._note_mentions(event)
        self._apply(event)

    def _note_mentions(self, event: Event) -> None:
        if isinstance(event, ActionExecuted):
            self._mentions.add(("action", event.action_name))
        elif isinstance(event, SlotSet):
            self._mentions.add(("slot", event.key))
        elif isinstance(event, UserUttered):
            intent = event.parse_data.get("intent")
            if isinstance(intent, dict) and intent.get("name"):
                self._mentions.add(("intent", intent["name"]))

    def update_many(self, events: List[Event]) -> None:
        for event in events:
            self.update(event)

    def copy(self) -> "DialogueStateTracker":
        return self.travel_back_in_time(float("inf"))

    def init_copy(self) -> "DialogueStateTracker":
        return DialogueStateTracker(self.sender_id, self.domain)

    def travel_back_in_time(self, target_time: float) -> "DialogueStateTracker":
        """The tracker as it was at ``target_time``: events up to the first later one.

        Unlike Rasa Core, the copy keeps this conversation's sender id.
        """
        tracker = self.init_copy()
        for event in self.events:
            if event.timestamp > target_time:
                break
            tracker.update(event)
        return tracker

    def with_domain(self, domain: Domain) -> "DialogueStateTracker":
        """The same conversation read with another domain (a new model's slots)."""
        return DialogueStateTracker.from_events(self.sender_id, self.events, domain)

    def switch_domain(self, domain: Domain) -> "DialogueStateTracker":
        """The tracker to go on with under ``domain``: this one, now pointing at ``domain``,
        when that domain reads this conversation's events exactly as the current one does;
        else a copy re-read with it (``with_domain``).

        Replaying every event costs time in proportion to the conversation's length; a model
        swap reaches every live conversation at once, so the replay is skipped when it cannot
        change anything: the domains differ in nothing, or only in slots, actions and intents
        that no event of this conversation names (a retrained model with a new slot or a new
        action, say). The slots then become the new domain's, each differing one at its
        initial value, which is what replaying would give."""
        if domain is self.domain:
            return self
        changes = self.domain.reading_changes(domain)
        if changes is None or not changes.isdisjoint(self._mentions):
            return self.with_domain(domain)
        if changes:
            kept = self.slots
            self.slots = {name: kept[name] if ("slot", name) not in changes and name in kept
                          else fresh for name, fresh in domain.fresh_slots().items()}
            self._slot_names = tuple(self.slots)
            self._slot_list = list(self.slots.values())
        self.domain = domain
        self._forget_states()
        return self

    # ----------------------------------------------------------------- state changes

    def _apply(self, event: Event) -> None:
        applied = self._applied
        if len(applied) - self._marked_at >= MARK_EVERY:
            self._add_mark()
        if isinstance(event, ActionExecuted):
            self._action_at.append(len(applied))
            # The state the action was chosen in: usually the one its prediction just read.
            self._record_state_before(event)
        elif isinstance(event, UserUttered):
            self._user_at.append(len(applied))
        event.apply_to(self)
        if isinstance(event, Form):
            self._on_form_event(event)
        if not isinstance(event, _NOT_APPLIED):
            self._applied.append(event)
        self._forget_states()

    def _forget_states(self) -> None:
        self._state_cache = None
        if self._windows:
            self._windows = {}

    def _reset(self) -> None:
        """Back to the initial state; events are kept."""
        self._forget_states()
        self._reset_slots()
        self.paused = False
        self.latest_action_name: Optional[str] = None
        self.latest_message = UserUttered.empty()
        self.latest_bot_utterance = BotUttered.empty()
        self.followup_action: Optional[str] = ACTION_LISTEN_NAME
        self.active_form: Dict[str, Any] = {}
        # What policies see (see _record_state_before).
        self._states: List[State] = []
        self._actions: List[Tuple[str, bool]] = []
        self._held: List[Tuple[State, Tuple[str, bool]]] = []
        self._feature_message = self.latest_message
        self._message_before_form = self.latest_message
        self._last_non_listen_action: Optional[str] = None
        # The events that still count (see applied_events), a mark per action among them and
        # where among them the user messages are.
        self._applied: List[Event] = []
        self._marks: List[_Mark] = []
        self._marked_at = 0  # the latest mark's place (0: the start, which needs none)
        self._action_at: List[int] = []
        self._user_at: List[int] = []

    def _reset_slots(self) -> None:
        for slot in self.slots.values():
            slot.reset()

    def _set_slot(self, name: str, value: Any) -> None:
        slot = self.slots.get(name)
        if slot is None:
            log.debug("Conversation '{sender_id}' tried to set the slot '{slot}', which the "
                      "domain does not define.", sender_id=self.sender_id, slot=name)
            return
        slot.value = value

    def _on_user_uttered(self, event: UserUttered) -> None:
        self.latest_message = event
        self.followup_action = None
        self._feature_message = event
        if not self.active_form.get("name"):
            self._message_before_form = event

    def _on_action_executed(self, action_name: str) -> None:
        if self.active_form.get("name"):
            self.active_form["validate"] = True
            if action_name == self.active_form["name"]:
                self.active_form["rejected"] = False
        self.latest_action_name = action_name
        self.followup_action = None
        if action_name != ACTION_LISTEN_NAME:
            self._last_non_listen_action = action_name

    def _change_form_to(self, name: Optional[str]) -> None:
        if name is not None:
            self.active_form = {"name": name, "validate": True, "rejected": False}
        else:
            self.active_form = {}

    def _on_form_event(self, event: Form) -> None:
        # Policies see the form's turns as one step: the message that started the form.
        self._feature_message = self._message_before_form
        if event.name is None:
            self._held = []

    def _add_mark(self) -> None:
        # Built as a plain tuple; copies only of what is mutable and not empty.
        form, held, marks = self.active_form, self._held, self._marks
        self._marked_at = len(self._applied)
        marks.append(_new_mark(_Mark, (
            self._marked_at, self._slot_names,
            tuple([slot.value for slot in self._slot_list]), self.paused,
            self.latest_action_name, self.latest_message, self.latest_bot_utterance,
            self.followup_action, dict(form) if form else None, len(self._states),
            tuple(held) if held else (), self._feature_message, self._message_before_form,
            self._last_non_listen_action)))
        if len(marks) > 2 * MARKS_KEPT:
            del marks[:MARKS_KEPT]

    def _revert_action(self) -> None:
        """Undoes the latest applied action and everything after it ("undo")."""
        self._go_back_to(self._action_at[-1] if self._action_at else 0)

    def _revert_user_utterance(self) -> None:
        """Undoes the latest applied user message, everything after it and the action before
        it ("rewind"): the state before the action that led to the message."""
        if not self._user_at:
            self._go_back_to(0)
            return
        message_at = self._user_at[-1]
        actions = self._action_at
        index = bisect.bisect_left(actions, message_at)
        self._go_back_to(actions[index - 1] if index else 0)

    def _go_back_to(self, target: int) -> None:
        """Back to the state after the first ``target`` applied events: the latest mark at or
        before it, then what was applied between that mark and ``target`` again (at most
        MARK_EVERY events, unless the marks kept do not reach that far back)."""
        marks = self._marks
        while marks and marks[-1].applied > target:
            marks.pop()
        again = self._applied[marks[-1].applied if marks else 0:target]
        if marks:
            self._restore(marks[-1])
        else:
            self._reset()
        for event in again:
            self._apply(event)

    def _restore(self, mark: "_Mark") -> None:
        """Back to the state of ``mark`` (the mark stays: the state there does not change)."""
        del self._applied[mark.applied:]
        self._marked_at = mark.applied
        for positions in (self._action_at, self._user_at):
            while positions and positions[-1] >= mark.applied:
                positions.pop()
        if mark.slot_names is self._slot_names:
            for slot, value in zip(self._slot_list, mark.slot_values):
                slot.value = value
        else:
            # The domain changed since (in slots no event names): read the mark by name.
            self._reset_slots()
            for name, value in zip(mark.slot_names, mark.slot_values):
                if name in self.slots:
                    self.slots[name].value = value
        self.paused = mark.paused
        self.latest_action_name = mark.latest_action_name
        self.latest_message = mark.latest_message
        self.latest_bot_utterance = mark.latest_bot_utterance
        self.followup_action = mark.followup_action
        self.active_form = dict(mark.active_form) if mark.active_form else {}
        del self._states[mark.states:]
        del self._actions[mark.states:]
        self._held = list(mark.held)
        self._feature_message = mark.feature_message
        self._message_before_form = mark.message_before_form
        self._last_non_listen_action = mark.last_non_listen_action
        self._forget_states()

    # ----------------------------------------------------------------- states for policies

    def _current_state(self) -> State:
        if self._state_cache is None:
            self._state_cache = self.domain.shared_state(frozenset(self.domain.state_of(
                self._feature_message.parse_data, self.slots, self.latest_action_name,
                self.active_form.get("name"), binary=True).items()))
        return self._state_cache

    def _record_state_before(self, event: ActionExecuted) -> None:
        """Records the state an action was chosen in, as policies are meant to see it.

        While a form is active, the turns the form handled itself (it asked, the user answered,
        the form took the answer) are left out: stories do not spell them out, so the history
        after a form looks the same whether the form took one turn or ten. Turns the form did
        not handle (an interruption, a rejection) are kept.
        """
        action_name = event.action_name
        entry = (self._current_state(), (action_name, not event.unpredictable))
        form = self.active_form.get("name")
        if not form:
            self._emit([entry])
        elif self.active_form.get("rejected"):
            self._emit(self._held + [entry])
        elif (action_name == form and self.latest_action_name == ACTION_LISTEN_NAME
              and self._last_non_listen_action == form):
            self._held = []
        elif action_name == ACTION_LISTEN_NAME:
            self._held.append(entry)
        else:
            self._emit(self._held + [entry])

    def _emit(self, entries: List[Tuple[State, Tuple[str, bool]]]) -> None:
        for state, action in entries:
            self._states.append(state)
            self._actions.append(action)
        self._held = []

    def _form_turn_open(self) -> bool:
        form = self.active_form.get("name")
        return bool(form and not self.active_form.get("rejected")
                    and self.latest_action_name in (ACTION_LISTEN_NAME, form))

    def past_states(self) -> List[State]:
        """The states before each action, plus the current state where policies should see it."""
        if self._form_turn_open():
            # A form turn whose outcome is still open: the form policy decides it.
            return list(self._states)
        return self._states + [s for s, _ in self._held] + [self._current_state()]

    def last_states(self, n: int) -> List[State]:
        """The last ``n`` past states, without copying the whole history."""
        if n <= 0:
            return []
        if self._form_turn_open():
            return self._states[-n:]
        tail = [s for s, _ in self._held] + [self._current_state()]
        missing = n - len(tail)
        return (self._states[-missing:] + tail) if missing > 0 else tail[-n:]

    def last_window(self, n: int) -> Tuple[Optional[State], ...]:
        """The last ``n`` past states, padded in front with None to ``n`` (what policies with
        a history of ``n`` look at); remembered until the next event."""
        window = self._windows.get(n)
        if window is None:
            window = self._windows[n] = padded_window(self.last_states(n), n)
        return window

    def training_examples(self) -> Tuple[List[State], List[Tuple[str, bool]]]:
        """The recorded states and, for each, the action taken in it and whether a policy
        should learn it (a bot-first story opening is not predictable)."""
        return list(self._states), list(self._actions)

    # ----------------------------------------------------------------- queries

    def applied_events(self) -> List[Event]:
        """The events that still count: nothing before the last restart, nothing reverted."""
        return list(self._applied)

    def applied_events_from(self, start: int) -> List[Event]:
        """The applied events from the ``start``-th on (0 is the first)."""
        return self._applied[start:]

    def last_action_positions(self, n: int) -> List[int]:
        """Where the latest ``n`` applied actions are among the applied events (oldest first;
        fewer when there are fewer)."""
        return self._action_at[-n:] if n > 0 else []

    def idx_after_latest_restart(self) -> int:
        for i in range(len(self.events) - 1, -1, -1):
            if isinstance(self.events[i], Restarted):
                return i + 1
        return 0

    def events_after_latest_restart(self) -> List[Event]:
        return self.events[self.idx_after_latest_restart():]

    def get_slot(self, name: str) -> Any:
        slot = self.slots.get(name)
        return slot.value if slot is not None else None

    def current_slot_values(self) -> Dict[str, Any]:
        return {name: slot.value for name, slot in self.slots.items()}

    def get_latest_entity_values(self, entity_type: str) -> Iterator[Any]:
        return (e.get("value") for e in self.latest_message.entities
                if e.get("entity") == entity_type)

    def get_last_event_for(self, event_type: Type[Event],
                           action_names_to_exclude: Optional[List[str]] = None,
                           skip: int = 0) -> Optional[Event]:
        excluded = set(action_names_to_exclude or ())
        for event in reversed(self._applied):
            if not isinstance(event, event_type):
                continue
            if isinstance(event, ActionExecuted) and event.action_name in excluded:
                continue
            if skip:
                skip -= 1
                continue
            return event
        return None

    def last_executed_action_has(self, name: str, skip: int = 0) -> bool:
        last = self.get_last_event_for(ActionExecuted, [ACTION_LISTEN_NAME], skip)
        return isinstance(last, ActionExecuted) and last.action_name == name

    def latest_input_channel(self) -> Optional[str]:
        for event in reversed(self.events):
            if isinstance(event, UserUttered):
                return event.input_channel
        return None

    def current_state(self, verbosity: EventVerbosity = EventVerbosity.NONE) -> Dict[str, Any]:
        """The tracker as JSON, with the events the verbosity asks for."""
        if verbosity == EventVerbosity.ALL:
            events: Optional[List[Dict[str, Any]]] = [e.as_dict() for e in self.events]
        elif verbosity == EventVerbosity.AFTER_RESTART:
            events = [e.as_dict() for e in self.events_after_latest_restart()]
        elif verbosity == EventVerbosity.APPLIED:
            events = [e.as_dict() for e in self.applied_events()]
        else:
            events = None
        return {
            "sender_id": self.sender_id,
            "slots": self.current_slot_values(),
            "latest_message": self.latest_message.parse_data,
            "latest_event_time": self.events[-1].timestamp if self.events else None,
            "followup_action": self.followup_action,
            "paused": self.paused,
            "events": events,
            "latest_input_channel": self.latest_input_channel(),
            "active_form": dict(self.active_form),
            "latest_action_name": self.latest_action_name,
        }

    def export_stories(self, e2e: bool = False) -> str:
        """The conversation as a story in Rasa's markdown."""
        return story_from_events(self.applied_events(), self.sender_id, e2e)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DialogueStateTracker) and other.sender_id == self.sender_id
                and other.events == self.events)

    def __repr__(self) -> str:
        return "<DialogueStateTracker {} ({} events)>".format(self.sender_id, len(self.events))


# Events that change the state but are not themselves part of it.
_NOT_APPLIED = (Restarted, ActionReverted, UserUtteranceReverted)

# A mark every this many applied events: a revert replays at most this many.
MARK_EVERY = 32
# Marks kept per tracker: between this many and twice as many of the latest. A revert further
# back (after a long run of reverts) replays from the start.
MARKS_KEPT = 64


class _Mark(NamedTuple):
    """The tracker's state after its first ``applied`` applied events: ``states`` is how many
    past states were recorded then; ``active_form`` None and ``held`` () when empty."""

    applied: int
    slot_names: Tuple[str, ...]
    slot_values: Tuple[Any, ...]
    paused: bool
    latest_action_name: Optional[str]
    latest_message: UserUttered
    latest_bot_utterance: BotUttered
    followup_action: Optional[str]
    active_form: Optional[Dict[str, Any]]
    states: int
    held: Tuple[Tuple[State, Tuple[str, bool]], ...]
    feature_message: UserUttered
    message_before_form: UserUttered
    last_non_listen_action: Optional[str]


# tuple.__new__ skips the NamedTuple's Python-level constructor.
_new_mark = tuple.__new__
