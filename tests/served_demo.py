"""A small registered champion for serving tests: ``sklearn_linear`` on the synthetic demo
corpus with the shipped champion's feature set, and helpers to send it real audio."""

from __future__ import annotations

import base64
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow import MlflowClient

from experiments.tracking.registry import CHAMPION
from flows.train import train_models
from ser_features.conditions import as_wav_bytes

#: The shipped champion's feature set (trimmed 40 dB under the peak, levelled).
FEATURES = "spectral_prosodic_levelled"


def train_demo_champion(root: Path, name: str) -> str:
    """Train on ``root/demo`` (made by ``experiment_configs.demo_store``), register the model
    as ``name@champion`` in the store in use and return its ``models:/`` URI."""
    config = {
        "name": name,
        "data": {
            "folders": [str(root / "demo")],
            "features": FEATURES,
            "features_dir": str(root / "features"),
        },
        "protocol": {"test_speakers": ["synthetic_demo_03"]},
        "trainers": {"sklearn_linear": {"param_grid": {"C": [0.01]}, "cv_folds": 2}},
        "tracking": {"experiment": name},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    (family,) = train_models(config_path=str(path)).families
    assert family.status == "FINISHED", family.error
    version = mlflow.register_model(family.model_uri, name).version
    MlflowClient().set_registered_model_alias(name, CHAMPION, version)
    return f"models:/{name}@{CHAMPION}"


def wav_b64(samples: np.ndarray, rate: int) -> str:
    """Base64 of ``samples`` as a 16-bit WAV file, as a client would send it."""
    return base64.b64encode(as_wav_bytes(samples, rate)).decode()


def answer(model, samples: np.ndarray, rate: int) -> dict:
    """The in-process pyfunc's answer for one recording, as a plain dict."""
    return model.predict(pd.DataFrame({"audio": [wav_b64(samples, rate)]})).iloc[0].to_dict()
