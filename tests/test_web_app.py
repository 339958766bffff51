"""``ser app`` in a real headless Chromium, scoring through a real ``mlflow models serve``."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import soundfile as sf
from browser import CHROMEDRIVER, CHROMIUM, headless_chrome, open_page, upload_and_score
from ci_requirements import require
from experiment_configs import demo_store, write_config
from local_server import free_port, running

from experiments.serving.command import serve_command, serving_environment
from flows.promote import promote_model
from flows.train import train_models

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

SER = Path(sys.executable).with_name("ser")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, shared_data):
    """Two registered versions, the champion served over HTTP, and ``ser app`` in front."""
    require(bool(CHROMIUM and CHROMEDRIVER), "chromium and chromedriver are not installed")
    root = tmp_path_factory.mktemp("web-app")
    data = root / "demo"
    with demo_store(root) as uri:
        for name, grid in (("first", [0.01]), ("second", [1.0])):
            trainers = {"sklearn_linear": {"param_grid": {"C": grid}, "cv_folds": 2}}
            config = write_config(root, name, trainers, data, experiment="ser-app-tests")
            train_models(config_path=str(config))
            promote_model(config_path=str(config))
        env = {**serving_environment(uri), "GRADIO_ANALYTICS_ENABLED": "False"}
        model_port, app_port = free_port(), free_port()
        model_url = f"http://127.0.0.1:{model_port}"
        with (
            running(
                serve_command("ser-emotion", port=model_port),
                env=env,
                log_path=root / "serve.log",
                ready_url=f"{model_url}/ping",
            ),
            running(
                [str(SER), "app", "--port", str(app_port), "--model-url", model_url],
                env=env,
                log_path=root / "app.log",
                ready_url=f"http://127.0.0.1:{app_port}/",
            ),
        ):
            yield {"url": f"http://127.0.0.1:{app_port}/", "root": root, "uri": uri}


@pytest.fixture(scope="module")
def browser():
    require(bool(CHROMIUM and CHROMEDRIVER), "chromium and chromedriver are not installed")
    driver = headless_chrome()
    yield driver
    driver.quit()


def in_process_emotion(clip: Path) -> str:
    model = mlflow.pyfunc.load_model("models:/ser-emotion@champion")
    audio = base64.b64encode(clip.read_bytes()).decode()
    return model.predict(pd.DataFrame({"audio": [audio]})).iloc[0]["emotion"]


def test_page_names_the_champion_and_warns_it_learned_synthetic_speech(app_url, browser):
    from selenium.webdriver.common.by import By

    open_page(browser, app_url["url"])
    header = browser.find_element(By.ID, "model-header").text
    assert "ser-emotion@champion" in header and "sklearn_linear" in header
    assert "served at http://127.0.0.1:" in header
    assert "synthetic demo corpus" in header


def test_a_real_clip_gets_its_emotion_timeline_probabilities_and_a_comparison(
    app_url, browser, shared_data
):
    from selenium.webdriver.common.by import By

    clip = sorted((shared_data / "ravdess" / "Actor_02").glob("03-01-05-02-*.flac"))[0]
    open_page(browser, app_url["url"])
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#compare label") if e.text]
    other = next(label for label in labels if label.startswith("version"))
    upload_and_score(browser, clip, compare=other)

    assert browser.find_element(By.ID, "status").text.strip() == ""
    summary = browser.find_element(By.ID, "summary").text
    expected = in_process_emotion(clip)  # the same pyfunc, loaded here, says the same
    assert f"@champion: {expected} (" in summary
    assert "Share of speech time:" in summary
    assert "s of speech; SNR about" in summary and "(16 kHz file)" in summary  # what it heard
    assert "⚠️" not in summary  # a clean studio clip raises no warning
    assert browser.find_elements(By.CSS_SELECTOR, "#timeline img"), "no timeline picture"
    probabilities = browser.find_element(By.ID, "probabilities").text
    for label in ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"):
        assert label in probabilities
    assert f"{other}:" in browser.find_element(By.ID, "other-summary").text
    assert browser.find_elements(By.CSS_SELECTOR, "#other-timeline img")
    browser.save_screenshot(str(app_url["root"] / "app.png"))


def test_ticked_labels_are_the_only_ones_answered_among(app_url, browser, shared_data):
    from selenium.webdriver.common.by import By

    clip = sorted((shared_data / "ravdess" / "Actor_02").glob("03-01-04-*.flac"))[0]
    open_page(browser, app_url["url"])
    offered = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#labels label") if e.text]
    assert {"angry", "calm", "happy", "neutral", "sad"} <= set(offered)  # the champion's labels
    upload_and_score(browser, clip, labels=("sad", "angry"))

    summary = browser.find_element(By.ID, "summary").text
    assert "Answered among sad, angry only." in summary
    emotion = summary.split("@champion:")[1].split("(")[0].strip()
    assert emotion in ("sad", "angry")
    probabilities = browser.find_element(By.ID, "probabilities").text
    assert "sad" in probabilities and "angry" in probabilities
    for label in ("neutral", "calm", "happy", "fearful", "disgust", "surprised"):
        assert label not in probabilities


def test_too_little_or_noisy_speech_is_said_in_plain_words(app_url, browser, shared_data, tmp_path):
    from selenium.webdriver.common.by import By

    from ser_features.conditions import simulate

    samples, rate = sf.read(
        sorted((shared_data / "ravdess" / "Actor_02").glob("03-01-05-02-*.flac"))[0],
        dtype="float32",
    )
    short, noisy = tmp_path / "short.wav", tmp_path / "noisy.wav"
    sf.write(short, samples[int(1.0 * rate) : int(1.3 * rate)], rate)
    sf.write(noisy, *simulate("pink_noise_10db", samples, rate, seed=0))

    open_page(browser, app_url["url"])
    upload_and_score(browser, short)
    summary = browser.find_element(By.ID, "summary").text
    assert "@champion: no emotion judged" in summary
    assert "Too little speech to judge (" in summary and "s needed" in summary

    open_page(browser, app_url["url"])
    upload_and_score(browser, noisy)
    summary = browser.find_element(By.ID, "summary").text
    assert "Noisy recording (SNR" in summary and "less reliable" in summary


def test_a_file_that_is_not_audio_shows_a_readable_message(app_url, browser, tmp_path):
    from selenium.webdriver.common.by import By

    fake = tmp_path / "notes.wav"
    fake.write_text("these are meeting notes, not a recording\n" * 20)
    open_page(browser, app_url["url"])
    upload_and_score(browser, fake)
    status = browser.find_element(By.ID, "status").text
    assert "Could not score this audio" in status
    assert "not decodable audio" in status and "convert it to WAV or FLAC" in status
    assert "Traceback" not in browser.page_source


def ser_predict(store_uri: str, *args: str) -> subprocess.CompletedProcess:
    """``ser predict ARGS...`` against the registry at ``store_uri``, output captured."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": store_uri}
    return subprocess.run(
        [str(SER), "predict", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_ser_predict_writes_the_timeline_picture(app_url, shared_data, tmp_path):
    clips = sorted((shared_data / "ravdess" / "Actor_02").glob("*.flac"))[:2]
    picture = tmp_path / "timeline.png"
    result = ser_predict(app_url["uri"], *map(str, clips), "--plot", str(picture))
    assert result.returncode == 0, result.stdout + result.stderr
    for clip in clips:
        drawn = tmp_path / f"timeline-{clip.stem}.png"
        assert drawn.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert str(drawn) in result.stdout.replace("\n", "")

    among = ser_predict(app_url["uri"], str(clips[0]), "--labels", "sad,angry")
    assert among.returncode == 0, among.stdout + among.stderr
    said = among.stdout.split(": ", 1)[1].split()[0]
    assert said in {"sad", "angry"}, among.stdout


def test_ser_predict_refuses_labels_for_a_model_that_would_ignore_them(
    app_url, shared_data, tmp_path
):
    """A champion registered before the ``labels`` column would silently drop it."""
    import warnings

    from mlflow import MlflowClient
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from experiments.tracking.runs import MODEL_CODE

    mlflow.set_tracking_uri(app_url["uri"])
    mlflow.set_registry_uri(app_url["uri"])
    champion = Path(
        mlflow.artifacts.download_artifacts(
            "models:/ser-emotion@champion", dst_path=str(tmp_path / "champion")
        )
    )
    before = Schema([ColSpec("string", "audio"), ColSpec("string", "session", required=False)])
    mlflow.set_experiment("ser-app-tests")
    with mlflow.start_run(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no input example: not needed here
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),
            artifacts={"predictor": str(champion / "artifacts" / "predictor")},
            signature=ModelSignature(inputs=before),
        )
    version = mlflow.register_model(info.model_uri, "ser-before-labels").version
    MlflowClient().set_registered_model_alias("ser-before-labels", "champion", version)
    clip = sorted((shared_data / "ravdess" / "Actor_02").glob("*.flac"))[0]

    def predict(*extra: str) -> subprocess.CompletedProcess:
        return ser_predict(app_url["uri"], str(clip), "--model", "ser-before-labels", *extra)

    refused = predict("--labels", "sad,angry")
    output = (refused.stdout + refused.stderr).replace("\n", " ")
    assert refused.returncode == 2, output
    assert "registered before" in output and "train and promote a new version" in output
    answered = predict()
    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert clip.name in answered.stdout

    # Served over HTTP, MLflow drops the column before the model sees it: the app says so.
    from ser_app.scoring import EndpointScorer, ScoringError

    port = free_port()
    with running(
        serve_command("ser-before-labels", port=port),
        env=serving_environment(app_url["uri"]),
        log_path=tmp_path / "serve-before-labels.log",
        ready_url=f"http://127.0.0.1:{port}/ping",
    ):
        scorer = EndpointScorer(f"http://127.0.0.1:{port}")
        assert len(scorer.score(clip.read_bytes())["probabilities"]) == 8
        with pytest.raises(ScoringError, match="registered before models took a list of labels"):
            scorer.score(clip.read_bytes(), ["sad", "angry"])
