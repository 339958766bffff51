"""What the served model hears: the ``quality`` facts and warnings of a real clip as recorded
and through simulated conditions, and a recording with too little speech answered as such.

A small model on the champion's feature set (trained on the demo corpus) is scored through
its pyfunc in-process and through a real ``mlflow models serve``, which must say the same.
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import soundfile as sf
from experiment_configs import demo_store
from local_server import free_port, running
from served_demo import answer, train_demo_champion, wav_b64

from experiments.serving.command import serve_command, serving_environment
from experiments.serving.emotion_model import TELEPHONE_BAND_KEY
from experiments.serving.prediction_log import answer_rows, quality_facts
from ser_features.audio import resample
from ser_features.conditions import simulate
from ser_features.quality import MIN_SPEECH_S, NARROWBAND_HZ, TELEPHONE_RATE
from ser_features.speech_activity import WINDOW_S, speech_probability, speech_windows

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

NAME = "served-quality"
#: Actor 2, angry, strong intensity: 1.9 s of clean studio speech.
CLIP = "ravdess/Actor_02/03-01-05-02-01-01-02.flac"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The model in-process and behind ``mlflow models serve`` (its invocations URL)."""
    root = tmp_path_factory.mktemp("served-quality")
    with demo_store(root, n_speakers=3, chdir=False) as uri:
        model_uri = train_demo_champion(root, NAME)
        port = free_port()
        with running(
            serve_command(NAME, port=port),
            env=serving_environment(uri),
            log_path=root / "server.log",
            ready_url=f"http://127.0.0.1:{port}/ping",
        ):
            yield {
                "model": mlflow.pyfunc.load_model(model_uri),
                # the same model as if it had learnt from telephone-band recordings
                "telephone": mlflow.pyfunc.load_model(
                    model_uri, model_config={TELEPHONE_BAND_KEY: True}
                ),
                "url": f"http://127.0.0.1:{port}/invocations",
            }


@pytest.fixture(scope="module")
def clip(shared_data) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(shared_data / CLIP, dtype="float32")
    return samples, rate


def heard(served: dict, samples: np.ndarray, rate: int, condition: str = "clean") -> dict:
    """The in-process answer for ``samples`` as heard through ``condition``."""
    samples, rate = simulate(condition, samples, rate, seed=0)
    return answer(served["model"], samples, rate)


def test_a_clean_clip_is_heard_whole_and_raises_no_warning(served, clip):
    result = heard(served, *clip)
    quality = result["quality"]
    assert result["emotion"] is not None and result["error"] is None
    assert quality["warnings"] == []
    assert quality["snr_db"] > 40 and quality["sample_rate"] == 16000
    assert quality["speech_s"] > MIN_SPEECH_S and quality["bandwidth_hz"] > NARROWBAND_HZ
    assert quality["clipped_share"] == 0 and -40 < quality["level_dbfs"] < -10


def test_pink_noise_at_10_db_is_measured_as_such_and_warned_of(served, clip):
    clean = heard(served, *clip)["quality"]
    noisy = heard(served, *clip, "pink_noise_10db")
    assert noisy["emotion"] is not None  # less reliable, still answered
    assert noisy["quality"]["warnings"] == ["low_snr"]
    assert noisy["quality"]["snr_db"] == pytest.approx(10, abs=2.5)
    assert clean["snr_db"] - noisy["quality"]["snr_db"] > 30


def test_a_telephone_line_is_narrowband_at_8_khz(served, clip):
    quality = heard(served, *clip, "telephone_ulaw")["quality"]
    assert quality["warnings"] == ["narrowband"]
    assert quality["sample_rate"] == 8000 and quality["bandwidth_hz"] < 4000


def test_a_model_of_wideband_clips_says_so_and_hears_a_wideband_clip_whole(served):
    assert served["model"].model_config[TELEPHONE_BAND_KEY] is False


