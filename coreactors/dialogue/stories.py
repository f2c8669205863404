"""Stories in Rasa's markdown: reading them into story steps, and writing conversations as stories.

A story file is a list of blocks (``## name``) made of user lines (``* intent{"entity": "v"}``,
alternatives joined with ``OR``, end-to-end ``* intent: text``), bot lines (``- action`` or an
event such as ``- slot{"name": "v"}``) and checkpoints (``> name``) that glue blocks together.
Reading gives ``StoryStep`` objects; ``training.generator`` turns them into training trackers.
End-to-end lines are parsed by the interpreter the caller passes in (anything with ``parse``);
the intent shorthand and the entity annotations come from ``coreactors.markup``, so this module
needs nothing of the NLU room.
"""

import json
import os
import re
from typing import Any, Dict, List, Optional

from coreactors.dialogue.domain import ACTION_LISTEN_NAME
from coreactors.dialogue.events import (
    EVENT_TYPES, ActionExecuted, ActionExecutionRejected, Event, Form, InvalidEvent, SlotSet,
    UserUttered, event_from_dict)
from coreactors.markup import NaturalLanguageInterpreter, RegexInterpreter, parse_annotated_text

STORY_START = "STORY_START"
GENERATED_PREFIX = "GENR_"

_COMMENT = re.compile(r"<!--.*?-->")
_FORM_LINE = re.compile(r"^[*\-]\s+form: ")
_E2E = re.compile(r"^\s*([^{}:\s][^{}:]*?)\s*:\s*(.*)$", re.DOTALL)
_NAME_AND_JSON = re.compile(r"^\s*([^{]+?)\s*(\{.*\})?\s*$", re.DOTALL)


class StoryParseError(ValueError):
    """A story file that cannot be read; the message names the file and the line."""

    def __init__(self, message: str, filename: str = "<stories>", line: Optional[int] = None
                 ) -> None:
        where = filename if line is None else "{}:{}".format(filename, line)
        super().__init__("{}: {}".format(where, message))
        self.filename = filename
        self.line = line


class Checkpoint:
    """A named point where story steps join; start checkpoints may require slot values."""

    def __init__(self, name: str, conditions: Optional[Dict[str, Any]] = None) -> None:
        self.name = name
        self.conditions = conditions or {}

    def accepts(self, slot_values: Dict[str, Any]) -> bool:
        return all(slot_values.get(k) == v for k, v in self.conditions.items())

    def __repr__(self) -> str:
        return "Checkpoint({!r}, {!r})".format(self.name, self.conditions)


class StoryStep:
    """A piece of a story between checkpoints."""

    def __init__(self, block_name: str, start_checkpoints: Optional[List[Checkpoint]] = None,
                 end_checkpoints: Optional[List[Checkpoint]] = None,
                 events: Optional[List[Event]] = None) -> None:
        self.block_name = block_name
        self.start_checkpoints = start_checkpoints or []
        self.end_checkpoints = end_checkpoints or []
        self.events = events or []

    def starts_story(self) -> bool:
        return not self.start_checkpoints or any(c.name == STORY_START
                                                 for c in self.start_checkpoints)

    def __repr__(self) -> str:
        return "StoryStep({!r}, start={}, end={}, {} events)".format(
            self.block_name, [c.name for c in self.start_checkpoints],
            [c.name for c in self.end_checkpoints], len(self.events))


