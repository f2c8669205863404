"""Tests for coreactors.training.metrics, checked against hand-computed values."""

import json

import pytest

from coreactors.training.metrics import (
    ClassificationReport,
    LabelScores,
    SetScores,
    classification_report,
    confusion_matrix,
    per_type_set_scores,
    set_scores,
    top_confusions,
)

# a: 4 true, predicted 3 times, 2 correct   -> P 2/3, R 1/2, F1 4/7
# b: 2 true, predicted 3 times, 1 correct   -> P 1/3, R 1/2, F1 2/5
# c: 1 true, never predicted                -> 0, 0, 0
# d: never true, predicted once             -> 0, 0, 0 (support 0)
Y_TRUE = ["a", "a", "a", "a", "b", "b", "c"]
Y_PRED = ["a", "a", "b", "b", "b", "a", "d"]


def approx(x):
    return pytest.approx(x, rel=1e-12, abs=1e-12)


def by_label(report):
    return {s.label: s for s in report.labels}


def test_per_label_scores():
    scores = by_label(classification_report(Y_TRUE, Y_PRED))
    assert list(scores) == ["a", "b", "c", "d"]
    a, b = scores["a"], scores["b"]
    assert (a.precision, a.recall, a.f1, a.support) == (approx(2 / 3), approx(1 / 2), approx(4 / 7), 4)
    assert (b.precision, b.recall, b.f1, b.support) == (approx(1 / 3), approx(1 / 2), approx(2 / 5), 2)


def test_label_only_true_never_predicted():
    c = by_label(classification_report(Y_TRUE, Y_PRED))["c"]
    assert c == LabelScores("c", 0.0, 0.0, 0.0, 1)


def test_label_only_predicted_never_true():
    d = by_label(classification_report(Y_TRUE, Y_PRED))["d"]
    assert d == LabelScores("d", 0.0, 0.0, 0.0, 0)


def test_accuracy_and_averages():
    report = classification_report(Y_TRUE, Y_PRED)
    assert report.total == 7
    assert report.accuracy == approx(3 / 7)
    # (4 * 2/3 + 2 * 1/3) / 7; d has support 0 and therefore no weight
    assert report.precision == approx(10 / 21)
    assert report.recall == approx(3 / 7)
    # (4 * 4/7 + 2 * 2/5) / 7
    assert report.f1 == approx(108 / 245)
    # (4/7 + 2/5 + 0 + 0) / 4: unlike the weighted average, d counts here
    assert report.macro_f1 == approx(17 / 70)
    assert report.macro_precision == approx(1 / 4)
    assert report.macro_recall == approx(1 / 4)


def test_perfect_predictions():
    report = classification_report(["x", "y", "y"], ["x", "y", "y"])
    assert report.accuracy == 1.0
    assert report.precision == report.recall == report.f1 == report.macro_f1 == 1.0


def test_none_labels_become_string():
    report = classification_report([None, "a", "a"], ["a", None, "a"])
    scores = by_label(report)
    assert list(scores) == ["None", "a"]
    assert scores["None"] == LabelScores("None", 0.0, 0.0, 0.0, 1)
    assert scores["a"].precision == approx(1 / 2)
    assert scores["a"].recall == approx(1 / 2)
    assert report.accuracy == approx(1 / 3)


def test_length_mismatch_raises():
    with pytest.raises(ValueError):
        classification_report(["a", "b"], ["a"])
    with pytest.raises(ValueError):
        confusion_matrix(["a"], [])
    with pytest.raises(ValueError):
        top_confusions(["a"], ["a", "b"])
    with pytest.raises(ValueError):
        set_scores([["x"]], [])
    with pytest.raises(ValueError):
        per_type_set_scores([], [["x"]], key=str)


def test_empty_input():
    report = classification_report([], [])
    assert report == ClassificationReport(
        labels=[], accuracy=0.0, precision=0.0, recall=0.0, f1=0.0, macro_f1=0.0, total=0
    )
    assert "accuracy" in report.to_text()
    json.dumps(report.as_dict())
    assert confusion_matrix([], []) == ([], [])
    assert top_confusions([], []) == []


def test_confusion_matrix():
    labels, matrix = confusion_matrix(Y_TRUE, Y_PRED)
    assert labels == ["a", "b", "c", "d"]
    assert matrix == [
        [2, 2, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 1],
        [0, 0, 0, 0],
    ]


def test_confusion_matrix_none_label():
    labels, matrix = confusion_matrix(["a", None], [None, None])
    assert labels == ["None", "a"]
    assert matrix == [[1, 0], [1, 0]]


def test_top_confusions():
    # (b, a) and (c, d) both occur once; the tie is broken by the gold label
    assert top_confusions(Y_TRUE, Y_PRED) == [("a", "b", 2), ("b", "a", 1), ("c", "d", 1)]
    assert top_confusions(Y_TRUE, Y_PRED, n=2) == [("a", "b", 2), ("b", "a", 1)]
    assert top_confusions(Y_TRUE, Y_PRED, n=0) == []


