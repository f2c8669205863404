"""Bounded memories of answers that only hold for one context at a time.

Conversations keep coming back to the same few situations, so the policies remember what they
computed for them: a state's feature vector, the network's answer for a window, the ensemble's
decision. Each answer holds only for the objects it was computed with (a domain, a trained
network): asked about others, the memory starts over. It holds at most ``size`` answers and
starts over when full, so it never grows without bound.

Worker threads may share a model: a context switch replaces the whole table at once, and the
table's own reads and writes are single dict operations.
"""

import operator
from typing import Any, Dict, Hashable, Tuple


class AnswerMemory:
    """Answers by key, for one context (compared by identity) at a time, up to ``size``."""

    __slots__ = ("size", "_held")

    def __init__(self, size: int) -> None:
        self.size = size
        self._held: Tuple[Tuple[Any, ...], Dict[Hashable, Any]] = ((), {})

    def answers_for(self, *context: Any) -> Dict[Hashable, Any]:
        """The table of answers for ``context``: the remembered one if it is the same objects,
        else a new empty one (which replaces it)."""
        held, answers = self._held
        if len(held) != len(context) or not all(map(operator.is_, held, context)):
            answers = {}
            self._held = (context, answers)
        return answers

    def remember(self, answers: Dict[Hashable, Any], key: Hashable, answer: Any) -> None:
        """Adds ``answer`` to a table from ``answers_for``, starting over when it is full."""
        if len(answers) >= self.size:
            answers.clear()
        answers[key] = answer

    def forget(self) -> None:
        self._held = ((), {})


__all__ = ["AnswerMemory"]
