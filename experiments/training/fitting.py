"""Fitting and scoring one model family on a feature table under an evaluation protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from experiments.config import ProtocolConfig
from experiments.evaluation.metrics import EvaluationResult, evaluate, summarise_folds
from experiments.evaluation.splits import (
    Split,
    cross_corpus_split,
    random_stratified_kfold,
    random_stratified_split,
    speaker_independent_split,
    speaker_kfold,
)
from experiments.families.base import Trainer
from experiments.training.normalisation import standardise_per_speaker
from ser_features.feature_table import feature_columns


def build_trainer(family: str, params: dict[str, Any], *, seed: int) -> Trainer:
    """A fresh, unfitted trainer of ``family`` with ``params`` (the seed unless overridden)."""
    settings = {"seed": seed, **params}
    if family == "sklearn_mlp":
        from experiments.families.sklearn_mlp import SklearnMLPTrainer

        return SklearnMLPTrainer(**settings)
    if family == "sklearn_linear":
        from experiments.families.sklearn_linear import SklearnLinearTrainer

        return SklearnLinearTrainer(**settings)
    if family == "keras_ann":
        from experiments.families.keras_nets import KerasANNTrainer

        return KerasANNTrainer(**settings)
    if family == "keras_cnn":
        from experiments.families.keras_nets import KerasCNNTrainer

        return KerasCNNTrainer(**settings)
    if family == "h2o_automl":
        from experiments.families.h2o_automl import H2OAutoMLTrainer

        return H2OAutoMLTrainer(**settings)
    raise ValueError(f"unknown model family {family!r}")


def split_for(table: pd.DataFrame, protocol: ProtocolConfig) -> Split:
    """The held-out split the protocol asks for."""
    if protocol.kind == "random_stratified":
        return random_stratified_split(
            table, test_fraction=protocol.test_fraction, seed=protocol.seed
        )
    if protocol.kind == "cross_corpus":
        return cross_corpus_split(
            table, train_corpora=protocol.train_corpora, test_corpora=protocol.test_corpora
        )
    return speaker_independent_split(
        table,
        test_speakers=protocol.test_speakers,
        test_fraction=protocol.test_fraction,
        seed=protocol.seed,
    )


def folds_for(table: pd.DataFrame, protocol: ProtocolConfig) -> list[Split]:
    """Cross-validation folds of the protocol (none when ``cv_folds`` < 2 or cross-corpus)."""
    if protocol.cv_folds < 2 or protocol.kind == "cross_corpus":
        return []
    if protocol.kind == "random_stratified":
        return random_stratified_kfold(table, n_splits=protocol.cv_folds, seed=protocol.seed)
    return speaker_kfold(table, n_splits=protocol.cv_folds, seed=protocol.seed)


@dataclass
class FamilyResult:
    """A fitted trainer, its held-out evaluation, and cross-validation summaries."""

    trainer: Trainer
    evaluation: EvaluationResult
    split: Split
    cv_metrics: dict[str, float] = field(default_factory=dict)
    fold_metrics: list[dict[str, float]] = field(default_factory=list)


def augmented_training_rows(
    augmented: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame
) -> pd.DataFrame:
    """The augmented copies whose source clip is a training clip and not a test clip.

    Copies carry their source's ``path`` and ``digest``; a copy is kept only when both name a
    training row and neither names a test row, so no transformed test clip (nor a duplicate
    of one stored under another name) reaches training.
    """
    if augmented.empty:
        return augmented
    in_train = augmented["path"].isin(train["path"]) & augmented["digest"].isin(train["digest"])
    in_test = augmented["path"].isin(test["path"]) | augmented["digest"].isin(test["digest"])
    return augmented.loc[in_train & ~in_test]


def fit_on_split(
    trainer: Trainer,
    table: pd.DataFrame,
    split: Split,
    *,
    augmented: pd.DataFrame | None = None,
    normalise_speakers: bool = False,
) -> EvaluationResult:
    """Fit ``trainer`` on the split's training rows (plus the augmented copies of those
    rows, when given) and evaluate on its test rows.

    With ``normalise_speakers`` every speaker's features are standardised by that speaker's
    own original clips, on both sides (see :mod:`experiments.training.normalisation`): the test side
    then uses the test speakers' unlabelled clips, which a per-clip deployment does not have.
    """
    columns = feature_columns(table)
    train, test = table.iloc[split.train_index], table.iloc[split.test_index]
    n_original = len(train)
    if augmented is not None:
        train = pd.concat([train, augmented_training_rows(augmented, train, test)[train.columns]])
    train_x, test_x = train[columns], test[columns]
    if normalise_speakers:
        original = np.arange(len(train)) < n_original
        train_x = standardise_per_speaker(train_x, train["speaker"], reference=original)
        test_x = standardise_per_speaker(test_x, test["speaker"])
    if split.labels:
        keep = train["emotion"].isin(split.labels).to_numpy()
        train, train_x = train[keep], train_x[keep]
    trainer.fit(train_x, train["emotion"].to_numpy(), train["speaker"].to_numpy())
    proba = trainer.predict_proba(test_x)
    return evaluate(test["emotion"].to_numpy(), proba, trainer.classes_)


def train_family(
    family: str,
    params: dict[str, Any],
    table: pd.DataFrame,
    protocol: ProtocolConfig,
    *,
    cv_params: dict[str, Any] | None = None,
    augmented: pd.DataFrame | None = None,
) -> FamilyResult:
    """Cross-validate (if configured), then fit the final model on the protocol's split.

    ``cv_params`` override ``params`` inside the folds (for example a smaller AutoML budget);
    ``augmented`` copies join the training side of each split (see :func:`fit_on_split`).
    """
    fold_metrics = []
    for fold in folds_for(table, protocol):
        fold_trainer = build_trainer(family, {**params, **(cv_params or {})}, seed=protocol.seed)
        fold_metrics.append(fit_on_split(fold_trainer, table, fold, augmented=augmented).metrics)
        release(fold_trainer)
    split = split_for(table, protocol)
    trainer = build_trainer(family, params, seed=protocol.seed)
    evaluation = fit_on_split(trainer, table, split, augmented=augmented)
    cv = summarise_folds(fold_metrics) if fold_metrics else {}
    return FamilyResult(trainer, evaluation, split, cv, fold_metrics)


def release(trainer: Trainer) -> None:
    """Free cluster-side memory of trainers that hold any (H2O frames and models)."""
    free = getattr(trainer, "release", None)
    if callable(free):
        free()


def label_distribution(table: pd.DataFrame, index: np.ndarray) -> dict[str, int]:
    """Clips per emotion among the rows ``index``."""
    return table.iloc[index]["emotion"].value_counts().sort_index().to_dict()
