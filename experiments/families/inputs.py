"""Checks every model family applies to its inputs: feature columns, labels, speaker groups,
and the speaker-disjoint tuning folds."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    GroupShuffleSplit,
    StratifiedGroupKFold,
    StratifiedKFold,
    StratifiedShuffleSplit,
)

from ser_features.labels import ordered_labels


def select_features(
    features: pd.DataFrame, feature_names: Sequence[str] | None = None
) -> pd.DataFrame:
    """Return the numeric feature columns, in ``feature_names`` order when given.

    Parameters
    ----------
    features
        Rows are clips, columns are features (extra columns are ignored at predict time).
    feature_names
        The columns seen at fit; ``None`` while fitting (all columns are used).

    Raises
    ------
    ValueError
        If ``features`` is empty, a remembered column is missing or a column is not numeric.
    """
    if not isinstance(features, pd.DataFrame):
        raise TypeError(f"features must be a pandas DataFrame, got {type(features).__name__}")
    if feature_names is not None:
        missing = [name for name in feature_names if name not in features.columns]
        if missing:
            shown = ", ".join(map(str, missing[:20]))
            more = f" (and {len(missing) - 20} more)" if len(missing) > 20 else ""
            raise ValueError(f"{len(missing)} feature column(s) missing: {shown}{more}")
        if list(features.columns) != list(feature_names):  # the served path: already so
            features = features.loc[:, list(feature_names)]
    if features.shape[0] == 0 or features.shape[1] == 0:
        raise ValueError(f"features must have rows and columns, got shape {features.shape}")
    bad = [str(c) for c in features.select_dtypes(exclude=["number", "bool"]).columns]
    if bad:
        raise ValueError(f"non-numeric feature column(s): {', '.join(bad[:20])}")
    return features


def check_labels(
    features: pd.DataFrame, labels: np.ndarray, groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Validate ``labels``/``groups`` against ``features``; return them with the class order."""
    labels = np.asarray(labels).astype(str)
    if labels.shape != (len(features),):
        raise ValueError(f"labels must have shape ({len(features)},), got {labels.shape}")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (len(features),):
            raise ValueError(f"groups must have shape ({len(features)},), got {groups.shape}")
    classes = ordered_labels(set(labels.tolist()))
    if len(classes) < 2:
        raise ValueError(f"need at least two distinct labels, got {classes}")
    return labels, groups, classes


def make_cv_splits(
    labels: np.ndarray, groups: np.ndarray | None = None, *, n_folds: int = 3, seed: int = 0
) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Cross-validation folds that keep each group (speaker) on one side of every split.

    Uses ``StratifiedGroupKFold`` with ``min(n_folds, n_groups)`` splits when at least two
    groups are given, ``StratifiedKFold`` otherwise.

    Returns
    -------
    tuple
        The splitter's name and the list of ``(train_indices, test_indices)``.
    """
    labels = np.asarray(labels)
    placeholder = np.zeros((len(labels), 1))
    n_groups = 0 if groups is None else len(np.unique(groups))
    if n_groups >= 2:
        splitter: Any = StratifiedGroupKFold(
            n_splits=min(n_folds, n_groups), shuffle=True, random_state=seed
        )
        with warnings.catch_warnings():
            # "The least populated class ... has only N members": harmless with groups.
            warnings.simplefilter("ignore", UserWarning)
            splits = list(splitter.split(placeholder, labels, groups))
    else:
        smallest = int(np.unique(labels, return_counts=True)[1].min())
        n_splits = max(2, min(n_folds, smallest))
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        splits = list(splitter.split(placeholder, labels))
    return type(splitter).__name__, splits


def validation_split(
    labels: np.ndarray, groups: np.ndarray | None, *, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """``(fit_indices, validation_indices, strategy)``: whole groups held out when there are
    at least two (strategy ``"group"``), else a stratified sample (``"stratified"``)."""
    rows = np.zeros((len(labels), 1))
    if groups is not None and len(np.unique(groups)) >= 2:
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        fit_idx, val_idx = next(splitter.split(rows, labels, groups))
        return fit_idx, val_idx, "group"
    n_classes = len(np.unique(labels))
    n_val = max(n_classes, round(fraction * len(labels)))
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
    fit_idx, val_idx = next(splitter.split(rows, labels))
    return fit_idx, val_idx, "stratified"
