"""H2O AutoML as a :class:`~experiments.families.base.Trainer`.

AutoML's internal cross-validation ranks its models; when speakers are given they are turned
into a ``fold_column`` so that no speaker is in both the training and the scoring side of a
fold (random folds leak speakers and flatter every model).  ``DeepLearning`` is excluded by
default: it is slow on few cores, not reproducible across threads, and the neural baselines
are the sklearn/Keras families; pass ``exclude_algos=[]`` to let AutoML try everything.
"""

from __future__ import annotations

import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, ClassVar

import h2o
import numpy as np
import pandas as pd
from h2o.automl import H2OAutoML, get_leaderboard
from h2o.exceptions import H2ODependencyWarning

from experiments.engines.h2o_cluster import connect_h2o
from experiments.families.projection import fit_projection
from ser_features.labels import ordered_labels

LABEL_COLUMN = "__ser_label__"
FOLD_COLUMN = "__ser_fold__"
WEIGHT_COLUMN = "__ser_weight__"
#: Algorithms skipped when ``exclude_algos`` is ``None``.
DEFAULT_EXCLUDE_ALGOS: tuple[str, ...] = ("DeepLearning",)
#: What AutoML builds, in this order, when no ``modeling_plan`` is given: one model of every
#: algorithm first (a GLM, default GBMs, a random forest and extremely randomised trees,
#: a default XGBoost), then the two stacked ensembles; grid searches only when the plan
#: names them. H2O's own order starts with XGBoost, whose first fits alone can take a
#: 2-core budget on ~800 columns.
DEFAULT_MODELING_PLAN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GLM", ("def_1",)),
    ("GBM", ("def_5", "def_1")),
    ("DRF", ("def_1", "XRT")),
    ("XGBoost", ("def_2",)),
    ("GBM", ("def_2", "def_3", "def_4")),
    ("StackedEnsemble", ("best_of_family_1", "all_1")),
)
GENMODEL_JAR = "h2o-genmodel.jar"


def speaker_folds(groups: np.ndarray, n_folds: int) -> np.ndarray:
    """Fold index per row such that every speaker lies in exactly one fold.

    Speakers are dealt, largest first (ties by name), to the fold with the fewest clips so
    far, so the result is deterministic and folds are balanced in clips.  ``n_folds`` is
    reduced to the number of speakers when there are fewer.

    Parameters
    ----------
    groups : speaker of each row.
    n_folds : wanted number of folds (at least 2).

    Returns
    -------
    np.ndarray of int, values in ``0 .. min(n_folds, n_speakers) - 1``.
    """
    keys = pd.Series(np.asarray(groups, dtype=object)).astype(str)
    counts = keys.value_counts()
    k = min(int(n_folds), len(counts))
    if k < 2:
        raise ValueError(f"need at least 2 folds and 2 speakers, got {n_folds=} and {len(counts)}")
    fold_of: dict[str, int] = {}
    load = [0] * k
    for speaker in sorted(counts.index, key=lambda s: (-counts[s], s)):
        fold = min(range(k), key=lambda f: (load[f], f))
        fold_of[speaker] = fold
        load[fold] += int(counts[speaker])
    return keys.map(fold_of).to_numpy(dtype=np.int64)


def plan_text(plan: list[Any] | None) -> str:
    """A modeling plan in one line: ``GLM:def_1 GBM:def_5,def_1 ...`` (``h2o-default``)."""
    if not plan:
        return "h2o-default"
    parts = []
    for step in plan:
        if isinstance(step, str):
            parts.append(step)
        else:
            algo, *ids = step
            steps = ids[0] if ids else "all"
            parts.append(f"{algo}:{steps if isinstance(steps, str) else ','.join(steps)}")
    return " ".join(parts)


