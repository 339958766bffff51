"""Long recordings are split where the speech stops, not where it gets quiet.

Twelve real CREMA-D clips of one speaker (shouted anger and joy beside low-level sadness,
disgust and fear) are joined with 0.7 s pauses and scored by a served model (the pyfunc of a
small model trained on the demo corpus with the champion's feature set). A clip's speech is
what the voice activity detector hears in that clip on its own (its speech windows).
"""

from __future__ import annotations

from collections import defaultdict

import mlflow
import numpy as np
import pytest
import soundfile as sf
from experiment_configs import demo_store
from served_demo import answer, train_demo_champion

from ser_features.conditions import coloured_noise
from ser_features.speech_activity import WINDOW_S, speech_probability, speech_windows

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

#: A speaker whose quiet clips the level splitter lost (25% of the sad speech kept, 71% of neutral).
SPEAKER = "1030"
CLIPS = (
    "IEO_ANG_HI", "IEO_SAD_LO", "IEO_HAP_HI", "IEO_DIS_LO", "IEO_NEU_XX", "IEO_FEA_LO",
    "DFA_ANG_XX", "IEO_SAD_MD", "IWL_HAP_XX", "MTI_DIS_XX", "TIE_NEU_XX", "ITS_FEA_XX",
)  # fmt: skip
PAUSE_S = 0.7
RATE = 16000


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("long-recordings")
    with demo_store(root, n_speakers=3, chdir=False):
        yield mlflow.pyfunc.load_model(train_demo_champion(root, "long-recordings"))


@pytest.fixture(scope="module")
def recording(shared_data) -> tuple[np.ndarray, list[tuple[str, int, float, float]]]:
    """The joined recording, and each clip's speech windows (emotion, clip number, start,
    end) in it."""
    pause = np.zeros(int(PAUSE_S * RATE), dtype=np.float32)
    parts, speech, at = [], [], 0.0
    for number, name in enumerate(CLIPS):
        samples, rate = sf.read(shared_data / "cremad" / f"{SPEAKER}_{name}.flac", dtype="float32")
        assert rate == RATE
        windows = np.flatnonzero(speech_windows(speech_probability(samples, rate)))
        emotion = name.split("_")[1]
        speech += [(emotion, number, at + w * WINDOW_S, at + (w + 1) * WINDOW_S) for w in windows]
        parts += [samples, pause]
        at += (len(samples) + len(pause)) / RATE
    return np.concatenate(parts), speech


def overlap(start: float, end: float, segment: dict) -> float:
    """Seconds of ``[start, end]`` inside ``segment``."""
    return max(0.0, min(end, segment["end"]) - max(start, segment["start"]))


def covered(speech: list[tuple[str, int, float, float]], segments: list[dict]) -> dict:
    """The share of each emotion's speech that lies inside ``segments``."""
    total, inside = defaultdict(float), defaultdict(float)
    for emotion, _, start, end in speech:
        total[emotion] += end - start
        inside[emotion] += sum(overlap(start, end, segment) for segment in segments)
    return {emotion: inside[emotion] / total[emotion] for emotion in total}


def clips_heard_in(segment: dict, speech: list[tuple[str, int, float, float]]) -> set[int]:
    """The clips whose speech ``segment`` holds (more than a window of it)."""
    seconds = defaultdict(float)
    for _, clip, start, end in speech:
        seconds[clip] += overlap(start, end, segment)
    return {clip for clip, held in seconds.items() if held > WINDOW_S}


def test_quiet_and_loud_speech_of_every_emotion_lies_in_the_segments(model, recording):
    samples, speech = recording
    result = answer(model, samples, RATE)
    assert result["error"] is None and result["emotion"] is not None
    segments = result["segments"]
    assert segments == sorted(segments, key=lambda s: s["start"])
    assert all(s["end"] > s["start"] for s in segments)
    coverage = covered(speech, segments)
    assert set(coverage) == {"ANG", "HAP", "SAD", "NEU", "FEA", "DIS"}
    assert min(coverage.values()) >= 0.9, coverage
    # split where the speech stops: no segment holds the speech of two clips
    assert all(len(clips_heard_in(segment, speech)) <= 1 for segment in segments), segments


def test_a_long_recording_without_speech_is_not_judged(model):
    noise = coloured_noise(20 * RATE, 1.0, np.random.default_rng(0)) * 10 ** (-40 / 20)
    result = answer(model, noise.astype(np.float32), RATE)
    assert result["error"] is None
    assert result["emotion"] is None and result["confidence"] is None
    assert result["segments"] == []
    assert sum(result["probabilities"].values()) == pytest.approx(1.0)
    assert result["quality"]["speech_s"] == 0
    assert "too_little_speech" in result["quality"]["warnings"]
