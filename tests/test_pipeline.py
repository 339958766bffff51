"""Train -> MLflow -> registry -> `mlflow models serve`, on the synthetic demo corpus.

Real components throughout: Prefect flows on a temporary server, a real H2O JVM, real Keras
training, a real MLflow sqlite store, and real scoring servers on 127.0.0.1.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
from pathlib import Path

import experiment_configs
import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import soundfile as sf
from local_server import free_port, stop, wait_until_serving
from mlflow import MlflowClient
from serving_image import run_with_serving_packages_only

from experiments.serving.command import serve_command, serving_environment
from experiments.tracking.registry import CHAMPION, PromotionError
from flows.promote import promote_model
from flows.train import train_models

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

#: The five real families, and the chance reference added by its module and registry line only.
FAMILIES = ("sklearn_mlp", "sklearn_linear", "keras_ann", "keras_cnn", "h2o_automl", "prior")
MAX_DURATION_S = 150
FAST_TRAINERS = {
    "sklearn_mlp": {"param_grid": {"hidden_layer_sizes": [[64]], "alpha": [0.01]}, "cv_folds": 2},
    "sklearn_linear": {"param_grid": {"C": [0.01]}, "cv_folds": 2},
    "keras_ann": {"epochs": 25, "patience": 5},
    "keras_cnn": {"epochs": 10, "patience": 3},
    "h2o_automl": {
        "max_runtime_secs": 60,
        "max_models": 2,
        "nfolds": 2,
        "max_mem_size": "1G",
        "exclude_algos": ["DeepLearning", "StackedEnsemble", "XGBoost"],
    },
    "prior": {},
}


def write_config(folder: Path, name: str, trainers: dict, data: Path) -> Path:
    serving = {
        "max_duration_s": MAX_DURATION_S,
        "session_model": [f for f in trainers if f == "sklearn_linear"],
    }
    return experiment_configs.write_config(folder, name, trainers, data, serving=serving)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A demo corpus, a private MLflow store, and one training run of every family."""
    root = tmp_path_factory.mktemp("pipeline")
    data = root / "demo"
    with experiment_configs.demo_store(root) as uri:
        config = write_config(root, "all-families", FAST_TRAINERS, data)
        report = train_models(config_path=str(config))
        yield {"root": root, "data": data, "uri": uri, "config": config, "report": report}


def test_every_family_logs_a_child_run_with_metrics_plot_and_model(workspace):
    report = workspace["report"]
    assert [f.family for f in report.families] == list(FAMILIES)
    client = MlflowClient()
    for family in report.families:
        assert family.status == "FINISHED", family.error
        run = client.get_run(family.run_id)
        assert run.data.tags["model_family"] == family.family
        assert run.data.tags["mlflow.parentRunId"] == report.parent_run_id
        assert run.data.params["protocol"] == "speaker_independent"
        assert run.data.params["test_speakers"] == "synthetic_demo_04"
        for key in ("accuracy", "uar", "macro_f1", "log_loss"):
            assert key in run.data.metrics
        if family.family == "prior":
            assert run.data.metrics["uar"] == pytest.approx(1 / 8)  # chance, by construction
        else:
            assert run.data.metrics["uar"] > 1 / 8  # above chance on an unseen speaker
        artifacts = {a.path for a in client.list_artifacts(family.run_id, "evaluation")}
        assert "evaluation/confusion_matrix.png" in artifacts
        assert run.inputs.dataset_inputs, "the feature table is logged as a dataset"
        assert family.model_uri and mlflow.models.get_model_info(family.model_uri).signature
    h2o_run = next(f for f in report.families if f.family == "h2o_automl")
    board = {a.path for a in client.list_artifacts(h2o_run.run_id)}
    assert "h2o_leaderboard.csv" in board


def test_a_failing_trainer_is_a_failed_child_and_the_others_finish(workspace):
    # a valid option whose value only the fit can refuse
    broken = {"sklearn_mlp": FAST_TRAINERS["sklearn_mlp"], "keras_ann": {"class_weight": "odd"}}
    config = write_config(workspace["root"], "one-broken", broken, workspace["data"])
    report = train_models(config_path=str(config))
    status = {f.family: f.status for f in report.families}
    assert status == {"sklearn_mlp": "FINISHED", "keras_ann": "FAILED"}
    failed = MlflowClient().get_run(next(f.run_id for f in report.families if f.status == "FAILED"))
    assert failed.info.status == "FAILED"
    assert "class_weight must be 'balanced' or None" in failed.data.tags["error"]


def champion_version(model_name: str = "ser-emotion") -> str:
    return str(MlflowClient().get_model_version_by_alias(model_name, CHAMPION).version)


