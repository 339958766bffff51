"""The shape every trainer has, in the manner of scikit-learn's estimator contract.

``__init__`` only stores hyperparameters; ``fit`` learns from a feature table and returns
``self``; fitted attributes end in ``_``; ``predict_proba`` returns one column per label of
``classes_`` (canonical label order), rows summing to 1.  Scaling and any feature selection
live inside the trainer and are fitted on the training side only.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd


@runtime_checkable
class Trainer(Protocol):
    """A model family that can be fitted on features and scored on new clips."""

    #: Tag value in MLflow: ``sklearn_mlp``, ``keras_ann``, ``keras_cnn`` or ``h2o_automl``.
    family: str
    #: Labels in the column order of :meth:`predict_proba` (set by ``fit``).
    classes_: list[str]

    def fit(
        self, features: pd.DataFrame, labels: np.ndarray, groups: np.ndarray | None = None
    ) -> Trainer:
        """Fit on ``features`` (rows are clips) and string ``labels``; ``groups`` are speakers
        for group-aware tuning folds."""
        ...

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape ``(n_clips, len(classes_))``."""
        ...

    def params(self) -> dict[str, Any]:
        """Hyperparameters and seeds to log (after ``fit``: including the tuned choice)."""
        ...


@runtime_checkable
class SelfValidating(Protocol):
    """A trainer whose ``fit`` already cross-validates on (speaker) folds of its training rows.

    :meth:`out_of_fold_proba` gives, for every row ``fit`` saw, the probabilities of the fold
    model that did not see it, so an ensemble over it (``fused``) needs no inner refits.
    """

    def out_of_fold_proba(self) -> np.ndarray | None:
        """``(n_training_rows, len(classes_))`` held-out probabilities; ``None`` if unavailable."""
        ...


def predict_labels(trainer: Trainer, features: pd.DataFrame) -> np.ndarray:
    """The most probable label for each row."""
    proba = trainer.predict_proba(features)
    return np.asarray(trainer.classes_)[np.argmax(proba, axis=1)]
