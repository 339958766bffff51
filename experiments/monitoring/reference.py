"""The champion's reference for monitoring: the clips it trained on and its test answers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from experiments.families.predictors import load_predictor
from experiments.tracking.registry import CHAMPION, PromotionError, tested_clips
from ser_features.feature_table import feature_columns, read_feature_table


@dataclass
class Reference:
    """What the champion learnt from (``training``, feature rows with speakers) and how it
    answered its held-out clips (``answers``: ``emotion``, ``confidence``)."""

    model_name: str
    version: str
    training: pd.DataFrame
    answers: pd.DataFrame


def champion_reference(model_name: str, *, alias: str = CHAMPION) -> Reference:
    """The reference of ``model_name@alias``; :class:`PromotionError` names what is missing."""
    client = MlflowClient()
    version = client.get_model_version_by_alias(model_name, alias)
    run = mlflow.get_run(version.tags.get("source_run_id") or version.run_id)
    features_path = run.data.params.get("features_path")
    if not features_path or not Path(features_path).exists():
        raise PromotionError(
            f"{model_name} v{version.version}: its feature table {features_path!r} is not on "
            "this machine; monitor where the champion was trained"
        )
    table, _, _ = read_feature_table(features_path)
    test = tested_clips(run)
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
