"""The message loop: one user message in, the bot's actions and messages out.

Plain functions over a tracker, a model and a way to run custom actions: parse the message, log
it, fill slots from its entities, then predict and run actions until the bot listens again (at
most ten per message). No threads, no I/O of its own: the caller owns the tracker and saves it.
"""

import time
from typing import Any, Dict, List, Optional, Tuple

from coreactors.actions.action import Action, ActionExecutionRejection, action_for_name
from coreactors.actions.dispatcher import Dispatcher, MessageListener
from coreactors.actions.remote import ActionServerClient, RemoteAction
from coreactors.dialogue.domain import ACTION_LISTEN_NAME, ACTION_RESTART_NAME, UnknownAction
from coreactors.dialogue.events import (
    ActionExecuted, ActionExecutionRejected, ReminderScheduled, UserUttered)
from coreactors.dialogue.templates import TemplatedNaturalLanguageGenerator
from coreactors.dialogue.tracker import DialogueStateTracker, EventVerbosity
from coreactors.markup import INTENT_MESSAGE_PREFIX, RegexInterpreter
from coreactors.logs import Log

log = Log(__name__)

MAX_NUMBER_OF_PREDICTIONS = 10


class UserMessage:
    """A message from a user, as a channel hands it to the processor."""

    DEFAULT_SENDER_ID = "default"

    def __init__(self, text: Optional[str], sender_id: Optional[str] = None,
                 input_channel: Optional[str] = None,
                 parse_data: Optional[Dict[str, Any]] = None,
                 message_id: Optional[str] = None) -> None:
        self.text = text
        self.sender_id = str(sender_id) if sender_id else self.DEFAULT_SENDER_ID
        self.input_channel = input_channel
        self.parse_data = parse_data
        self.message_id = message_id


class TurnResult:
    """What one call of the loop produced, for the caller to send, store and schedule."""

    def __init__(self) -> None:
        self.messages: List[Dict[str, Any]] = []
        self.reminders: List[ReminderScheduled] = []


