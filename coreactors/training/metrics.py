"""Evaluation metrics for dialogue and NLU evaluation.

``coreactors evaluate`` compares the actions a trained policy ensemble
predicts against the actions written in test stories, and ``coreactors
evaluate nlu`` compares predicted intents and entities against annotated
examples. Both print the same kinds of numbers, which are computed here:

* :func:`classification_report` - per-label precision / recall / F1 with
  accuracy and macro / support-weighted averages, for single-label
  predictions (actions, intents).
* :func:`confusion_matrix` and :func:`top_confusions` - which labels get
  mistaken for which.
* :func:`set_scores` and :func:`per_type_set_scores` - micro-averaged
  scores for predictions that are collections of items per example
  (entities).

Only the standard library is used so that evaluation works in minimal
installs.
"""

from collections import Counter
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    Hashable,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
)

__all__ = [
    "LabelScores",
    "ClassificationReport",
    "classification_report",
    "confusion_matrix",
    "top_confusions",
    "SetScores",
    "set_scores",
    "per_type_set_scores",
]


def _safe_div(numerator: float, denominator: float) -> float:
    # Undefined ratios (nothing predicted, nothing to find) count as 0 so a
    # missing label drags averages down instead of raising or producing NaN,
    # which would also break JSON output.
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return _safe_div(2 * precision * recall, precision + recall)


def _label(value: Any) -> str:
    # Predictions may legitimately be missing (e.g. no intent recognised);
    # mapping everything to str keeps labels sortable and JSON keys valid.
    return "None" if value is None else str(value)


def _check_lengths(a: Sequence[Any], b: Sequence[Any]) -> None:
    if len(a) != len(b):
        raise ValueError(
            "Expected the same number of gold and predicted values, "
            "got {} and {}.".format(len(a), len(b))
        )


@dataclass(frozen=True)
class LabelScores:
    """Scores of a single label; ``support`` is its number of true occurrences."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationReport:
    """Per-label scores plus overall accuracy and averaged scores.

    ``precision``, ``recall`` and ``f1`` are averages weighted by support,
    so labels that never occur in the gold data do not contribute to them;
    ``macro_f1`` is the unweighted mean over all labels, including those.
    """

    labels: List[LabelScores]
    accuracy: float
    precision: float
    recall: float
    f1: float
    macro_f1: float
    total: int

    @property
    def macro_precision(self) -> float:
        return _safe_div(sum(s.precision for s in self.labels), len(self.labels))

    @property
    def macro_recall(self) -> float:
        return _safe_div(sum(s.recall for s in self.labels), len(self.labels))

    def to_text(self, digits: int = 2) -> str:
        """Render a fixed-width table, one row per label and then the averages."""
        headers = ("precision", "recall", "f1-score", "support")
        avg_names = ("accuracy", "macro avg", "weighted avg")
        name_width = max([len(s.label) for s in self.labels] + [len(n) for n in avg_names])
        # Wide enough for the header words and for "1.000..." at any precision.
        col_width = max(max(len(h) for h in headers), digits + 2)

        def fmt(value: float) -> str:
            return "{:.{}f}".format(value, digits)

        def row(name: str, cells: Iterable[str]) -> str:
            parts = [name.rjust(name_width)]
            parts.extend(cell.rjust(col_width) for cell in cells)
            return " ".join(parts).rstrip()

        lines = [" " * name_width + " " + " ".join(h.rjust(col_width) for h in headers), ""]
        for s in self.labels:
            lines.append(
                row(s.label, (fmt(s.precision), fmt(s.recall), fmt(s.f1), str(s.support)))
            )
        lines.append("")
        # Accuracy has no separate precision/recall, so those cells stay empty,
        # matching the layout people know from the usual classification report.
        lines.append(row("accuracy", ("", "", fmt(self.accuracy), str(self.total))))
        lines.append(
            row(
                "macro avg",
                (
                    fmt(self.macro_precision),
                    fmt(self.macro_recall),
                    fmt(self.macro_f1),
                    str(self.total),
                ),
            )
        )
        lines.append(
            row(
                "weighted avg",
                (fmt(self.precision), fmt(self.recall), fmt(self.f1), str(self.total)),
            )
        )
        return "\n".join(lines) + "\n"

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-serialisable summary, e.g. for writing evaluation results to disk."""
        return {
            "labels": {
                s.label: {
                    "precision": s.precision,
                    "recall": s.recall,
                    "f1-score": s.f1,
                    "support": s.support,
                }
                for s in self.labels
            },
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "macro_f1": self.macro_f1,
        }


