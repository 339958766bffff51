"""Scores for class-probability predictions: one flat ``dict[str, float]`` per evaluation.

The headline metric is ``uar`` (unweighted average recall = balanced accuracy over the
emotions present in the test labels), because emotion corpora are imbalanced and
``accuracy`` rewards predicting the majority class.

>>> import numpy as np
>>> result = evaluate(["sad", "happy"], np.array([[0.2, 0.8], [0.9, 0.1]]), ["happy", "sad"])
>>> result.metrics["accuracy"], result.y_pred.tolist()
(1.0, ['sad', 'happy'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    recall_score,
)

#: The metrics summarised across folds (``cv_<key>_mean`` / ``cv_<key>_std``).
MAIN_KEYS: tuple[str, ...] = ("accuracy", "uar", "macro_f1", "log_loss")
#: Metrics (higher is better) that may choose the best family and decide promotion.
SELECTION_METRICS: tuple[str, ...] = ("uar", "accuracy", "macro_f1")

#: Probabilities are clipped to ``[EPS, 1]`` and renormalised before the log loss.
EPS = 1e-15


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Metrics, predictions, confusion counts (rows = true, cols = predicted) and report."""

    metrics: dict[str, float]
    y_pred: np.ndarray
    confusion: np.ndarray
    report: str
    classes: tuple[str, ...]
    #: Each corpus's own evaluation when the test rows come from several corpora.
    by_corpus: dict[str, EvaluationResult] = field(default_factory=dict)


def evaluate(y_true: Sequence[str], proba: np.ndarray, classes: Sequence[str]) -> EvaluationResult:
    """Score probabilities ``proba`` (one column per label of ``classes``) against ``y_true``.

    ``metrics`` holds ``accuracy``, ``uar``, ``macro_f1`` (over the labels that are true or
    predicted), ``log_loss`` and, per label of ``classes``, ``precision_<label>``,
    ``recall_<label>``, ``f1_<label>`` and ``support_<label>``.
    """
    y_true = np.asarray(y_true).astype(str)
    classes = [str(c) for c in classes]
    proba = np.asarray(proba, dtype=float)
    _check_inputs(y_true, proba, classes)
    y_pred = np.asarray(classes)[np.argmax(proba, axis=1)]
    present = sorted(set(y_true))

    clipped = np.clip(proba, EPS, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    metrics = {
        "accuracy": accuracy_score(y_true, y_pred),
        "uar": recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0),
        "macro_f1": f1_score(y_true, y_pred, average="macro", zero_division=0),
        # log_loss assumes ``labels`` sorted lexicographically: reorder the columns to match.
        "log_loss": log_loss(y_true, clipped[:, np.argsort(classes)], labels=sorted(classes)),
    }
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0
    )
    for i, label in enumerate(classes):
        metrics[f"precision_{label}"] = precision[i]
        metrics[f"recall_{label}"] = recall[i]
        metrics[f"f1_{label}"] = f1[i]
        metrics[f"support_{label}"] = support[i]
    return EvaluationResult(
        metrics={key: float(value) for key, value in metrics.items()},
        y_pred=y_pred,
        confusion=confusion_matrix(y_true, y_pred, labels=classes),
        report=classification_report(y_true, y_pred, labels=classes, digits=3, zero_division=0),
        classes=tuple(classes),
    )


def summarise_folds(
    fold_metrics: list[dict[str, float]], *, keys: Sequence[str] = MAIN_KEYS
) -> dict[str, float]:
    """``cv_<key>_mean`` and ``cv_<key>_std`` (population std, as scikit-learn) per key.

    >>> summarise_folds([{"uar": 0.25}, {"uar": 0.75}], keys=["uar"])
    {'cv_uar_mean': 0.5, 'cv_uar_std': 0.25}
    """
    if not fold_metrics:
        raise ValueError("no folds to summarise")
    summary: dict[str, float] = {}
    for key in keys:
        missing = [i for i, fold in enumerate(fold_metrics) if key not in fold]
        if missing:
            raise ValueError(f"metric {key!r} missing from fold(s) {missing}")
        values = np.array([fold[key] for fold in fold_metrics], dtype=float)
        summary[f"cv_{key}_mean"] = float(np.mean(values))
        summary[f"cv_{key}_std"] = float(np.std(values))
    return summary


def format_mean_std(values: Sequence[float], *, digits: int = 3) -> str:
    """``"mean ± std"`` of ``values`` (population std).

    >>> format_mean_std([0.4, 0.5, 0.6])
    '0.500 ± 0.082'
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("no values to format")
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def _check_inputs(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> None:
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be >= 2 distinct labels, got {classes}")
    if proba.ndim != 2 or proba.shape != (len(y_true), len(classes)):
        raise ValueError(
            f"proba has shape {proba.shape}; expected ({len(y_true)}, {len(classes)}) "
            "= (len(y_true), len(classes))"
        )
    if len(y_true) == 0:
        raise ValueError("nothing to evaluate: y_true is empty")
    if not np.all(np.isfinite(proba)) or np.any(proba < 0):
        raise ValueError("proba must be finite and non-negative")
    unknown = sorted(set(y_true) - set(classes))
    if unknown:
        raise ValueError(f"label(s) in y_true but not in classes: {', '.join(unknown)}")
