"""The quality facts and the speech segmenter on synthetic signals, with the detector's output
given where it matters (fast: no model is trained)."""

from __future__ import annotations

import numpy as np
import pytest

from ser_features.conditions import coloured_noise
from ser_features.quality import in_words, recording_quality, telephone_band, warnings_of
from ser_features.segments import _cut_long, _join_short, speech_segments
from ser_features.speech_activity import WINDOW

RATE = 16000
SPEECH, PAUSE = 0.9, 0.0


def tone(windows: int, amplitude: float = 0.3, hz: float = 440.0, rate: int = RATE) -> np.ndarray:
    return amplitude * np.sin(np.arange(windows * WINDOW * rate // RATE) * 2 * np.pi * hz / rate)


def hiss(windows: int, rms: float, seed: int = 0) -> np.ndarray:
    return rms * np.random.default_rng(seed).standard_normal(windows * WINDOW)


def test_snr_is_speech_over_the_noise_between_words():
    samples = np.concatenate([hiss(20, 0.003), tone(40, hz=1500) + hiss(40, 0.003, 1)])
    probability = np.repeat([PAUSE, SPEECH], [20, 40])
    facts = recording_quality(samples, RATE, probability)
    expected = 10 * np.log10((0.3**2 / 2) / 0.003**2)  # 37.0 dB
    assert facts["snr_db"] == pytest.approx(expected, abs=1.0)
    assert facts["speech_s"] == pytest.approx(40 * WINDOW / RATE)
    assert facts["level_dbfs"] == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.2)


def test_speech_from_end_to_end_takes_the_noise_from_the_quietest_frames():
    samples = tone(60, hz=1500) * np.repeat([1.0, 0.01], [40 * WINDOW, 20 * WINDOW])
    facts = recording_quality(samples, RATE, np.full(60, SPEECH))
    assert facts["snr_db"] is not None and 20 < facts["snr_db"] < 45


def test_no_speech_has_no_snr_no_level_and_too_little_speech():
    facts = recording_quality(hiss(50, 0.01), RATE, np.zeros(50))
    assert facts["speech_s"] == 0 and facts["snr_db"] is None and facts["level_dbfs"] is None
    assert facts["warnings"][0] == "too_little_speech"
    assert "SNR not measurable" in in_words(facts)[0]


def test_an_8_khz_file_is_narrowband_and_clipping_is_counted():
    narrow = tone(50, hz=1000, rate=8000)
    assert "narrowband" in recording_quality(narrow, 8000, np.full(50, SPEECH))["warnings"]
    clipped = np.clip(tone(50, amplitude=2.0, hz=300), -1.0, 1.0)
    facts = recording_quality(clipped, RATE, np.full(50, SPEECH))
    assert facts["clipped_share"] > 0.5 and "clipped" in facts["warnings"]
    assert "Clipped recording" in in_words(facts)[-1]


def test_silence_and_noise_have_no_speech_segments():
    assert speech_segments(np.zeros(3 * RATE, dtype=np.float32), RATE) == []
    noise = coloured_noise(10 * RATE, 1.0, np.random.default_rng(0)) * 0.01
    assert speech_segments(noise.astype(np.float32), RATE) == []


def test_a_short_span_joins_its_nearer_neighbour_only_when_the_pause_is_short():
    spans = [(0.0, 2.0), (2.4, 2.6), (3.5, 5.0), (9.0, 9.3)]
    assert _join_short(spans, min_segment_s=0.5, max_gap_s=1.0) == [
        (0.0, 2.6),
        (3.5, 5.0),
        (9.0, 9.3),  # 4 s from anything: kept on its own
    ]


def test_a_long_span_is_cut_into_equal_parts():
    parts = _cut_long((1.0, 21.0), 8.0)
    assert len(parts) == 3 and parts[0][0] == 1.0 and parts[-1][1] == 21.0
    assert {round(end - start, 6) for start, end in parts} == {round(20 / 3, 6)}


def test_a_model_of_telephone_calls_is_not_warned_that_a_call_is_narrowband():
    assert telephone_band([8000, 8000, 16000]) and not telephone_band([8000, 16000, 44100])
    assert not telephone_band([])
    facts = {"speech_s": 2.0, "snr_db": 30.0, "sample_rate": 8000, "bandwidth_hz": 3400.0,
             "clipped_share": 0.0, "level_dbfs": -25.0}  # fmt: skip
    assert warnings_of(facts) == ["narrowband"]
    assert warnings_of(facts, model_telephone_band=True) == []
