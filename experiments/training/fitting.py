"""Fitting and scoring one model family on a feature table under an evaluation protocol."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from experiments.evaluation.metrics import EvaluationResult, evaluate, summarise_folds
from experiments.evaluation.splits import (
    CROSS_CORPUS,
    LEAVE_ONE_CORPUS_OUT,
    RANDOM_STRATIFIED,
    Split,
    cross_corpus_split,
    leave_one_corpus_out_split,
    random_stratified_kfold,
    random_stratified_split,
    speaker_independent_split,
    speaker_kfold,
)
from experiments.families import CV_OVERRIDES, FEATURES, get_family
from experiments.families.base import Trainer
from experiments.training.normalisation import FeatureNormaliser, standardise_per_speaker
from ser_features.feature_sets import feature_set_columns
from ser_features.feature_table import feature_columns

if TYPE_CHECKING:
    from experiments.config import ProtocolConfig


def family_columns(params: dict[str, Any], table: pd.DataFrame) -> list[str]:
    """The columns a family with ``params`` learns from: its ``features`` part, else all."""
    if FEATURES not in params:
        return feature_columns(table)
    wanted = set(feature_set_columns(params[FEATURES]))
    columns = [column for column in feature_columns(table) if column in wanted]
    if not columns:
        raise ValueError(f"the feature table has no column of {params[FEATURES]!r}")
    return columns


def build_trainer(family: str, params: dict[str, Any], *, seed: int) -> Trainer:
    """A fresh, unfitted trainer of ``family`` with ``params`` (the seed unless overridden);
    ``params`` are checked against the family's options."""
    return get_family(family).trainer(params, seed=seed)


def split_for(table: pd.DataFrame, protocol: ProtocolConfig) -> Split:
    """The held-out split the protocol asks for."""
    if protocol.kind == RANDOM_STRATIFIED:
        return random_stratified_split(
            table, test_fraction=protocol.test_fraction, seed=protocol.seed
        )
    if protocol.kind == CROSS_CORPUS:
        return cross_corpus_split(
            table, train_corpora=protocol.train_corpora, test_corpora=protocol.test_corpora
        )
    if protocol.kind == LEAVE_ONE_CORPUS_OUT:
        return leave_one_corpus_out_split(table, test_corpus=protocol.test_corpora[0])
    return speaker_independent_split(
        table,
        test_speakers=protocol.test_speakers,
        test_fraction=protocol.test_fraction,
        seed=protocol.seed,
    )


def folds_for(table: pd.DataFrame, protocol: ProtocolConfig) -> list[Split]:
    """Cross-validation folds of the protocol (none when ``cv_folds`` < 2 or across corpora)."""
    if protocol.cv_folds < 2 or protocol.kind in (CROSS_CORPUS, LEAVE_ONE_CORPUS_OUT):
        return []
    if protocol.kind == RANDOM_STRATIFIED:
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
    #: The training-side normalisation the trainer was fitted behind (saved with the model).
    normaliser: FeatureNormaliser = field(default_factory=FeatureNormaliser)


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
    normaliser: FeatureNormaliser | None = None,
    columns: list[str] | None = None,
    balance_corpora: bool = False,
) -> EvaluationResult:
    """Fit ``trainer`` on the split's training rows (plus the augmented copies of those
    rows, when given) and evaluate on its test rows.

    With ``normalise_speakers`` every speaker's features are standardised by that speaker's
    own original clips, on both sides (see :mod:`experiments.training.normalisation`): the test side
    then uses the test speakers' unlabelled clips, which a per-clip deployment does not have.
    A ``normaliser`` is fitted on the training rows (by their corpus or speaker) and applied
    to the test rows as to lone clips. With several corpora on the test side the result's
    ``by_corpus`` holds each corpus's own evaluation. ``columns`` (every feature column when None)
    are the ones the trainer learns from. With ``balance_corpora`` the training rows of
    smaller corpora are repeated so that every corpus weighs about as much as the largest.
    """
    columns = columns or feature_columns(table)
    train, test = table.iloc[split.train_index], table.iloc[split.test_index]
    n_original = len(train)
    if augmented is not None:
        train = pd.concat([train, augmented_training_rows(augmented, train, test)[train.columns]])
    train_x, test_x = train[columns], test[columns]
    original = np.arange(len(train)) < n_original
    if normalise_speakers:
        train_x = standardise_per_speaker(train_x, train["speaker"], reference=original)
        test_x = standardise_per_speaker(test_x, test["speaker"])
    if normaliser is not None and normaliser.active:
        train_x = normaliser.fit_transform(
            train_x,
            corpora=train["corpus"].to_numpy(),
            speakers=train["speaker"].to_numpy(),
            reference=original,
        )
        test_x = normaliser.transform(test_x)
    if split.labels and not split.all_training_labels:
        keep = train["emotion"].isin(split.labels).to_numpy()
        train, train_x = train[keep], train_x[keep]
    if balance_corpora:
        repeat = corpus_repeats(train["corpus"].to_numpy())
        train, train_x = train.iloc[repeat], train_x.iloc[repeat]
    trainer.fit(train_x, train["emotion"].to_numpy(), train["speaker"].to_numpy())
    proba = trainer.predict_proba(test_x)
    return evaluate_by_corpus(test, proba, trainer.classes_)