class _Builder:
    """Collects the steps of one story block while its lines are read."""

    def __init__(self, name: str, counter: List[int]) -> None:
        self.name = name
        self.counter = counter
        self.steps: List[StoryStep] = []
        self.current: List[StoryStep] = [StoryStep(name)]
        self.has_events = False

    def _generated(self, kind: str) -> str:
        self.counter[0] += 1
        return "{}{}_{}".format(GENERATED_PREFIX, kind, self.counter[0])

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        # Before the block's first event a checkpoint is where it starts; after, where it ends
        # (also right after an OR, whose branches join in an empty step).
        if not self.has_events:
            for step in self.current:
                step.start_checkpoints.append(checkpoint)
        else:
            for step in self.current:
                step.end_checkpoints.append(checkpoint)

    def _start_new_if_ended(self) -> None:
        if any(s.end_checkpoints for s in self.current):
            # Events after an end checkpoint continue from it in a new step.
            starts = self.current[0].end_checkpoints
            self.steps.extend(self.current)
            self.current = [StoryStep(self.name, [Checkpoint(c.name) for c in starts])]

    def add_events(self, events: List[Event]) -> None:
        self._start_new_if_ended()
        self.has_events = True
        for step in self.current:
            step.events.extend(events)

    def add_user_alternatives(self, messages: List[UserUttered]) -> None:
        self._start_new_if_ended()
        self.has_events = True
        if len(messages) == 1:
            for step in self.current:
                step.events.append(messages[0])
            return
        # OR: one copy of the story so far per alternative, joined again at a new checkpoint.
        joint = self._generated("OR")
        branches = []
        for message in messages:
            for step in self.current:
                branches.append(StoryStep(step.block_name, list(step.start_checkpoints),
                                          [Checkpoint(joint)], step.events + [message]))
        self.steps.extend(branches)
        self.current = [StoryStep(self.name, [Checkpoint(joint)])]

    def finish(self) -> List[StoryStep]:
        return self.steps + self.current


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError("invalid JSON in {}: {}".format(what, e))


def parse_user_line(text: str, interpreter: NaturalLanguageInterpreter, e2e: bool
                    ) -> UserUttered:
    """One alternative of a ``*`` line as a user event."""
    e2e_match = _E2E.match(text) if ("{" not in text.split(":", 1)[0]) else None
    if e2e_match and ":" in text:
        intent, message = e2e_match.group(1), e2e_match.group(2).strip()
        plain, entities = parse_annotated_text(message)
        parse_data: Dict[str, Any]
        if e2e:
            # Evaluation: the story gives the truth, the interpreter gives the prediction.
            parse_data = dict(interpreter.parse(plain))
            parse_data["true_intent"] = intent
            parse_data["true_entities"] = entities
            return UserUttered(plain, parse_data.get("intent") or {},
                               parse_data.get("entities") or [], parse_data)
        parse_data = {"text": plain, "intent": {"name": intent, "confidence": 1.0},
                      "intent_ranking": [{"name": intent, "confidence": 1.0}],
                      "entities": entities}
        return UserUttered(plain, parse_data["intent"], entities, parse_data)
    parse_data = RegexInterpreter().parse(text)
    if not parse_data["intent"].get("name"):
        raise ValueError("cannot read the user message {!r}".format(text))
    return UserUttered(text, parse_data["intent"], parse_data["entities"], parse_data)


def parse_bot_line(text: str) -> List[Event]:
    """A ``-`` line: an event (``slot{...}``, ``form{...}`` ...) or an action."""
    match = _NAME_AND_JSON.match(text)
    if not match:
        raise ValueError("cannot read the line {!r}".format(text))
    name, raw = match.group(1), match.group(2)
    parameters = _parse_json(raw, "'{}'".format(name)) if raw else {}
    if not isinstance(parameters, dict):
        raise ValueError("the parameters of '{}' must be a JSON object".format(name))
    if name == "slot":
        return [SlotSet(k, v) for k, v in parameters.items()]
    if name in EVENT_TYPES and name not in ("user", "bot", "agent", "action"):
        parameters = dict(parameters, event=name)
        try:
            return [event_from_dict(parameters)]
        except InvalidEvent as e:
            raise ValueError(str(e))
    if name == "topic":
        raise ValueError("the 'topic' event no longer exists")
    explicit = parameters.get("name")
    return [ActionExecuted(explicit if isinstance(explicit, str) else name)]


