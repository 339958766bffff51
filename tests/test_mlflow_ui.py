"""The MLflow UI from ``experiments.tracking.mlflow_ui`` serves the app, runs and artifacts."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import local_server
import pytest
import requests

from experiments.tracking import mlflow_ui

# A 1x1 PNG, standing in for the confusion matrix.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
FAMILIES = {"h2o_automl": 0.52, "sklearn_mlp": 0.47, "keras_cnn": 0.39}


def test_ui_command_uses_the_venv_mlflow() -> None:
    command = mlflow_ui.ui_command(
        backend_store_uri="sqlite:///x.db", port=5077, artifacts_destination="file:///a"
    )
    assert command[0] == str(Path(sys.executable).with_name("mlflow"))
    assert command[1] == "ui"
    assert command[command.index("--backend-store-uri") + 1] == "sqlite:///x.db"
    assert command[command.index("--port") + 1] == "5077"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[-2:] == ["--artifacts-destination", "file:///a"]


def test_default_backend_store_uri(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql+psycopg2://u@db/mlflow")
    assert mlflow_ui.default_backend_store_uri() == "postgresql+psycopg2://u@db/mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    expected = f"sqlite:///{(tmp_path / 'mlruns' / 'mlflow.db').resolve()}"
    assert mlflow_ui.default_backend_store_uri() == expected
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert mlflow_ui.default_backend_store_uri() == expected


def test_wait_until_serving_reports_a_dead_process() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(RuntimeError, match="code 3"):
        local_server.wait_until_serving("http://127.0.0.1:9/", process=process, timeout=5)
    with pytest.raises(TimeoutError):
        local_server.wait_until_serving("http://127.0.0.1:9/", timeout=0.1)


def _make_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, dict]:
    """A sqlite store with a parent run and one child run per family; returns uri, ids."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    png = tmp_path / "evaluation" / "confusion_matrix.png"
    png.parent.mkdir()
    png.write_bytes(PNG)
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("ser-ui-test", artifact_location=artifacts.as_uri())
    parent = client.create_run(experiment_id, run_name="parent")
    runs = {}
    for family, uar in FAMILIES.items():
        tags = {
            "mlflow.parentRunId": parent.info.run_id,
            "model_family": family,
            "feature_set": "spectral_prosodic",
            "protocol": "speaker-independent",
        }
        run = client.create_run(experiment_id, run_name=family, tags=tags)
        for key, value in {"accuracy": uar + 0.02, "uar": uar, "macro_f1": uar - 0.01}.items():
            client.log_metric(run.info.run_id, key, value)
        client.log_metric(run.info.run_id, "log_loss", 1.4)
        client.log_artifact(run.info.run_id, str(png), artifact_path="evaluation")
        client.set_terminated(run.info.run_id)
        runs[family] = run.info.run_id
    client.set_terminated(parent.info.run_id)
    return uri, experiment_id, runs


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ui_serves_app_runs_and_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    uri, experiment_id, runs = _make_store(tmp_path, monkeypatch)
    with local_server.running_ui(uri, cwd=tmp_path) as base:
        page = requests.get(f"{base}/", timeout=30)
        assert page.status_code == 200
        assert '<div id="root">' in page.text or "MLflow" in page.text

        found = requests.post(
            f"{base}/api/2.0/mlflow/runs/search",
            json={
                "experiment_ids": [experiment_id],
                "filter": "tags.model_family = 'sklearn_mlp'",
            },
            timeout=30,
        )
        assert found.status_code == 200, found.text
        [run] = found.json()["runs"]
        assert run["info"]["run_id"] == runs["sklearn_mlp"]
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert metrics["uar"] == pytest.approx(FAMILIES["sklearn_mlp"])
        assert set(metrics) == {"accuracy", "uar", "macro_f1", "log_loss"}
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert tags["model_family"] == "sklearn_mlp"
        assert tags["feature_set"] == "spectral_prosodic"
        assert tags["protocol"] == "speaker-independent"

        artifact = requests.get(
            f"{base}/get-artifact",
            params={"path": "evaluation/confusion_matrix.png", "run_uuid": runs["keras_cnn"]},
            timeout=30,
        )
        assert artifact.status_code == 200
        assert artifact.content == PNG
