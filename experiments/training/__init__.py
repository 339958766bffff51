"""Fitting a model family on a feature table under an evaluation protocol, and the feature
normalisations fitted on the training side."""

from experiments.training.fitting import (
    FamilyResult,
    augmented_training_rows,
    build_trainer,
    fit_on_split,
    folds_for,
    release,
    split_for,
    train_family,
)
from experiments.training.normalisation import standardise_per_speaker

__all__ = [
    "FamilyResult",
    "augmented_training_rows",
    "build_trainer",
    "fit_on_split",
    "folds_for",
    "release",
    "split_for",
    "standardise_per_speaker",
    "train_family",
]
