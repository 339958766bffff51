"""``sklearn_linear``: a regularised multinomial logistic regression, the strong, fast
baseline for wide functional sets such as ComParE 2016 (thousands of columns, about a
thousand clips)."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression

from experiments.families.grid_search import (
    GridSearchOptions,
    SpeakerGridSearchTrainer,
    load_pickled,
    save_pickled,
)
from experiments.families.spec import ModelFamily

#: Inverse regularisation strengths searched on speaker-disjoint folds.
DEFAULT_PARAM_GRID: dict[str, list[Any]] = {"C": [0.003, 0.01, 0.03]}


class SklearnLinearTrainer(SpeakerGridSearchTrainer):
    """``StandardScaler`` + ``LogisticRegression`` (L2, lbfgs, balanced class weights)."""

    family = "sklearn_linear"
    step = "logreg"
    default_grid = DEFAULT_PARAM_GRID

    def _classifier(self) -> BaseEstimator:
        return LogisticRegression(
            max_iter=self.max_iter, class_weight="balanced", random_state=self.seed
        )

    def _fixed_params(self) -> dict[str, Any]:
        return {"penalty": "l2", "class_weight": "balanced"}


FAMILY = ModelFamily(
    name="sklearn_linear",
    summary="balanced L2 logistic regression, C tuned on speaker folds",
    options=GridSearchOptions,
    build=SklearnLinearTrainer,
    save=save_pickled,
    load=load_pickled,
)