def test_promotion_moves_the_champion_only_for_a_better_model(workspace):
    root, data = workspace["root"], workspace["data"]
    weak = {"sklearn_mlp": {"param_grid": {"hidden_layer_sizes": [[2]], "alpha": [50.0]}}}
    strong = {"sklearn_mlp": FAST_TRAINERS["sklearn_mlp"]}
    weak_config = write_config(root, "weak", weak, data)
    strong_config = write_config(root, "strong", strong, data)

    train_models(config_path=str(weak_config))
    first = promote_model(config_path=str(weak_config))
    assert first.promoted and champion_version() == first.version
    assert first.reason == "first model: no champion yet"

    train_models(config_path=str(strong_config))
    better = promote_model(config_path=str(strong_config))
    assert better.promoted, better.reason
    assert better.challenger_score > better.champion_score
    assert champion_version() == better.version
    version = MlflowClient().get_model_version("ser-emotion", better.version)
    assert version.tags["promotion.decision"] == "promoted"
    assert "beats" in version.description

    train_models(config_path=str(weak_config))
    worse = promote_model(config_path=str(weak_config))
    assert not worse.promoted
    assert champion_version() == better.version

    failing = write_config(root, "all-fail", {"sklearn_mlp": {"param_grid": {"bogus": [1]}}}, data)
    train_models(config_path=str(failing))
    with pytest.raises(PromotionError):
        promote_model(config_path=str(failing))
    assert champion_version() == better.version


def wav_b64(samples: np.ndarray, rate: int = 16000) -> str:
    buffer = io.BytesIO()
    sf.write(buffer, samples.astype(np.float32), rate, format="WAV")
    return base64.b64encode(buffer.getvalue()).decode()


def post(url: str, frame: dict) -> requests.Response:
    return requests.post(url, json={"dataframe_split": frame}, timeout=120)


def a_real_clip(data: Path) -> Path:
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ravdess"
    clips = sorted(shared.glob("Actor_01/*.flac")) or sorted(data.rglob("*.wav"))
    return clips[0]


@pytest.mark.parametrize("family", ["sklearn_mlp", "sklearn_linear", "keras_ann", "h2o_automl"])
def test_mlflow_models_serve_answers_audio_and_rejects_bad_requests(workspace, family, tmp_path):
    report = workspace["report"]
    run = next(f for f in report.families if f.family == family)
    name = f"serve-{family}"
    version = mlflow.register_model(run.model_uri, name).version
    MlflowClient().set_registered_model_alias(name, CHAMPION, version)
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        serve_command(name, port=port),
        env=serving_environment(workspace["uri"]),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/invocations"
    try:
        try:
            wait_until_serving(f"http://127.0.0.1:{port}/ping", process=server, timeout=180)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"{exc}\n{(tmp_path / 'server.log').read_text()[-3000:]}")
        clip = base64.b64encode(a_real_clip(workspace["data"]).read_bytes()).decode()
        good = {"columns": ["audio"], "data": [[clip]]}

        response = post(url, good)
        assert response.status_code == 200, response.text[:2000]
        prediction = response.json()["predictions"][0]
        assert prediction["emotion"] in prediction["probabilities"]
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        assert 0 < prediction["confidence"] <= 1

        silent = wav_b64(np.zeros(16000))
        too_long = wav_b64(0.1 * np.sin(np.arange((MAX_DURATION_S + 10) * 8000) / 7), rate=8000)
        bad_requests = {
            "invalid base64": {"columns": ["audio"], "data": [["not base64 at all!!"]]},
            "not audio": {
                "columns": ["audio"],
                "data": [[base64.b64encode(b"plain text, no sound" * 20).decode()]],
            },
            "empty": {"columns": ["audio"], "data": [[""]]},
            "silent": {"columns": ["audio"], "data": [[silent]]},
            "too long": {"columns": ["audio"], "data": [[too_long]]},
            "no audio column": {"columns": ["sound"], "data": [[clip]]},
        }
        expected = {
            "invalid base64": "base64",
            "not audio": "not decodable",
            "empty": "empty",
            "silent": "silent",
            "too long": "limit",
            "no audio column": "audio",
        }
        for label, frame in bad_requests.items():
            response = post(url, frame)
            assert response.status_code == 400, f"{label}: {response.status_code}"
            message = response.json()["message"]
            assert expected[label] in message[-600:] or expected[label] in message[:600], label

        assert post(url, good).status_code == 200
        check_sessions(url, workspace["data"], companion=family == "sklearn_linear")
        check_answer_labels(url, clip, classes=list(prediction["probabilities"]))
        assert server.poll() is None
    finally:
        stop(server)
        log.close()


