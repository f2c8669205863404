"""Training and evaluating the local NLU model: ``coreactors train nlu`` and ``evaluate nlu``.

Training takes the flags of ``python -m rasa_nlu.train`` (``-c config.yml --data nlu.md -o
models/nlu [--project P] [--fixed_model_name current]``) and writes the model to
``<path>/[<project>/]<name>``, named ``model_YYYYMMDD-HHMMSS`` unless a fixed name is given.
Evaluation parses every example of a test file and reports intents (accuracy, per-intent
precision/recall/F1, the most frequent confusions) and entities (precision/recall/F1; an entity
counts when its type and the text it covers both match exactly).
"""

import argparse
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from coreactors.nlu.model import NLUModel, load_nlu_config
from coreactors.nlu.training_data import Message, TrainingDataError, load_data
from coreactors.training.metrics import (
    ClassificationReport, SetScores, classification_report, per_type_set_scores, set_scores,
    top_confusions)

Entity = Tuple[str, str]


def model_folder(path: str, project: Optional[str], fixed_model_name: Optional[str]) -> str:
    name = fixed_model_name or time.strftime("model_%Y%m%d-%H%M%S")
    return os.path.join(path, project, name) if project else os.path.join(path, name)


def train_nlu_model(data_path: str, config_path: Optional[str], path: str,
                    project: Optional[str] = None,
                    fixed_model_name: Optional[str] = None) -> Tuple[NLUModel, str]:
    """Trains on ``data_path`` and persists the model; returns it and its folder."""
    config = load_nlu_config(config_path)
    data = load_data(data_path)
    if not data.examples:
        raise TrainingDataError("no training examples", data_path)
    model = NLUModel.train(data, config)
    target = model_folder(path, project, fixed_model_name)
    model.persist(target)
    return model, target


def _entities(message_text: str, entities: List[Dict[str, Any]]) -> List[Entity]:
    return [(str(e["entity"]), message_text[int(e["start"]):int(e["end"])]) for e in entities]


@dataclass
class NLUEvaluation:
    """The scores of one NLU model on one set of annotated examples."""

    intents: ClassificationReport
    confusions: List[Tuple[str, str, int]]
    entities: SetScores
    entities_by_type: Dict[str, SetScores]
    examples: int

    def summary(self) -> str:
        lines = ["Intent evaluation on {} examples".format(self.examples),
                 "accuracy: {:.4f}  precision: {:.4f}  recall: {:.4f}  F1: {:.4f} "
                 "(weighted by support)".format(self.intents.accuracy, self.intents.precision,
                                                self.intents.recall, self.intents.f1),
                 "", self.intents.to_text(), ""]
        if self.confusions:
            lines.append("Most frequent confusions (gold -> predicted: count):")
            lines.extend("  {} -> {}: {}".format(g, p, n) for g, p, n in self.confusions)
        else:
            lines.append("No intent was confused with another.")
        lines.append("")
        e = self.entities
        if not (e.true_positives or e.false_positives or e.false_negatives):
            lines.append("No entities annotated in the test data, and none predicted.")
            return "\n".join(lines)
        lines.append("Entity evaluation (type and text must match): precision {:.4f}  "
                     "recall {:.4f}  F1 {:.4f}  (tp {}, fp {}, fn {})".format(
                         e.precision, e.recall, e.f1, e.true_positives, e.false_positives,
                         e.false_negatives))
        for name, scores in self.entities_by_type.items():
            lines.append("  {:<24} precision {:.4f}  recall {:.4f}  F1 {:.4f}".format(
                name, scores.precision, scores.recall, scores.f1))
        return "\n".join(lines)

    def as_dict(self) -> Dict[str, Any]:
        return {
            "examples": self.examples,
            "intent_evaluation": {
                "accuracy": self.intents.accuracy, "precision": self.intents.precision,
                "recall": self.intents.recall, "f1_score": self.intents.f1,
                "per_intent": {s.label: {"precision": s.precision, "recall": s.recall,
                                         "f1_score": s.f1, "support": s.support}
                               for s in self.intents.labels},
                "confusions": [{"gold": g, "predicted": p, "count": n}
                               for g, p, n in self.confusions],
            },
            "entity_evaluation": {
                "precision": self.entities.precision, "recall": self.entities.recall,
                "f1_score": self.entities.f1,
                "per_entity": {t: {"precision": s.precision, "recall": s.recall,
                                   "f1_score": s.f1}
                               for t, s in self.entities_by_type.items()},
            },
        }


def evaluate_nlu(interpreter: Any, examples: List[Message]) -> NLUEvaluation:
    """Scores ``interpreter.parse`` against annotated examples."""
    gold_intents, predicted_intents = [], []
    gold_entities, predicted_entities = [], []
    for message in examples:
        result = interpreter.parse(message.text)
        gold_intents.append(message.intent)
        predicted_intents.append((result.get("intent") or {}).get("name"))
        gold_entities.append(_entities(message.text, message.entities))
        predicted_entities.append(_entities(message.text, result.get("entities") or []))
    return NLUEvaluation(
        intents=classification_report(gold_intents, predicted_intents),
        confusions=top_confusions(gold_intents, predicted_intents),
        entities=set_scores(gold_entities, predicted_entities),
        entities_by_type=per_type_set_scores(gold_entities, predicted_entities,
                                             key=lambda item: item[0]),
        examples=len(examples))


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default=None,
                        help="NLU config (language, pipeline); default: the built-in pipeline")
    parser.add_argument("-d", "--data", required=True,
                        help="training data: markdown or JSON file, or a folder of them")
    parser.add_argument("-o", "--path", "--out", dest="path", default="models/nlu",
                        help="folder to write models to (default %(default)s)")
    parser.add_argument("--project", default=None, help="subfolder of --path for this project")
    parser.add_argument("--fixed_model_name", default=None,
                        help="model folder name (default: model_<timestamp>)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no output")


def run_training(args: argparse.Namespace) -> int:
    started = time.time()
    model, target = train_nlu_model(args.data, args.config, args.path, args.project,
                                    args.fixed_model_name)
    if not args.quiet:
        print("Trained the NLU model in {:.1f} s ({} intents): {}".format(
            time.time() - started, len(model.intents), target))
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-u", "--nlu", "--model", dest="model", required=True,
                        help="trained NLU model folder")
    parser.add_argument("-d", "--data", required=True, help="annotated test examples")
    parser.add_argument("--report", default=None,
                        help="also write the scores as JSON to this file")


def run_evaluation(args: argparse.Namespace) -> int:
    from coreactors.model import InvalidModel
    try:
        model = NLUModel.load(args.model)
    except ValueError as e:
        raise InvalidModel(str(e))
    data = load_data(args.data)
    result = evaluate_nlu(model, data.examples)
    print(result.summary())
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            json.dump(result.as_dict(), f, indent=2)
        print("Scores written to {}".format(args.report))
    return 0
