"""The served model follows @champion without a restart, names its version in every answer,
keeps serving when a new version cannot load, and rolls back in one command.

Real processes throughout: Prefect flows train and promote on the synthetic demo corpus into
a private MLflow store, a real ``mlflow models serve`` process (as ``ser serve`` starts it)
answers real HTTP requests sent without pause while the alias moves, and ``ser rollback`` runs
as a subprocess.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import experiment_configs
import mlflow
import pytest
import requests
from local_server import free_port, running
from mlflow import MlflowClient

from experiments.serving.command import serve_command, serving_environment
from experiments.tracking.registry import CHAMPION
from flows.promote import promote_model
from flows.train import train_models

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

MODEL = "ser-emotion"
SER = Path(sys.executable).with_name("ser")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A weak then a strong model promoted in turn: v1, then v2 as champion (it beats v1)."""
    root = tmp_path_factory.mktemp("production-loop")
    with experiment_configs.demo_store(root, n_speakers=4) as uri:
        data = root / "demo"
        weak = {"sklearn_linear": {"param_grid": {"C": [1e-6]}, "cv_folds": 2}}
        strong = {"sklearn_linear": {"param_grid": {"C": [0.01]}, "cv_folds": 2}}
        versions = []
        for name, trainers in (("weak", weak), ("strong", strong)):
            config = experiment_configs.write_config(root, name, trainers, data)
            report = train_models(config_path=str(config))
            versions.append(
                promote_model(config_path=str(config), parent_run_id=report.parent_run_id)
            )
        yield {"root": root, "uri": uri, "data": data, "decisions": versions}


def champion() -> str:
    return str(MlflowClient().get_model_version_by_alias(MODEL, CHAMPION).version)


