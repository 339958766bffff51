"""MLflow tracking: where runs go, what every run records, and how family runs are logged.

The default store is ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts``;
``MLFLOW_TRACKING_URI`` (or an explicit URI) points elsewhere, e.g. a remote ``mlflow server``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema

from experiments.evaluation.confusion_plot import confusion_csv, plot_confusion
from experiments.evaluation.metrics import MAIN_KEYS, EvaluationResult
from experiments.serving.emotion_model import AUDIO_COLUMN, LABELS_COLUMN, SESSION_COLUMN
from ser_features.encoders.location import CARRIED_FILE

#: The local tracking store: the sqlite database, artifacts and ``ser`` log files.
DEFAULT_STORE = Path("mlruns")
DEFAULT_DB = DEFAULT_STORE / "mlflow.db"
KEY_PACKAGES = ("mlflow", "h2o", "keras", "torch", "scikit-learn", "librosa", "opensmile")
MODEL_CODE = Path(__file__).parents[1] / "serving" / "emotion_model_code.py"


def default_store_uri() -> str:
    """``sqlite:///<absolute path>/mlruns/mlflow.db``, the local store (folder created)."""
    DEFAULT_STORE.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_DB.resolve()}"


def configure_tracking(uri: str | None = None) -> str:
    """Point MLflow at ``uri``, ``$MLFLOW_TRACKING_URI`` or the project's local sqlite store."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or default_store_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def ensure_experiment(name: str) -> str:
    """The id of experiment ``name``, created with a local artifact root when tracking is local."""
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if mlflow.get_tracking_uri().startswith("sqlite:"):
        root = (DEFAULT_STORE / "artifacts").resolve()
        root.mkdir(parents=True, exist_ok=True)
        location = root.as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def provenance() -> dict[str, str]:
    """Git commit and key package versions, logged with every run."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    versions = {}
    for package in KEY_PACKAGES:
        try:
            versions[f"version_{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[f"version_{package}"] = "absent"
    return {"git_commit": commit, **versions}


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Parameters as MLflow strings (nested values JSON-encoded, long ones truncated)."""
    flat = {}
    for key, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        flat[f"{prefix}{key}"] = text[:6000]
    return flat


def log_evaluation(evaluation: EvaluationResult, *, title: str) -> None:
    """Metrics, confusion matrix (PNG and CSV) and classification report of the active run.

    With several corpora on the test side, each corpus's own also go in: metrics named
    ``<corpus>_<metric>`` and the files under ``evaluation/<corpus>/``.
    """
    mlflow.log_metrics(evaluation.metrics)
    for corpus, own in evaluation.by_corpus.items():
        mlflow.log_metrics({f"{corpus}_{key}": own.metrics[key] for key in MAIN_KEYS})
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        _write_evaluation(evaluation, title=title, folder=folder)
        for corpus, own in evaluation.by_corpus.items():
            _write_evaluation(own, title=f"{title} · {corpus}", folder=folder / corpus)
        mlflow.log_artifacts(str(folder), artifact_path="evaluation")


def _write_evaluation(evaluation: EvaluationResult, *, title: str, folder: Path) -> None:
    """The confusion matrix (PNG, CSV) and classification report of ``evaluation``."""
    folder.mkdir(parents=True, exist_ok=True)
    classes = list(evaluation.classes)
    plot_confusion(evaluation.confusion, classes, title=title, path=folder / "confusion_matrix.png")
    confusion_csv(evaluation.confusion, classes, folder / "confusion_matrix.csv")
    (folder / "classification_report.txt").write_text(evaluation.report)


def log_dataset(features_path: Path, table: pd.DataFrame, *, name: str, digest: str) -> None:
    """Record the feature table as the run's dataset input, with its content digest."""
    with warnings.catch_warnings():  # MLflow hints about integer columns and source kinds
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(
            table, source=str(features_path.resolve()), name=name, digest=digest[:36]
        )
        mlflow.log_input(dataset, context="training")


def log_served_model(
    predictor_dir: Path,
    *,
    example_audio_b64: str,
    example_output: pd.DataFrame,
    model_config: dict[str, Any] | None = None,
) -> str:
    """Log the audio-in pyfunc (models-from-code) holding ``predictor_dir``; returns its URI."""
    input_example = pd.DataFrame({AUDIO_COLUMN: [example_audio_b64]})
    inputs = Schema(
        [
            ColSpec("string", AUDIO_COLUMN),
            ColSpec("string", SESSION_COLUMN, required=False),
            ColSpec("string", LABELS_COLUMN, required=False),
        ]
    )
    signature = ModelSignature(inputs=inputs, outputs=infer_signature(None, example_output).outputs)
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(MODEL_CODE),
        artifacts={"predictor": str(predictor_dir)},
        signature=signature,
        input_example=input_example,
        model_config=model_config or {},
        pip_requirements=[f"{p}=={metadata.version(p)}" for p in _serving_packages(predictor_dir)],
    )
    return info.model_uri


def _serving_packages(predictor_dir: Path) -> tuple[str, ...]:
    """What the served model imports: with a carried encoder, ``transformers`` too."""
    if (predictor_dir / CARRIED_FILE).is_file():
        return (*_SERVING_PACKAGES, *_ENCODER_PACKAGES)
    return _SERVING_PACKAGES


_SERVING_PACKAGES = (
    "mlflow",
    "numpy",
    "pandas",
    "scikit-learn",
    "soundfile",
    "soxr",
    "librosa",
    "keras",
    "JPype1",
    "opensmile",
)
_ENCODER_PACKAGES = ("transformers", "safetensors")