def classification_report(
    y_true: Sequence[Optional[str]], y_pred: Sequence[Optional[str]]
) -> ClassificationReport:
    """Score single-label predictions against gold labels.

    Labels are the union of gold and predicted values, so a label that is
    only ever predicted still shows up (with recall 0 and support 0).
    ``None`` is reported as the label ``"None"``.

    Raises:
        ValueError: if ``y_true`` and ``y_pred`` differ in length.
    """
    _check_lengths(y_true, y_pred)
    true = [_label(v) for v in y_true]
    pred = [_label(v) for v in y_pred]
    total = len(true)

    support = Counter(true)
    predicted = Counter(pred)
    correct = Counter(t for t, p in zip(true, pred) if t == p)

    scores = []
    for label in sorted(set(support) | set(predicted)):
        precision = _safe_div(correct[label], predicted[label])
        recall = _safe_div(correct[label], support[label])
        scores.append(
            LabelScores(label, precision, recall, _f1(precision, recall), support[label])
        )

    def weighted(attr: str) -> float:
        return _safe_div(sum(getattr(s, attr) * s.support for s in scores), total)

    return ClassificationReport(
        labels=scores,
        accuracy=_safe_div(sum(correct.values()), total),
        precision=weighted("precision"),
        recall=weighted("recall"),
        f1=weighted("f1"),
        macro_f1=_safe_div(sum(s.f1 for s in scores), len(scores)),
        total=total,
    )


def confusion_matrix(
    y_true: Sequence[Optional[str]], y_pred: Sequence[Optional[str]]
) -> Tuple[List[str], List[List[int]]]:
    """Return ``(labels, matrix)`` with ``matrix[i][j]`` = how often gold
    ``labels[i]`` was predicted as ``labels[j]``; labels are sorted."""
    _check_lengths(y_true, y_pred)
    pairs = Counter((_label(t), _label(p)) for t, p in zip(y_true, y_pred))
    labels = sorted({t for t, _ in pairs} | {p for _, p in pairs})
    matrix = [[pairs[(t, p)] for p in labels] for t in labels]
    return labels, matrix


def top_confusions(
    y_true: Sequence[Optional[str]], y_pred: Sequence[Optional[str]], n: int = 10
) -> List[Tuple[str, str, int]]:
    """The ``n`` most frequent ``(gold, predicted, count)`` mistakes.

    Ordered by count descending, then by gold and predicted label so the
    output is deterministic.
    """
    _check_lengths(y_true, y_pred)
    pairs = Counter(
        (_label(t), _label(p)) for t, p in zip(y_true, y_pred) if _label(t) != _label(p)
    )
    ranked = sorted(pairs.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))
    return [(t, p, count) for (t, p), count in ranked[: max(n, 0)]]


@dataclass(frozen=True)
class SetScores:
    """Micro-averaged scores over collections of items (e.g. entities)."""

    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    false_negatives: int


def _scores_from_counts(tp: int, fp: int, fn: int) -> SetScores:
    precision = _safe_div(tp, tp + fp)
    recall = _safe_div(tp, tp + fn)
    return SetScores(precision, recall, _f1(precision, recall), tp, fp, fn)


def _example_counts(gold: Counter, predicted: Counter) -> Tuple[int, int, int]:
    # Multiset intersection: an entity annotated twice must also be found
    # twice, and predicting it three times yields one false positive.
    tp = sum((gold & predicted).values())
    return tp, sum(predicted.values()) - tp, sum(gold.values()) - tp


def set_scores(
    gold: Sequence[Sequence[Hashable]], predicted: Sequence[Sequence[Hashable]]
) -> SetScores:
    """Micro-averaged precision / recall / F1 over per-example item collections.

    ``gold[i]`` and ``predicted[i]`` hold the items (e.g. ``(entity_type,
    text)`` tuples) of example ``i``; they are matched as multisets within
    each example only, so an entity found in the wrong example does not count.

    Raises:
        ValueError: if ``gold`` and ``predicted`` differ in length.
    """
    _check_lengths(gold, predicted)
    tp = fp = fn = 0
    for g, p in zip(gold, predicted):
        e_tp, e_fp, e_fn = _example_counts(Counter(g), Counter(p))
        tp, fp, fn = tp + e_tp, fp + e_fp, fn + e_fn
    return _scores_from_counts(tp, fp, fn)


def per_type_set_scores(
    gold: Sequence[Sequence[Hashable]],
    predicted: Sequence[Sequence[Hashable]],
    key: Callable[[Hashable], str],
) -> Dict[str, SetScores]:
    """Like :func:`set_scores`, but split by ``key(item)`` (e.g. entity type).

    Every type seen in either gold or predicted items gets an entry; the
    dict is ordered by type name.

    Raises:
        ValueError: if ``gold`` and ``predicted`` differ in length.
    """
    _check_lengths(gold, predicted)
    counts: Dict[str, List[int]] = {}
    for g, p in zip(gold, predicted):
        gold_by_type: Dict[str, Counter] = {}
        pred_by_type: Dict[str, Counter] = {}
        for item in g:
            gold_by_type.setdefault(key(item), Counter())[item] += 1
        for item in p:
            pred_by_type.setdefault(key(item), Counter())[item] += 1
        for t in set(gold_by_type) | set(pred_by_type):
            e_tp, e_fp, e_fn = _example_counts(
                gold_by_type.get(t, Counter()), pred_by_type.get(t, Counter())
            )
            c = counts.setdefault(t, [0, 0, 0])
            c[0] += e_tp
            c[1] += e_fp
            c[2] += e_fn
    return {t: _scores_from_counts(*counts[t]) for t in sorted(counts)}