class Load:
    """Requests sent one after another from a thread; every answer's status and version."""

    def __init__(self, url: str, clip: Path) -> None:
        body = {"dataframe_split": {"columns": ["audio"], "data": [[
            base64.b64encode(clip.read_bytes()).decode()]]}}  # fmt: skip
        self.body = json.dumps(body)
        self.url = url
        self.answers: list[tuple[float, int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = requests.post(
                    self.url, data=self.body, headers={"Content-Type": "application/json"},
                    timeout=60,
                )  # fmt: skip
                version = response.json()["predictions"][0].get("model_version")
                self.answers.append((time.monotonic(), response.status_code, version))
            except (requests.RequestException, ValueError, KeyError):
                self.answers.append((time.monotonic(), 0, None))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=90)

    def wait_for(self, version: str, *, since: float, timeout: float = 60) -> float:
        """Seconds from ``since`` until answers come from ``version`` (fails after timeout)."""
        deadline = since + timeout
        while time.monotonic() < deadline:
            later = [t for t, status, v in self.answers if t > since and v == version]
            if later:
                return later[0] - since
            time.sleep(0.2)
        seen = sorted({v for _, _, v in self.answers if _ > since}, key=str)
        raise AssertionError(f"no answer from v{version} within {timeout} s (saw {seen})")


def ser(uri: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "COLUMNS": "200"}
    return subprocess.run(
        [str(SER), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def broken_version(root: Path) -> str:
    """Register a version whose predictor is damaged (a bad upload, say): it cannot load."""
    good = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1"))
    damaged = root / "damaged-model"
    shutil.copytree(good, damaged)
    (damaged / "artifacts" / "predictor" / "predictor.json").write_text("{not json")
    with mlflow.start_run(run_name="damaged upload") as run:
        mlflow.log_artifacts(str(damaged), "model")
    return str(mlflow.register_model(f"runs:/{run.info.run_id}/model", MODEL).version)


def test_the_server_follows_the_alias_and_rolls_back_without_a_failed_request(store, tmp_path):
    first, second = store["decisions"]
    assert first.promoted and first.version == "1"
    assert second.promoted and second.version == "2", second.reason
    client = MlflowClient()
    client.set_registered_model_alias(MODEL, CHAMPION, "1")  # as the MLflow UI would
    port = free_port()
    env = serving_environment(store["uri"], follow=f"{MODEL}@{CHAMPION}", follow_interval_s=1)
    clip = sorted(store["data"].rglob("*.wav"))[0]
    log = tmp_path / "server.log"
    with (
        running(serve_command(MODEL, port=port), env=env, log_path=log,
                ready_url=f"http://127.0.0.1:{port}/ping"),
        Load(f"http://127.0.0.1:{port}/invocations", clip) as load,
    ):  # fmt: skip
        load.wait_for("1", since=time.monotonic() - 1)

        moved = time.monotonic()
        client.set_registered_model_alias(MODEL, CHAMPION, "2")
        switched = load.wait_for("2", since=moved)

        broken = broken_version(store["root"])
        client.set_registered_model_alias(MODEL, CHAMPION, broken)
        time.sleep(4)  # several looks at the registry
        after_broken = [v for t, _, v in load.answers if t > time.monotonic() - 2]
        assert after_broken and set(after_broken) == {"2"}  # the old version keeps serving

        client.set_registered_model_alias(MODEL, CHAMPION, "2")
        refused = ser(store["uri"], "rollback", "--to", broken)
        assert refused.returncode != 0 and "does not load" in refused.stdout + refused.stderr
        assert champion() == "2"
        rolled = time.monotonic()
        result = ser(store["uri"], "rollback", "--reason", "answers drifted")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "v2 -> v1" in result.stdout
        load.wait_for("1", since=rolled)
    assert all(status == 200 for _, status, _ in load.answers), {s for _, s, _ in load.answers}
    assert len(load.answers) > 20 and switched < 60
    server_log = log.read_text()
    assert f"{MODEL} v{broken}" in server_log and "cannot be served" in server_log
    assert server_log.count("cannot be served") == 1  # one line, not one per look
    assert champion() == "1"
    tags = client.get_model_version(MODEL, "1").tags
    assert tags["rollback.from_version"] == "2" and tags["rollback.reason"] == "answers drifted"
    assert "rollback.demoted_at" in client.get_model_version(MODEL, "2").tags


def test_rollback_names_what_it_cannot_do(store):
    result = ser(store["uri"], "rollback", "--model", "no-such-model")
    assert result.returncode != 0 and "has no @champion" in result.stdout + result.stderr
    result = ser(store["uri"], "rollback", "--to", champion())
    assert result.returncode != 0 and "already @champion" in result.stdout + result.stderr


def test_several_workers_follow_the_alias_and_log_every_answer(store, tmp_path):
    """Two scoring processes: each follows @champion on its own and writes its own log files;
    together they lose no answer and, within a minute, answer only from the new version."""
    from experiments.serving.prediction_log import read_log

    client = MlflowClient()
    client.set_registered_model_alias(MODEL, CHAMPION, "1")
    port = free_port()
    predictions = tmp_path / "predictions"
    env = serving_environment(
        store["uri"], follow=f"{MODEL}@{CHAMPION}", follow_interval_s=1, prediction_log=predictions
    )
    clip = sorted(store["data"].rglob("*.wav"))[0]
    url = f"http://127.0.0.1:{port}/invocations"
    with running(
        serve_command(MODEL, port=port, workers=2), env=env, log_path=tmp_path / "server.log",
        ready_url=f"http://127.0.0.1:{port}/ping",
    ):  # fmt: skip
        loads = [Load(url, clip) for _ in range(4)]  # concurrent clients reach both workers
        for load in loads:
            load.__enter__()
        try:
            time.sleep(3)
            moved = time.monotonic()
            client.set_registered_model_alias(MODEL, CHAMPION, "2")
            deadline = moved + 60
            while time.monotonic() < deadline:  # every worker: the last answers all from v2
                recent = [
                    v for load in loads for t, _, v in load.answers if t > time.monotonic() - 3
                ]
                if time.monotonic() > moved + 5 and recent and set(recent) == {"2"}:
                    break
                time.sleep(0.5)
        finally:
            for load in loads:
                load.__exit__()
        answers = [a for load in loads for a in load.answers]
        time.sleep(7)  # each worker writes its log every 5 s
        logged = read_log(predictions)
    assert answers and all(status == 200 for _, status, _ in answers)
    recent = [v for load in loads for _, _, v in load.answers[-3:]]
    assert set(recent) == {"2"}, recent
    assert len(logged) == len(answers)  # every answer logged once, none lost
    assert set(logged["model_version"]) == {"1", "2"}
    writers = {path.name.split("-")[2] for path in predictions.glob("predictions-*.parquet")}
    assert len(writers) == 2  # one writer per worker process
