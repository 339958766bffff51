"""``sklearn_mlp``: a scikit-learn multilayer perceptron tuned by a speaker-aware grid search."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.neural_network import MLPClassifier
from sklearn.utils.class_weight import compute_sample_weight

from experiments.families.grid_search import (
    GridSearchOptions,
    SpeakerGridSearchTrainer,
    load_pickled,
    save_pickled,
)
from experiments.families.spec import ModelFamily

#: Default search space: 8 candidates, about a minute for 1200 x 800 features on 2 cores.
#: ``learning_rate`` ("constant"/"adaptive") only matters with ``solver="sgd"``; to search it,
#: pass e.g. ``{"solver": ["sgd"], "learning_rate": ["constant", "adaptive"], ...}``.
DEFAULT_PARAM_GRID: dict[str, list[Any]] = {
    "activation": ["relu", "tanh"],
    "alpha": [1e-4, 1e-2],
    "hidden_layer_sizes": [(300,), (256, 128)],
}

_STEP = "mlp"


class SklearnMLPTrainer(SpeakerGridSearchTrainer):
    """``StandardScaler`` + ``MLPClassifier`` (early stopping on 10% of its training part),
    each clip weighted inversely to its label's frequency, so a majority label does not
    swallow the rest."""

    family = "sklearn_mlp"
    step = _STEP
    default_grid = DEFAULT_PARAM_GRID

    def _classifier(self) -> BaseEstimator:
        return MLPClassifier(max_iter=self.max_iter, early_stopping=True, random_state=self.seed)

    def _fixed_params(self) -> dict[str, Any]:
        return {"early_stopping": True, "class_weight": "balanced"}

    def _fit_params(self, labels: np.ndarray) -> dict[str, Any]:
        return {f"{_STEP}__sample_weight": compute_sample_weight("balanced", labels)}


FAMILY = ModelFamily(
    name="sklearn_mlp",
    summary="scikit-learn MLP, grid-searched on speaker folds",
    options=GridSearchOptions,
    build=SklearnMLPTrainer,
    save=save_pickled,
    load=load_pickled,
)