def check_answer_labels(url: str, clip: str, *, classes: list[str]) -> None:
    """A row's ``labels`` restricts its answer to them (renormalised); an unknown label
    fails that row alone, or the request when it is the only row."""
    wanted = classes[:3]
    rows = [[clip, ",".join(wanted)], [clip, None], [clip, "bored," + wanted[0]]]
    response = post(url, {"columns": ["audio", "labels"], "data": rows})
    assert response.status_code == 200, response.text[:2000]
    restricted, everything, unknown = response.json()["predictions"]
    assert list(restricted["probabilities"]) == wanted
    assert restricted["emotion"] in wanted
    assert sum(restricted["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    full = everything["probabilities"]
    share = {label: full[label] / sum(full[label] for label in wanted) for label in wanted}
    assert restricted["probabilities"] == pytest.approx(share, abs=1e-6)
    assert list(full) == classes
    assert unknown["emotion"] is None and "'bored'" in unknown["error"]
    assert "this model knows" in unknown["error"]
    # a bad row before good ones leaves their labels where they were
    response = post(url, {"columns": ["audio", "labels"], "data": [rows[2], rows[0], rows[1]]})
    assert response.status_code == 200, response.text[:2000]
    unknown_first, restricted_after, everything_after = response.json()["predictions"]
    assert unknown_first["emotion"] is None and "'bored'" in unknown_first["error"]
    assert restricted_after["probabilities"] == pytest.approx(restricted["probabilities"])
    assert list(everything_after["probabilities"]) == classes
    alone = post(url, {"columns": ["audio", "labels"], "data": [[clip, "bored"]]})
    assert alone.status_code == 400 and "'bored'" in alone.json()["message"]


def check_sessions(url: str, data: Path, *, companion: bool) -> None:
    """Six clips of one speaker in a session are speaker-normalised (when the model has a
    companion for it); a lone clip, even with a session id, is scored on its own."""
    speaker = sorted(data.rglob("*.wav"))[:6]
    rows = [[base64.b64encode(p.read_bytes()).decode(), "call-1"] for p in speaker]
    rows.append([rows[0][0], "call-2"])
    response = post(url, {"columns": ["audio", "session"], "data": rows})
    assert response.status_code == 200, response.text[:2000]
    answers = response.json()["predictions"]
    assert [a["speaker_normalised"] for a in answers] == [companion] * 6 + [False]
    for answer in answers:
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)


def test_session_companion_is_scored_on_the_held_out_speaker(workspace):
    run = next(f for f in workspace["report"].families if f.family == "sklearn_linear")
    metrics = MlflowClient().get_run(run.run_id).data.metrics
    assert 0 < metrics["session_uar"] <= 1
    assert {"session_accuracy", "session_macro_f1"} <= set(metrics)


def test_a_long_call_is_split_into_segments(workspace):
    model = mlflow.pyfunc.load_model(
        next(f.model_uri for f in workspace["report"].families if f.family == "sklearn_mlp")
    )
    clips = sorted(workspace["data"].rglob("*.wav"))[:30]
    pause = np.zeros(8000, dtype=np.float32)
    parts = []
    for path in clips:
        samples, _ = sf.read(path, dtype="float32")
        parts += [samples, pause]
    call = np.concatenate(parts)
    assert len(call) / 16000 > 45
    result = model.predict(pd.DataFrame({"audio": [wav_b64(call)]})).iloc[0]
    segments = result["segments"]
    assert len(segments) >= 10
    assert all(s["end"] > s["start"] for s in segments)
    assert segments == sorted(segments, key=lambda s: s["start"])
    assert sum(result["probabilities"].values()) == pytest.approx(1.0)


def test_an_h2o_model_loads_in_the_process_that_trained_it(workspace):
    """Training started the JVM with a genmodel jar from a since-deleted folder."""
    run = next(f for f in workspace["report"].families if f.family == "h2o_automl")
    model = mlflow.pyfunc.load_model(run.model_uri)
    clip = base64.b64encode(a_real_clip(workspace["data"]).read_bytes()).decode()
    result = model.predict(pd.DataFrame({"audio": [clip]})).iloc[0]
    assert sum(result["probabilities"].values()) == pytest.approx(1.0)


def test_every_family_answers_with_only_the_serving_images_packages(workspace, tmp_path):
    """The serving image installs a subset of the lock (docker/requirements-serve.lock): every
    family's model loads and answers a real clip where H2O's client, Prefect, Dask, Gradio and
    matplotlib cannot be imported."""
    download = mlflow.artifacts.download_artifacts
    models = {
        run.family: download(run.model_uri, dst_path=str(tmp_path / run.family))
        for run in workspace["report"].families
    }
    code = f"""
import base64, json, sys
try:
    import h2o
except ModuleNotFoundError:
    pass
else:
    sys.exit("h2o is importable: the check would prove nothing")
import mlflow.pyfunc, pandas as pd
clip = base64.b64encode(open({str(a_real_clip(workspace["data"]))!r}, "rb").read()).decode()
answers = {{}}
for family, path in {models!r}.items():
    answer = mlflow.pyfunc.load_model(path).predict(pd.DataFrame({{"audio": [clip]}})).iloc[0]
    answers[family] = answer["probabilities"]
print(json.dumps(answers))
"""
    result = run_with_serving_packages_only(code, env=serving_environment(workspace["uri"]))
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(answers) == set(models)
    for probabilities in answers.values():
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-6)