def test_a_telephone_band_model_hears_every_recording_through_its_band(served, clip):
    """A model that learnt from 8 kHz calls: no warning that a call is narrowband, and a
    wideband recording is answered as the same speech at 8 kHz."""
    model = served["telephone"]
    assert model.model_config[TELEPHONE_BAND_KEY] is True
    assert heard({"model": model}, *clip, "telephone_ulaw")["quality"]["warnings"] == []
    samples, rate = clip
    wide = answer(model, samples, rate)
    narrow = answer(model, resample(samples, rate, TELEPHONE_RATE), TELEPHONE_RATE)
    assert wide["quality"]["sample_rate"] == rate  # the facts are of the recording as sent
    assert wide["emotion"] == narrow["emotion"]
    wide_p, narrow_p = (np.array(list(a["probabilities"].values())) for a in (wide, narrow))
    assert np.abs(wide_p - narrow_p).max() < 0.02  # 16-bit rounding of the 8 kHz file apart
    as_wideband = np.array(list(answer(served["model"], samples, rate)["probabilities"].values()))
    assert not np.allclose(wide_p, as_wideband)  # the band limit is what it heard


def test_clipping_is_counted_and_warned_of(served, clip):
    quality = heard(served, *clip, "clipped_12db")["quality"]
    assert quality["warnings"] == ["clipped"]
    assert quality["clipped_share"] > 0.001


def speech_slice(samples: np.ndarray, rate: int, seconds: float) -> np.ndarray:
    """``seconds`` of ``samples`` from the middle of its speech."""
    windows = np.flatnonzero(speech_windows(speech_probability(samples, rate)))
    middle = int((windows[0] + windows[-1] + 1) / 2 * WINDOW_S * rate)
    return samples[middle - int(seconds * rate / 2) : middle + int(seconds * rate / 2)]


def assert_not_judged(result: dict) -> None:
    """An answer with too little speech: no emotion, no confidence, no error."""
    assert result["error"] is None
    assert result["emotion"] is None and result["confidence"] is None
    assert result["segments"] == []
    assert sum(result["probabilities"].values()) == pytest.approx(1.0)
    assert "too_little_speech" in result["quality"]["warnings"]
    assert result["quality"]["speech_s"] < MIN_SPEECH_S


def test_a_third_of_a_second_of_shouting_is_too_little_to_judge(served, clip):
    samples, rate = clip
    assert_not_judged(answer(served["model"], speech_slice(samples, rate, 0.3), rate))


def test_noise_without_speech_is_answered_as_too_little_speech(served):
    rate = 16000
    quiet = np.zeros(rate, dtype=np.float32)
    quiet += 0.001 * np.random.default_rng(0).standard_normal(rate).astype(np.float32)
    result = answer(served["model"], quiet, rate)
    assert_not_judged(result)
    quality = result["quality"]
    assert quality["speech_s"] == 0 and quality["snr_db"] is None and quality["level_dbfs"] is None


def test_the_server_answers_what_it_heard_as_the_pyfunc_does(served, clip):
    samples, rate = clip
    recordings = [
        simulate("clean", samples, rate, seed=0),
        simulate("telephone_ulaw", samples, rate, seed=0),
        (speech_slice(samples, rate, 0.3), rate),
    ]
    rows = [[wav_b64(*recording)] for recording in recordings]
    body = {"dataframe_split": {"columns": ["audio"], "data": rows}}
    response = requests.post(served["url"], json=body, timeout=120)
    assert response.status_code == 200, response.text[:500]
    answers = response.json()["predictions"]
    for over_http, recording in zip(answers, recordings, strict=True):
        in_process = answer(served["model"], *recording)
        assert over_http["quality"] == in_process["quality"]
        assert over_http["emotion"] == in_process["emotion"]
    assert answers[0]["quality"]["warnings"] == [] and answers[0]["emotion"] is not None
    assert answers[1]["quality"]["warnings"] == ["narrowband"]
    assert_not_judged(answers[2])


def test_the_prediction_log_keeps_the_quality_facts(served, clip):
    samples, rate = simulate("telephone_ulaw", *clip, seed=0)
    result = answer(served["model"], samples, rate)
    facts = quality_facts(samples, rate, result["quality"])
    (row,) = answer_rows([result], [facts], [None], model_name=NAME, request_ms=1.0)
    assert row["warnings"] == "narrowband" and row["sample_rate"] == 8000
    assert {"duration_s", "rms_dbfs", "clipped_share", "speech_s", "snr_db"} <= set(row)
    assert json.loads(row["probabilities"]) == pytest.approx(result["probabilities"])
    assert pd.notna(row["bandwidth_hz"]) and row["emotion"] == result["emotion"]
