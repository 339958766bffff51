"""Fitted models on disk, in the form the served model loads: features in, probabilities out.

Each family is saved in its own native form (a pickled scikit-learn trainer, a ``.keras``
model with its scaler, an H2O MOJO with ``h2o-genmodel.jar``) beside ``predictor.json``, which
names the family, the feature set and the label order.  Loading needs neither an H2O
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

from experiments.families.base import Trainer

META_FILE = "predictor.json"
#: Subfolder holding an optional speaker-normalised companion (see ``EmotionModel``).
SESSION_SUBDIR = "session"
#: Families saved as a pickled scikit-learn trainer.
SKLEARN_FAMILIES = ("sklearn_mlp", "sklearn_linear")


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

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Probabilities in ``classes`` order, each row renormalised to sum to 1."""
        proba = np.asarray(self.model.predict_proba(features), dtype=np.float64)
        proba = np.clip(proba, 0.0, None)
        return proba / proba.sum(axis=1, keepdims=True)


def save_predictor(trainer: Trainer, directory: Path, *, feature_set: str) -> Path:
    """Write ``trainer``'s fitted model into ``directory`` and return the folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "family": trainer.family,
        "feature_set": feature_set,
        "classes": list(trainer.classes_),
    }
    if trainer.family in SKLEARN_FAMILIES:
        joblib.dump(trainer, directory / "sklearn_trainer.joblib")
    elif trainer.family in ("keras_ann", "keras_cnn"):
        trainer.save(directory / "keras")  # type: ignore[attr-defined]
    elif trainer.family == "h2o_automl":
        mojo = trainer.export_mojo(directory / "mojo")  # type: ignore[attr-defined]
        meta["mojo"] = str(mojo.relative_to(directory))
        meta["genmodel_jar"] = str(
            Path(trainer.genmodel_jar_path_).relative_to(directory)  # type: ignore[attr-defined]
        )
        meta["mojo_model_id"] = trainer.mojo_model_id_  # type: ignore[attr-defined]
        meta["mojo_non_predictors"] = list(getattr(trainer, "non_predictor_columns", ()))
    else:
        raise ValueError(f"cannot save model family {trainer.family!r}")
    (directory / META_FILE).write_text(json.dumps(meta, indent=2))
    return directory


def load_predictor(directory: Path | str) -> Predictor:
    """Load a folder written by :func:`save_predictor`."""
    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text())
    family = meta["family"]
    model: ProbabilityModel
    if family in SKLEARN_FAMILIES:
        model = joblib.load(directory / "sklearn_trainer.joblib")
    elif family in ("keras_ann", "keras_cnn"):
        from experiments.families.keras_nets import KerasTrainerBase

        model = KerasTrainerBase.load(directory / "keras")
    elif family == "h2o_automl":
        from experiments.serving.mojo_scorer import MojoScorer

        model = _ReorderedScorer(
            MojoScorer(
                directory / meta["mojo"],
                directory / meta["genmodel_jar"],
                non_predictors=tuple(meta.get("mojo_non_predictors", ())),
            ),
            meta["classes"],
        )
    else:
        raise ValueError(f"{directory}: unknown model family {family!r}")
    return Predictor(family, meta["feature_set"], list(meta["classes"]), model)


@dataclass
class _ReorderedScorer:
    """A MOJO scorer whose columns are put into the canonical label order."""

    scorer: Any
    classes: list[str]

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        domain = [str(label) for label in self.scorer.classes]
        order = [domain.index(label) for label in self.classes]
        return self.scorer.predict_proba(features)[:, order]
