"""Columns of the README results tables printed by ``accuracy.py`` and ``results_table.py``."""

from __future__ import annotations

from experiments.evaluation.metrics import format_mean_std


def fold_table_columns(fold_metrics: list[dict[str, float]], *, folds: int) -> dict[str, str]:
    """The cross-validation columns of a results table: UAR, accuracy and macro-F1, each
    ``"mean ± std"`` over ``fold_metrics``.

    >>> fold_table_columns([{"uar": 0.4, "accuracy": 0.5, "macro_f1": 0.3}], folds=1)["accuracy"]
    '0.500 ± 0.000'
    """
    return {
        f"speaker-indep. {folds}-fold UAR": format_mean_std([m["uar"] for m in fold_metrics]),
        "accuracy": format_mean_std([m["accuracy"] for m in fold_metrics]),
        "macro-F1": format_mean_std([m["macro_f1"] for m in fold_metrics]),
    }
