"""A window of the prediction log, and its drift against the champion's reference: the
monitor's work, shared by ``ser monitor`` and its benchmark."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from experiments.monitoring.drift import DRIFT_SHARE_LIMIT, DriftReport, compare
from experiments.monitoring.reference import Reference
from experiments.serving.prediction_log import monitored_columns, read_log
from ser_features.feature_table import feature_columns


def logged_window(
    prediction_log: str | Path,
    model_name: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """The answers of ``model_name`` logged between ``since`` and ``until``; a
    ``ValueError`` says what to do when there are none."""
    window = read_log(prediction_log, since=since, until=until)
    if "model_name" in window.columns:
        window = window[window["model_name"].isna() | (window["model_name"] == model_name)]
    if window.empty:
        raise ValueError(
            f"no answers logged in {prediction_log} for {model_name} in that window; serve "
            "with `ser serve --prediction-log` and send requests first"
        )
    return window


def window_drift(
    window: pd.DataFrame, reference: Reference, *, share_limit: float = DRIFT_SHARE_LIMIT
) -> DriftReport:
    """Drift of ``window`` against ``reference`` over the monitored columns both have."""
    described = feature_columns(reference.training)
    columns = monitored_columns([c for c in described if c in window.columns])
    return compare(
        window, reference.training, reference.answers, columns=columns, share_limit=share_limit
    )
