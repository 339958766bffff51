"""The served model's limits: clean 400 messages, a body-size limit (413), a timeout (504).

One small model (sklearn_linear on the SYNTHETIC demo corpus) and one real
``mlflow models serve`` process for the module, started as ``ser serve`` starts it, with a
2 s timeout and the default 8 MiB body limit; real HTTP through ``requests``.
"""

from __future__ import annotations

import base64
import io

import mlflow
import numpy as np
import pytest
import requests
import soundfile as sf
import yaml
from experiment_configs import demo_store
from local_server import free_port, running
from mlflow import MlflowClient

from experiments.serving.command import serve_command, serving_environment
from experiments.serving.limits import DEFAULT_MAX_REQUEST_MB
from experiments.tracking.registry import CHAMPION
from flows.train import train_models

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

TIMEOUT_S = 2
MODEL_NAME = "limits"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> dict:
    """A trained champion behind ``mlflow models serve``: its URL and a good request."""
    root = tmp_path_factory.mktemp("limits")
    demo = root / "demo"
    with demo_store(root, n_speakers=3, chdir=False) as uri:
        config = {
            "name": "limits",
            "data": {"folders": [str(demo)], "features_dir": str(root / "features")},
            "protocol": {"test_speakers": ["synthetic_demo_03"]},
            "trainers": {"sklearn_linear": {"param_grid": {"C": [0.01]}, "cv_folds": 2}},
            "tracking": {"experiment": "limits"},
        }
        config_path = root / "limits.yaml"
        config_path.write_text(yaml.safe_dump(config))
        (family,) = train_models(config_path=str(config_path)).families
        assert family.status == "FINISHED", family.error
        version = mlflow.register_model(family.model_uri, MODEL_NAME).version
        MlflowClient().set_registered_model_alias(MODEL_NAME, CHAMPION, version)
        clip = base64.b64encode(sorted(demo.rglob("*.wav"))[0].read_bytes()).decode()
        port = free_port()
        with running(
            serve_command(MODEL_NAME, port=port, timeout_s=TIMEOUT_S),
            env=serving_environment(uri),
            log_path=root / "server.log",
            ready_url=f"http://127.0.0.1:{port}/ping",
        ) as process:
            url = f"http://127.0.0.1:{port}/invocations"
            for _ in range(3):  # the first request warms librosa up and may exceed the timeout
                if post(url, [[clip]]).status_code == 200:
                    break
            yield {"url": url, "clip": clip, "process": process, "demo": demo}


def post(url: str, rows: list[list[str]], columns: tuple[str, ...] = ("audio",)):
    frame = {"columns": list(columns), "data": rows}
    return requests.post(url, json={"dataframe_split": frame}, timeout=60)


def assert_still_serving(server: dict) -> None:
    response = post(server["url"], [[server["clip"]]])
    assert response.status_code == 200, response.text[:500]
    assert server["process"].poll() is None


@pytest.mark.parametrize(
    ("rows", "columns", "named"),
    [
        ([["not base64 at all!!"]], ("audio",), "not valid base64"),
        ([[base64.b64encode(b"\0" * 32000).decode()]], ("audio",), "not decodable"),
        ([["/home/me/call.wav"]], ("audio",), "looks like a file path"),
        ([["UklGRg=="]], ("sound",), "missing inputs ['audio']"),
    ],
)
def test_a_bad_request_gets_400_with_only_the_projects_message(server, rows, columns, named):
    response = post(server["url"], rows, columns)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error_code", "message"}
    assert named in body["message"]
    assert "Failed to" not in body["message"]
    assert rows[0][0] not in body["message"]  # the request's data is not echoed


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"audio=secret", "(Expecting value: line 1 column 1 (char 0))"),
        (b'{"audio": "secret",}', "(Expecting property name enclosed in double quotes"),
        (b"\xff\xfe secret", "(it is not UTF-8 text)"),
    ],
)
def test_a_body_that_is_not_json_is_named_not_echoed(server, body, reason):
    response = requests.post(server["url"], data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    message = response.json()["message"]
    assert message.startswith("request body is not valid JSON ") and reason in message
    assert "secret" not in response.text


def test_an_oversize_body_gets_413_and_the_server_answers_after(server):
    too_big = "A" * int((DEFAULT_MAX_REQUEST_MB + 1) * 2**20)
    response = post(server["url"], [[too_big]])
    assert response.status_code == 413
    message = response.json()["message"]
    assert "limit is 8 MiB" in message and "SER_MAX_REQUEST_MB" in message
    assert_still_serving(server)


def short_clip(clip_b64: str) -> str:
    """Half a second of the clip at 8 kHz, 8-bit: ~5 kB that still take a full description."""
    samples, rate = sf.read(io.BytesIO(base64.b64decode(clip_b64)), dtype="float32")
    buffer = io.BytesIO()
    sf.write(buffer, samples[:: rate // 8000][:4000], 8000, format="WAV", subtype="PCM_U8")
    return base64.b64encode(buffer.getvalue()).decode()


def test_a_request_over_the_timeout_gets_504_and_the_server_answers_after(server):
    # 600 short clips (3 MB) take well over the 2 s limit to describe
    response = post(server["url"], [[short_clip(server["clip"])]] * 600)
    assert response.status_code == 504
    body = response.json()
    assert body["error_code"] == "DEADLINE_EXCEEDED"
    assert f"{TIMEOUT_S} s limit" in body["message"]
    assert_still_serving(server)


def demo_clips(server: dict, count: int) -> list[str]:
    paths = sorted(server["demo"].rglob("*.wav"))[::7][:count]
    return [base64.b64encode(path.read_bytes()).decode() for path in paths]


def test_a_multi_row_request_answers_as_the_rows_sent_one_by_one(server):
    clips = demo_clips(server, 6)
    together = post(server["url"], [[clip] for clip in clips])
    assert together.status_code == 200, together.text[:500]
    batched = together.json()["predictions"]
    for clip, answer in zip(clips, batched, strict=True):
        alone = post(server["url"], [[clip]]).json()["predictions"][0]
        assert answer["emotion"] == alone["emotion"] and answer["error"] is None
        assert answer["probabilities"] == pytest.approx(alone["probabilities"], abs=1e-9)
        for ours, single in zip(answer["segments"], alone["segments"], strict=True):
            assert ours == {**single, "confidence": pytest.approx(single["confidence"], abs=1e-9)}


def test_a_bad_row_gets_its_own_error_and_the_others_are_answered(server):
    good = demo_clips(server, 2)
    silent = base64.b64encode(_wav(np.zeros(16000))).decode()
    response = post(server["url"], [[good[0]], [silent], ["not base64!!"], [good[1]]])
    assert response.status_code == 200, response.text[:500]
    answers = response.json()["predictions"]
    assert [a["error"] is None for a in answers] == [True, False, False, True]
    assert "row 1: audio is silent" in answers[1]["error"] and answers[1]["emotion"] is None
    assert "row 2" in answers[2]["error"] and "not valid base64" in answers[2]["error"]
    assert answers[1]["confidence"] is None and answers[1]["probabilities"] == {}
    for row, clip in ((0, good[0]), (3, good[1])):
        alone = post(server["url"], [[clip]]).json()["predictions"][0]
        assert answers[row]["emotion"] == alone["emotion"]

    every = post(server["url"], [[silent], ["not base64!!"]])
    assert every.status_code == 400
    message = every.json()["message"]
    assert message.startswith("every row failed: row 0: audio is silent") and "row 1" in message


def _wav(samples) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples.astype("float32"), 16000, format="WAV")
    return buffer.getvalue()