class MessageProcessor:
    """Runs the message loop for a model (``domain``, ``policy_ensemble``, ``interpreter``)."""

    def __init__(self, model: Any, action_client: Optional[ActionServerClient] = None,
                 nlg: Optional[TemplatedNaturalLanguageGenerator] = None,
                 max_number_of_predictions: int = MAX_NUMBER_OF_PREDICTIONS) -> None:
        self.model = model
        self.domain = model.domain
        self.ensemble = model.policy_ensemble
        self.interpreter = model.interpreter or RegexInterpreter()
        self.action_client = action_client
        self.nlg = nlg or TemplatedNaturalLanguageGenerator(self.domain.templates)
        self.max_number_of_predictions = max_number_of_predictions
        self._regex = RegexInterpreter()

    # ----------------------------------------------------------------- entry points

    def handle_message(self, tracker: DialogueStateTracker, message: UserMessage,
                       listener: Optional[MessageListener] = None) -> TurnResult:
        """Logs the message and runs the bot until it listens; returns its messages."""
        self.log_message(tracker, message)
        result = TurnResult()
        dispatcher = Dispatcher(tracker.sender_id, self.nlg, listener)
        self._predict_and_execute(tracker, dispatcher, result)
        result.messages = dispatcher.messages
        return result

    def parse(self, message: UserMessage) -> Dict[str, Any]:
        if message.parse_data is not None:
            return message.parse_data
        text = message.text or ""
        if text.startswith(INTENT_MESSAGE_PREFIX):
            return self._regex.parse(text)
        return self.interpreter.parse(text)

    def log_message(self, tracker: DialogueStateTracker, message: UserMessage) -> None:
        """Parses the message and logs it with the slots its entities fill; predicts nothing."""
        parse_data = self.parse(message)
        tracker.update(UserUttered(message.text, parse_data.get("intent") or {},
                                   parse_data.get("entities") or [], parse_data,
                                   input_channel=message.input_channel,
                                   message_id=message.message_id))
        for event in self.domain.slots_for_entities(parse_data.get("entities") or []):
            tracker.update(event)

    def execute_action(self, tracker: DialogueStateTracker, action_name: str,
                       policy: Optional[str] = None, confidence: Optional[float] = None,
                       listener: Optional[MessageListener] = None) -> TurnResult:
        """Runs exactly one action (no prediction afterwards)."""
        result = TurnResult()
        dispatcher = Dispatcher(tracker.sender_id, self.nlg, listener)
        self._run_action(self.action_for_name(action_name), tracker, dispatcher, policy,
                         confidence, result)
        result.messages = dispatcher.messages
        return result

    def predict_next(self, tracker: DialogueStateTracker) -> Dict[str, Any]:
        """The scores of every action for the next step, without running one."""
        probabilities, policy = self.next_action_probabilities(tracker)
        scores = [{"action": name, "score": float(p)}
                  for name, p in zip(self.domain.action_names, probabilities)]
        return {"scores": scores, "policy": policy,
                "confidence": float(max(probabilities)) if probabilities else 0.0,
                "tracker": tracker.current_state(EventVerbosity.AFTER_RESTART)}

    # ----------------------------------------------------------------- the loop

    def action_for_name(self, name: str) -> Action:
        return action_for_name(name, self.domain,
                               lambda n: RemoteAction(n, self.action_client))

    def _should_handle(self, tracker: DialogueStateTracker) -> bool:
        return not tracker.paused or (
            (tracker.latest_message.intent or {}).get("name") == self.domain.restart_intent)

    def next_action_probabilities(self, tracker: DialogueStateTracker
                                  ) -> Tuple[List[float], Optional[str]]:
        if tracker.followup_action:
            try:
                return self._one_hot(tracker.followup_action), None
            except UnknownAction:
                # A followup logged through the API, or stored under an older model, may name an
                # action this domain lacks: as Rasa, predict instead of failing the turn.
                log.error("Conversation '{sender_id}' asked to run the unknown followup action "
                          "'{action}'; ignoring it and predicting the next action instead.",
                          sender_id=tracker.sender_id, action=tracker.followup_action)
        if (tracker.latest_message.intent or {}).get("name") == self.domain.restart_intent \
                and self.domain.restart_intent:
            return self._one_hot(ACTION_RESTART_NAME), None
        return self.ensemble.probabilities_using_best_policy(tracker, self.domain)

    def _one_hot(self, action_name: str) -> List[float]:
        result = [0.0] * self.domain.num_actions
        result[self.domain.index_for_action(action_name)] = 1.0
        return result

    def predict_next_action(self, tracker: DialogueStateTracker
                            ) -> Tuple[Action, Optional[str], float]:
        probabilities, policy = self.next_action_probabilities(tracker)
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        return (self.action_for_name(self.domain.action_names[best]), policy,
                float(probabilities[best]))

    def _predict_and_execute(self, tracker: DialogueStateTracker, dispatcher: Dispatcher,
                             result: TurnResult) -> None:
        should_continue = True
        count = 0
        while (should_continue and self._should_handle(tracker)
               and count < self.max_number_of_predictions):
            action, policy, confidence = self.predict_next_action(tracker)
            should_continue = self._run_action(action, tracker, dispatcher, policy, confidence,
                                               result)
            count += 1
        if should_continue and count >= self.max_number_of_predictions:
            log.warn("Circuit breaker tripped in conversation '{sender_id}': stopped after "
                     "{count} actions without listening.", sender_id=tracker.sender_id,
                     count=count)

    def _run_action(self, action: Action, tracker: DialogueStateTracker, dispatcher: Dispatcher,
                    policy: Optional[str], confidence: Optional[float],
                    result: TurnResult) -> bool:
        """Runs an action and logs what it did; True if the loop should predict again."""
        try:
            events = action.run(dispatcher, tracker, self.domain) or []
        except ActionExecutionRejection as e:
            log.debug("Action '{action}' rejected to run in conversation '{sender_id}': "
                      "{reason}", action=action.name(), sender_id=tracker.sender_id,
                      reason=e.message, policy=policy)
            tracker.update(ActionExecutionRejected(action.name(), policy, confidence))
            return action.name() != ACTION_LISTEN_NAME
        except Exception as e:  # a failing action loses its events; the turn goes on
            log.error("Encountered an exception while running action '{action}' in "
                      "conversation '{sender_id}': {error}. The bot will continue, but the "
                      "action's events are lost.", action=action.name(),
                      sender_id=tracker.sender_id, error=str(e), policy=policy)
            events = []
        tracker.update(ActionExecuted(action.name(), policy, confidence))
        for event in events:
            # Stamped now, so they sort after the action that returned them.
            event.timestamp = time.time()
            tracker.update(event)
            if isinstance(event, ReminderScheduled):
                result.reminders.append(event)
        for event in dispatcher.take_bot_events():
            tracker.update(event)
        return action.name() != ACTION_LISTEN_NAME

