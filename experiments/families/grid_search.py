"""A scikit-learn classifier behind a ``StandardScaler``, tuned by a grid search on
speaker-disjoint folds: the shared body of the ``sklearn_*`` families."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import joblib
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, ParameterGrid
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from typing_extensions import TypedDict

from experiments.families.inputs import check_labels, make_cv_splits, select_features
from experiments.families.spec import strict_options


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

    def _fit_params(self, labels: np.ndarray) -> dict[str, Any]:
        """Extra arguments of the pipeline's ``fit`` (e.g. class-balancing sample weights)."""
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
        grid = {f"{self.step}__{key}": values for key, values in self._grid().items()}
        fit_params = self._fit_params(labels)
        if len(ParameterGrid(grid)) == 1:
            # nothing to choose: fit the one candidate without tuning folds
            self._fit_single(pipeline, next(iter(ParameterGrid(grid))), frame, labels, fit_params)
        else:
            self._fit_search(pipeline, grid, frame, labels, fit_params)
        # Column order of the fitted network (sorted labels) -> canonical ``classes_`` order.
        fitted = [str(c) for c in self.pipeline_.classes_]
        self._column_order_ = [fitted.index(label) for label in self.classes_]
        return self

    def _fit_single(
        self,
        pipeline: Pipeline,
        params: dict[str, Any],
        frame: pd.DataFrame,
        labels: np.ndarray,
        fit_params: dict[str, Any],
    ) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipeline = pipeline.set_params(**params)
            self.pipeline_ = pipeline.fit(_values(frame), labels, **fit_params)
        self.best_params_ = {key.removeprefix(f"{self.step}__"): v for key, v in params.items()}
        self.cv_results_ = {"n_candidates": 1, "n_splits": 0}

    def _fit_search(
        self,
        pipeline: Pipeline,
        grid: dict[str, list],
        frame: pd.DataFrame,
        labels: np.ndarray,
        fit_params: dict[str, Any],
    ) -> None:
        search = GridSearchCV(
            pipeline,
            grid,
            scoring="balanced_accuracy",
            cv=self.cv_splits_,
            n_jobs=self.n_jobs,
            refit=True,
            error_score="raise",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(_values(frame), labels, **fit_params)
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

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        if not hasattr(self, "pipeline_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
        frame = select_features(features, self.feature_names_)
        with warnings.catch_warnings():
            # models pickled by earlier versions were fitted on a named frame
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            proba = self.pipeline_.predict_proba(_values(frame))[:, self._column_order_]
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


@strict_options
class GridSearchOptions(TypedDict, total=False):
    """Settings of every :class:`SpeakerGridSearchTrainer` family (defaults there)."""

    param_grid: dict[str, list[Any]]
    cv_folds: int
    seed: int
    max_iter: int
    n_jobs: int


#: File of a pickled fitted trainer inside a predictor folder.
PICKLE_FILE = "sklearn_trainer.joblib"


def save_pickled(trainer: Any, directory: Path) -> dict[str, Any]:
    """Pickle a fitted scikit-learn trainer into ``directory``; no extra metadata."""
    joblib.dump(trainer, Path(directory) / PICKLE_FILE)
    return {}


def load_pickled(directory: Path, meta: dict[str, Any]) -> Any:
    """The trainer pickled by :func:`save_pickled`."""
    return joblib.load(Path(directory) / PICKLE_FILE)


def _values(frame: pd.DataFrame) -> np.ndarray:
    """The matrix of a feature frame: scikit-learn checks a named frame column by column,
    which costs milliseconds per call at hundreds of columns (the columns are checked here)."""
    return frame.to_numpy(dtype=np.float64)
