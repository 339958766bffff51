"""A scikit-learn multilayer perceptron tuned by a speaker-aware grid search.

The module also holds two helpers the other trainers share: :func:`select_features`
(remember and re-check feature columns) and :func:`make_cv_splits` (group-aware folds).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ser_features.labels import ordered_labels

#: Default search space: 8 candidates, about a minute for 1200 x 800 features on 2 cores.
#: ``learning_rate`` ("constant"/"adaptive") only matters with ``solver="sgd"``; to search it,
#: pass e.g. ``{"solver": ["sgd"], "learning_rate": ["constant", "adaptive"], ...}``.
DEFAULT_PARAM_GRID: dict[str, list[Any]] = {
    "activation": ["relu", "tanh"],
    "alpha": [1e-4, 1e-2],
    "hidden_layer_sizes": [(300,), (256, 128)],
}

_STEP = "mlp"


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
        features = features.loc[:, list(feature_names)]
    if features.shape[0] == 0 or features.shape[1] == 0:
        raise ValueError(f"features must have rows and columns, got shape {features.shape}")
    bad = [str(c) for c, dt in features.dtypes.items() if not pd.api.types.is_numeric_dtype(dt)]
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


class SpeakerGridSearchTrainer(BaseEstimator):
    """``StandardScaler`` + a scikit-learn classifier tuned by ``GridSearchCV`` on balanced
    accuracy, with speaker-disjoint tuning folds.  Subclasses name the classifier.

    Parameters
    ----------
    param_grid
        Classifier parameter lists (the step prefix, e.g. ``mlp__``, is optional);
        ``None`` uses the subclass's default grid.
    cv_folds
        Tuning folds (capped at the number of speakers when groups are given).
    seed
        Seeds the folds and the classifier.
    max_iter
        Maximum iterations of the classifier's solver.
    n_jobs
        Parallel fits in the grid search.
    """

    family = ""
    step = "model"
    default_grid: ClassVar[dict[str, list[Any]]] = {}

    def __init__(
        self,
        *,
        param_grid: dict[str, list[Any]] | None = None,
        cv_folds: int = 3,
        seed: int = 0,
        max_iter: int = 300,
        n_jobs: int = 2,
    ) -> None:
        self.param_grid = param_grid
        self.cv_folds = cv_folds
        self.seed = seed
        self.max_iter = max_iter
        self.n_jobs = n_jobs

    def _classifier(self) -> BaseEstimator:
        """The unfitted classifier the grid tunes."""
        raise NotImplementedError

    def _fixed_params(self) -> dict[str, Any]:
        """Settings that are not searched, for :meth:`params`."""
        return {}

    def _grid(self) -> dict[str, list[Any]]:
        grid = self.default_grid if self.param_grid is None else self.param_grid
        return {key.removeprefix(f"{self.step}__"): list(values) for key, values in grid.items()}

    def fit(
        self, features: pd.DataFrame, labels: np.ndarray, groups: np.ndarray | None = None
    ) -> SpeakerGridSearchTrainer:
        """Tune and fit on ``features``; ``groups`` (speakers) keep the tuning folds disjoint."""
        frame = select_features(features)
        labels, groups, classes = check_labels(frame, labels, groups)
        self.feature_names_ = [str(c) for c in frame.columns]
        frame = frame.set_axis(self.feature_names_, axis=1)
        self.classes_ = classes
        self.cv_splitter_, self.cv_splits_ = make_cv_splits(
            labels, groups, n_folds=self.cv_folds, seed=self.seed
        )
        pipeline = Pipeline([("scaler", StandardScaler()), (self.step, self._classifier())])
        search = GridSearchCV(
            pipeline,
            {f"{self.step}__{key}": values for key, values in self._grid().items()},
            scoring="balanced_accuracy",
            cv=self.cv_splits_,
            n_jobs=self.n_jobs,
            refit=True,
            error_score="raise",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(frame, labels)
        self.pipeline_ = search.best_estimator_
        self.best_params_ = {
            key.removeprefix(f"{self.step}__"): value for key, value in search.best_params_.items()
        }
        best = search.best_index_
        self.cv_results_ = {
            "best_mean_balanced_accuracy": float(search.cv_results_["mean_test_score"][best]),
            "best_std_balanced_accuracy": float(search.cv_results_["std_test_score"][best]),
            "n_candidates": len(search.cv_results_["params"]),
            "n_splits": len(self.cv_splits_),
        }
        # Column order of the fitted network (sorted labels) -> canonical ``classes_`` order.
        fitted = [str(c) for c in self.pipeline_.classes_]
        self._column_order_ = [fitted.index(label) for label in self.classes_]
        return self

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        if not hasattr(self, "pipeline_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
        frame = select_features(features, self.feature_names_)
        frame = frame.set_axis(self.feature_names_, axis=1)
        proba = self.pipeline_.predict_proba(frame)[:, self._column_order_]
        proba = np.asarray(proba, dtype=np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def params(self) -> dict[str, Any]:
        """Grid, seed and folds; after ``fit`` also the splitter and the chosen ``best_*``."""
        out: dict[str, Any] = {
            "param_grid": self._grid(),
            "cv_folds": self.cv_folds,
            "seed": self.seed,
            "max_iter": self.max_iter,
            "scoring": "balanced_accuracy",
            **self._fixed_params(),
        }
        if hasattr(self, "best_params_"):
            out["cv_splitter"] = self.cv_splitter_
            out["cv_n_splits"] = len(self.cv_splits_)
            out.update({f"best_{key}": value for key, value in self.best_params_.items()})
            n_iter = np.max(self.pipeline_.named_steps[self.step].n_iter_)
            out["n_iter"] = int(n_iter)
        return out


class SklearnMLPTrainer(SpeakerGridSearchTrainer):
    """``StandardScaler`` + ``MLPClassifier`` (early stopping on 10% of its training part)."""

    family = "sklearn_mlp"
    step = _STEP
    default_grid = DEFAULT_PARAM_GRID

    def _classifier(self) -> BaseEstimator:
        return MLPClassifier(max_iter=self.max_iter, early_stopping=True, random_state=self.seed)

    def _fixed_params(self) -> dict[str, Any]:
        return {"early_stopping": True}