def corpus_repeats(corpora: np.ndarray) -> np.ndarray:
    """Row positions with every corpus's rows repeated ``round(largest / its size)`` times."""
    corpora = np.asarray(corpora).astype(str)
    names, counts = np.unique(corpora, return_counts=True)
    largest = counts.max()
    blocks = [
        np.tile(np.flatnonzero(corpora == name), max(1, round(largest / count)))
        for name, count in zip(names, counts, strict=True)
    ]
    return np.sort(np.concatenate(blocks), kind="stable")


def evaluate_by_corpus(
    test: pd.DataFrame, proba: np.ndarray, classes: list[str]
) -> EvaluationResult:
    """Pooled metrics of the test rows, plus each corpus's own when there are several."""
    pooled = evaluate(test["emotion"].to_numpy(), proba, classes)
    corpora = test["corpus"].astype(str).to_numpy() if "corpus" in test else np.array([])
    if len(set(corpora)) < 2:
        return pooled
    by_corpus = {
        corpus: evaluate(test["emotion"].to_numpy()[rows], proba[rows], classes)
        for corpus in sorted(set(corpora))
        for rows in [corpora == corpus]
    }
    return replace(pooled, by_corpus=by_corpus)


def train_family(
    family: str,
    params: dict[str, Any],
    table: pd.DataFrame,
    protocol: ProtocolConfig,
    *,
    cv_params: dict[str, Any] | None = None,
    augmented: pd.DataFrame | None = None,
    normalise: str = "none",
    balance_corpora: bool = False,
) -> FamilyResult:
    """Cross-validate (if configured), then fit the final model on the protocol's split.

    ``cv_params`` override ``params`` inside the folds (for example a smaller AutoML budget);
    ``augmented`` copies join the training side of each split and ``normalise`` names the
    training-side normalisation (see :func:`fit_on_split`).
    """
    params = dict(params)
    cv_params = {**params.pop(CV_OVERRIDES, {}), **(cv_params or {})}
    columns = family_columns(params, table)
    fold_metrics = []
    for fold in folds_for(table, protocol):
        fold_trainer = build_trainer(family, {**params, **cv_params}, seed=protocol.seed)
        fold_normaliser = FeatureNormaliser(normalise, seed=protocol.seed)
        evaluation = fit_on_split(
            fold_trainer,
            table,
            fold,
            augmented=augmented,
            normaliser=fold_normaliser,
            columns=columns,
            balance_corpora=balance_corpora,
        )
        fold_metrics.append(evaluation.metrics)
        release(fold_trainer)
    split = split_for(table, protocol)
    trainer = build_trainer(family, params, seed=protocol.seed)
    normaliser = FeatureNormaliser(normalise, seed=protocol.seed)
    evaluation = fit_on_split(
        trainer,
        table,
        split,
        augmented=augmented,
        normaliser=normaliser,
        columns=columns,
        balance_corpora=balance_corpora,
    )
    cv = summarise_folds(fold_metrics) if fold_metrics else {}
    return FamilyResult(trainer, evaluation, split, cv, fold_metrics, normaliser)


def release(trainer: Trainer) -> None:
    """Free what a fitted trainer holds outside this process (H2O frames and models)."""
    get_family(trainer.family).release(trainer)


def label_distribution(table: pd.DataFrame, index: np.ndarray) -> dict[str, int]:
    """Clips per emotion among the rows ``index``."""
    return table.iloc[index]["emotion"].value_counts().sort_index().to_dict()
