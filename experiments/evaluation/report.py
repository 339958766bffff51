"""The results table of a training run, one row per model family.

Built once by :func:`results_table` and written three ways: the MLflow ``comparison.md`` of
the parent run, the ``ser train`` console table and the retrain artifact (the last two from
:func:`shown_table`).

>>> from types import SimpleNamespace
>>> run = SimpleNamespace(family="sklearn_mlp", status="FINISHED", run_id="abc",
...                       metrics={"uar": 0.7342, "accuracy": 0.75, "f1_sad": 0.5})
>>> list(results_table([run]).columns)
['family', 'status', 'uar', 'accuracy', 'run_id']
>>> shown_table(results_table([run])).iloc[0].tolist()
['sklearn_mlp', 'FINISHED', '0.734', '0.750', '-', 'abc']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

import pandas as pd

#: Columns of :func:`results_table`, in order (a metric only when some family has it).
RESULT_COLUMNS: tuple[str, ...] = (
    "family",
    "status",
    "uar",
    "accuracy",
    "macro_f1",
    "log_loss",
    "run_id",
)
#: The metrics :func:`shown_table` prints, with their headers.
SHOWN_METRICS: dict[str, str] = {"uar": "UAR", "accuracy": "accuracy", "macro_f1": "macro-F1"}


class FamilyResult(Protocol):
    """What a row is made from (``flows.train.FamilyReport`` is one)."""

    family: str
    status: str
    run_id: str
    metrics: Mapping[str, float]


def results_table(results: Iterable[FamilyResult]) -> pd.DataFrame:
    """``family``, ``status``, the headline metrics (NaN where a family has none) and
    ``run_id``, one row per result in the given order; no columns when there is none."""
    frame = pd.DataFrame(
        [{"family": r.family, "status": r.status, "run_id": r.run_id, **r.metrics} for r in results]
    )
    return frame[[column for column in RESULT_COLUMNS if column in frame]]


def shown_table(
    table: pd.DataFrame, *, run_id_header: str = "run id", digits: int = 3
) -> pd.DataFrame:
    """The printed form of a :func:`results_table`, all strings: family, status, UAR, accuracy,
    macro-F1 (``digits`` decimals, ``-`` when missing) and the run id under ``run_id_header``."""
    table = table.reindex(columns=["family", "status", *SHOWN_METRICS, "run_id"])
    shown = pd.DataFrame(index=table.index)
    shown["family"] = table["family"].astype(str)
    shown["status"] = table["status"].astype(str)
    for key, header in SHOWN_METRICS.items():
        shown[header] = ["-" if pd.isna(value) else f"{value:.{digits}f}" for value in table[key]]
    shown[run_id_header] = table["run_id"].astype(str)
    return shown
