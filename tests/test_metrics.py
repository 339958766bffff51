"""Tests for ``experiments.evaluation.metrics`` (known answers) and its confusion plot."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from experiments.evaluation.confusion_plot import confusion_csv, plot_confusion
from experiments.evaluation.metrics import (
    EvaluationResult,
    evaluate,
    format_mean_std,
    summarise_folds,
)
from ser_features.labels import EMOTIONS

CLASSES = ["happy", "sad", "angry"]


def one_hot(labels: list[str], classes: list[str]) -> np.ndarray:
    return np.array([[1.0 if c == label else 0.0 for c in classes] for label in labels])


def test_perfect_classifier():
    y = ["happy", "sad", "angry", "sad", "happy", "happy"]
    result = evaluate(y, one_hot(y, CLASSES), CLASSES)
    assert isinstance(result, EvaluationResult)
    m = result.metrics
    assert m["accuracy"] == m["uar"] == m["macro_f1"] == 1.0
    assert m["log_loss"] == pytest.approx(0.0, abs=1e-9)
    assert result.y_pred.tolist() == y
    np.testing.assert_array_equal(result.confusion, np.diag([3, 2, 1]))
    assert m["support_happy"] == 3.0 and m["recall_angry"] == 1.0


def test_metric_keys_are_exact():
    y = ["happy", "sad", "angry"]
    metrics = evaluate(y, one_hot(y, CLASSES), CLASSES).metrics
    per_class = {f"{k}_{c}" for k in ("precision", "recall", "f1", "support") for c in CLASSES}
    assert set(metrics) == {"accuracy", "uar", "macro_f1", "log_loss"} | per_class
    assert all(type(v) is float for v in metrics.values())


def test_constant_classifier_on_imbalanced_data():
    y = ["happy"] * 8 + ["sad"] * 1 + ["angry"] * 1
    proba = np.tile([0.6, 0.3, 0.1], (len(y), 1))
    result = evaluate(y, proba, CLASSES)
    m = result.metrics
    assert m["accuracy"] == pytest.approx(0.8)  # majority share
    assert m["uar"] == pytest.approx(1 / 3)  # chance level for 3 classes
    assert m["recall_sad"] == m["precision_sad"] == m["f1_sad"] == 0.0
    expected_loss = -(8 * np.log(0.6) + np.log(0.3) + np.log(0.1)) / 10
    assert m["log_loss"] == pytest.approx(expected_loss)
    assert "happy" in result.report and "sad" in result.report


def test_hand_computed_three_class_case():
    # true:      h  h  h  s  s  a
    # predicted: h  h  s  s  a  a
    y = ["happy", "happy", "happy", "sad", "sad", "angry"]
    pred = ["happy", "happy", "sad", "sad", "angry", "angry"]
    proba = 0.1 + 0.7 * one_hot(pred, CLASSES)
    result = evaluate(y, proba, CLASSES)
    m = result.metrics
    np.testing.assert_array_equal(result.confusion, [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # precision: happy 2/2, sad 1/2, angry 1/2; recall: 2/3, 1/2, 1
    f1 = {"happy": 0.8, "sad": 0.5, "angry": 2 / 3}
    for label, value in f1.items():
        assert m[f"f1_{label}"] == pytest.approx(value)
    assert m["macro_f1"] == pytest.approx(sum(f1.values()) / 3)
    assert m["precision_sad"] == pytest.approx(0.5) and m["recall_happy"] == pytest.approx(2 / 3)
    # each row puts 0.8 on the predicted class; a true class gets 0.8 when right, 0.1 if not
    expected = -(4 * np.log(0.8) + 2 * np.log(0.1)) / 6
    assert m["log_loss"] == pytest.approx(expected)


def test_uar_ignores_classes_absent_from_y_true():
    classes = ["happy", "sad", "angry", "calm"]
    y = ["happy", "sad", "happy", "sad"]
    pred = ["happy", "sad", "calm", "sad"]
    result = evaluate(y, one_hot(pred, classes), classes)
    assert result.metrics["uar"] == pytest.approx((1 / 2 + 1) / 2)
    assert result.metrics["support_angry"] == 0.0
    assert result.confusion.shape == (4, 4)


def test_zero_probabilities_give_a_finite_log_loss():
    result = evaluate(["sad"], np.array([[1.0, 0.0, 0.0]]), CLASSES)
    assert np.isfinite(result.metrics["log_loss"]) and result.metrics["log_loss"] > 10


@pytest.mark.parametrize(
    ("y", "proba", "message"),
    [
        (["happy"], np.ones((2, 3)) / 3, "shape"),
        (["bored"], np.ones((1, 3)) / 3, "not in classes: bored"),
        (["happy"], np.array([[np.nan, 0.5, 0.5]]), "finite"),
    ],
)
def test_evaluate_errors(y, proba, message):
    with pytest.raises(ValueError, match=message):
        evaluate(y, proba, CLASSES)


def evaluate_pooled(
    y_true_folds: list[list[str]], proba_folds: list[np.ndarray], classes: list[str]
) -> EvaluationResult:
    """Evaluate the out-of-fold predictions of all folds at once (one pooled confusion)."""
    if len(y_true_folds) != len(proba_folds) or not y_true_folds:
        raise ValueError("need the same, non-zero number of label and probability folds")
    y_true = np.concatenate([np.asarray(y).astype(str) for y in y_true_folds])
    return evaluate(y_true, np.vstack(proba_folds), classes)


def test_pooled_equals_evaluating_the_concatenation():
    y1, y2 = ["happy", "sad"], ["angry", "sad", "happy"]
    p1, p2 = one_hot(["happy", "happy"], CLASSES), one_hot(["angry", "sad", "sad"], CLASSES)
    pooled = evaluate_pooled([y1, y2], [p1, p2], CLASSES)
    direct = evaluate(y1 + y2, np.vstack([p1, p2]), CLASSES)
    assert pooled.metrics == direct.metrics
    np.testing.assert_array_equal(pooled.confusion, direct.confusion)


def test_summarise_folds_and_format():
    folds = [
        {"accuracy": 0.5, "uar": 0.4, "macro_f1": 0.3, "log_loss": 1.0, "f1_sad": 0.1},
        {"accuracy": 0.7, "uar": 0.6, "macro_f1": 0.5, "log_loss": 2.0, "f1_sad": 0.2},
    ]
    summary = summarise_folds(folds)
    assert set(summary) == {
        f"cv_{k}_{s}" for k in ("accuracy", "uar", "macro_f1", "log_loss") for s in ("mean", "std")
    }
    assert summary["cv_uar_mean"] == pytest.approx(0.5)
    assert summary["cv_uar_std"] == pytest.approx(0.1)
    assert summary["cv_log_loss_mean"] == pytest.approx(1.5)
    assert format_mean_std([0.381, 0.443]) == "0.412 ± 0.031"
    with pytest.raises(ValueError, match="'uar' missing from fold"):
        summarise_folds([{"accuracy": 1.0}])
    with pytest.raises(ValueError):
        summarise_folds([])


# --- confusion plot and CSV ------------------------------------------------------------------


def test_plot_confusion_writes_a_readable_png(tmp_path):
    rng = np.random.default_rng(0)
    n = len(EMOTIONS)
    counts = rng.integers(0, 10, (n, n)) + np.diag(rng.integers(20, 60, n))
    counts[-1] = 0  # a class with no test clips must not break the row normalisation
    path = plot_confusion(counts, EMOTIONS, title="test model", path=tmp_path / "sub" / "cm.png")
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 600
    assert image.std() > 0.05  # not blank


def test_confusion_csv_round_trips(tmp_path):
    counts = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 7]])
    path = confusion_csv(counts, CLASSES, tmp_path / "cm.csv")
    assert path.read_text().splitlines()[0] == "true\\pred,happy,sad,angry"
    frame = pd.read_csv(path, index_col=0)
    assert list(frame.index) == CLASSES and list(frame.columns) == CLASSES
    np.testing.assert_array_equal(frame.to_numpy(), counts)


def test_confusion_shape_must_match_classes(tmp_path):
    with pytest.raises(ValueError, match="square"):
        plot_confusion(np.ones((2, 3)), CLASSES, title="x", path=tmp_path / "x.png")
    with pytest.raises(ValueError, match="square"):
        confusion_csv(np.ones((2, 2)), CLASSES, tmp_path / "x.csv")


def test_log_loss_matches_the_definition_for_canonically_ordered_classes():
    rng = np.random.default_rng(1)
    classes = list(EMOTIONS[:8])  # canonical, not alphabetical, order
    proba = rng.dirichlet(np.ones(len(classes)), size=50)
    y = rng.choice(classes, size=50)
    expected = -np.mean(np.log(proba[np.arange(50), [classes.index(label) for label in y]]))
    assert evaluate(y, proba, classes).metrics["log_loss"] == pytest.approx(expected)
