"""The champion's reference for monitoring: the clips it trained on and its test answers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from experiments.families.predictors import load_predictor
from experiments.tracking.registry import CHAMPION, run_feature_table, tested_clips
from ser_features.feature_table import feature_columns


@dataclass
class Reference:
    """What the champion learnt from (``training``, feature rows with speakers) and how it
    answered its held-out clips (``answers``: ``emotion``, ``confidence``)."""

    model_name: str
    version: str
    training: pd.DataFrame
    answers: pd.DataFrame


def champion_reference(model_name: str, *, alias: str = CHAMPION) -> Reference:
    """The reference of ``model_name@alias``; :class:`~experiments.tracking.registry.PromotionError`
    names what is missing (e.g. a feature table trained on another machine)."""
    client = MlflowClient()
    version = client.get_model_version_by_alias(model_name, alias)
    run = mlflow.get_run(version.tags.get("source_run_id") or version.run_id)
    table = run_feature_table(run)
    test = tested_clips(run, table)
    training = table[~table["path"].isin(set(test["path"]))]
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version.version}"))
    predictor = load_predictor(local / "artifacts" / "predictor")
    proba = predictor.predict_proba(test[feature_columns(test)])
    classes = list(predictor.classes)
    answers = pd.DataFrame(
        {
            "emotion": [classes[i] for i in np.argmax(proba, axis=1)],
            "confidence": proba.max(axis=1),
        }
    )
    return Reference(model_name, str(version.version), training.reset_index(drop=True), answers)