def read_stories(text: str, filename: str = "<stories>",
                 interpreter: Optional[NaturalLanguageInterpreter] = None,
                 e2e: bool = False) -> List[StoryStep]:
    """Parses story markdown into story steps; errors name the file and line."""
    interpreter = interpreter or RegexInterpreter()
    steps: List[StoryStep] = []
    builder: Optional[_Builder] = None
    counter = [0]
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw_line).strip()
        if not line:
            continue
        try:
            if line.startswith("#"):
                if builder:
                    steps.extend(builder.finish())
                name = line.lstrip("#").strip()
                builder = _Builder(name or "story_{}".format(number), counter)
                continue
            if _FORM_LINE.match(line):
                # Turns handled by a form, written by the story exporter: not training data.
                continue
            if builder is None:
                raise ValueError("a story line comes before the first story name ('## name')")
            if line.startswith(">"):
                match = _NAME_AND_JSON.match(line[1:])
                if not match:
                    raise ValueError("cannot read the checkpoint {!r}".format(line))
                conditions = _parse_json(match.group(2), "checkpoint") if match.group(2) else {}
                builder.add_checkpoint(Checkpoint(match.group(1), conditions))
            elif line.startswith("*"):
                alternatives = [a.strip() for a in line[1:].split(" OR ")]
                builder.add_user_alternatives(
                    [parse_user_line(a, interpreter, e2e) for a in alternatives if a])
            elif line.startswith("-"):
                builder.add_events(parse_bot_line(line[1:].strip()))
            else:
                raise ValueError("a story line must start with '##', '*', '-' or '>'")
        except ValueError as e:
            raise StoryParseError(str(e), filename, number)
    if builder:
        steps.extend(builder.finish())
    return steps


def read_story_file(path: str, interpreter: Optional[NaturalLanguageInterpreter] = None,
                    e2e: bool = False) -> List[StoryStep]:
    """Reads a story file, or every story file in a folder (hidden files skipped)."""
    if os.path.isdir(path):
        steps: List[StoryStep] = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    steps.extend(read_story_file(os.path.join(root, name), interpreter, e2e))
        return steps
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise StoryParseError("cannot read the story file: {}".format(e.strerror), path)
    return read_stories(text, path, interpreter, e2e)


# --------------------------------------------------------------------- writing

def story_from_events(events: List[Event], name: str, e2e: bool = False) -> str:
    """Writes applied events as one flat story; form-handled turns get the ``form:`` prefix."""
    lines = ["## {}".format(name)]
    handled = _form_handled_indices(events)
    for i, event in enumerate(events):
        prefix = "form: " if i in handled else ""
        if isinstance(event, UserUttered):
            lines.append("* {}{}".format(prefix, event.as_story_string(e2e=e2e)))
        elif isinstance(event, ActionExecuted):
            if event.action_name != ACTION_LISTEN_NAME:
                lines.append("    - {}{}".format(prefix, event.as_story_string()))
        else:
            story_line = event.as_story_string()
            if story_line is not None:
                lines.append("    - {}".format(story_line))
    return "\n".join(lines) + "\n"


def _form_handled_indices(events: List[Event]) -> set:
    """Indices of the user messages and form actions of turns a form handled itself."""
    handled = set()
    active: Optional[str] = None
    rejected = False
    last_non_listen: Optional[str] = None
    pending_user: Optional[int] = None
    previous_action: Optional[str] = None
    for i, event in enumerate(events):
        if isinstance(event, Form):
            active, rejected = event.name, False
        elif isinstance(event, ActionExecutionRejected):
            if event.action_name == active:
                rejected = True
        elif isinstance(event, UserUttered):
            pending_user = i if previous_action == ACTION_LISTEN_NAME else None
        elif isinstance(event, ActionExecuted):
            name = event.action_name
            if (active and name == active and not rejected and pending_user is not None
                    and previous_action == ACTION_LISTEN_NAME and last_non_listen == active):
                handled.update((pending_user, i))
            if name == active:
                rejected = False
            pending_user = None
            previous_action = name
            if name != ACTION_LISTEN_NAME:
                last_non_listen = name
    return handled


def steps_as_story_string(steps: List[StoryStep]) -> str:
    """Writes story steps back as markdown, checkpoints included (round-trips ``read_stories``)."""
    blocks = []
    for step in steps:
        lines = ["## {}".format(step.block_name)]
        for c in step.start_checkpoints:
            if c.name != STORY_START:
                lines.append("> {}{}".format(c.name, json.dumps(c.conditions)
                                             if c.conditions else ""))
        for event in step.events:
            if isinstance(event, UserUttered):
                lines.append("* {}".format(event.as_story_string()))
            else:
                story_line = event.as_story_string()
                if story_line is not None:
                    lines.append("    - {}".format(story_line))
        for c in step.end_checkpoints:
            lines.append("> {}".format(c.name))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
