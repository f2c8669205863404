"""Training trackers from story steps: walk the story graph, glue steps at checkpoints, augment.

Each finished tracker is one path through the stories, with ``action_listen`` before every user
message, the slots its entities fill, and a final ``action_listen``. Augmentation glues random
story ends to story starts (seeded, so training is reproducible), which teaches policies that
what came before a story does not change it.
"""

import random
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from coreactors.dialogue.domain import ACTION_LISTEN_NAME, Domain
from coreactors.dialogue.events import ActionExecuted, Event, UserUttered
from coreactors.dialogue.stories import STORY_START, StoryStep
from coreactors.dialogue.tracker import DialogueStateTracker
from coreactors.logs import Log

log = Log(__name__)

MAX_ROUNDS = 50
AUGMENTATION_ROUNDS = 3


class TrainingTracker(DialogueStateTracker):
    """A tracker built from stories; ``is_augmented`` marks glued stories."""

    is_augmented = False


class _Partial:
    """A path through the graph that has not finished yet: its events and the blocks it used."""

    __slots__ = ("events", "names", "augmented", "_tracker")

    def __init__(self, events: List[Event], names: Tuple[str, ...], augmented: bool) -> None:
        self.events = events
        self.names = names
        self.augmented = augmented
        self._tracker: Optional[TrainingTracker] = None

    def tracker(self, domain: Domain) -> TrainingTracker:
        if self._tracker is None:
            tracker = TrainingTracker(" > ".join(self.names) or "story", domain)
            for event in self.events:
                tracker.update(event)
            tracker.is_augmented = self.augmented
            self._tracker = tracker
        return self._tracker


def _expand(step: StoryStep, previous: Optional[Event], domain: Domain,
            at_story_start: bool) -> List[Event]:
    """A step's events with the implicit listens and auto-filled slots spelled out."""
    events: List[Event] = []
    for event in step.events:
        if isinstance(event, UserUttered):
            before = events[-1] if events else previous
            if not (isinstance(before, ActionExecuted)
                    and before.action_name == ACTION_LISTEN_NAME):
                events.append(ActionExecuted(ACTION_LISTEN_NAME))
            events.append(event)
            events.extend(domain.slots_for_entities(event.entities))
        elif (isinstance(event, ActionExecuted) and at_story_start and previous is None
              and not any(isinstance(e, ActionExecuted) for e in events)):
            # A bot-first opening: nothing to predict it from, so no training example.
            events.append(ActionExecuted(event.action_name, unpredictable=True))
        else:
            events.append(event)
    return events


class TrainingDataGenerator:
    """Generates training trackers from story steps."""

    def __init__(self, steps: Sequence[StoryStep], domain: Domain, augmentation_factor: int = 20,
                 unique_last_num_states: Optional[int] = 5, use_story_concatenation: bool = True,
                 seed: int = 42) -> None:
        self.steps = list(steps)
        self.domain = domain
        self.augmentation_factor = augmentation_factor if use_story_concatenation else 0
        self.unique_last_num_states = unique_last_num_states
        self.rng = random.Random(seed)

    def _key(self, partial: _Partial) -> tuple:
        tracker = partial.tracker(self.domain)
        states = tracker.past_states()
        if self.unique_last_num_states:
            states = states[-self.unique_last_num_states:]
        return tuple(states), tuple(sorted((k, repr(v))
                                           for k, v in tracker.current_slot_values().items()))

    def _steps_starting_at(self, checkpoint: str) -> List[Tuple[StoryStep, List]]:
        found = []
        for step in self.steps:
            starts = step.start_checkpoints or []
            if checkpoint == STORY_START and not starts:
                found.append((step, []))
            for c in starts:
                if c.name == checkpoint:
                    found.append((step, [c]))
        return found

    def _run(self, active: Dict[str, List[_Partial]], finished: List[_Partial],
             seen: Dict[str, set], pair_limit: Optional[int]) -> None:
        """Pushes partial paths through the graph until no checkpoint receives anything new."""
        for _ in range(MAX_ROUNDS):
            arrived: Dict[str, List[_Partial]] = OrderedDict()
            for checkpoint, partials in active.items():
                pairs = [(p, step, conditions) for step, conditions
                         in self._steps_starting_at(checkpoint) for p in partials]
                if pair_limit is not None and len(pairs) > pair_limit:
                    pairs = self.rng.sample(pairs, pair_limit)
                for partial, step, conditions in pairs:
                    if conditions:
                        slots = partial.tracker(self.domain).current_slot_values()
                        if not all(c.accepts(slots) for c in conditions):
                            continue
                    previous = partial.events[-1] if partial.events else None
                    events = partial.events + _expand(step, previous, self.domain,
                                                      checkpoint == STORY_START)
                    names = partial.names + (step.block_name,) if (
                        not partial.names or partial.names[-1] != step.block_name
                    ) else partial.names
                    ends = [c for c in step.end_checkpoints if self._steps_starting_at(c.name)]
                    if ends:
                        for c in ends:
                            arrived.setdefault(c.name, []).append(
                                _Partial(events, names, partial.augmented))
                    else:
                        # No end checkpoint, or only ones no story continues from: it ends here.
                        finished.append(_Partial(events + [ActionExecuted(ACTION_LISTEN_NAME)],
                                                 names, partial.augmented))
            pair_limit = None
            active = OrderedDict()
            for checkpoint, partials in arrived.items():
                keys = seen.setdefault(checkpoint, set())
                for partial in partials:
                    key = self._key(partial)
                    if key in keys:
                        continue
                    keys.add(key)
                    active.setdefault(checkpoint, []).append(partial)
            if not active:
                return
        log.warn("Stopped following story checkpoints after {rounds} rounds.", rounds=MAX_ROUNDS)

    def generate(self) -> List[TrainingTracker]:
        finished: List[_Partial] = []
        seen: Dict[str, set] = {}
        self._run(OrderedDict([(STORY_START, [_Partial([], (), False)])]), finished, seen, None)
        originals = list(finished)
        if self.augmentation_factor > 0 and originals:
            limit = 10 * self.augmentation_factor
            for _ in range(AUGMENTATION_ROUNDS):
                pool = [p for p in finished if p.events]
                sampled = self.rng.sample(pool, min(self.augmentation_factor, len(pool)))
                # Drop each path's final listen so the next story's opening listen follows it.
                glued = [_Partial(p.events[:-1], p.names, True) for p in sampled]
                self._run(OrderedDict([(STORY_START, glued)]), finished, seen, limit)
        return self._unique(finished)

    def _unique(self, partials: List[_Partial]) -> List[TrainingTracker]:
        trackers: List[TrainingTracker] = []
        keys = set()
        for partial in partials:
            tracker = partial.tracker(self.domain)
            states, actions = tracker.training_examples()
            key = (tuple(states), tuple(actions))
            if key in keys:
                continue
            keys.add(key)
            trackers.append(tracker)
        return trackers


def generate_trackers(steps: Sequence[StoryStep], domain: Domain, augmentation_factor: int = 20,
                      max_history: Optional[int] = 5, use_story_concatenation: bool = True
                      ) -> List[TrainingTracker]:
    return TrainingDataGenerator(steps, domain, augmentation_factor, max_history,
                                 use_story_concatenation).generate()
