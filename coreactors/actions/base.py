"""What every action is: a name and ``run(dispatcher, tracker, domain) -> events``.

Kept apart from the built-in actions (``actions.action``) and the action-server protocol
(``actions.remote``) because both build on it: the lookup by name in ``actions.action`` makes
remote actions, so the base cannot live there without the two modules importing each other.
"""

from typing import List, Optional

from coreactors.actions.dispatcher import Dispatcher
from coreactors.dialogue.domain import Domain
from coreactors.dialogue.events import Event
from coreactors.dialogue.tracker import DialogueStateTracker


class ActionExecutionRejection(Exception):
    """An action refused to run (an action server's 400 with ``action_name``)."""

    def __init__(self, action_name: str, message: Optional[str] = None) -> None:
        self.action_name = action_name
        self.message = message or "Custom action '{}' rejected to run".format(action_name)
        super().__init__(self.message)


class Action:
    """Base of all actions."""

    def __init__(self, name: str) -> None:
        self._name = name

    def name(self) -> str:
        return self._name

    def run(self, dispatcher: Dispatcher, tracker: DialogueStateTracker, domain: Domain
            ) -> List[Event]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return "{}('{}')".format(type(self).__name__, self.name())