def test_top_confusions_ties_sorted_by_gold_then_predicted():
    assert top_confusions(["x", "x"], ["z", "y"]) == [("x", "y", 1), ("x", "z", 1)]
    # gold label decides before the predicted one
    assert top_confusions(["b", "a"], ["c", "z"]) == [("a", "z", 1), ("b", "c", 1)]


def test_to_text_rows():
    text = classification_report(Y_TRUE, Y_PRED).to_text()
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:] if line.strip()}
    assert rows["a"] == ["0.67", "0.50", "0.57", "4"]
    assert rows["b"] == ["0.33", "0.50", "0.40", "2"]
    assert rows["c"] == ["0.00", "0.00", "0.00", "1"]
    assert rows["d"] == ["0.00", "0.00", "0.00", "0"]
    assert rows["accuracy"] == ["0.43", "7"]
    assert "macro avg" in text and "weighted avg" in text
    macro = next(line for line in lines if line.strip().startswith("macro avg"))
    weighted = next(line for line in lines if line.strip().startswith("weighted avg"))
    assert macro.split()[2:] == ["0.25", "0.25", "0.24", "7"]
    assert weighted.split()[2:] == ["0.48", "0.43", "0.44", "7"]
    # blank line between the label rows and the summary rows
    assert lines[lines.index(next(l for l in lines if l.strip().startswith("d "))) + 1] == ""


def test_to_text_alignment_and_digits():
    report = classification_report(["a_very_long_label_name", "b"], ["b", "b"])
    lines = report.to_text(digits=3).splitlines()
    full_rows = [l for l in lines if l.strip() and not l.strip().startswith("accuracy")]
    # right-aligned columns: every complete row (and the header) ends at the same column
    assert len({len(l) for l in full_rows}) == 1
    assert any(l.split() == ["a_very_long_label_name", "0.000", "0.000", "0.000", "1"] for l in lines)
    assert any(l.split() == ["b", "0.500", "1.000", "0.667", "1"] for l in lines)


def test_as_dict_is_json_serialisable():
    d = classification_report(Y_TRUE, Y_PRED).as_dict()
    loaded = json.loads(json.dumps(d))
    assert set(loaded) == {"labels", "accuracy", "precision", "recall", "f1", "macro_f1"}
    assert set(loaded["labels"]) == {"a", "b", "c", "d"}
    assert loaded["labels"]["a"] == {
        "precision": approx(2 / 3),
        "recall": approx(1 / 2),
        "f1-score": approx(4 / 7),
        "support": 4,
    }
    assert loaded["accuracy"] == approx(3 / 7)
    assert loaded["macro_f1"] == approx(17 / 70)


def test_as_dict_with_none_label():
    json.dumps(classification_report([None], ["a"]).as_dict())


GOLD = [
    [("city", "Berlin"), ("city", "Berlin")],
    [("name", "Bob")],
    [],
]
PRED = [
    [("city", "Berlin"), ("city", "Berlin"), ("city", "Berlin")],
    [("name", "Rob"), ("city", "Paris")],
    [("name", "Al")],
]


def test_set_scores_multiset():
    # example 0: tp 2, fp 1 (third Berlin); example 1: fp 2, fn 1; example 2: fp 1
    s = set_scores(GOLD, PRED)
    assert (s.true_positives, s.false_positives, s.false_negatives) == (2, 4, 1)
    assert s.precision == approx(1 / 3)
    assert s.recall == approx(2 / 3)
    assert s.f1 == approx(4 / 9)


def test_set_scores_matches_within_example_only():
    s = set_scores([[("x", "1")], []], [[], [("x", "1")]])
    assert s == SetScores(0.0, 0.0, 0.0, 0, 1, 1)


def test_set_scores_empty():
    assert set_scores([], []) == SetScores(0.0, 0.0, 0.0, 0, 0, 0)
    assert set_scores([[], []], [[], []]) == SetScores(0.0, 0.0, 0.0, 0, 0, 0)


def test_per_type_set_scores():
    scores = per_type_set_scores(GOLD, PRED, key=lambda item: item[0])
    assert list(scores) == ["city", "name"]
    assert scores["city"] == SetScores(approx(1 / 2), 1.0, approx(2 / 3), 2, 2, 0)
    assert scores["name"] == SetScores(0.0, 0.0, 0.0, 0, 2, 1)
    # the per-type counts add up to the overall ones
    overall = set_scores(GOLD, PRED)
    assert sum(s.true_positives for s in scores.values()) == overall.true_positives
    assert sum(s.false_positives for s in scores.values()) == overall.false_positives
    assert sum(s.false_negatives for s in scores.values()) == overall.false_negatives


def test_per_type_type_only_predicted_is_reported():
    scores = per_type_set_scores([[("a", 1)]], [[("a", 1), ("z", 2)]], key=lambda i: i[0])
    assert list(scores) == ["a", "z"]
    assert scores["a"] == SetScores(1.0, 1.0, 1.0, 1, 0, 0)
    assert scores["z"] == SetScores(0.0, 0.0, 0.0, 0, 1, 0)
