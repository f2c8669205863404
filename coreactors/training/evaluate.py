"""Evaluating a dialogue model on test stories.

Each test story is replayed; before each of its actions the model predicts, and the story's own
action is then logged, so one mistake does not derail the rest of the story. A story is correct
when every prediction (and, end to end, every intent and entity) was right.

When the model predicts the active form where the story shows another action, the form would
have rejected the message at run time; the evaluation logs that rejection and asks again, as the
server would.
"""

import os
from typing import Any, Dict, List, Optional, Tuple

from coreactors.dialogue.domain import Domain
from coreactors.dialogue.events import (
    ActionExecuted, ActionExecutionRejected, Event, UserUttered)
from coreactors.dialogue.stories import read_stories, read_story_file
from coreactors.dialogue.tracker import DialogueStateTracker
from coreactors.model import Model
from coreactors.nlu.interpreter import NaturalLanguageInterpreter, RegexInterpreter
from coreactors.processor import MessageProcessor
from coreactors.training.generator import TrainingTracker, generate_trackers
from coreactors.training.metrics import ClassificationReport, classification_report

MEMOIZATION_SUFFIXES = ("_MemoizationPolicy", "_AugmentedMemoizationPolicy")


class StoryEvaluation:
    """One test story: what was predicted at each step and whether it all matched."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.actions: List[Dict[str, Any]] = []
        self.intents: List[Tuple[str, str]] = []
        self.lines: List[str] = []
        self.failed = False


class EvaluationResult:
    """Everything ``coreactors evaluate`` and ``POST /evaluate`` report."""

    def __init__(self, stories: List[StoryEvaluation], e2e: bool) -> None:
        self.stories = stories
        self.e2e = e2e
        targets = [a["action"] for s in stories for a in s.actions]
        predictions = [a["predicted"] for s in stories for a in s.actions]
        if e2e:
            targets += [t for s in stories for t, _ in s.intents]
            predictions += [p for s in stories for _, p in s.intents]
        self.report: ClassificationReport = classification_report(targets, predictions)
        memorized = sum(1 for s in stories for a in s.actions
                        if (a.get("policy") or "").endswith(MEMOIZATION_SUFFIXES))
        total_actions = sum(len(s.actions) for s in stories)
        self.in_training_data_fraction = memorized / total_actions if total_actions else 0.0

    @property
    def failed_stories(self) -> List[StoryEvaluation]:
        return [s for s in self.stories if s.failed]

    @property
    def story_accuracy(self) -> float:
        if not self.stories:
            return 0.0
        return (len(self.stories) - len(self.failed_stories)) / len(self.stories)

    def as_dict(self) -> Dict[str, Any]:
        """The JSON of ``POST /evaluate``."""
        return {
            "report": self.report.to_text(),
            "precision": self.report.precision,
            "f1": self.report.f1,
            "accuracy": self.report.accuracy,
            "actions": [a for s in self.stories for a in s.actions],
            "in_training_data_fraction": self.in_training_data_fraction,
            "is_end_to_end_evaluation": self.e2e,
        }

    def failed_stories_markdown(self) -> str:
        failed = self.failed_stories
        if not failed:
            return "<!-- All stories passed -->\n"
        return "\n".join("\n".join(s.lines) + "\n" for s in failed)

    def summary(self) -> str:
        correct = len(self.stories) - len(self.failed_stories)
        lines = [
            "Stories: {} of {} correct (story accuracy {:.3f})".format(
                correct, len(self.stories), self.story_accuracy),
            "Actions{}: accuracy {:.3f}, precision {:.3f}, recall {:.3f}, F1 {:.3f}".format(
                " and intents" if self.e2e else "", self.report.accuracy,
                self.report.precision, self.report.recall, self.report.f1),
            "In training data (memorized): {:.3f}".format(self.in_training_data_fraction),
            "",
            self.report.to_text(),
        ]
        return "\n".join(lines)


def test_trackers(stories_path: Optional[str], domain: Domain, e2e: bool,
                  interpreter: NaturalLanguageInterpreter, text: Optional[str] = None
                  ) -> List[TrainingTracker]:
    """The test stories as trackers: no augmentation, duplicates collapsed."""
    if text is not None:
        steps = read_stories(text, "<request body>", interpreter, e2e)
    else:
        steps = read_story_file(stories_path or "", interpreter, e2e)
    return generate_trackers(steps, domain, augmentation_factor=0, max_history=None,
                             use_story_concatenation=False)


def _entity_tuples(entities: List[Dict[str, Any]]) -> List[Tuple[Any, ...]]:
    return sorted((e.get("entity"), e.get("start"), e.get("end"), str(e.get("value")))
                  for e in entities or [])


def evaluate_tracker(processor: MessageProcessor, gold: DialogueStateTracker,
                     e2e: bool) -> StoryEvaluation:
    domain = processor.domain
    story = StoryEvaluation(gold.sender_id)
    tracker = DialogueStateTracker(gold.sender_id, domain)
    story.lines.append("## {}".format(gold.sender_id))
    for event in gold.events:
        if isinstance(event, ActionExecuted):
            if event.unpredictable:
                tracker.update(event)
                continue
            predicted, policy, confidence = _predict(processor, tracker, event.action_name)
            story.actions.append({"action": event.action_name, "predicted": predicted,
                                  "policy": policy, "confidence": confidence})
            if predicted != event.action_name:
                story.failed = True
                story.lines.append("    - {}   <!-- predicted: {} -->".format(
                    event.action_name, predicted))
            elif event.action_name != "action_listen":
                story.lines.append("    - {}".format(event.action_name))
            tracker.update(ActionExecuted(event.action_name, policy, confidence))
        elif isinstance(event, UserUttered):
            tracker.update(_gold_user(event, story, e2e))
        else:
            story_line = event.as_story_string()
            if story_line is not None:
                story.lines.append("    - {}".format(story_line))
            tracker.update(event)
    return story


def _gold_user(event: UserUttered, story: StoryEvaluation, e2e: bool) -> Event:
    """The user event to log: the story's intent; end to end, also checks the interpreter."""
    parse_data = event.parse_data
    if e2e and "true_intent" in parse_data:
        gold_intent = parse_data["true_intent"]
        gold_entities = parse_data.get("true_entities") or []
        predicted_intent = (parse_data.get("intent") or {}).get("name") or "None"
        story.intents.append((gold_intent, predicted_intent))
        right = (predicted_intent == gold_intent and _entity_tuples(gold_entities)
                 == _entity_tuples(parse_data.get("entities") or []))
        gold = UserUttered(event.text, {"name": gold_intent, "confidence": 1.0},
                           gold_entities, None, input_channel=event.input_channel)
        line = "* {}".format(gold.as_story_string(e2e=True))
        if not right:
            story.failed = True
            line += "   <!-- predicted: {}: {} -->".format(predicted_intent, event.text)
        story.lines.append(line)
        return gold
    story.lines.append("* {}".format(event.as_story_string()))
    return event


def _predict(processor: MessageProcessor, tracker: DialogueStateTracker, gold: str
             ) -> Tuple[str, Optional[str], float]:
    action, policy, confidence = processor.predict_next_action(tracker)
    form = tracker.active_form.get("name")
    if form and action.name() == form and gold != form:
        # At run time the form would reject this message: do what the server would do next.
        tracker.update(ActionExecutionRejected(form, policy, confidence))
        action, policy, confidence = processor.predict_next_action(tracker)
    return action.name(), policy, confidence


def evaluate_stories(model: Model, stories_path: Optional[str] = None, e2e: bool = False,
                     text: Optional[str] = None,
                     interpreter: Optional[NaturalLanguageInterpreter] = None
                     ) -> EvaluationResult:
    """Evaluates a model on a story file (or story markdown given as ``text``)."""
    interpreter = interpreter or model.interpreter or RegexInterpreter()
    processor = MessageProcessor(model)
    trackers = test_trackers(stories_path, model.domain, e2e, interpreter, text)
    return EvaluationResult([evaluate_tracker(processor, t, e2e) for t in trackers], e2e)


def write_results(result: EvaluationResult, out_dir: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "failed_stories.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(result.failed_stories_markdown())
    return path