def collapse_repeated_rows(table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``table`` without repeated rows, how many times each kept row occurred, and for every
    row of ``table`` the position of its kept copy.

    Balancing corpora repeats rows; H2O learns the same from one copy with a weight, in a
    fraction of the time. Rows must match in every column (label and fold included).
    """
    keys = pd.util.hash_pandas_object(table, index=False).to_numpy()
    _, first, inverse, counts = np.unique(
        keys, return_index=True, return_inverse=True, return_counts=True
    )
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    kept = table.iloc[first[order]].reset_index(drop=True)
    return kept, counts[order], rank[inverse.ravel()]


def mojo_supported(model: Any) -> bool:
    """Whether an H2O model can be exported as a MOJO."""
    return bool(getattr(model, "have_mojo", False))


def _to_pandas(frame: h2o.H2OFrame) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", H2ODependencyWarning)
        return frame.as_data_frame(use_multi_thread=False)


def _upload(table: pd.DataFrame, key: str, enum_columns: list[str]) -> h2o.H2OFrame:
    """Send ``table`` to the cluster through a parquet file (faster and exact vs. CSV)."""
    with tempfile.TemporaryDirectory(prefix="ser_h2o_") as tmp:
        path = Path(tmp) / "frame.parquet"
        table.to_parquet(path, index=False)
        return h2o.upload_file(
            str(path), destination_frame=key, col_types={c: "enum" for c in enum_columns} or None
        )


def _remove_frame_and_copies(frame: h2o.H2OFrame) -> None:
    """Free an uploaded frame and the ``*_training_<key>`` copy AutoML made of it."""
    key = frame.frame_id
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", H2ODependencyWarning)
        keys = [str(k) for k in h2o.ls()["key"]]
    h2o.remove(frame)
    for copy in keys:
        if copy.endswith(f"_training_{key}"):
            h2o.remove(copy)


def _probability_columns(columns: list[str], domain: list[str]) -> dict[str, str]:
    """Map each response level to its prediction column (H2O prefixes numeric levels with p)."""
    if len(columns) != len(domain):
        raise RuntimeError(
            f"H2O returned {len(columns)} probability columns for {len(domain)} levels"
        )
    mapping = {}
    for level, column in zip(domain, columns, strict=True):
        if column not in (level, f"p{level}"):
            raise RuntimeError(f"prediction column {column!r} does not match level {level!r}")
        mapping[level] = column
    return mapping


class H2OAutoMLTrainer:
    """H2O AutoML over GBM/XGBoost/GLM/DRF/stacked ensembles, ranked by speaker-wise CV.

    Parameters
    ----------
    max_runtime_secs : AutoML wall-clock budget (0 = no limit).  On 2 busy cores one 5-fold
        XGBoost on 960 x 803 RAVDESS features took ~100 s and the next GLM/GBM did not finish
        within 300 s, so a real leaderboard on ~800 columns needs tens of minutes.
    max_models : cap on base models (``None`` = no cap); with a binding cap and a loose
        time budget, runs are reproducible for a given ``seed``.
    seed : AutoML seed.
    sort_metric : leaderboard metric choosing the leader.
    nfolds : CV folds (at least 2); with ``groups`` at most one per speaker.
    exclude_algos : algorithms to skip; ``None`` means :data:`DEFAULT_EXCLUDE_ALGOS`.
    balance_classes : let H2O over/under-sample classes to balance them.
    h2o_url : existing cluster to use (else ``$SER_H2O_URL`` or a local JVM).
    max_mem_size : heap of a locally started JVM.
    modeling_plan : H2O's ``modeling_plan``: ``[[algo, [step ids]] | [algo, "defaults"|"grids"|
        "all"] | algo, ...]``; ``None`` means :data:`DEFAULT_MODELING_PLAN`, ``[]`` H2O's own.
    max_runtime_secs_per_model : cap on each model's fit, its CV fits included (0 = none).
    pca_components : fit AutoML on this many principal components of the standardised
        columns (:mod:`experiments.families.projection`, fitted on the training rows, no
        labels; saved with the model); ``None`` or 0 keeps every column.
    """

    family: ClassVar[str] = "h2o_automl"
    #: Columns of the training frame that are not predictors (kept in the MOJO's names).
    non_predictor_columns: ClassVar[tuple[str, ...]] = (FOLD_COLUMN, WEIGHT_COLUMN)

    def __init__(
        self,
        *,
        max_runtime_secs: int = 300,
        max_models: int | None = 20,
        seed: int = 0,
        sort_metric: str = "mean_per_class_error",
        nfolds: int = 5,
        exclude_algos: list[str] | None = None,
        balance_classes: bool = False,
        h2o_url: str | None = None,
        max_mem_size: str = "4G",
        modeling_plan: list[Any] | None = None,
        max_runtime_secs_per_model: int = 0,
        pca_components: int | None = None,
    ) -> None:
        self.max_runtime_secs = max_runtime_secs
        self.max_models = max_models
        self.seed = seed
        self.sort_metric = sort_metric
        self.nfolds = nfolds
        self.exclude_algos = exclude_algos
        self.balance_classes = balance_classes
        self.h2o_url = h2o_url
        self.max_mem_size = max_mem_size
        self.modeling_plan = modeling_plan
        self.max_runtime_secs_per_model = max_runtime_secs_per_model
        self.pca_components = pca_components

    def _plan(self) -> list[Any] | None:
        """The modeling plan handed to H2O (``None``: H2O's default order)."""
        if self.modeling_plan is None:
            return [(algo, list(steps)) for algo, steps in DEFAULT_MODELING_PLAN]
        plan = [step if isinstance(step, str) else tuple(step) for step in self.modeling_plan]
        return plan or None

    def _excluded(self) -> list[str]:
        return list(DEFAULT_EXCLUDE_ALGOS if self.exclude_algos is None else self.exclude_algos)

    def _connect(self) -> None:
        connect_h2o(url=self.h2o_url, max_mem_size=self.max_mem_size)

    def fit(
        self, features: pd.DataFrame, labels: np.ndarray, groups: np.ndarray | None = None
    ) -> H2OAutoMLTrainer:
        """Run AutoML on ``features`` and string ``labels``; ``groups`` (speakers) fix the folds."""
        labels = np.asarray(labels).astype(str)
        if len(labels) != len(features):
            raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
        if self.nfolds < 2:
            raise ValueError(f"nfolds must be at least 2, got {self.nfolds}")
        self.classes_ = ordered_labels(set(labels))
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes, got {self.classes_}")
        self.feature_names_ = [str(c) for c in features.columns]
        clash = {LABEL_COLUMN, FOLD_COLUMN} & set(self.feature_names_)
        if clash:
            raise ValueError(f"feature columns clash with reserved names: {sorted(clash)}")
        table = features.set_axis(self.feature_names_, axis=1).reset_index(drop=True)
        table[LABEL_COLUMN] = labels
        fold_column = None
        self.n_folds_ = self.nfolds
        self.fold_strategy_ = "random"
        if groups is not None:
            if len(groups) != len(features):
                raise ValueError(f"{len(features)} feature rows but {len(groups)} groups")
            folds = speaker_folds(np.asarray(groups), self.nfolds)
            self.folds_ = folds  # the CV fold of each training row
            table[FOLD_COLUMN] = folds
            fold_column = FOLD_COLUMN
            self.n_folds_ = int(folds.max()) + 1
            self.fold_strategy_ = "speaker"
        table, weights, self.kept_row_ = collapse_repeated_rows(table)
        self.n_rows_, self.n_unique_rows_ = len(features), len(table)
        self.projection_ = None
        if self.pca_components:
            self.projection_ = fit_projection(
                table[self.feature_names_], self.pca_components, weights=weights
            )
            projected = self.projection_.transform(table[self.feature_names_])
            table = pd.concat([projected, table.drop(columns=self.feature_names_)], axis=1)
        self.predictors_ = self.projection_.names if self.projection_ else self.feature_names_
        weight_column = None
        self.weighted_ = bool((weights > 1).any())
        if self.weighted_:
            table[WEIGHT_COLUMN] = weights.astype(np.float64)
            weight_column = WEIGHT_COLUMN

        self._connect()
        self.aml_project_ = f"ser_automl_{uuid.uuid4().hex[:12]}"
        frame = _upload(table, f"{self.aml_project_}_train", [LABEL_COLUMN])
        try:
            aml = H2OAutoML(
                nfolds=-1 if fold_column else self.nfolds,
                max_runtime_secs=self.max_runtime_secs,
                max_runtime_secs_per_model=self.max_runtime_secs_per_model or None,
                max_models=self.max_models,
                seed=self.seed,
                sort_metric=self.sort_metric,
                exclude_algos=self._excluded() or None,
                modeling_plan=self._plan(),
                balance_classes=self.balance_classes,
                project_name=self.aml_project_,
                # every model's held-out predictions on the speaker folds stay in the
                # cluster: the stacked ensembles need them, and so does out_of_fold_proba
                keep_cross_validation_predictions=True,
            )
            started = time.perf_counter()
            aml.train(
                x=self.predictors_,
                y=LABEL_COLUMN,
                training_frame=frame,
                fold_column=fold_column,
                weights_column=weight_column,
            )
            self.automl_seconds_ = time.perf_counter() - started
        finally:
            _remove_frame_and_copies(frame)
        if aml.leader is None:
            raise RuntimeError(self._no_model_message(aml, len(table)))
        self.aml_ = aml
        self.leader_ = aml.leader
        board = get_leaderboard(aml, extra_columns="ALL")
        self.leaderboard_ = _to_pandas(board)
        h2o.remove(board)
        self.h2o_domain_ = [str(v) for v in self.leader_._model_json["output"]["domains"][-1]]
        if set(self.h2o_domain_) != set(self.classes_):
            raise RuntimeError(f"H2O response levels {self.h2o_domain_} != labels {self.classes_}")
        return self

    def _no_model_message(self, aml: H2OAutoML, rows: int) -> str:
        """Why AutoML has no leader, and the two ways out."""
        started = [
            message.split("[", 1)[1].split("]", 1)[0]
            for message in _to_pandas(aml.event_log)["message"].astype(str)
            if message.endswith("] started") and "[" in message
        ]
        running = f"; {started[-1]} was still training when it ran out" if started else ""
        columns = len(self.predictors_)
        return (
            f"H2O AutoML built no model in its {self.max_runtime_secs} s budget on {rows} rows "
            f"x {columns} columns{running}. Raise max_runtime_secs, or set pca_components "
            "(e.g. 64) to learn from fewer columns: a model's cost grows with the columns, and "
            "H2O gives its GLM no time limit inside AutoML"
        )

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Leader's class probabilities, columns in ``classes_`` order, rows summing to 1."""
        if not hasattr(self, "leader_"):
            raise RuntimeError("H2OAutoMLTrainer is not fitted")
        table = features.set_axis([str(c) for c in features.columns], axis=1)
        table = table[self.feature_names_].reset_index(drop=True)
        if self.projection_ is not None:
            table = self.projection_.transform(table)
        if self.weighted_:  # a weight H2O does not read when scoring
            table[WEIGHT_COLUMN] = 1.0
        if table.empty:
            return np.zeros((0, len(self.classes_)))
        self._connect()
        frame = _upload(table, f"{self.aml_project_}_score_{uuid.uuid4().hex[:8]}", [])
        try:
            prediction = self.leader_.predict(frame)
            scores = _to_pandas(prediction)
            h2o.remove(prediction)
        finally:
            h2o.remove(frame)
        return self._class_probabilities(scores)

    def _class_probabilities(self, scores: pd.DataFrame) -> np.ndarray:
        """H2O's prediction table (``predict`` then one column per level) as probabilities in
        ``classes_`` order, rows summing to 1."""
        mapping = _probability_columns([str(c) for c in scores.columns[1:]], self.h2o_domain_)
        proba = np.column_stack([scores[mapping[c]].to_numpy(np.float64) for c in self.classes_])
        return proba / proba.sum(axis=1, keepdims=True)

    def out_of_fold_proba(self) -> np.ndarray | None:
        """The leader's probabilities for every training row, each from the CV model that
        did not see that row's fold (speaker folds when ``groups`` were given).

        For a stacked ensemble these are its metalearner's, cross-validated on the same
        folds over the base models' own held-out predictions. Rows follow ``fit``'s input
        (repeated rows get their kept copy's); ``None`` when H2O kept none.
        """
        if not hasattr(self, "leader_"):
            raise RuntimeError("H2OAutoMLTrainer is not fitted")
        self._connect()
        model = self.leader_
        if model.algo == "stackedensemble":
            model = model.metalearner()
        holdout = model.cross_validation_holdout_predictions()
        if holdout is None:
            return None
        return self._class_probabilities(_to_pandas(holdout))[self.kept_row_]

    def mojo_supported(self) -> bool:
        """Whether the leader itself can be exported as a MOJO."""
        return mojo_supported(self.leader_)

    def _mojo_candidates(self) -> list[str]:
        """Leader first, then the non-ensemble models in leaderboard order."""
        board = self.leaderboard_
        others = [
            str(mid)
            for mid, algo in zip(board["model_id"], board["algo"], strict=True)
            if str(algo).lower() != "stackedensemble" and mid != self.leader_.model_id
        ]
        return [self.leader_.model_id, *others]

    def export_mojo(self, directory: Path) -> Path:
        """Write the leader's MOJO zip and ``h2o-genmodel.jar`` into ``directory``.

        If the leader cannot be exported, the best non-ensemble model that can is written
        instead (``params()["mojo_fallback"]`` is then true and ``mojo_model_id`` names it).

        Returns
        -------
        Path of the MOJO zip; the jar path is kept in ``genmodel_jar_path_``.
        """
        if not hasattr(self, "leader_"):
            raise RuntimeError("H2OAutoMLTrainer is not fitted")
        self._connect()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        failures = []
        for model_id in self._mojo_candidates():
            model = self.leader_ if model_id == self.leader_.model_id else h2o.get_model(model_id)
            if not mojo_supported(model):
                failures.append(f"{model_id}: no MOJO support")
                continue
            try:
                written = model.download_mojo(path=str(directory), get_genmodel_jar=True)
            except Exception as exc:  # H2O raises assorted server errors here
                failures.append(f"{model_id}: {exc}")
                continue
            self.mojo_path_ = Path(written)
            self.genmodel_jar_path_ = directory / GENMODEL_JAR
            self.mojo_model_id_ = model_id
            self.mojo_fallback_ = model_id != self.leader_.model_id
            self.mojo_failures_ = failures
            return self.mojo_path_
        raise RuntimeError("no leaderboard model could be exported as MOJO: " + "; ".join(failures))

    def release(self) -> None:
        """Delete this run's AutoML project and models from the cluster."""
        if hasattr(self, "aml_"):
            h2o.remove(self.aml_)

    def params(self) -> dict[str, Any]:
        """Hyperparameters, and after ``fit`` the leader, fold scheme and MOJO choice."""
        out: dict[str, Any] = {
            "family": self.family,
            "max_runtime_secs": self.max_runtime_secs,
            "max_models": self.max_models,
            "seed": self.seed,
            "sort_metric": self.sort_metric,
            "nfolds": self.nfolds,
            "exclude_algos": ",".join(self._excluded()) or "none",
            "balance_classes": self.balance_classes,
            "max_mem_size": self.max_mem_size,
            "modeling_plan": plan_text(self._plan()),
            "max_runtime_secs_per_model": self.max_runtime_secs_per_model,
            "pca_components": self.pca_components or 0,
            "h2o_version": h2o.__version__,
        }
        if hasattr(self, "leader_"):
            out |= {
                "leader_model_id": self.leader_.model_id,
                "leader_algo": self.leader_.algo,
                "n_models": len(self.leaderboard_),
                "n_folds_used": self.n_folds_,
                "fold_strategy": self.fold_strategy_,
                "aml_project": self.aml_project_,
                "training_rows": self.n_rows_,
                "unique_training_rows": self.n_unique_rows_,
                "automl_seconds": round(self.automl_seconds_, 1),
            }
        if hasattr(self, "mojo_model_id_"):
            out |= {"mojo_model_id": self.mojo_model_id_, "mojo_fallback": self.mojo_fallback_}
        return out
