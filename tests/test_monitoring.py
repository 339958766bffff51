"""The prediction log and the monitor, with real processes and real speech.

A model trained on six RAVDESS actors is served by a real ``mlflow models serve`` process (as
``ser serve`` starts it) that logs every answer; two RAVDESS actors it never heard, then the
TESS sample (another corpus), are sent to it; ``ser monitor`` (a subprocess running the Prefect
flow) must flag the second window and not the first.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
import yaml
from local_server import free_port, running

from experiments.serving.command import serve_command, serving_environment
from experiments.serving.prediction_log import SCHEMA_VERSION, read_log
from flows.promote import promote_model
from flows.train import train_models

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

MODEL = "ser-monitor-test"
SER = Path(sys.executable).with_name("ser")


def post(url: str, clips: list[Path]) -> list[dict]:
    rows = [[base64.b64encode(clip.read_bytes()).decode()] for clip in clips]
    body = {"dataframe_split": {"columns": ["audio"], "data": rows}}
    response = requests.post(url, json=body, timeout=300)
    assert response.status_code == 200, response.text[:500]
    return response.json()["predictions"]


@pytest.fixture(scope="module")
def logged(tmp_path_factory, shared_data):
    """Train, promote, serve with a prediction log, send two windows of real clips."""
    from prefect.settings import PREFECT_API_URL

    root = tmp_path_factory.mktemp("monitoring")
    ravdess = shared_data / "ravdess"
    config = {
        "name": "monitor-test",
        "data": {
            "folders": [str(ravdess / f"Actor_{a:02d}") for a in range(1, 7)],
            "features": "spectral_prosodic",
            "features_dir": str(root / "features"),
        },
        "protocol": {"test_speakers": ["ravdess_05", "ravdess_06"]},
        "trainers": {"sklearn_linear": {"param_grid": {"C": [0.01]}, "cv_folds": 2}},
        "tracking": {"experiment": "monitor-tests"},
        "registry": {"model_name": MODEL},
    }
    config_path = root / "monitor.yaml"
    config_path.write_text(yaml.safe_dump(config))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    log = root / "predictions"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(root)
        report = train_models(config_path=str(config_path))
        assert promote_model(config_path=str(config_path), parent_run_id=report.parent_run_id)
        port = free_port()
        env = serving_environment(uri, follow=f"{MODEL}@champion", prediction_log=log)
        url = f"http://127.0.0.1:{port}/invocations"
        new_speakers = sorted(ravdess.glob("Actor_09/*.flac")) + sorted(
            ravdess.glob("Actor_10/*.flac")
        )
        other_corpus = sorted((shared_data / "tess_sample").rglob("*.wav"))
        with running(
            serve_command(MODEL, port=port), env=env, log_path=root / "server.log",
            ready_url=f"http://127.0.0.1:{port}/ping",
        ):  # fmt: skip
            start = datetime.now(UTC)
            for first in range(0, len(new_speakers), 20):
                post(url, new_speakers[first : first + 20])
            middle = datetime.now(UTC)
            answers = []
            for first in range(0, len(other_corpus), 20):
                answers += post(url, other_corpus[first : first + 20])
            time.sleep(7)  # the log is written every 5 s
        end = datetime.now(UTC)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "COLUMNS": "200",
    }
    return {
        "root": root, "log": log, "env": env, "windows": (start, middle, end),
        "counts": (len(new_speakers), len(other_corpus)), "answers": answers,
    }  # fmt: skip


def monitor(
    logged: dict, since: datetime, until: datetime, name: str, *options: str
) -> tuple[dict, str]:
    out = logged["root"] / name
    result = subprocess.run(
        [str(SER), "monitor", "--model", MODEL, "--prediction-log", str(logged["log"]),
         "--since", since.strftime("%Y-%m-%dT%H:%M:%S.%f"),
         "--until", until.strftime("%Y-%m-%dT%H:%M:%S.%f"),
         "--json", f"{out}.json", "--html", f"{out}.html", *options],
        env=logged["env"], cwd=logged["root"], capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(Path(f"{out}.json").read_text()), result.stdout


def test_every_answer_is_logged_with_its_version_and_input_facts(logged):
    table = read_log(logged["log"])
    assert len(table) == sum(logged["counts"])
    assert set(table["model_version"]) == {"1"} and set(table["model_name"]) == {MODEL}
    assert not table["refused"].any() and (table["request_ms"] > 0).all()
    assert table["duration_s"].between(1, 6).all() and "mfcc_00_mean" in table.columns
    assert all(a["model_version"] == "1" for a in logged["answers"])
    first = sorted(logged["log"].glob("predictions-*.parquet"))[0]
    assert pq.read_schema(first).metadata[b"ser.prediction_log_schema"].decode() == SCHEMA_VERSION
    assert "audio" not in table.columns  # the audio itself is never kept


def test_new_speakers_of_the_training_corpus_are_not_drift(logged):
    start, middle, _ = logged["windows"]
    summary, output = monitor(logged, start, middle, "same-corpus")
    assert summary["n_predictions"] == logged["counts"][0]
    assert summary["drift_detected"] is False, summary
    assert "no drift" in output
    assert set(summary) >= {"drifted_feature_share", "label_shift", "mean_confidence"}
    # an operator who wants to hear of smaller shifts lowers the share that counts as drift
    share = summary["drifted_feature_share"]
    assert 0 < share < 0.2
    stricter, _ = monitor(
        logged, start, middle, "same-corpus-strict", "--share-limit", f"{share:g}"
    )
    assert stricter["share_limit"] == share and stricter["drift_detected"] is True


def test_another_corpus_is_drift_with_a_report_to_look_at(logged):
    _, middle, end = logged["windows"]
    summary, output = monitor(logged, middle, end, "other-corpus")
    assert summary["n_predictions"] == logged["counts"][1]
    assert summary["drift_detected"] is True, summary
    assert "drift detected" in output
    page = (logged["root"] / "other-corpus.html").read_text()
    assert "DRIFT DETECTED" in page and "data:image/png;base64," in page
    # every data-quality fact on a row of its own, as a number a reader can take in
    assert "<td>quality.clipped_share</td><td>0</td>" in page
    assert f"<td>n_predictions</td><td>{logged['counts'][1]}</td>" in page


def test_drift_starts_the_retrain_flow_which_promotes_only_a_better_model(logged):
    import mlflow

    _, middle, end = logged["windows"]
    client = mlflow.MlflowClient(logged["env"]["MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias(MODEL, "champion").version
    experiment = client.get_experiment_by_name("monitor-tests").experiment_id
    retrains = 'tags."retrain.promoted" != ""'
    assert client.search_runs([experiment], filter_string=retrains) == []
    retrain = ("--retrain-config", str(logged["root"] / "monitor.yaml"))
    summary, output = monitor(logged, middle, end, "other-corpus-retrain", *retrain)
    assert summary["drift_detected"] is True
    assert "drift: retrained with" in output
    runs = client.search_runs([experiment], filter_string=retrains)
    assert len(runs) == 1  # one retrain, its decision recorded on its run
    # the same clips again cannot beat the champion: @champion stays where it was
    assert runs[0].data.tags["retrain.promoted"] == "False"
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion
