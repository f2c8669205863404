"""Requests about the model, not about a conversation: ``/parse``, ``POST /predict``,
``/evaluate``, ``/finetune`` and ``POST /model``.

They touch no conversation actor. Each runs off the reactor thread (``run_in_thread``) on the
model in use when it arrived (models are immutable values, so nothing can change under it); a
request that makes a new model (``/finetune``, ``POST /model``) swaps it in through the
Supervisor, like a model from the model server.
"""

import copy
from typing import Any, Callable, Dict, List, Optional

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger

from coreactors.actors.interface import ConversationError, NoModelLoaded
from coreactors.actors.supervisor import RunInThread, Supervisor
from coreactors.dialogue.events import InvalidEvent
from coreactors.dialogue.tracker import DialogueStateTracker
from coreactors.log_observers import levelled
from coreactors.markup import INTENT_MESSAGE_PREFIX, RegexInterpreter
from coreactors.model import InvalidModel, Model
from coreactors.model_archives import ModelArchives
from coreactors.processor import MessageProcessor

log = Logger(observer=levelled)


class ModelRequests:
    """Answers the model-level requests of the HTTP API for the model ``supervisor`` serves."""

    def __init__(self, supervisor: Supervisor, archives: Optional[ModelArchives] = None,
                 run_in_thread: Optional[RunInThread] = None) -> None:
        self.supervisor = supervisor
        self.archives = archives if archives is not None else supervisor.archives
        self.run_in_thread: RunInThread = run_in_thread or supervisor.run_in_thread

    def _with_model(self, work: Callable[[Model], Any]) -> Deferred:
        try:
            model = self.supervisor.current_model()
        except NoModelLoaded as e:
            return fail(e)
        return self.run_in_thread(lambda: work(model))

    def parse(self, text: str) -> Deferred:
        """Fires with the interpreter's parse of ``text`` (the /intent shorthand without one)."""
        model = self.supervisor.model
        interpreter = model.interpreter if model is not None else self.supervisor.interpreter

        def work() -> Dict[str, Any]:
            if interpreter is None or text.startswith(INTENT_MESSAGE_PREFIX):
                return RegexInterpreter().parse(text)
            return interpreter.parse(text)
        return self.run_in_thread(work)

    def predict_for_events(self, events: List[Dict[str, Any]]) -> Deferred:
        """Fires with {scores, policy, tracker} for a throwaway tracker of ``events``."""
        def work(model: Model) -> Dict[str, Any]:
            result = MessageProcessor(model).predict_next(
                _tracker_from_dicts("default", events, model))
            result.pop("confidence", None)
            return result
        return self._with_model(work)

    def evaluate(self, stories: str, e2e: bool) -> Deferred:
        """Fires with the evaluation of ``stories`` (markdown) against the model."""
        def work(model: Model) -> Dict[str, Any]:
            from coreactors.dialogue.stories import StoryParseError
            from coreactors.training.evaluate import evaluate_stories
            try:
                return evaluate_stories(model, text=stories, e2e=e2e).as_dict()
            except (StoryParseError, ValueError) as e:
                raise ConversationError("Evaluation could not be created. Error: {}".format(e),
                                        400, "FailedEvaluation")
        return self._with_model(work)

    def finetune(self, events: List[Dict[str, Any]]) -> Deferred:
        """Trains a copy of the model's policies on one more conversation, then swaps it in;
        fires with None."""
        now = self.supervisor.reactor.seconds()

        def work(model: Model) -> Model:
            tracker = _tracker_from_dicts("finetune", events, model)
            # Models are immutable: train a copy, then swap it in like any new model.
            ensemble = copy.deepcopy(model.policy_ensemble)
            ensemble.continue_training([tracker], model.domain)
            fingerprint = "{}-ft{}".format(model.fingerprint or "model", int(now * 1000))
            return Model(model.domain, ensemble, model.interpreter, fingerprint, model.path)
        return self._with_model(work).addCallback(self.supervisor.set_model)

    def load_model_archive(self, data: bytes) -> Deferred:
        """Unpacks, loads and checks a zipped model off the reactor thread, then swaps it in;
        fires with its fingerprint, or fails with a 400 (``InvalidModel``)."""
        if self.supervisor.stopping:
            return fail(ConversationError("The server is shutting down.", 503, "ShuttingDown"))

        def refuse(failure: Any) -> None:
            failure.trap(InvalidModel)
            raise ConversationError(str(failure.value), 400, "InvalidModel")

        def swap(model: Model) -> Optional[str]:
            self.supervisor.set_model(model)
            log.info("Now serving model {fingerprint}, uploaded with POST /model.",
                     fingerprint=self.supervisor.fingerprint)
            self.run_in_thread(self.archives.prune)  # the folder two models back can go now
            return self.supervisor.fingerprint
        return self.run_in_thread(lambda: self.archives.load(data)).addCallbacks(swap, refuse)


def _tracker_from_dicts(sender_id: str, events: List[Dict[str, Any]], model: Model
                        ) -> DialogueStateTracker:
    try:
        return DialogueStateTracker.from_dicts(sender_id, events, model.domain)
    except InvalidEvent as e:
        raise ConversationError(str(e), 400, "InvalidEvent")


__all__ = ["ModelRequests"]
