"""Custom actions on an action server: the request we send and what we do with the answer.

This is the Rasa Core action-server protocol. The HTTP call itself is injected (an
``ActionServerClient``), so this module does no I/O: the server passes a client made with treq,
tests pass a plain function.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple

import coreactors
from coreactors.actions.base import Action, ActionExecutionRejection
from coreactors.actions.dispatcher import Dispatcher
from coreactors.dialogue.domain import Domain
from coreactors.dialogue.events import Event, InvalidEvent, event_from_dict
from coreactors.dialogue.tracker import DialogueStateTracker, EventVerbosity
from coreactors.logs import Log

log = Log(__name__)

# Posts the JSON payload to the action server; returns (HTTP status, parsed JSON body or None).
# Raises any exception when the server cannot be reached or does not answer in time.
ActionServerClient = Callable[[Dict[str, Any]], Tuple[int, Any]]


class ActionFailed(Exception):
    """A custom action could not run; its events are lost and the turn goes on."""


class RemoteAction(Action):
    """An action that runs on the action server of ``endpoints.yml``."""

    def __init__(self, name: str, client: Optional[ActionServerClient]) -> None:
        super().__init__(name)
        self.client = client

    def request_payload(self, tracker: DialogueStateTracker, domain: Domain) -> Dict[str, Any]:
        return {
            "next_action": self.name(),
            "sender_id": tracker.sender_id,
            "tracker": tracker.current_state(EventVerbosity.ALL),
            "domain": domain.as_dict(),
            "version": coreactors.RASA_CORE_VERSION,
        }

    def run(self, dispatcher: Dispatcher, tracker: DialogueStateTracker, domain: Domain
            ) -> List[Event]:
        if self.client is None:
            raise ActionFailed(
                "The model predicted the custom action '{}', but you didn't configure an "
                "endpoint to run this custom action. Please take a look at the docs and set an "
                "endpoint configuration in your endpoints.yml ('action_endpoint').".format(
                    self.name()))
        try:
            status, body = self.client(self.request_payload(tracker, domain))
        except Exception as e:  # the client's failure, whatever it is, fails this action only
            raise ActionFailed("Failed to execute custom action '{}': the action server could "
                               "not be reached ({}).".format(self.name(), e))
        if status == 400 and isinstance(body, dict) and "action_name" in body:
            raise ActionExecutionRejection(str(body["action_name"]), body.get("error"))
        if not 200 <= status < 300:
            raise ActionFailed("Failed to execute custom action '{}': the action server "
                               "answered {}.".format(self.name(), status))
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ActionFailed("The action server's answer must be a JSON object.")
        # As in Rasa, the messages go out before the events are read: a bad event loses the
        # action's events, not what it already said.
        for response in parse_responses(body):
            send_response(dispatcher, response, tracker, domain)
        return parse_events(body)


def parse_responses(body: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The ``responses`` of an action server's answer, checked."""
    responses = body.get("responses") or []
    if not isinstance(responses, list) or not all(isinstance(r, dict) for r in responses):
        raise ActionFailed("The action server's 'responses' must be a list of objects.")
    return responses


def parse_events(body: Dict[str, Any]) -> List[Event]:
    """The ``events`` of an action server's answer, as events."""
    raw_events = body.get("events") or []
    if not isinstance(raw_events, list):
        raise ActionFailed("The action server's 'events' must be a list.")
    events = []
    for item in raw_events:
        if isinstance(item, dict) and "event" not in item:
            continue  # Rasa skips items without a type, so action servers may send them
        try:
            events.append(event_from_dict(item))
        except InvalidEvent as e:
            raise ActionFailed("The action server sent a bad event: {}".format(e))
    return events


def send_response(dispatcher: Dispatcher, response: Dict[str, Any],
                  tracker: DialogueStateTracker, domain: Domain) -> None:
    """Sends one item of ``responses``: a template to render, or a message as it is.

    The template is named by ``template`` (Rasa Core 0.12's action SDK) or ``response`` (later
    SDKs, which also send every other key, most of them null or empty).
    """
    response = {k: v for k, v in response.items() if v is not None}
    name = response.pop("template", None) or response.pop("response", None)
    response.pop("response", None)
    draft: Dict[str, Any] = {}
    if name:
        rendered = dispatcher.nlg.generate(str(name), tracker.current_slot_values(), **response)
        if rendered is None:
            log.warn("The action server asked for the template '{template}', which the domain "
                     "does not have (conversation '{sender_id}').", template=name,
                     sender_id=tracker.sender_id)
            return
        draft = rendered
    buttons = response.pop("buttons", None)
    if buttons:
        draft["buttons"] = list(draft.get("buttons") or []) + list(buttons)
    draft.update(response)
    dispatcher.utter_response(draft)
