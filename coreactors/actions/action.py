"""Actions: what the bot can do. Default actions, template utterances, and the lookup by name.

An action runs with a dispatcher (to talk), the tracker (to read) and the domain, and returns
the events it wants logged. Custom actions run on an action server (``actions.remote``). The
base class is ``actions.base``'s; ``Action`` and ``ActionExecutionRejection`` stay importable
from here.
"""

import copy
from typing import Any, List

from coreactors.dialogue.domain import (
    ACTION_DEACTIVATE_FORM_NAME, ACTION_DEFAULT_ASK_AFFIRMATION_NAME,
    ACTION_DEFAULT_ASK_REPHRASE_NAME, ACTION_DEFAULT_FALLBACK_NAME, ACTION_LISTEN_NAME,
    ACTION_RESTART_NAME, ACTION_REVERT_FALLBACK_EVENTS_NAME, DEFAULT_ACTION_NAMES,
    REQUESTED_SLOT, Domain, UnknownAction)
from coreactors.dialogue.events import (
    ActionExecuted, Event, Form, Restarted, SlotSet, UserUttered, UserUtteranceReverted)
from coreactors.dialogue.tracker import DialogueStateTracker
from coreactors.actions.base import Action, ActionExecutionRejection
from coreactors.actions.dispatcher import Dispatcher
from coreactors.actions.remote import RemoteAction
from coreactors.logs import Log

log = Log(__name__)


class UtterAction(Action):
    """Sends the template of the same name."""

    def run(self, dispatcher: Dispatcher, tracker: DialogueStateTracker, domain: Domain
            ) -> List[Event]:
        if not dispatcher.utter_template(self.name(), tracker.current_slot_values()):
            log.warn("Couldn't create message for template '{action}': the domain has no such "
                     "template (conversation '{sender_id}').", action=self.name(),
                     sender_id=tracker.sender_id)
        return []


class ActionListen(Action):
    def __init__(self) -> None:
        super().__init__(ACTION_LISTEN_NAME)

    def run(self, dispatcher, tracker, domain) -> List[Event]:
        return []


class ActionRestart(Action):
    def __init__(self) -> None:
        super().__init__(ACTION_RESTART_NAME)

    def run(self, dispatcher, tracker, domain) -> List[Event]:
        dispatcher.utter_template("utter_restart", tracker.current_slot_values())
        return [Restarted()]


class ActionDefaultFallback(Action):
    def __init__(self) -> None:
        super().__init__(ACTION_DEFAULT_FALLBACK_NAME)

    def run(self, dispatcher, tracker, domain) -> List[Event]:
        dispatcher.utter_template("utter_default", tracker.current_slot_values())
        return [UserUtteranceReverted()]


class ActionDeactivateForm(Action):
    def __init__(self) -> None:
        super().__init__(ACTION_DEACTIVATE_FORM_NAME)

    def run(self, dispatcher, tracker, domain) -> List[Event]:
        return [Form(None), SlotSet(REQUESTED_SLOT, None)]


class ActionRevertFallbackEvents(Action):
    """Removes the two-stage fallback's detour from the history, keeping the happy path."""

    def __init__(self) -> None:
        super().__init__(ACTION_REVERT_FALLBACK_EVENTS_NAME)

    def run(self, dispatcher, tracker, domain) -> List[Event]:
        last_user = tracker.latest_message
        if tracker.last_executed_action_has(ACTION_DEFAULT_ASK_REPHRASE_NAME):
            # The user rephrased: drop the unclear message, the question and the rephrasing.
            return [UserUtteranceReverted() for _ in range(3)] + [
                ActionExecuted(ACTION_LISTEN_NAME), _copy_user(last_user)]
        if tracker.last_executed_action_has(ACTION_DEFAULT_ASK_AFFIRMATION_NAME):
            events: List[Event] = [UserUtteranceReverted() for _ in range(2)] + [
                ActionExecuted(ACTION_LISTEN_NAME)]
            if tracker.last_executed_action_has(ACTION_DEFAULT_ASK_REPHRASE_NAME, skip=1):
                events += [UserUtteranceReverted() for _ in range(3)] + [ActionExecuted(ACTION_LISTEN_NAME)]
            affirmed = _copy_user(last_user)
            # The user affirmed the suggested intent: it is now certain.
            affirmed.intent = dict(affirmed.intent, confidence=1.0)
            affirmed.parse_data = dict(affirmed.parse_data, intent=affirmed.intent)
            return events + [affirmed]
        return []


def _copy_user(event: UserUttered) -> UserUttered:
    return UserUttered(event.text, copy.deepcopy(event.intent), copy.deepcopy(event.entities),
                       copy.deepcopy(event.parse_data), input_channel=event.input_channel)


class ActionDefaultAskAffirmation(Action):
    def __init__(self) -> None:
        super().__init__(ACTION_DEFAULT_ASK_AFFIRMATION_NAME)

    def run(self, dispatcher, tracker, domain) -> List[Event]:
        intent = (tracker.latest_message.intent or {}).get("name")
        dispatcher.utter_button_message(
            "Did you mean '{}'?".format(intent),
            [{"title": "Yes", "payload": "/{}".format(intent)},
             {"title": "No", "payload": "/out_of_scope"}])
        return []


class ActionDefaultAskRephrase(Action):
    def __init__(self) -> None:
        super().__init__(ACTION_DEFAULT_ASK_REPHRASE_NAME)

    def run(self, dispatcher, tracker, domain) -> List[Event]:
        dispatcher.utter_template("utter_ask_rephrase", tracker.current_slot_values())
        return []


DEFAULT_ACTIONS = {cls().name(): cls for cls in (
    ActionListen, ActionRestart, ActionDefaultFallback, ActionDeactivateForm,
    ActionRevertFallbackEvents, ActionDefaultAskAffirmation, ActionDefaultAskRephrase)}
assert sorted(DEFAULT_ACTIONS) == sorted(DEFAULT_ACTION_NAMES)


def action_for_name(name: str, domain: Domain, remote_factory: Any = None) -> Action:
    """The action behind a name of the domain.

    A default action the user did not list is built in; ``utter_`` names send their template;
    anything else (forms included) runs on the action server via ``remote_factory(name)``.
    """
    if not domain.has_action(name):
        raise UnknownAction(name, domain.action_names)
    user_listed = name in domain.user_actions or name in domain.form_names
    if name in DEFAULT_ACTIONS and not user_listed:
        return DEFAULT_ACTIONS[name]()
    if name.startswith("utter_"):
        return UtterAction(name)
    if remote_factory is None:
        return RemoteAction(name, None)
    return remote_factory(name)
