"""Fitted models on disk, in the form the served model loads: features in, probabilities out.

Each family is saved in its own native form, by its registered ``save`` (a pickled
scikit-learn trainer, a ``.keras`` model with its scaler, an H2O MOJO with
``h2o-genmodel.jar``) beside ``predictor.json``, which names the family, the feature set and
the label order.  Loading needs neither an H2O
cluster nor the training code's state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import joblib
import numpy as np
import pandas as pd

from experiments.families import get_family
from experiments.families.base import Trainer
from experiments.training.normalisation import FeatureNormaliser
from ser_features.encoders.location import use_carried_encoders

META_FILE = "predictor.json"
#: The fitted training-side normalisation, when the experiment used one.
NORMALISER_FILE = "normaliser.joblib"
#: Subfolder holding an optional speaker-normalised companion (see ``EmotionModel``).
SESSION_SUBDIR = "session"


class ProbabilityModel(Protocol):
    """Anything with ``predict_proba(features) -> (n, n_classes)``."""

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray: ...


@dataclass
class Predictor:
    """A loaded model with its label order and the feature set it expects."""

    family: str
    feature_set: str
    classes: list[str]
    model: ProbabilityModel
    #: The training-side normalisation the model expects its features through, if any.
    normaliser: FeatureNormaliser | None = None

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Probabilities in ``classes`` order, each row renormalised to sum to 1."""
        if self.normaliser is not None:
            features = self.normaliser.transform(features)
        proba = np.asarray(self.model.predict_proba(features), dtype=np.float64)
        proba = np.clip(proba, 0.0, None)
        return proba / proba.sum(axis=1, keepdims=True)


def save_predictor(
    trainer: Trainer,
    directory: Path,
    *,
    feature_set: str,
    normaliser: FeatureNormaliser | None = None,
) -> Path:
    """Write ``trainer``'s fitted model into ``directory`` (its family's own form), with the
    ``normaliser`` it was fitted behind, and return the folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "family": trainer.family,
        "feature_set": feature_set,
        "classes": list(trainer.classes_),
    }
    meta.update(get_family(trainer.family).save(trainer, directory))
    if normaliser is not None and normaliser.active:
        joblib.dump(normaliser, directory / NORMALISER_FILE)
        meta["normaliser"] = normaliser.kind
    (directory / META_FILE).write_text(json.dumps(meta, indent=2))
    return directory


def load_predictor(directory: Path | str) -> Predictor:
    """Load a folder written by :func:`save_predictor`."""
    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text())
    use_carried_encoders(directory)  # the encoder it was trained with, checked by checksum
    try:
        family = get_family(meta["family"])
    except ValueError as exc:
        raise ValueError(f"{directory}: {exc}") from None
    model = family.load(directory, meta)
    normaliser = joblib.load(directory / NORMALISER_FILE) if meta.get("normaliser") else None
    return Predictor(family.name, meta["feature_set"], list(meta["classes"]), model, normaliser)
